"""Reads of the annotate domain: the annotator's pages (studies, progress, images) and
the researcher's study page (visibility by workspace membership, aggregate progress).

Which stored image sits on which side of a trial is decided here, on the server, from
`Assignment.reference_side`; the pages only ever see opaque keys (ARCHITECTURE.md,
path 3: Present).
"""

import hashlib
import uuid
from datetime import datetime, timedelta

from django.core.files.storage import default_storage
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from annotate.models import Annotator, Assignment, Judgment, Participation, Side, Study, Trial
from generation.models import Membership
from generation.presentation import ensure_presented

IMAGE_KEY_SALT = "annotate.image-key"
SLOTS = (Side.LEFT, Side.RIGHT)
# An annotator counts as active on the study page if issued a trial this recently.
ACTIVE_WINDOW = timedelta(minutes=15)


def study_by_slug(*, slug: str) -> Study | None:
    return Study.objects.filter(slug=slug).first()


def study_for_user(*, user, slug: str) -> Study | None:
    """The study if `user` may see it (a member of its workspace, or a superuser), else None.

    None both for a study that does not exist and for one the user may not see, so a
    page can answer 404 to either and reveal nothing.
    """
    if not user.is_authenticated:
        return None
    studies = Study.objects.select_related("corpus", "workspace").filter(slug=slug)
    if not user.is_superuser:
        studies = studies.filter(workspace__members=user)
    return studies.first()


def study_can_manage(*, user, study: Study) -> bool:
    """Whether `user` may open or close the study: a superuser, or a member who is not a viewer."""
    if user.is_superuser:
        return True
    return (
        Membership.objects.filter(workspace_id=study.workspace_id, user=user)
        .exclude(role=Membership.Role.VIEWER)
        .exists()
    )


def study_progress(*, study: Study, now: datetime | None = None) -> dict:
    """Aggregate progress of a study, in a handful of grouped queries.

    Returns a dict with ``generators`` (rows of name, trials, done, needed, where
    needed = generated trials x k), ``catch`` / ``catch_passed`` / ``catch_pass_rate``
    (a catch is passed when the real reference was chosen), ``calibration`` /
    ``calibration_left`` / ``calibration_left_rate`` (expected near 0.5; far from it
    shows a side bias), ``active_annotators`` (issued a trial within `ACTIVE_WINDOW`),
    ``open_assignments``, ``participations`` and ``finished``. Rates are None when
    there is nothing to divide.
    """
    now = now or timezone.now()
    k = study.judgments_per_trial
    rows = (
        Trial.objects.filter(study=study, kind=Trial.Kind.GENERATED)
        .values(generator_id=F("sample__generator_id"), name=F("sample__generator__name"))
        .annotate(trials=Count("id"), done=Coalesce(Sum("judgment_count"), 0))
        .order_by("name")
    )
    generators = [{**row, "needed": row["trials"] * k} for row in rows]
    controls = Judgment.objects.filter(assignment__study=study).aggregate(
        catch=Count("id", filter=Q(assignment__trial__kind=Trial.Kind.CATCH)),
        catch_passed=Count(
            "id", filter=Q(assignment__trial__kind=Trial.Kind.CATCH, choice=F("assignment__reference_side"))
        ),
        calibration=Count("id", filter=Q(assignment__trial__kind=Trial.Kind.CALIBRATION)),
        calibration_left=Count("id", filter=Q(assignment__trial__kind=Trial.Kind.CALIBRATION, choice=Side.LEFT)),
    )
    assignments = Assignment.objects.filter(study=study).aggregate(
        active_annotators=Count("annotator", distinct=True, filter=Q(issued_at__gte=now - ACTIVE_WINDOW)),
        open_assignments=Count(
            "id", filter=Q(released_at__isnull=True, judgment__isnull=True, expires_at__gt=now)
        ),
    )
    participations = Participation.objects.filter(study=study).aggregate(
        participations=Count("id"), finished=Count("id", filter=Q(finished_at__isnull=False))
    )
    return {
        "generators": generators,
        "done": sum(row["done"] for row in generators),
        "needed": sum(row["needed"] for row in generators),
        **controls,
        "catch_pass_rate": _rate(controls["catch_passed"], controls["catch"]),
        "calibration_left_rate": _rate(controls["calibration_left"], controls["calibration"]),
        **assignments,
        **participations,
    }


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


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
