"""The next trial is issued one ahead, so its images load while the current one is judged."""

import re
from datetime import timedelta

from django.utils import timezone

from annotate.models import Assignment, Judgment, Study
from annotate.services import assignments_next, judgment_record
from tests.annotate.builders import annotators
from tests.annotate.test_engine import opened as engine_opened
from tests.annotate.test_pages import TOKEN, _image_urls, enter, opened, post_choice, servable, trial_page

PRELOAD = re.compile(r'data-preload="([^"]*)"')


def test_the_page_preloads_the_images_the_next_trial_shows(client, db):
    study = servable(opened(items=8, quota=5))
    enter(client, study)
    html, token = trial_page(client, study)
    for n in range(4):
        preloaded = PRELOAD.search(html).group(1).split(" ")
        assert len(preloaded) == 2
        html = post_choice(client, study, token, "left", htmx=True).content.decode()
        token = TOKEN.search(html).group(1)
        urls = _image_urls(html)
        # The images of the trial now shown are the ones preloaded, slot for slot.
        assert [urls["left"], urls["right"]] == preloaded
        for url in preloaded:
            assert client.get(url).status_code == 200
    # The last trial of the quota has nothing after it to preload.
    assert PRELOAD.search(html) is None
    assert Assignment.objects.filter(study=study).count() == 5


def test_an_upcoming_assignment_times_the_response_from_when_it_is_shown(db):
    study = engine_opened(items=6)
    (annotator,) = annotators(1)
    issued_at = timezone.now()
    current, upcoming = assignments_next(study=study, annotator=annotator, now=issued_at, ahead=1)
    assert current.shown_at == issued_at and upcoming.shown_at is None
    judgment_record(assignment_token=current.token, annotator=annotator, choice="left",
                    now=issued_at + timedelta(seconds=20))
    shown = issued_at + timedelta(seconds=20)
    again, _ = assignments_next(study=study, annotator=annotator, now=shown, ahead=1)
    assert again.pk == upcoming.pk
    judgment_record(assignment_token=again.token, annotator=annotator, choice="left",
                    now=shown + timedelta(seconds=3))
    assert Judgment.objects.get(assignment=again).server_response_ms == 3000


def test_no_trial_is_issued_ahead_of_a_break(client, db):
    study = servable(opened(items=8, quota=6))
    Study.objects.filter(pk=study.pk).update(break_every=2)
    enter(client, study)
    html, token = trial_page(client, study)
    html = post_choice(client, study, token, "left", htmx=True).content.decode()
    # The trial before the break: nothing preloaded, nothing held while the annotator rests.
    assert PRELOAD.search(html) is None
    token = TOKEN.search(html).group(1)
    assert "Take a break" in post_choice(client, study, token, "left", htmx=True).content.decode()
    open_ = Assignment.objects.filter(study=study, judgment__isnull=True, released_at__isnull=True)
    assert not open_.exists()

