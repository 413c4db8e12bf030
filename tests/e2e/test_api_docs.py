"""The API docs render in a browser from Parity's own files: nothing is fetched from a CDN.

drf-spectacular's Swagger UI page loads its script and styles from jsDelivr by
default, which left the page blank on any machine without internet access (the
development machines, many clusters). The files now come from the installed
drf-spectacular-sidecar package, served with the other static files.
"""

import pytest
from django.contrib.auth import get_user_model

from workspaces.models import Membership, Workspace

PASSWORD = "a-long-test-password"


@pytest.fixture
def researcher(transactional_db):
    workspace = Workspace.objects.create(name="Lab", slug="lab")
    user = get_user_model().objects.create_user("grace", password=PASSWORD)  # not staff
    Membership.objects.create(workspace=workspace, user=user, role=Membership.Role.MEMBER)


def test_swagger_ui_renders_without_any_outside_request(researcher, live_server, browser):
    outside = []

    def only_this_server(route):
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page = browser.new_page()
    page.route("**/*", only_this_server)
    page.goto(f"{live_server.url}/login/?next=/api/docs/")
    page.fill("#id_username", "grace")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/api/docs/")

    # Swagger UI draws one block per operation once its script has run and read the schema.
    page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)
    assert page.locator(".opblock-summary-path", has_text="/api/v1/studies/{slug}/report/").count() == 1
    assert outside == []
