"""pytest plugin: the ``fake_store`` fixture (a local fake amazon.com on a free loopback port).

Registered in tests/conftest.py with ``pytest_plugins = ["tests.fakestore_fixtures"]``; a test
module may also import it: ``from tests.fakestore_fixtures import fake_store_fixture  # noqa: F401``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakestore.server import FakeStore


# Named by `name=` so a test module can import it (`import fake_store_fixture`) without its test
# parameters shadowing the import (ruff F811).
@pytest.fixture(name="fake_store")
def fake_store_fixture(settings) -> Iterator[FakeStore]:
    """A started FakeStore with ``settings.AMAZON_BASE_URL`` pointing at it; stopped afterwards."""
    with FakeStore(host="127.0.0.1", port=0) as store:
        settings.AMAZON_BASE_URL = store.base_url
        yield store
