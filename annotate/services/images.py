"""The bytes an assignment's images are served as (ARCHITECTURE.md, path 3: Present).

A write, not a read: the first request for an image stores its framing under the
study's presentation policy (`ensure_presented`), and both images of the trial are
made per assignment (`present_pair`). Which stored image sits in which slot is
`selectors.image_source`'s to say.
"""

import hashlib
import time

from django.core.cache import caches
from django.core.files.storage import default_storage
from django.utils.crypto import salted_hmac

from annotate.models import Assignment
from annotate.selectors import SLOTS, image_source
from generation.presentation import ensure_presented, present_pair

PRESENTED_SALT = "annotate.presented"
# Long enough for a page's request for the other image of a trial, which follows at once.
PRESENTED_CACHE_SECONDS = 120
# How long a request waits for another that is making its trial's pair before making it too.
PRESENTED_WAIT_SECONDS = 5


def image_present(*, assignment: Assignment, slot: str) -> bytes:
    """The bytes the slot's image is served as, for this assignment alone (`present_pair`).

    Both slots are made on a miss, whichever is asked for: otherwise the image that had
    to be rendered (usually the sample: a reference is shared by many trials and is
    mostly rendered already) would answer measurably later and name itself; and both
    are needed anyway to pad them to one length. A page asks for both images at once,
    so the first request makes the pair and the second waits for it in the `presented`
    cache instead of making it again; a process that cannot see the first one's cache
    (or waits too long) makes the same bytes itself, from the assignment's secret.
    """
    cache = caches["presented"]
    key, making = f"presented:{assignment.token.hex}", f"presented:{assignment.token.hex}:making"
    pair = cache.get(key)
    if pair is not None:
        return pair[slot]
    maker = cache.add(making, 1, timeout=PRESENTED_WAIT_SECONDS)
    if not maker:
        deadline = time.monotonic() + PRESENTED_WAIT_SECONDS
        while pair is None and time.monotonic() < deadline:
            time.sleep(0.005)
            pair = cache.get(key)
        if pair is not None:
            return pair[slot]
    try:
        frames = {}
        for s in SLOTS:
            with default_storage.open(_framing_stored(assignment, s), "rb") as handle:
                frames[s] = handle.read()
        secret = salted_hmac(PRESENTED_SALT, assignment.token.hex).digest()
        pair = present_pair(assignment.study.policy, frames, secret=secret)
        cache.set(key, pair, timeout=PRESENTED_CACHE_SECONDS)
    finally:
        if maker:
            cache.delete(making)
    return pair[slot]


def _framing_stored(assignment: Assignment, slot: str) -> str:
    """The storage name of the slot's image framed under the study's policy, stored on first use."""
    name, sha256 = image_source(assignment=assignment, slot=slot)
    if not sha256:
        with default_storage.open(name, "rb") as handle:
            sha256 = hashlib.sha256(handle.read()).hexdigest()

    def read_source() -> bytes:
        with default_storage.open(name, "rb") as handle:
            return handle.read()

    return ensure_presented(assignment.study.policy, default_storage, source_sha256=sha256, read_source=read_source)
