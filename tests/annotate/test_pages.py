"""The annotator's pages through Django's test client: entry, consent, trials, images, completion."""

import hashlib
import io
import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone
from PIL import Image

from annotate.models import Annotator, Assignment, Judgment, Participation, Study
from annotate.services import study_build_trials, study_open
from annotate.views import BROWSER_COOKIE
from tests.annotate.builders import build_study

PID = "5f0c0ffee0000000000000a1"
TOKEN = re.compile(r'name="token" value="([0-9a-f-]{36})"')
IMAGES = re.compile(r'<img src="([^"]+)" alt="(Left|Right) image">')
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')
PRELOAD = re.compile(r' data-preload="[^"]*"')


def servable(study: Study) -> Study:
    """Give every item and sample real bytes and hashes, so images can be rendered."""
    for item in study.corpus.items.all():
        with default_storage.open(item.image.name, "rb") as handle:
            item.sha256 = hashlib.sha256(handle.read()).hexdigest()
        item.save(update_fields=["sha256"])
        for sample in item.samples.all():
            out = io.BytesIO()
            # A generator's output: another size, aspect and mode than the reference.
            Image.new("RGBA", (40, 30), (sample.pk * 37 % 256, 90, 160, 200)).save(out, "PNG")
            data = out.getvalue()
            sample.image = default_storage.save(f"samples/{sample.pk}.png", ContentFile(data))
            sample.sha256 = hashlib.sha256(data).hexdigest()
            sample.save(update_fields=["image", "sha256"])
    return study


def opened(**kwargs) -> Study:
    study = build_study(**kwargs)
    study.consent_text = "You agree to take part."
    study.instructions = "Look closely at both images."
    study.completion_code = "C0DE42"
    study.presentation_policy = {"size": 48, "aspect": "1:1", "crop": "center", "format": "JPEG", "quality": 90}
    study.save()
    study_build_trials(study=study, rng_seed=1)
    return study_open(study=study)


def enter(client: Client, study: Study, **params) -> None:
    response = client.get(f"/s/{study.slug}/", params)
    assert response.status_code == 200
    assert client.post(f"/s/{study.slug}/consent/").status_code == 302


def trial_page(client: Client, study: Study) -> tuple[str, str]:
    response = client.get(f"/s/{study.slug}/trial/")
    assert response.status_code == 200
    html = response.content.decode()
    return html, TOKEN.search(html).group(1)


def post_choice(client: Client, study: Study, token: str, choice: str, *, htmx: bool = False):
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(
        f"/s/{study.slug}/trial/", {"token": token, "choice": choice, "client_ms": "812"}, headers=headers
    )


def same_browser(client: Client) -> Client:
    """The client's browser on a later visit: its session gone, its long-lived
    browser cookie (the one a Prolific participation is bound to) still there."""
    later = Client()
    later.cookies[BROWSER_COOKIE] = client.cookies[BROWSER_COOKIE].value
    return later


def test_prolific_entry_creates_one_annotator_and_a_return_visit_resumes(db):
    study = opened()
    first = Client()
    enter(first, study, PROLIFIC_PID=PID, STUDY_ID="st", SESSION_ID="se")
    _, token = trial_page(first, study)
    second = same_browser(first)
    # Consent is in the database: the return visit goes past it, through practice
    # (this study has none) to the trials.
    response = second.get(f"/s/{study.slug}/", {"PROLIFIC_PID": PID, "STUDY_ID": "st", "SESSION_ID": "se2"})
    assert response["Location"] == f"/s/{study.slug}/practice/"
    assert second.get(response["Location"])["Location"] == f"/s/{study.slug}/trial/"
    _, again = trial_page(second, study)
    assert Annotator.objects.filter(source="prolific", external_id=PID).count() == 1
    assert Annotator.objects.count() == 1
    assert again == token
    # The current trial and the one issued ahead for preloading; the return visit issued none.
    assert Assignment.objects.count() == 2


def test_an_invite_link_makes_an_anonymous_annotator(client, db):
    study = opened()
    enter(client, study)
    trial_page(client, study)
    assert list(Annotator.objects.values_list("source", "external_id")) == [("invite", "")]


def test_the_consent_page_shows_the_texts_and_the_question(client, db):
    study = opened()
    html = client.get(f"/s/{study.slug}/").content.decode()
    assert "You agree to take part." in html and "Look closely at both images." in html
    assert "Which image do you prefer for this caption?" in html
    assert "csrfmiddlewaretoken" in html and "I agree" in html


def test_trials_need_consent(client, db):
    study = opened()
    client.get(f"/s/{study.slug}/")
    assert client.get(f"/s/{study.slug}/trial/")["Location"] == f"/s/{study.slug}/"
    assert client.post(f"/s/{study.slug}/trial/", {"choice": "left"}).status_code == 302
    assert not Assignment.objects.exists()


@pytest.mark.parametrize("htmx", [False, True])
def test_a_full_run_records_exactly_the_quota_with_the_posted_choices(client, db, htmx):
    study = opened(items=4, quota=3)
    enter(client, study)
    _, token = trial_page(client, study)
    posted = {}
    for n in range(study.quota_per_annotator):
        choice = "left" if n % 2 else "right"
        posted[token] = choice
        response = post_choice(client, study, token, choice, htmx=htmx)
        last = n == study.quota_per_annotator - 1
        if htmx and not last:
            html = response.content.decode()
            assert response.status_code == 200 and "<html" not in html and 'id="trial"' in html
            assert f"{n + 1} of 3 done" in html
            token = TOKEN.search(html).group(1)
        elif htmx:
            assert response["HX-Redirect"] == f"/s/{study.slug}/done/"
        else:
            assert response.status_code == 302 and response["Location"] == f"/s/{study.slug}/trial/"
            if not last:
                _, token = trial_page(client, study)
    recorded = {str(j.assignment.token): j.choice for j in Judgment.objects.select_related("assignment")}
    assert recorded == posted
    assert set(Judgment.objects.values_list("client_response_ms", flat=True)) == {812}
    assert client.get(f"/s/{study.slug}/trial/")["Location"] == f"/s/{study.slug}/done/"


def test_a_double_submit_is_a_no_op_and_returns_the_next_trial(client, db):
    study = opened()
    enter(client, study)
    _, token = trial_page(client, study)
    first = post_choice(client, study, token, "left", htmx=True)
    second = post_choice(client, study, token, "right", htmx=True)
    assert first.status_code == second.status_code == 200
    assert TOKEN.search(second.content.decode()).group(1) == TOKEN.search(first.content.decode()).group(1)
    assert list(Judgment.objects.values_list("choice", flat=True)) == ["left"]


def test_an_expired_assignment_says_so_and_continues(client, db):
    study = opened()
    enter(client, study)
    _, token = trial_page(client, study)
    Assignment.objects.filter(token=token).update(
        issued_at=timezone.now() - timedelta(hours=2), expires_at=timezone.now() - timedelta(hours=1)
    )
    response = post_choice(client, study, token, "left", htmx=True)
    html = response.content.decode()
    assert response.status_code == 200 and "timed out" in html
    assert TOKEN.search(html).group(1) != token
    assert not Judgment.objects.exists()


@pytest.mark.parametrize("htmx", [False, True])
def test_another_annotators_token_is_refused_with_a_message(db, htmx):
    study = opened()
    owner, intruder = Client(), Client()
    enter(owner, study)
    _, token = trial_page(owner, study)
    enter(intruder, study)
    response = post_choice(intruder, study, token, "left", htmx=htmx)
    assert response.status_code == 403
    assert "belongs to another participant" in response.content.decode()
    assert not Judgment.objects.exists()


def test_a_bad_token_or_choice_never_fails(client, db):
    study = opened()
    enter(client, study)
    _, token = trial_page(client, study)
    assert post_choice(client, study, "not-a-uuid", "left", htmx=True).status_code == 200
    assert post_choice(client, study, token, "middle", htmx=True).status_code == 400
    assert not Judgment.objects.exists()


@pytest.mark.parametrize(("status", "text"), [("closed", "is closed"), ("draft", "has not started")])
def test_a_study_that_is_not_open_says_so_politely(client, db, status, text):
    study = opened()
    Study.objects.filter(pk=study.pk).update(status=status)
    response = client.get(f"/s/{study.slug}/", {"PROLIFIC_PID": PID})
    assert response.status_code == 200 and text in response.content.decode()
    assert not Annotator.objects.exists()


def test_a_study_closed_mid_run_sends_the_annotator_to_the_polite_page(client, db):
    study = opened()
    enter(client, study)
    trial_page(client, study)
    Study.objects.filter(pk=study.pk).update(status="closed")
    response = client.get(f"/s/{study.slug}/trial/", follow=True)
    assert response.status_code == 200 and "is closed" in response.content.decode()


def test_an_unknown_study_is_404(client, db):
    response = client.get("/s/nope/")
    assert response.status_code == 404 and "Study not found" in response.content.decode()


def _finish(client: Client, study: Study) -> None:
    for _ in range(study.quota_per_annotator):
        _, token = trial_page(client, study)
        post_choice(client, study, token, "left")
    # The browser follows the redirect after the last answer.
    assert client.get(f"/s/{study.slug}/trial/")["Location"] == f"/s/{study.slug}/done/"


def test_the_completion_page_shows_the_code_and_the_prolific_link(client, db):
    study = opened(quota=2)
    enter(client, study, PROLIFIC_PID=PID)
    assert client.get(f"/s/{study.slug}/done/").status_code == 302  # not finished yet
    _finish(client, study)
    html = client.get(f"/s/{study.slug}/done/").content.decode()
    assert "C0DE42" in html
    assert "https://app.prolific.com/submissions/complete?cc=C0DE42" in html


def test_an_invited_annotator_gets_the_code_without_a_prolific_link(client, db):
    study = opened(quota=2)
    enter(client, study)
    _finish(client, study)
    html = client.get(f"/s/{study.slug}/done/").content.decode()
    assert "C0DE42" in html and "prolific.com" not in html


def _image_urls(html: str) -> dict[str, str]:
    return {side.lower(): url for url, side in IMAGES.findall(html)}


@pytest.mark.parametrize("kind", ["generated", "catch"])
def test_both_images_look_alike_from_the_outside(client, db, kind):
    study = servable(opened(items=4, catch_rate=1.0 if kind == "catch" else 0.0))
    if kind == "catch":
        study.trials.filter(kind="generated").delete()
    enter(client, study)
    html, token = trial_page(client, study)
    assert Assignment.objects.get(token=token).trial.kind == kind
    urls = _image_urls(html)
    assert set(urls) == {"left", "right"} and urls["left"] != urls["right"]
    assert re.sub(r"[0-9a-f]", "x", urls["left"]) == re.sub(r"[0-9a-f]", "x", urls["right"])
    left, right = client.get(urls["left"]), client.get(urls["right"])
    assert left.status_code == right.status_code == 200
    assert sorted(left.headers) == sorted(right.headers)
    assert {k: v for k, v in left.headers.items() if k != "Content-Length"} == {
        k: v for k, v in right.headers.items() if k != "Content-Length"
    }
    assert left["Content-Type"] == "image/jpeg" and left["Cache-Control"].startswith("private")
    assert "ETag" not in left.headers and "Last-Modified" not in left.headers
    with Image.open(io.BytesIO(left.content)) as a, Image.open(io.BytesIO(right.content)) as b:
        assert (a.size, a.mode, a.format) == (b.size, b.mode, b.format) == ((48, 48), "RGB", "JPEG")
        assert not a.info.get("exif") and not b.info.get("exif")
    assert left.content != right.content

    stranger = Client()
    enter(stranger, study)
    for url in urls.values():
        assert stranger.get(url).status_code == 403
    assert Client().get(urls["left"]).status_code == 403
    assert client.get(urls["left"][:-3] + "00/").status_code == 404


def test_the_page_does_not_predict_the_side_of_the_reference(db):
    """Over 40 trials, the HTML with the per-trial values masked is one and the same page."""
    study = opened(items=20, generators=2, quota=10)
    pages, sides = set(), []
    for _ in range(4):
        client = Client()
        enter(client, study)
        html, token = trial_page(client, study)
        for n in range(study.quota_per_annotator):
            assignment = Assignment.objects.select_related("item").get(token=token)
            sides.append(assignment.reference_side)
            urls = _image_urls(html)
            masked = html.replace(token, "TOKEN").replace(urls["left"], "URL").replace(urls["right"], "URL")
            masked = masked.replace(assignment.item.caption, "CAPTION").replace(f"{n} of 10", "N of 10")
            # The next trial's image URLs, there on every trial but the last of the quota.
            masked = PRELOAD.sub("", masked)
            pages.add(CSRF.sub("CSRF", masked))
            response = post_choice(client, study, token, "left", htmx=True)
            if n < study.quota_per_annotator - 1:
                html = response.content.decode()
                token = TOKEN.search(html).group(1)
    assert len(sides) == 40 and set(sides) == {"left", "right"}
    # The first page of each annotator is the full page, the rest are partials.
    assert len(pages) == 2


def test_a_full_study_says_so_to_a_newcomer_and_gives_no_code(db):
    study = opened(items=2, generators=1, k=1, quota=5)
    first = Client()
    enter(first, study)
    html, token = trial_page(first, study)
    post_choice(first, study, token, "left")
    # Both trials are taken (judged, or held ahead by the first annotator).
    newcomer = Client()
    response = newcomer.get(f"/s/{study.slug}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "all the answers it needs" in page and "C0DE42" not in page
    assert "I agree" not in page
    # The first annotator, who has started, still resumes and finishes normally.
    html, token = trial_page(first, study)
    assert post_choice(first, study, token, "left")["Location"] == f"/s/{study.slug}/trial/"


def test_a_study_that_fills_up_after_consent_tells_the_newcomer_and_stamps_no_finish(db):
    study = opened(items=2, generators=1, k=1, quota=5)
    newcomer, first = Client(), Client()
    enter(newcomer, study)
    enter(first, study)
    _, token = trial_page(first, study)
    post_choice(first, study, token, "left")
    response = newcomer.get(f"/s/{study.slug}/trial/")
    assert "all the answers it needs" in response.content.decode()
    assert not Participation.objects.filter(study=study, finished_at__isnull=False).exists()
    assert newcomer.get(f"/s/{study.slug}/done/")["Location"] == f"/s/{study.slug}/"
