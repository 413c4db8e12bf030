"""`manage.py screenshots` drives Chromium through a study with a known scaling curve.

The study is the analysis tests' known-truth ladder (tests/analysis/builders.py: four
generators of one series along params, judged by a dozen annotators), made servable,
given one practice trial and opened; the command's annotator must leave it as it
found it: marked simulated, no judgment of the study, every assignment released.
"""

import io

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from PIL import Image

from analysis import services as analysis_services
from annotate.controls import control_name, corrupted_png
from annotate.models import Annotator, Assignment, Judgment, Trial
from annotate.services import study_open
from generation.models import Item
from tests.analysis.builders import add_annotators, study_with_trials
from tests.analysis.conftest import TEST_OPTIONS
from tests.annotate.builders import reference_png
from tests.annotate.test_pages import servable
from workspaces.models import Membership

PASSWORD = "a-long-test-password"


@pytest.fixture
def study(transactional_db, monkeypatch):
    monkeypatch.setattr(analysis_services, "STORED_OPTIONS", TEST_OPTIONS)
    planted = study_with_trials(slug="shots")
    add_annotators(planted, 12, seed=3)
    study = planted.study
    _practice_trial(study)
    study.consent_text = "You agree to take part."
    study.practice_trials = 1
    study.save(update_fields=["consent_text", "practice_trials"])
    servable(study)
    user = get_user_model().objects.create_user("ada", password=PASSWORD, is_staff=True)
    Membership.objects.create(workspace=study.workspace, user=user, role=Membership.Role.OWNER)
    return study_open(study=study)


def _practice_trial(study) -> None:
    """A practice catch pair on an item of its own, as `study_build_trials` sets one aside."""
    data = reference_png(99)
    item = Item.objects.create(
        corpus=study.corpus, key="practice", caption="a practice caption",
        image=default_storage.save("originals/practice.png", ContentFile(data)),
        sha256="0" * 64, width=24, height=24, format="PNG", mode="RGB", byte_size=len(data),
    )
    corrupted = corrupted_png(Image.open(io.BytesIO(data)), seed=1)
    name = default_storage.save(control_name(corrupted), ContentFile(corrupted))
    Trial.objects.create(study=study, kind=Trial.Kind.PRACTICE, item=item, control_image=name)


def _png(path) -> Image.Image:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(path)
    image.load()
    return image


def test_screenshots_of_the_annotator_page_and_the_plots(study, chromium_path, tmp_path):
    out = tmp_path / "shots"
    call_command("screenshots", study=study.slug, out=out, username="ada", password=PASSWORD,
                 chromium=chromium_path, stdout=io.StringIO())

    desktop, mobile = _png(out / "annotator.png"), _png(out / "annotator-mobile.png")
    assert desktop.width == 1200 and desktop.height >= 800
    assert mobile.width == 360 and mobile.height > mobile.width
    for name in ("forest.png", "scaling.png"):
        plot = _png(out / name)
        assert plot.width >= 400 and plot.height >= 200, (name, plot.size)
        grey = np.asarray(plot.convert("L"), dtype=float)
        # Not blank: axes, curves and text on white.
        assert grey.std() > 10 and (grey < 128).mean() > 0.005, name

    visitor = Annotator.objects.get(external_id__startswith="parity-screenshots-")
    assert visitor.source == Annotator.Source.SIMULATED
    assert not Judgment.objects.filter(assignment__annotator=visitor).exclude(
        assignment__trial__kind=Trial.Kind.PRACTICE).exists()
    assert Judgment.objects.filter(assignment__annotator=visitor).count() == 1  # its practice answer
    mine = Assignment.objects.filter(annotator=visitor, judgment__isnull=True)
    assert mine.exists() and not mine.filter(released_at__isnull=True).exists()
    # add_annotators writes no slot counts: the visitor's released slots leave them at zero.
    study_trials = Trial.objects.filter(study=study).exclude(kind=Trial.Kind.PRACTICE)
    assert set(study_trials.values_list("active_count", flat=True)) == {0}


def test_a_study_without_a_scaling_plot_is_named_and_no_blank_image_written(study, chromium_path, tmp_path):
    study.generators.update(params=None)
    with pytest.raises(CommandError, match=r"scaling\.png: no scaling plot"):
        call_command("screenshots", study=study.slug, out=tmp_path, username="ada", password=PASSWORD,
                     chromium=chromium_path, stdout=io.StringIO())
    assert {path.name for path in tmp_path.glob("*.png")} == {"annotator.png", "annotator-mobile.png", "forest.png"}


def test_a_missing_browser_is_named(db, tmp_path):
    with pytest.raises(CommandError, match="no Chromium at"):
        call_command("screenshots", study="any", out=tmp_path, chromium=str(tmp_path / "nope"))
    assert not list(tmp_path.glob("*.png"))
