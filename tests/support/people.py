"""Signing in to the UI as a browser does, for tests of people's accounts and their pages."""

from __future__ import annotations

import re
import time


def login_form_token(client) -> str:
    page = client.get("/login")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def sign_in(client, name: str, password: str, code: str = "", next_url: str = "/", headers: dict | None = None):
    """POST the sign-in form (its CSRF cookie and field first); the answer is a 303 either way."""
    data = {"name": name, "password": password, "code": code, "csrf_token": login_form_token(client), "next": next_url}
    return client.post("/login", data=data, headers=headers or {})


def page_csrf(client, path: str = "/") -> str:
    """The CSRF token a signed-in page carries (for the UI's fetch calls)."""
    return re.search(r'<meta name="csrf-token" content="([^"]*)"', client.get(path).text).group(1)


def finished(service, run_id: int, timeout: float = 60.0) -> dict:
    """The run once it has ended (worker processes run it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = service.get_run(run_id)
        if run["status"] in ("completed", "failed", "cancelled", "timed_out", "skipped"):
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} still {service.get_run(run_id)['status']} after {timeout}s")
