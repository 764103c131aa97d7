from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from support.servers import in_ci

sys.path.insert(0, str(Path(__file__).parent.parent / "api"))

from _env import ApiEnv, make_env  # noqa: E402


@pytest.fixture
def api(tmp_path, sqlite_store) -> ApiEnv:
    env = make_env(tmp_path, sqlite_store)
    yield env
    env.client.close()


CHROMIUM = os.environ.get("UPKEEP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def chromium_path() -> str:
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        if in_ci():
            pytest.fail("chromium is not installed (CI=true: a missing browser is a failure)")
        pytest.skip("chromium is not installed (set UPKEEP_CHROMIUM or install the chromium package)")
    return path


@pytest.fixture
def browser():
    """Debian's Chromium, headless, driven by Playwright (nothing is downloaded)."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if in_ci():
            pytest.fail("playwright is not installed")
        pytest.skip("playwright is not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
