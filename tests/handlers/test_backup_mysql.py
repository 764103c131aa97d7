"""backup.create / verify / restore of MariaDB databases against a throwaway mariadbd."""

from __future__ import annotations

import subprocess
import threading

import pymysql
import pytest

from support.contexts import run_handler
from support.servers import require_binary, start_mariadb
from upkeep.errors import UserError
from upkeep.handlers.backup import catalog
from upkeep.store.records import Records

pytestmark = pytest.mark.mariadb

SCHEMA = """
CREATE TABLE customers (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(80) NOT NULL, balance DECIMAL(10,2) NOT NULL);
CREATE TABLE audit (id INT PRIMARY KEY AUTO_INCREMENT, customer_id INT, note TEXT, at DATETIME(6));
CREATE TABLE blobs (id INT PRIMARY KEY, data LONGBLOB);
CREATE TRIGGER customers_audit AFTER INSERT ON customers FOR EACH ROW
  INSERT INTO audit(customer_id, note, at) VALUES (NEW.id, CONCAT('created ', NEW.name), NOW(6));
CREATE PROCEDURE add_customer(IN n VARCHAR(80), IN b DECIMAL(10,2)) INSERT INTO customers(name, balance) VALUES (n, b);
CREATE FUNCTION doubled(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
CREATE EVENT purge_audit ON SCHEDULE EVERY 1 DAY DO DELETE FROM audit WHERE at < NOW() - INTERVAL 365 DAY;
CALL add_customer('ana', 10.50);
CALL add_customer('ivo', 0);
INSERT INTO customers(name, balance) SELECT CONCAT('c', seq), seq / 7 FROM seq_1_to_3000;
INSERT INTO blobs VALUES (1, UNHEX('00FF10E2')), (2, REPEAT(CHAR(0), 100));
"""


@pytest.fixture(scope="module")
def mariadb():
    server = start_mariadb()
    try:
        yield server
    finally:
        server.remove()


def _schema(server, db: str) -> str:
    out = subprocess.run(
        [
            require_binary("mariadb-dump"),
            "-uroot",
            "-h127.0.0.1",
            f"-P{server.port}",
            "--no-data",
            "--routines",
            "--triggers",
            "--events",
            "--skip-comments",
            db,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


def _checksums(server, db: str) -> dict[str, str]:
    tables = server.sql(f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}'").split()
    out = {}
    for t in tables:
        out[t] = server.sql(f"CHECKSUM TABLE `{db}`.`{t}` EXTENDED").split()[-1]
    return out


def test_mariadb_with_triggers_routines_and_an_event_round_trips_exactly(mariadb, sqlite_store, tmp_path):
    db = mariadb.create_database("shop")
    mariadb.sql(SCHEMA, db)
    targets = {
        "databases": {
            "shop": {
                "url": mariadb.url(db),
                "assertions": ["SELECT COUNT(*) = 3002 FROM customers", "SELECT doubled(21) = 42"],
            }
        }
    }
    made = run_handler(
        sqlite_store,
        "backup.create",
        {"source": "shop", "destination": str(tmp_path / "b")},
        targets=targets,
        data_dir=tmp_path,
    )
    assert made["row_counts"] == {"audit": 3002, "blobs": 2, "customers": 3002}
    entry = catalog.find(Records(sqlite_store, "backup"), made["backup_id"])
    assert entry["type"] == "mysql" and entry["manifest"]["row_counts_exact"] is True
    assert "password" not in entry["connection"]

    verified = run_handler(sqlite_store, "backup.verify", {"source": "shop"}, targets=targets, data_dir=tmp_path)
    assert verified["outcome"] == "ok", verified["summary"]
    checks = {c["check"]: c for c in verified["backups"][0]["checks"]}
    assert checks["test_restore"]["ok"] and checks["row_counts"]["ok"]
    assert [c["ok"] for c in verified["backups"][0]["checks"] if c["check"] == "assertion"] == [True, True]
    assert (
        mariadb.sql("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE 'upkeep_verify%'") == "0"
    )

    restore_cfg = {"source": "shop", "target_database": "shop_restored", "create": True}
    planned = run_handler(sqlite_store, "backup.restore", restore_cfg, targets=targets, data_dir=tmp_path, dry_run=True)
    assert planned["plan"]["creates"] == "shop_restored" and planned["plan"]["drops"] is None
    assert mariadb.sql("SHOW DATABASES LIKE 'shop_restored'") == ""
    with pytest.raises(UserError, match="needs confirmation"):
        run_handler(sqlite_store, "backup.restore", restore_cfg, targets=targets, data_dir=tmp_path)
    restored = run_handler(
        sqlite_store, "backup.restore", restore_cfg, targets=targets, data_dir=tmp_path, confirm=True
    )
    assert restored["outcome"] == "ok", restored["summary"]
    assert _schema(mariadb, db) == _schema(mariadb, "shop_restored")
    assert "purge_audit" in _schema(mariadb, "shop_restored") and "customers_audit" in _schema(mariadb, db)
    assert _checksums(mariadb, db) == _checksums(mariadb, "shop_restored")
    # the event came back as it was: enabled (only test restores disable events)
    assert mariadb.sql("SELECT status FROM information_schema.events WHERE event_schema = 'shop_restored'") == "ENABLED"

    with pytest.raises(UserError, match="already exists"):
        run_handler(sqlite_store, "backup.restore", restore_cfg, targets=targets, data_dir=tmp_path, dry_run=True)
    mariadb.drop_database("shop_restored")
    mariadb.drop_database(db)


def test_row_counts_are_the_dumps_snapshot_while_writers_keep_committing(mariadb, sqlite_store, tmp_path):
    db = mariadb.create_database()
    mariadb.sql(
        "CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, pad CHAR(200));"
        "CREATE TABLE order_lines (id INT PRIMARY KEY AUTO_INCREMENT, order_id INT, pad CHAR(200));"
        "INSERT INTO orders(pad) SELECT 'x' FROM seq_1_to_60000;"
        "INSERT INTO order_lines(order_id, pad) SELECT seq, 'y' FROM seq_1_to_60000;",
        db,
    )
    stop = threading.Event()
    written = [0]

    def write() -> None:  # each transaction adds one order and its line: counts stay equal in any snapshot
        conn = pymysql.connect(host="127.0.0.1", port=mariadb.port, user="root", database=db)
        try:
            while not stop.is_set():
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO orders(pad) VALUES ('w')")
                    cur.execute("INSERT INTO order_lines(order_id, pad) VALUES (LAST_INSERT_ID(), 'w')")
                conn.commit()
                written[0] += 1
        finally:
            conn.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while written[0] < 50:
            stop.wait(0.01)
        source = {"url": mariadb.url(db, scheme="mysql"), "name": "orders"}
        made = run_handler(
            sqlite_store, "backup.create", {"source": source, "destination": str(tmp_path / "b")}, data_dir=tmp_path
        )
        before = written[0]
        stop.wait(0.3)
    finally:
        stop.set()
        writer.join()
    assert written[0] > before  # writers were not blocked for the dump
    counts = made["row_counts"]
    assert counts["orders"] == counts["order_lines"] > 60000
    verified = run_handler(sqlite_store, "backup.verify", {"source": source}, data_dir=tmp_path)
    assert verified["outcome"] == "ok", verified["summary"]
    mariadb.drop_database(db)


def test_a_failing_assertion_and_a_wrong_password_are_reported_clearly(mariadb, sqlite_store, tmp_path, monkeypatch):
    db = mariadb.create_database()
    mariadb.sql("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)", db)
    mariadb.sql("CREATE USER 'bk'@'%' IDENTIFIED BY 'right-pw-123'; GRANT ALL ON *.* TO 'bk'@'%'")
    monkeypatch.setenv("MY_PW", "right-pw-123")
    url = f"mariadb://bk:${{env:MY_PW}}@127.0.0.1:{mariadb.port}/{db}"
    source = {"url": url, "name": "small", "assertions": ["SELECT COUNT(*) = 5 FROM t"]}
    run_handler(
        sqlite_store, "backup.create", {"source": source, "destination": str(tmp_path / "b")}, data_dir=tmp_path
    )
    verified = run_handler(sqlite_store, "backup.verify", {"source": source}, data_dir=tmp_path)
    assert verified["outcome"] == "critical" and "SELECT COUNT(*) = 5 FROM t -> 0" in verified["summary"]
    assert "right-pw-123" not in str(verified)
    for path in tmp_path.rglob("*"):
        assert path.is_dir() or b"right-pw-123" not in path.read_bytes()

    monkeypatch.setenv("MY_PW", "wrong-pw-456")
    from upkeep.errors import ConnectionFailed

    with pytest.raises(ConnectionFailed) as err:
        run_handler(
            sqlite_store, "backup.create", {"source": source, "destination": str(tmp_path / "b")}, data_dir=tmp_path
        )
    assert "wrong-pw-456" not in str(err.value) and f"127.0.0.1:{mariadb.port}" in str(err.value)
    mariadb.drop_database(db)
