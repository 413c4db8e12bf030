"""Fixtures of the Django-side analysis tests (reports, pages, API, tasks)."""

import pytest

from analysis.reports import ReportOptions

# Enough resampling for intervals that mean something, little enough for a quick suite.
TEST_OPTIONS = ReportOptions(n_boot=300, fit_boot=30)


@pytest.fixture
def cheap_reports(monkeypatch):
    """Stored reports (page panel, API) built with `TEST_OPTIONS`."""
    from analysis import services

    monkeypatch.setattr(services, "STORED_OPTIONS", TEST_OPTIONS)
    return TEST_OPTIONS

