"""One model of a PostgreSQL target: the db.* handlers, backups and health checks read a target the
same way (``upkeep.handlers.db.postgres.PgTarget``), and its password never reaches a message or a
connection string handed to a client tool."""

from __future__ import annotations

import pytest

from upkeep.errors import ConfigError
from upkeep.handlers.db.postgres import PgTarget, database_of, describe, server_of

SECRET = "s3cr3t-pw"


@pytest.mark.parametrize(
    "target",
    [
        f"postgresql://maint:{SECRET}@db1:6543/app",
        f"postgres://maint:{SECRET}@db1:6543/app",
        f"postgresql+psycopg://maint:{SECRET}@db1:6543/app",
        {"url": f"postgresql://maint:{SECRET}@db1:6543/app"},
        {"dsn": f"host=db1 port=6543 user=maint password={SECRET} dbname=app"},
        {"host": "db1", "port": 6543, "user": "maint", "password": SECRET, "dbname": "app"},
        {"host": "db1", "port": 6543, "user": "maint", "password": SECRET, "database": "app"},
        {
            "url": "postgresql://other@elsewhere:1/none",
            "host": "db1",
            "port": "6543",
            "user": "maint",
            "password": SECRET,
            "dbname": "app",
        },  # fields override the url
    ],
)
def test_every_spelling_of_a_target_reads_as_the_same_server_database_and_password(target):
    pg = PgTarget.of(target)
    assert pg.params == {"host": "db1", "port": "6543", "user": "maint", "dbname": "app"}
    assert pg.password == SECRET
    assert (pg.dbname, pg.server) == ("app", ("db1", "6543"))
    assert describe(target) == "maint@db1:6543/app"
    assert (database_of(target), server_of(target)) == ("app", ("db1", "6543"))
    assert SECRET not in pg.conninfo() and SECRET not in pg.describe()
    assert pg.env() == {"PGPASSWORD": SECRET}
    assert PgTarget.of(pg.url()) == pg  # its URL reads back as itself


def test_a_backup_source_without_a_database_means_postgres_a_handler_target_libpqs_default():
    spec = {"host": "db1", "user": "maint"}
    assert PgTarget.from_spec(spec).dbname == "postgres"
    assert PgTarget.of(spec).dbname == "maint"  # libpq's default: the user's name
    assert PgTarget.from_spec(spec).spec("scratch") == {
        "type": "postgres",
        "host": "db1",
        "user": "maint",
        "dbname": "scratch",
    }


def test_sqlite_and_foreign_urls_are_config_errors_that_name_no_password():
    with pytest.raises(ConfigError, match="SQLite database, not PostgreSQL"):
        PgTarget.of("sqlite:////var/lib/app.db")
    with pytest.raises(ConfigError, match="is not postgresql://") as exc:
        PgTarget.of(f"mysql://root:{SECRET}@db1/app")
    assert SECRET not in str(exc.value)
    assert describe("sqlite:////var/lib/app.db") == "sqlite:/var/lib/app.db"
