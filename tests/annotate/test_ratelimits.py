"""Rate limits on the annotator's pages: joining per client address, submitting per annotator.

Rates are per day in these tests, so that a counting window never ends in the
middle of one (django-ratelimit's windows are fixed, not sliding).
"""

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.core.cache import cache
from django.test import Client, RequestFactory
from redis.exceptions import ConnectionError as RedisConnectionError

from annotate.models import Annotator, Judgment, Participation, Study
from annotate.ratelimits import JOIN_MESSAGE, SUBMIT_MESSAGE, check_shared_cache, client_ip
from annotate.services import study_build_trials, study_open
from tests.annotate.builders import build_study

TOKEN = re.compile(r'name="token" value="([0-9a-f-]{36})"')


def open_study(**kwargs) -> Study:
    study = build_study(**kwargs)
    study_build_trials(study=study, rng_seed=1)
    return study_open(study=study)


def joined(study: Study, **client_defaults) -> Client:
    client = Client(**client_defaults)
    assert client.get(f"/s/{study.slug}/").status_code == 200
    assert client.post(f"/s/{study.slug}/consent/").status_code == 302
    return client


def current_token(client: Client, study: Study) -> str:
    response = client.get(f"/s/{study.slug}/trial/")
    assert response.status_code == 200
    return TOKEN.search(response.content.decode()).group(1)


def submit(client: Client, study: Study, token: str, *, htmx: bool = False):
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(
        f"/s/{study.slug}/trial/", {"token": token, "choice": "left", "client_ms": "900"}, headers=headers
    )


def plain(html: bytes) -> str:
    """The page's text with HTML's escapes undone, to compare with a message."""
    return html.decode().replace("&#x27;", "'").replace("&quot;", '"')


# ------------------------------------------------------------------------------
# Joining: per client address
# ------------------------------------------------------------------------------
def test_entries_over_the_limit_get_429_and_create_no_annotator(db, settings):
    settings.PARITY_RATE_JOIN = "2/d"
    open_study()
    for _ in range(2):
        assert Client().get("/s/s/").status_code == 200
    before = Annotator.objects.count()

    response = Client().get("/s/s/", {"PROLIFIC_PID": "p1"})

    assert response.status_code == 429
    assert JOIN_MESSAGE in plain(response.content)
    assert 'href="/s/s/?PROLIFIC_PID=p1"' in response.content.decode()  # try again with the same link
    assert 0 < int(response["Retry-After"]) <= 86400
    assert Annotator.objects.count() == before
    assert not Participation.objects.filter(annotator__external_id="p1").exists()


def test_the_join_limit_is_per_client_address(db, settings):
    settings.PARITY_RATE_JOIN = "1/d"
    study = open_study()
    assert Client(REMOTE_ADDR="198.51.100.1").get("/s/s/").status_code == 200
    assert Client(REMOTE_ADDR="198.51.100.1").get("/s/s/").status_code == 429
    assert Client(REMOTE_ADDR="198.51.100.2").get("/s/s/").status_code == 200
    # One IPv6 client holds a whole /64: it cannot step around the limit inside it.
    assert Client(REMOTE_ADDR="2001:db8::1").get(f"/s/{study.slug}/").status_code == 200
    assert Client(REMOTE_ADDR="2001:db8::2").get(f"/s/{study.slug}/").status_code == 429
    assert Client(REMOTE_ADDR="2001:db8:0:1::1").get(f"/s/{study.slug}/").status_code == 200


def test_consent_over_the_limit_gets_429_and_is_not_recorded(db, settings):
    settings.PARITY_RATE_JOIN = "2/d"
    study = open_study()
    first, second = Client(), Client()
    assert first.get("/s/s/").status_code == 200
    assert second.get("/s/s/").status_code == 200
    assert first.post("/s/s/consent/").status_code == 302
    assert first.post("/s/s/consent/").status_code == 302

    response = second.post("/s/s/consent/")

    assert response.status_code == 429
    assert JOIN_MESSAGE in plain(response.content)
    assert 'href="/s/s/"' in response.content.decode()
    consented = Participation.objects.filter(study=study, consented_at__isnull=False)
    assert consented.count() == 1


def test_entries_under_the_limit_work(db, settings):
    settings.PARITY_RATE_JOIN = "30/m"
    study = open_study()
    for _ in range(5):
        joined(study)
    assert Participation.objects.filter(study=study, consented_at__isnull=False).count() == 5


def test_behind_a_proxy_each_forwarded_client_counts_alone(db, settings):
    settings.PARITY_RATE_JOIN = "1/d"
    settings.PARITY_NUM_PROXIES = 1
    open_study()

    def get(forwarded: str) -> int:
        return Client(REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR=forwarded).get("/s/s/").status_code

    assert get("203.0.113.5") == 200
    assert get("203.0.113.6") == 200
    # What the client wrote before the proxy's entry does not make it someone else.
    assert get("192.0.2.77, 203.0.113.5") == 429


@pytest.mark.parametrize(
    "proxies, remote, forwarded, expected",
    [
        (0, "198.51.100.7", "203.0.113.5", "198.51.100.7"),  # no proxy: the header is the client's word
        (1, "10.0.0.9", "192.0.2.1, 203.0.113.5", "203.0.113.5"),
        (2, "10.0.0.9", "192.0.2.1, 203.0.113.5, 10.0.0.8", "203.0.113.5"),
        (2, "10.0.0.9", "203.0.113.5", "203.0.113.5"),  # fewer entries than proxies: the leftmost
        (1, "10.0.0.9", "not-an-address", "10.0.0.9"),
        (1, "10.0.0.9", "", "10.0.0.9"),
        (0, "", "", "0.0.0.0"),
    ],
)
def test_client_ip(settings, proxies, remote, forwarded, expected):
    settings.PARITY_NUM_PROXIES = proxies
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


# ------------------------------------------------------------------------------
# Submitting: per annotator
# ------------------------------------------------------------------------------
def test_submits_over_the_limit_get_429_and_record_no_judgment(db, settings):
    settings.PARITY_RATE_SUBMIT = "2/d"
    study = open_study(quota=10)
    client = joined(study)
    for _ in range(2):
        assert submit(client, study, current_token(client, study)).status_code == 302
    token = current_token(client, study)

    response = submit(client, study, token)

    assert response.status_code == 429
    assert SUBMIT_MESSAGE in plain(response.content)
    assert 'href="/s/s/trial/"' in response.content.decode()
    assert Judgment.objects.count() == 2
    assert not Judgment.objects.filter(assignment__token=token).exists()
    # Showing the trial is not a submit: the refused trial is still there to answer.
    assert current_token(client, study) == token


def test_htmx_submit_over_the_limit_gets_the_message_in_place_of_the_trial(db, settings):
    settings.PARITY_RATE_SUBMIT = "1/d"
    study = open_study(quota=10)
    client = joined(study)
    assert submit(client, study, current_token(client, study), htmx=True).status_code == 200
    token = current_token(client, study)

    response = submit(client, study, token, htmx=True)

    assert response.status_code == 429
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="trial"')
    assert "<html" not in html
    assert SUBMIT_MESSAGE in plain(response.content)
    assert 'hx-get="/s/s/trial/"' in html and 'hx-target="#trial"' in html
    assert not Judgment.objects.filter(assignment__token=token).exists()


def test_the_trial_page_swaps_in_a_429(db):
    """htmx drops 4xx responses unless told otherwise; the page says so for 429."""
    study = open_study()
    client = joined(study)
    html = client.get("/s/s/trial/").content.decode()
    assert '<script src="/static/annotate/trial.js"></script>' in html
    source = Path(finders.find("annotate/trial.js")).read_text()
    assert re.search(r'htmx:beforeSwap".*?status === 429', source, flags=re.DOTALL)


def test_the_submit_limit_is_per_annotator(db, settings):
    settings.PARITY_RATE_SUBMIT = "1/d"
    study = open_study(quota=10)
    first, second = joined(study), joined(study)  # one address, two annotators
    assert submit(first, study, current_token(first, study)).status_code == 302
    assert submit(first, study, current_token(first, study)).status_code == 429

    assert submit(second, study, current_token(second, study)).status_code == 302
    assert Judgment.objects.filter(assignment__annotator__participations__study=study).count() == 2


def test_a_submit_without_a_session_is_counted_by_address(db, settings):
    settings.PARITY_RATE_SUBMIT = "1/d"
    open_study()
    stranger = Client()
    assert stranger.post("/s/s/trial/", {"token": "x", "choice": "left"}).status_code == 302  # to the entry
    assert stranger.post("/s/s/trial/", {"token": "x", "choice": "left"}).status_code == 429
    assert Client(REMOTE_ADDR="198.51.100.3").post("/s/s/trial/", {"choice": "left"}).status_code == 302


def test_submits_under_the_limit_work(db, settings):
    settings.PARITY_RATE_SUBMIT = "120/m"
    study = open_study(items=8, quota=6)
    client = joined(study)
    for _ in range(6):
        assert submit(client, study, current_token(client, study)).status_code == 302
    assert Judgment.objects.count() == 6


@pytest.mark.parametrize("name", ["PARITY_RATE_JOIN", "PARITY_RATE_SUBMIT"])
def test_a_limit_set_to_none_is_off(db, settings, name):
    settings.PARITY_RATE_JOIN = settings.PARITY_RATE_SUBMIT = "1/d"
    setattr(settings, name, None)
    study = open_study(items=8, quota=10)
    if name == "PARITY_RATE_JOIN":
        for _ in range(4):
            assert Client().get("/s/s/").status_code == 200
    else:
        client = joined(study)
        for _ in range(4):
            assert submit(client, study, current_token(client, study)).status_code == 302
        assert Judgment.objects.count() == 4


def test_an_unreachable_cache_lets_annotators_through(db, settings, monkeypatch, caplog):
    settings.PARITY_RATE_JOIN = "1/d"
    open_study()

    def unreachable(*args, **kwargs):
        raise RedisConnectionError("connection refused")

    monkeypatch.setattr(cache, "add", unreachable)
    for _ in range(3):
        assert Client().get("/s/s/").status_code == 200
    assert "the cache is unreachable" in caplog.text


# ------------------------------------------------------------------------------
# The shared-cache check
# ------------------------------------------------------------------------------
def test_a_per_process_cache_is_reported_by_the_deploy_check(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    (warning,) = check_shared_cache(None)
    assert warning.id == "annotate.W001"
    assert "CACHE_URL" in warning.hint

    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://r:6379/1"}
    }
    assert check_shared_cache(None) == []
