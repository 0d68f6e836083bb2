"""Fixtures for backend tests: a fake provider server and configs pointing at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.provider_server import FakeProvider

KEY = "sk-haystack-test-" + "k3y" * 8  # recognisable, built at run time


@pytest.fixture
def server() -> Iterator[FakeProvider]:
    """A fake provider on 127.0.0.1, stopped after the test."""
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fake key in the environment variable the test configs name."""
    monkeypatch.setenv("HAYSTACK_TEST_KEY", KEY)
    return KEY
