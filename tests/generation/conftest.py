"""Fixtures of the generation tests."""

import pytest

from tests.generation import backend_functions


@pytest.fixture
def callables(settings):
    """The `callable` backend allowed, with the functions of backend_functions.py by their own names."""
    backend_functions.allow(settings)
    return settings.PARITY_CALLABLES
