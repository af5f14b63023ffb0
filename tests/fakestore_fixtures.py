"""pytest plugin: the ``fake_store`` fixture (a local fake amazon.com on a free loopback port).

Registered in tests/conftest.py with ``pytest_plugins = ["tests.fakestore_fixtures"]``; a test
module may also import the fixture directly.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scraping.fakestore import FakeStore


@pytest.fixture
def fake_store(settings) -> Iterator[FakeStore]:
    """A started FakeStore with ``settings.AMAZON_BASE_URL`` pointing at it; stopped afterwards."""
    with FakeStore(host="127.0.0.1", port=0) as store:
        settings.AMAZON_BASE_URL = store.base_url
        yield store
