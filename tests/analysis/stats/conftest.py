"""The stats package runs without Django: the suite-wide autouse fixtures that set up
media folders and clear Django's cache have nothing to do here, so they are replaced
by no-ops for these tests."""

import pytest


@pytest.fixture(autouse=True)
def _media_root():
    return None


@pytest.fixture(autouse=True)
def _rate_limit_counts():
    return None
