"""Signing in to the UI as a browser does, for tests of people's accounts and their pages."""

from __future__ import annotations

import re


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
