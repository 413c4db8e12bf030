import os

import pytest

# Playwright's sync API keeps an event loop in the test thread; the ORM calls made by
# the test around it are still synchronous, so Django's async guard does not apply.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# The pages' Content-Security-Policy refuses eval, and Playwright's wait_for_function
# evaluates a plain expression anew on each poll: pass it a function ("() => ..."),
# which is evaluated once.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()



def outside_playwright(function, *args):
    """Run ORM code while Playwright is active: in a thread of its own, whose database
    connection is closed afterwards (in the test's thread Django would open one in
    Playwright's context and never close it, and PostgreSQL then cannot drop the
    test database)."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    def call():
        try:
            return function(*args)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()
