"""A study under `resolution` "match": served blind as before, and recorded in its reports."""

import io
import re

from django.test import Client
from PIL import Image

from analysis.selectors import study_configuration
from tests.annotate.builders import build_study
from tests.annotate.test_blindness import POLICY, build_blind_study
from tests.annotate.test_pages import PID, enter, trial_page

IMAGES = re.compile(r'<img src="([^"]+/img/[^"]+)"')


def test_a_match_study_serves_one_size_and_length_and_records_the_setting(db):
    # The study's 64 px sources are shown at 128 px: framed at 64, scaled up per assignment.
    policy = {**POLICY, "size": 128, "format": "PNG", "resolution": "match"}
    study = build_blind_study(items=4, policy=policy)
    assert study.policy.resolution == "match"
    client = Client()
    enter(client, study, PROLIFIC_PID=PID)
    html, _ = trial_page(client, study)
    bodies = [client.get(url) for url in IMAGES.findall(html)[:2]]
    assert [body.status_code for body in bodies] == [200, 200]
    assert bodies[0]["Content-Length"] == bodies[1]["Content-Length"] == str(len(bodies[0].content))
    for body in bodies:
        with Image.open(io.BytesIO(body.content)) as image:
            assert (image.format, image.size) == ("PNG", (128, 128))
    assert study_configuration(study=study)["presentation_policy"]["resolution"] == "match"


def test_a_new_study_records_the_default_resolution(db):
    study = build_study(slug="d")
    assert study_configuration(study=study)["presentation_policy"]["resolution"] == "native"


def test_a_policy_stored_before_the_field_still_serves_as_native(db):
    study = build_blind_study(items=2)  # its policy dict has no "resolution"
    assert "resolution" not in study.presentation_policy
    assert study.policy.resolution == "native"
    study.full_clean()
