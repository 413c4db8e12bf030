"""The images of an assignment: made once per trial, the same bytes from any process."""

import re
import threading

from django.core.cache import caches
from django.db import connections
from django.test import Client

from annotate.services import images
from generation import presentation
from tests.annotate.test_blindness import build_blind_study
from tests.annotate.test_pages import PID, enter, trial_page

IMAGES = re.compile(r'<img src="([^"]+/img/[^"]+)"')


def _browser_with_trial(study):
    client = Client()
    enter(client, study, PROLIFIC_PID=PID)
    html, _ = trial_page(client, study)
    return client, IMAGES.findall(html)[:2]


def test_another_process_makes_the_same_bytes(db):
    study = build_blind_study(items=4)
    client, urls = _browser_with_trial(study)
    first = [client.get(url).content for url in urls]
    caches["presented"].clear()  # as a web process that never saw this trial
    assert [client.get(url).content for url in urls] == first
    assert len(first[0]) == len(first[1]) and first[0] != first[1]


def test_both_images_requested_at_once_are_made_once(transactional_db, monkeypatch):
    study = build_blind_study(items=4)
    client, urls = _browser_with_trial(study)
    made, real = [], presentation.present_pair

    def counting(*args, **kwargs):
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(images, "present_pair", counting)
    barrier, bodies = threading.Barrier(2), {}
    session = client.cookies["sessionid"].value

    def fetch(url):
        try:
            browser = Client()
            browser.cookies["sessionid"] = session
            barrier.wait()
            bodies[url] = browser.get(url)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=fetch, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [bodies[url].status_code for url in urls] == [200, 200]
    assert len(bodies[urls[0]].content) == len(bodies[urls[1]].content)
    assert len(made) == 1


def test_practice_images_are_padded_to_one_length_too(db, settings):
    settings.PARITY_RATE_JOIN = settings.PARITY_RATE_SUBMIT = None
    study = build_blind_study(items=8, practice=2)
    client = Client()
    client.get(f"/s/{study.slug}/", {"PROLIFIC_PID": PID})
    client.post(f"/s/{study.slug}/consent/")
    html = client.get(f"/s/{study.slug}/practice/").content.decode()
    urls = IMAGES.findall(html)[:2]
    assert len(urls) == 2, html[:300]
    bodies = [client.get(url) for url in urls]
    assert [b.status_code for b in bodies] == [200, 200]
    assert bodies[0]["Content-Length"] == bodies[1]["Content-Length"] == str(len(bodies[0].content))
    assert bodies[0].content != bodies[1].content
