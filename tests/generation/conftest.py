"""Fixtures of the generation tests."""

import pytest

from tests.generation import backend_functions


@pytest.fixture
def callables(settings):
    """The `callable` backend allowed, with the functions of backend_functions.py by their own names."""
    backend_functions.allow(settings)
    return settings.PARITY_CALLABLES


@pytest.fixture
def no_interruption():
    """`backend_functions.interrupt` (which makes `solid` raise KeyboardInterrupt) off before and after."""
    backend_functions.interrupt.update(on_call=None, calls=0)
    backend_functions.interrupt["ready"].clear()
    yield
    backend_functions.interrupt.update(on_call=None, calls=0)
