"""Reads of the annotate domain for the annotator's pages: studies, progress, images.

Which stored image sits on which side of a trial is decided here, on the server, from
`Assignment.reference_side`; the pages only ever see opaque keys (ARCHITECTURE.md,
path 3: Present).
"""

import hashlib
import uuid

from django.core.files.storage import default_storage
from django.utils.crypto import constant_time_compare, salted_hmac

from annotate.models import Annotator, Assignment, Judgment, Participation, Side, Study, Trial
from generation.presentation import ensure_presented

IMAGE_KEY_SALT = "annotate.image-key"
SLOTS = (Side.LEFT, Side.RIGHT)


def study_by_slug(*, slug: str) -> Study | None:
    return Study.objects.filter(slug=slug).first()


def annotator_judged_count(*, study: Study, annotator: Annotator) -> int:
    return Judgment.objects.filter(assignment__study=study, assignment__annotator=annotator).count()


def annotator_has_consented(*, study: Study, annotator: Annotator) -> bool:
    return Participation.objects.filter(study=study, annotator=annotator, consented_at__isnull=False).exists()


def break_due(*, study: Study, judged: int) -> bool:
    """Whether a break is offered now that the annotator has `judged` judgments.

    Never after the last judgment of the quota: the annotator is done, not pausing.
    """
    every = study.break_every
    return bool(every) and 0 < judged < study.quota_per_annotator and judged % every == 0


def image_key(*, assignment: Assignment, slot: str) -> str:
    """An opaque key for the image in `slot` of the assignment.

    The assignment's token (already in the form) and a MAC of (token, slot): both keys
    of a trial have the same shape and length, and neither says which slot it is,
    let alone which image is real.
    """
    token = assignment.token.hex
    return token + salted_hmac(IMAGE_KEY_SALT, f"{token}:{slot}").hexdigest()[:32]


def image_key_resolve(*, key: str) -> tuple[Assignment, str] | None:
    """The assignment and slot behind an image key, or None for a key that is not one."""
    if len(key) != 64:
        return None
    token, mac = key[:32], key[32:]
    assignment = (
        Assignment.objects.select_related("trial__sample", "item", "study").filter(token=uuid.UUID(hex=token)).first()
        if _is_hex(token) else None
    )
    if assignment is None:
        return None
    for slot in SLOTS:
        if constant_time_compare(mac, image_key(assignment=assignment, slot=slot)[32:]):
            return assignment, slot
    return None


def presented_image_name(*, assignment: Assignment, slot: str) -> str:
    """Storage name of the slot's image rendered through the study's presentation policy."""
    name, sha256 = _slot_source(assignment, slot)
    if not sha256:
        with default_storage.open(name, "rb") as handle:
            sha256 = hashlib.sha256(handle.read()).hexdigest()

    def read_source() -> bytes:
        with default_storage.open(name, "rb") as handle:
            return handle.read()

    return ensure_presented(assignment.study.policy, default_storage, source_sha256=sha256, read_source=read_source)


def _slot_source(assignment: Assignment, slot: str) -> tuple[str, str]:
    """(storage name, sha256 or "") of the image in the slot."""
    item = assignment.item
    if slot == assignment.reference_side:
        return item.image.name, item.sha256
    trial = assignment.trial
    if trial.kind == Trial.Kind.GENERATED:
        return trial.sample.image.name, trial.sample.sha256
    if trial.control_image:
        return trial.control_image.name, ""
    # A calibration trial without its own image shows the reference on both sides.
    return item.image.name, item.sha256


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
