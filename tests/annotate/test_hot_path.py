"""What the annotator's htmx cycle saves work on must still be seen at once: the study's
row (kept per process), the session (read in SQL)."""

from datetime import timedelta

from django.contrib.sessions.models import Session
from django.utils import timezone

from annotate import selectors
from annotate.models import Judgment, Study
from tests.annotate.test_pages import TOKEN, enter, opened, post_choice, trial_page


def test_a_change_to_the_study_is_seen_by_the_next_request(client, db):
    study = opened(items=6, quota=4)
    enter(client, study)
    _, token = trial_page(client, study)
    html = post_choice(client, study, token, "left", htmx=True).content.decode()
    assert "1 of 4 done" in html
    # An update that bypasses save(), as the analysis writes generators_done.
    Study.objects.filter(pk=study.pk).update(quota_per_annotator=5)
    html = post_choice(client, study, TOKEN.search(html).group(1), "left", htmx=True).content.decode()
    assert "2 of 5 done" in html
    Study.objects.filter(pk=study.pk).update(status=Study.Status.CLOSED)
    response = post_choice(client, study, TOKEN.search(html).group(1), "left", htmx=True)
    assert response["HX-Redirect"] == f"/s/{study.slug}/"
    assert Judgment.objects.count() == 3


def test_each_caller_gets_its_own_copy_of_the_study(db):
    study = opened()
    first = selectors.study_by_slug(slug=study.slug)
    first.status = Study.Status.CLOSED
    assert selectors.study_by_slug(slug=study.slug).status == Study.Status.OPEN
    assert selectors.study_by_slug(slug="no-such-study") is None


def test_an_expired_session_is_not_loaded(client, db):
    study = opened()
    enter(client, study)
    trial_page(client, study)
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    # No annotator in the session any more: back to the entry page.
    assert client.get(f"/s/{study.slug}/trial/")["Location"] == f"/s/{study.slug}/"
