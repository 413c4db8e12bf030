"""The site's icon: linked from Parity's pages, and /favicon.ico for pages that do not link it."""

from django.test import Client

from annotate.services import study_build_trials, study_open
from tests.annotate.builders import build_study

ICON = "/static/parity/favicon.svg"


def test_pages_link_the_icon_and_favicon_ico_leads_to_it(db):
    study = build_study(slug="s")
    study_build_trials(study=study, rng_seed=1)
    study_open(study=study)
    client = Client()
    for path in ("/", "/login/", "/s/s/"):  # the researcher's base and the annotator's
        assert f'<link rel="icon" href="{ICON}" type="image/svg+xml">' in client.get(path).content.decode(), path

    moved = client.get("/favicon.ico")
    assert moved.status_code == 301 and moved["Location"] == ICON
    icon = client.get(ICON)
    assert icon.status_code == 200 and icon["Content-Type"] == "image/svg+xml"
    assert b"<svg" in b"".join(icon.streaming_content if icon.streaming else [icon.content])
