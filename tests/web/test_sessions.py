"""Sessions end server-side: a copied cookie opens nothing after logout or key revocation; failed
logins are audited and, past the limit, refused per client address with 429 and Retry-After."""

from __future__ import annotations

import re

from upkeep.auth import SESSIONS_DOMAIN
from upkeep.http.security import LOGIN_FAILURES, LOGIN_WINDOW, SESSION_COOKIE
from upkeep.store.records import Records


def _login(api, token: str):
    page = api.client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return api.client.post("/login", data={"token": token, "csrf_token": csrf, "next": "/"})


def _csrf_of(html: str) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]*)"', html).group(1)


def test_a_cookie_copied_before_logout_opens_nothing_after_it(api):
    assert _login(api, api.tokens["admin"]).status_code == 303
    copied = api.client.cookies.get(SESSION_COOKIE)
    csrf = _csrf_of(api.client.get("/").text)
    assert api.client.get("/api/v1/me").status_code == 200

    assert api.client.post("/logout", data={"csrf_token": csrf}).status_code == 303

    api.client.cookies.clear()
    api.client.cookies.set(SESSION_COOKIE, copied)
    assert api.client.get("/api/v1/me").status_code == 401
    assert api.client.get("/").headers["location"].startswith("/login")
    actions = [e["action"] for e in api.upkeep.list_audit(object_type="session")[0]]
    assert actions[:2] == ["logout", "login"]


def test_revoking_a_key_ends_the_sessions_opened_with_it(api):
    assert _login(api, api.tokens["operator"]).status_code == 303
    copied = api.client.cookies.get(SESSION_COOKIE)
    assert api.client.get("/api/v1/me").status_code == 200
    assert api.delete("/api/v1/keys/operator-key").status_code in (200, 204)
    api.client.cookies.clear()
    api.client.cookies.set(SESSION_COOKIE, copied)
    assert api.client.get("/api/v1/me").status_code == 401
    operator_id = next(k["id"] for k in api.get("/api/v1/keys").json() if k["name"] == "operator-key")
    assert Records(api.store, SESSIONS_DOMAIN).keys(f"{operator_id}/") == []  # closed in the store


def test_twenty_failed_logins_from_one_address_get_429_and_are_audited(api):
    answers = [_login(api, f"upk_guess{n}_wrong") for n in range(20)]

    assert [a.status_code for a in answers] == [303] * LOGIN_FAILURES + [429] * (20 - LOGIN_FAILURES)
    assert all("error=invalid" in a.headers["location"] for a in answers[:LOGIN_FAILURES])
    refused = answers[-1]
    assert 0 < int(refused.headers["Retry-After"]) <= LOGIN_WINDOW
    assert "Too many failed sign-ins" in refused.text
    entries = api.upkeep.list_audit(object_type="session", limit=100)[0]
    failed = [e for e in entries if e["action"] == "login_failed"]
    assert len(failed) == LOGIN_FAILURES and all(e["actor"] == "client:testclient" for e in failed)
    assert [e["action"] for e in entries].count("login_throttled") == 1
    assert api.tokens["admin"] not in str(entries)
    # the right key is refused too while the address waits: the limit is on the address
    assert _login(api, api.tokens["admin"]).status_code == 429
