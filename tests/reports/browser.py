"""A headless Chromium for the report tests, recording every request the page makes.

The browser is Debian's chromium with its own chromedriver: the explicit driver path keeps Selenium
Manager from downloading anything. Without them the browser tests skip, unless
HAYSTACK_EVAL_REQUIRE_BROWSER=1 (set by CI), where a missing browser fails instead of skipping quietly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REQUIRE_BROWSER = "HAYSTACK_EVAL_REQUIRE_BROWSER"
WINDOW = (1280, 1600)

# Keep Chromium off the network by itself: no sync, component updates, QUIC probes or first-run pages.
_ARGUMENTS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
              "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-extensions", "--disable-default-apps", "--hide-scrollbars", "--force-device-scale-factor=1",
              f"--window-size={WINDOW[0]},{WINDOW[1]}")


@dataclass(frozen=True)
class Request:
    """One request a page sent, and why the browser stopped it (``"csp"``, say), if it did."""

    url: str
    blocked: str | None = None


@dataclass
class Browser:
    """A WebDriver session and the requests of the page it last opened."""

    driver: Any  # selenium's WebDriver; selenium is imported lazily since it is a test-only tool
    _urls: dict[str, str] = field(default_factory=dict)  # request id -> URL, for the page opened last
    _blocked: dict[str, str] = field(default_factory=dict)  # request id -> why the browser refused it

    def open(self, path: Path) -> list[Request]:
        """Load a local file and return every request made while loading it."""
        self.driver.get("about:blank")  # leave the start page, whose own loading would show up below
        self.driver.get_log("performance")  # drop what earlier pages left in the log
        self._urls.clear()
        self._blocked.clear()
        self.driver.set_window_size(*WINDOW)
        self.driver.get(path.resolve().as_uri())
        return self.requests()

    def requests(self) -> list[Request]:
        """Every request of the page opened last, so far, in order.

        Chromium logs a request that the page's CSP refused as well, then a failure naming the reason.
        """
        for entry in self.driver.get_log("performance"):  # reading drains the log: keep what it held
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message.get("method") == "Network.requestWillBeSent":
                self._urls.setdefault(params["requestId"], params["request"]["url"])
            elif message.get("method") == "Network.loadingFailed" and params.get("blockedReason"):
                self._blocked[params["requestId"]] = params["blockedReason"]
        return [Request(url, self._blocked.get(key)) for key, url in self._urls.items()]

    def run(self, script: str, *args: Any) -> Any:
        """Run JavaScript through WebDriver (a page's CSP does not govern WebDriver's own scripts)."""
        return self.driver.execute_script(script, *args)

    def screenshot(self, path: Path) -> bytes:
        """A PNG of the whole page (the window grows to the page's height first, up to 10,000 px)."""
        height = int(self.run("return document.documentElement.scrollHeight"))
        self.driver.set_window_size(WINDOW[0], min(max(height, WINDOW[1]), 10_000))
        assert self.driver.save_screenshot(str(path)), "the browser took no screenshot"
        return path.read_bytes()


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(f"{REQUIRE_BROWSER}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@contextmanager
def headless_chromium(profile: Path) -> Iterator[Browser]:
    """Start Chromium with a fresh profile (skip, or fail under CI, when it is not installed)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        _unavailable(f"the browser tests need {' and '.join(missing)} (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("the browser tests need selenium (pip install selenium)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (*_ARGUMENTS, f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield Browser(driver)
    finally:
        driver.quit()
