"""People sign in with their own accounts: name and password (argon2), a TOTP code once enrolled
(a replayed code is refused), or a trusted reverse proxy's header; failures are audited and
throttled per client address; disabling an account ends its open sessions."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta

import pytest

from support.people import login_form_token, page_csrf, sign_in
from upkeep.api.app import create_app
from upkeep.auth import SESSIONS_DOMAIN
from upkeep.http.security import LOGIN_FAILURES, SESSION_COOKIE
from upkeep.people import accounts, totp
from upkeep.settings import Settings
from upkeep.store.models import User
from upkeep.store.records import Records

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PASSWORD = "correct horse battery"


@pytest.fixture
def alice(api):
    return accounts.create_user(api.store, name="alice", role="operator", password=PASSWORD, actor="test")


def audit(api, action: str | None = None, object_type: str = "session") -> list[dict]:
    entries = api.upkeep.list_audit(object_type=object_type, limit=200)[0]
    return [e for e in entries if action is None or e["action"] == action]


def test_the_right_password_signs_a_person_in_and_the_session_is_theirs(api, alice):
    answer = sign_in(api.client, "alice", PASSWORD, next_url="/checklists")
    assert answer.status_code == 303 and answer.headers["location"] == "/checklists"
    me = api.client.get("/api/v1/me").json()
    assert me == {"name": "alice", "role": "operator", "via": "session", "kind": "user", "timezone": "UTC"}
    [entry] = audit(api, "login")
    assert (entry["actor"], entry["object_id"]) == ("user:alice", "alice")
    with api.store.read() as s:
        stored = s.query(User).filter_by(name="alice").one()
        assert stored.password_hash.startswith("$argon2id$") and PASSWORD not in stored.password_hash
        assert stored.last_login_at is not None


def test_a_wrong_password_is_refused_audited_and_rate_limited(api, alice):
    answers = [sign_in(api.client, "alice", f"wrong {n}") for n in range(LOGIN_FAILURES + 2)]
    assert [a.status_code for a in answers] == [303] * LOGIN_FAILURES + [429, 429]
    assert all("error=invalid" in a.headers["location"] for a in answers[:LOGIN_FAILURES])
    assert int(answers[-1].headers["Retry-After"]) > 0
    assert SESSION_COOKIE not in api.client.cookies
    failed = audit(api, "login_failed")
    assert len(failed) == LOGIN_FAILURES
    assert all(e["actor"] == "client:testclient" and "account 'alice': wrong password" in e["detail"] for e in failed)
    assert len(audit(api, "login_throttled")) == 1
    # the address waits, whatever it sends: even the right password
    assert sign_in(api.client, "alice", PASSWORD).status_code == 429


def test_an_unknown_name_is_not_written_into_the_audit_log(api, alice):
    typed = "correct horse battery (typed into the name field)"
    assert "error=invalid" in sign_in(api.client, typed, PASSWORD).headers["location"]
    [entry] = audit(api, "login_failed")
    assert entry["detail"].endswith(": no such account") and "horse" not in str(entry)


def test_totp_right_wrong_missing_and_replayed_codes(api, alice):
    assert sign_in(api.client, "alice", PASSWORD).status_code == 303
    csrf = page_csrf(api.client)
    headers = {"X-CSRF-Token": csrf}
    enrolment = api.client.post("/api/v1/me/totp", headers=headers).json()
    assert enrolment["uri"].startswith("otpauth://totp/upkeep:alice?secret=")
    assert enrolment["svg"].startswith("<svg") and "<path" in enrolment["svg"]  # made here, nothing fetched
    secret = enrolment["secret"]
    now = datetime.now(UTC)
    wrong = api.client.post("/api/v1/me/totp/confirm", headers=headers, json={"code": "000000"})
    assert wrong.status_code == 422 and wrong.json()["field"] == "code"
    confirmed = api.client.post("/api/v1/me/totp/confirm", headers=headers, json={"code": totp.code_at(secret, now)})
    assert confirmed.status_code == 200 and confirmed.json()["totp"] is True
    api.client.post("/logout", data={"csrf_token": csrf})
    api.client.cookies.clear()

    def attempt(code: str) -> bool:
        answer = sign_in(api.client, "alice", PASSWORD, code)
        signed = answer.status_code == 303 and "error=" not in answer.headers["location"]
        api.client.cookies.clear()
        return signed

    later = totp.code_at(secret, now + timedelta(seconds=30))  # the next 30-second step
    far = totp.code_at(secret, now + timedelta(minutes=10))
    assert not attempt("")  # a password alone is no longer enough
    assert not attempt(far if far != later else "123456")  # a code of another time is wrong
    assert not attempt(totp.code_at(secret, now))  # the code enrolment spent
    assert attempt(later)
    assert not attempt(later)  # replayed
    reasons = [e["detail"].rsplit(": ", 1)[1] for e in audit(api, "login_failed")]
    assert sorted(reasons) == sorted(
        ["TOTP code missing", "wrong TOTP code", "TOTP code already used", "TOTP code already used"]
    )


def test_a_disabled_persons_open_session_ends_at_once(api, alice):
    assert sign_in(api.client, "alice", PASSWORD).status_code == 303
    copied = api.client.cookies.get(SESSION_COOKIE)
    assert api.client.get("/api/v1/me").status_code == 200
    assert Records(api.store, SESSIONS_DOMAIN).keys(f"user:{alice['id']}/")

    disabled = api.post(f"/api/v1/users/{alice['name']}/disable")  # an admin key
    assert disabled.status_code == 200 and disabled.json()["disabled_at"]
    assert Records(api.store, SESSIONS_DOMAIN).keys(f"user:{alice['id']}/") == []
    api.client.cookies.clear()
    api.client.cookies.set(SESSION_COOKIE, copied)
    assert api.client.get("/api/v1/me").status_code == 401
    assert api.client.get("/checklists").headers["location"].startswith("/login")
    api.client.cookies.clear()
    assert "error=invalid" in sign_in(api.client, "alice", PASSWORD).headers["location"]
    assert audit(api, "login_failed")[0]["detail"].endswith("account 'alice': account disabled")
    api.post("/api/v1/users/alice/enable")
    assert "error=" not in sign_in(api.client, "alice", PASSWORD).headers["location"]


def test_a_password_reset_ends_the_sessions_too_and_the_old_password_stops_working(api, alice):
    assert sign_in(api.client, "alice", PASSWORD).status_code == 303
    reset = api.post("/api/v1/users/alice/reset", json={"password": "a brand new one"})
    assert reset.status_code == 200
    assert api.client.get("/api/v1/me").status_code == 401
    api.client.cookies.clear()
    assert "error=invalid" in sign_in(api.client, "alice", PASSWORD).headers["location"]
    api.client.cookies.clear()
    assert "error=" not in sign_in(api.client, "alice", "a brand new one").headers["location"]


def test_preferences_belong_to_a_person_and_their_pages_use_them(api, alice):
    refused = api.patch("/api/v1/me", json={"timezone": "Europe/Zagreb"})  # an API key
    assert refused.status_code == 403 and "machine" in refused.json()["detail"]
    sign_in(api.client, "alice", PASSWORD)
    headers = {"X-CSRF-Token": page_csrf(api.client)}
    bad = api.client.patch("/api/v1/me", headers=headers, json={"timezone": "Mars/Olympus"})
    assert bad.status_code == 422 and bad.json()["field"] == "timezone"
    assert api.client.patch("/api/v1/me", headers=headers, json={"timezone": "Asia/Tokyo"}).status_code == 200
    page = api.client.get("/audit").text
    assert '<meta name="timezone" content="Asia/Tokyo">' in page
    assert " JST</time>" in page and " UTC</time>" not in page  # times rendered in the person's zone
    [entry] = audit(api, "preferences", object_type="user")
    assert entry["actor"] == "user:alice" and entry["after"] == {"timezone": "Asia/Tokyo"}


def proxy_app(api, trusted: list[str]):
    settings = Settings(
        config=api.settings.config,
        database_url=api.store.url,
        auth={"proxy_header": "Remote-User", "trusted_proxies": trusted},
    )
    return create_app(settings, store=api.store)


def test_a_proxy_header_signs_in_only_from_a_trusted_proxy(api, alice):
    app = proxy_app(api, ["10.0.0.0/8"])
    via_proxy = TestClient(app, follow_redirects=False, client=("10.1.2.3", 40000))
    answer = via_proxy.get("/login?next=/checklists", headers={"Remote-User": "alice", "X-Forwarded-For": "192.0.2.50"})
    assert answer.status_code == 303 and answer.headers["location"] == "/checklists"
    assert via_proxy.get("/api/v1/me").json()["name"] == "alice"
    [entry] = audit(api, "login")
    assert entry["actor"] == "user:alice" and "reverse proxy (Remote-User from 10.1.2.3)" in entry["detail"]

    forged = TestClient(app, follow_redirects=False, client=("192.0.2.66", 40000))
    refused = forged.get("/login", headers={"Remote-User": "alice", "X-Forwarded-For": "10.1.2.3"})
    assert refused.status_code == 403 and SESSION_COOKIE not in forged.cookies
    assert "does not trust as a proxy" in refused.text
    assert forged.get("/api/v1/me", headers={"Remote-User": "alice"}).status_code == 401
    [failed] = audit(api, "login_failed")
    assert failed["actor"] == "client:192.0.2.66" and "not in server.auth.trusted_proxies" in failed["detail"]

    unknown = via_proxy.get("/login", headers={"Remote-User": "mallory"}, cookies={})
    assert unknown.status_code == 403 and "names no enabled account" in unknown.text
    accounts.set_enabled(api.store, "alice", False, actor="test")
    again = TestClient(app, follow_redirects=False, client=("10.1.2.3", 40001))
    assert again.get("/login", headers={"Remote-User": "alice"}).status_code == 403


def test_the_client_address_is_taken_through_trusted_proxies_only(api, alice):
    app = proxy_app(api, ["10.0.0.1", "10.0.0.2"])
    proxy = TestClient(app, follow_redirects=False, client=("10.0.0.1", 40000))
    # the client wrote its own X-Forwarded-For; the two proxies appended what they saw
    chain = {"X-Forwarded-For": "203.0.113.99, 198.51.100.7, 10.0.0.2"}
    for _ in range(LOGIN_FAILURES):
        data = {"name": "alice", "password": "nope", "csrf_token": login_form_token(proxy)}
        assert proxy.post("/login", data=data, headers=chain).status_code == 303
    failed = audit(api, "login_failed")
    assert {e["actor"] for e in failed} == {"client:198.51.100.7"}  # not the forged left-most entry
    assert proxy.post("/login", data={"name": "alice"}, headers=chain).status_code == 429
    other = {"X-Forwarded-For": "198.51.100.8, 10.0.0.2"}  # another client behind the same proxies
    ok = sign_in(proxy, "alice", PASSWORD, headers=other)
    assert ok.status_code == 303 and "error" not in ok.headers["location"]
    # an untrusted peer's X-Forwarded-For is ignored: the peer itself is the client
    direct = TestClient(app, follow_redirects=False, client=("192.0.2.10", 40000))
    sign_in(direct, "alice", "x", headers=chain)
    assert audit(api, "login_failed")[0]["actor"] == "client:192.0.2.10"


@pytest.mark.parametrize(
    ("peer", "header", "client"),
    [
        ("192.0.2.1", "203.0.113.5", "192.0.2.1"),  # an untrusted peer: its header is not believed
        ("10.0.0.1", None, "10.0.0.1"),
        ("10.0.0.1", "203.0.113.5", "203.0.113.5"),
        ("10.0.0.1", "203.0.113.5, 10.9.9.9", "203.0.113.5"),  # every hop in 10/8 is trusted
        ("10.0.0.1", "10.1.1.1, 10.2.2.2", "10.1.1.1"),  # all trusted: the left-most
        ("10.0.0.1", "203.0.113.5, not-an-address, 10.9.9.9", "10.0.0.1"),  # a broken chain stops the walk
        ("::1", "2001:db8::7", "2001:db8::7"),
    ],
)
def test_forwarded_client(peer, header, client):
    from upkeep.http.clientaddr import forwarded_client, networks

    assert forwarded_client(peer, header, networks(("10.0.0.0/8", "::1"))) == client
