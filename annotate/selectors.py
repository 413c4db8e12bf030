"""Reads of the annotate domain: the annotator's pages (studies, progress, images) and
the researcher's study page (visibility by workspace membership, aggregate progress).

Which stored image sits on which side of a trial is decided here, on the server, from
`Assignment.reference_side`; the pages only ever see opaque keys (ARCHITECTURE.md,
path 3: Present).
"""

import copy
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from annotate.db import study_row
from annotate.models import (
    Annotator,
    Assignment,
    Judgment,
    Participation,
    Side,
    Study,
    Trial,
)
from generation.models import Generator
from workspaces.access import readable, workspace_can_write

IMAGE_KEY_SALT = "annotate.image-key"
SLOTS = (Side.LEFT, Side.RIGHT)
# An annotator counts as active on the study page if issued a trial this recently.
ACTIVE_WINDOW = timedelta(minutes=15)


def studies_for(*, user) -> QuerySet[Study]:
    """The studies of the user's workspaces (every study for a superuser), for the researcher API.

    Each has its trial counts by kind: `trials_generated`, `trials_catch`,
    `trials_calibration`, `trials_practice`.
    """
    studies = Study.objects.select_related("workspace", "corpus").prefetch_related(
        Prefetch("generators", queryset=Generator.objects.order_by("pk").only("pk"))
    )
    return readable(studies, user=user).annotate(
        **{f"trials_{kind}": Count("trials", filter=Q(trials__kind=kind)) for kind in Trial.Kind.values}
    )


# Prolific substitutes these placeholders in a study's URL for each participant.
PROLIFIC_QUERY = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"


def study_links(*, study: Study, absolute: Callable[[str], str] = str) -> dict[str, str]:
    """The annotators' ways in: ``invite_url`` (/s/<slug>/) and ``prolific_url`` (with its placeholders).

    `absolute` turns a path into a full URL (a request's `build_absolute_uri`); the
    placeholders are added after it, so that their braces are not percent-encoded.
    """
    invite_url = absolute(reverse("annotate:entry", args=[study.slug]))
    return {"invite_url": invite_url, "prolific_url": f"{invite_url}?{PROLIFIC_QUERY}"}


# The annotator's pages load their study on every request. Its row is read every time,
# so a change is seen at once, but it becomes a Study through the ORM only when it
# differs from the row this process saw last: that costs several times the read.
_studies: dict[str, tuple[tuple, Study]] = {}


def study_by_slug(*, slug: str) -> Study | None:
    row = study_row(slug=slug)
    if row is None:
        return None
    seen = _studies.get(slug)
    if seen is None or seen[0] != row:
        # Read after the row: if it changed in between, the next request reads it again.
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            return None
        seen = _studies[slug] = (row, study)
    # A copy per request, so that setting a field of one request's study leaves the others alone.
    return copy.copy(seen[1])


def study_for_user(*, user, slug: str) -> Study | None:
    """The study if `user` may see it (a member of its workspace, or a superuser), else None.

    None both for a study that does not exist and for one the user may not see, so a
    page can answer 404 to either and reveal nothing.
    """
    return readable(Study.objects.select_related("corpus", "workspace").filter(slug=slug), user=user).first()


def generators_named(*, study: Study, values) -> tuple[list[Generator], str | None]:
    """Generators of the study's workspace by id or name, in the order given, and the
    first value that names none (None when every one names a generator)."""
    found = []
    generators = Generator.objects.filter(workspace_id=study.workspace_id)
    for value in values:
        value = str(value).strip()
        # An id past the database's integer range names no row (rather than an overflow error).
        match = generators.filter(pk=int(value)).first() if value.isdigit() and len(value) < 19 else None
        match = match or generators.filter(name=value).first()
        if match is None:
            return found, value
        found.append(match)
    return found, None


def study_can_manage(*, user, study: Study) -> bool:
    """Whether `user` may open or close the study: a superuser, or a member who is not a viewer."""
    return workspace_can_write(user=user, workspace_id=study.workspace_id)


def study_progress(*, study: Study, now: datetime | None = None) -> dict:
    """Aggregate progress of a study, in a handful of grouped queries.

    Returns a dict with ``generators`` (rows of name, trials, done, needed, where
    needed = generated trials x k, and anchor), ``pairs`` (head-to-head trials per pair of
    generators: name, opponent_name, trials, done, needed, served), ``catch`` / ``catch_passed`` / ``catch_pass_rate``
    (a catch is passed when the real reference was chosen), ``calibration`` /
    ``calibration_left`` / ``calibration_left_rate`` (expected near 0.5; far from it
    shows a side bias), ``active_annotators`` (issued a trial within `ACTIVE_WINDOW`),
    ``open_assignments``, ``participations`` and ``finished``, ``judgments`` (practice
    left out), and how many of the participations and judgments are simulated
    (``simulated_annotators``, ``simulated_judgments``: `Annotator.Source.SIMULATED`).
    Rates are None when there is nothing to divide.
    """
    now = now or timezone.now()
    k = study.judgments_per_trial
    rows = (
        Trial.objects.filter(study=study, kind=Trial.Kind.GENERATED)
        .values("generator_id", name=F("generator__name"))
        .annotate(trials=Count("id"), done=Coalesce(Sum("judgment_count"), 0))
        .order_by("name")
    )
    anchors = set(study.anchor_generators or ())
    generators = [{**row, "needed": row["trials"] * k, "anchor": row["generator_id"] in anchors} for row in rows]
    served = {tuple(pair) for pair in study.head_to_head_active or ()}
    pairs = [
        {**row, "needed": row["trials"] * k, "served": (row["generator_id"], row["opponent_id"]) in served}
        for row in Trial.objects.filter(study=study, kind=Trial.Kind.HEAD_TO_HEAD)
        .values("generator_id", "opponent_id", name=F("generator__name"), opponent_name=F("opponent__name"))
        .annotate(trials=Count("id"), done=Coalesce(Sum("judgment_count"), 0))
        .order_by("name", "opponent_name")
    ]
    practice = Q(assignment__trial__kind=Trial.Kind.PRACTICE)
    controls = Judgment.objects.filter(assignment__study=study).aggregate(
        catch=Count("id", filter=Q(assignment__trial__kind=Trial.Kind.CATCH)),
        catch_passed=Count(
            "id", filter=Q(assignment__trial__kind=Trial.Kind.CATCH, choice=F("assignment__reference_side"))
        ),
        calibration=Count("id", filter=Q(assignment__trial__kind=Trial.Kind.CALIBRATION)),
        calibration_left=Count("id", filter=Q(assignment__trial__kind=Trial.Kind.CALIBRATION, choice=Side.LEFT)),
        judgments=Count("id", filter=~practice),
        simulated_judgments=Count(
            "id", filter=~practice & Q(assignment__annotator__source=Annotator.Source.SIMULATED)
        ),
    )
    assignments = Assignment.objects.filter(study=study).exclude(trial__kind=Trial.Kind.PRACTICE).aggregate(
        active_annotators=Count("annotator", distinct=True, filter=Q(issued_at__gte=now - ACTIVE_WINDOW)),
        open_assignments=Count(
            "id", filter=Q(released_at__isnull=True, judgment__isnull=True, expires_at__gt=now)
        ),
    )
    participations = Participation.objects.filter(study=study).aggregate(
        participations=Count("id"), finished=Count("id", filter=Q(finished_at__isnull=False)),
        simulated_annotators=Count("id", filter=Q(annotator__source=Annotator.Source.SIMULATED)),
    )
    return {
        "generators": generators,
        "pairs": pairs,
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
    """The annotator's study judgments so far (practice excluded), from the engine's running count."""
    judged = Participation.objects.filter(study=study, annotator=annotator).values_list("judged", flat=True).first()
    return judged or 0


def study_full_for(*, study: Study, annotator: Annotator) -> bool:
    """Whether the study has nothing for this annotator because it has all the judgments it needs.

    Only for someone who has not started: a returning annotator resumes or finishes.
    """
    started = Assignment.objects.filter(study=study, annotator=annotator).exclude(trial__kind=Trial.Kind.PRACTICE)
    if started.exists():
        return False
    room = Trial.objects.filter(study=study, active_count__lt=study.judgments_per_trial).exclude(
        kind=Trial.Kind.PRACTICE
    )
    return not room.exists()


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


def image_source(*, assignment: Assignment, slot: str) -> tuple[str, str]:
    """(storage name, sha256 or "") of the stored image in the slot of the assignment."""
    item = assignment.item
    trial = assignment.trial
    if slot == assignment.reference_side:
        if trial.kind == Trial.Kind.HEAD_TO_HEAD:
            # The opponent's sample stands in the reference's place.
            return trial.opponent_sample.image.name, trial.opponent_sample.sha256
        return item.image.name, item.sha256
    if trial.kind in (Trial.Kind.GENERATED, Trial.Kind.HEAD_TO_HEAD):
        return trial.sample.image.name, trial.sample.sha256
    if trial.control_image:
        # Control images are stored content-addressed (controls/<sha256>.png).
        stem = trial.control_image.name.rsplit("/", 1)[-1].split(".", 1)[0]
        return trial.control_image.name, stem if len(stem) == 64 and _is_hex(stem) else ""
    # A calibration trial without its own image shows the reference on both sides.
    return item.image.name, item.sha256


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


# ------------------------------------------------------------------------------
# Invited accounts
# ------------------------------------------------------------------------------
def invited_annotator(*, study: Study, user) -> Annotator | None:
    """The annotator of `user`'s account if a researcher invited it to the study, else None."""
    if not user.is_authenticated:
        return None
    return Annotator.objects.filter(
        user=user, participations__study=study, participations__invited_at__isnull=False
    ).first()


def participation_state(participation: Participation) -> str:
    """Where an invited account stands: "invited", "consented" or "finished"."""
    if participation.finished_at is not None:
        return "finished"
    if participation.consented_at is not None:
        return "consented"
    return "invited"


def study_invited_accounts(*, study: Study) -> list[dict]:
    """The accounts invited to the study, by username: username, email, state, judged, invited_at."""
    participations = (
        Participation.objects.filter(study=study, invited_at__isnull=False, annotator__user__isnull=False)
        .select_related("annotator__user")
        .order_by("annotator__user__username")
    )
    return [
        {
            "username": p.annotator.user.get_username(),
            "email": p.annotator.user.email,
            "state": participation_state(p),
            "judged": p.judged,
            "invited_at": p.invited_at,
        }
        for p in participations
    ]


def invitations_for_user(*, user) -> list[dict]:
    """The open studies `user`'s account is invited to, by name: study and state."""
    if not user.is_authenticated:
        return []
    participations = (
        Participation.objects.filter(
            annotator__user=user, invited_at__isnull=False, study__status=Study.Status.OPEN
        )
        .select_related("study")
        .order_by("study__name")
    )
    return [{"study": p.study, "state": participation_state(p)} for p in participations]


# ------------------------------------------------------------------------------
# Practice
# ------------------------------------------------------------------------------
def practice_pending(*, study: Study, annotator: Annotator) -> bool:
    """Whether practice still stands between the annotator and the study's trials.

    A study without practice trials has none pending; otherwise it is pending until
    `practice_finish` has stamped the annotator's participation.
    """
    finished = Participation.objects.filter(study=study, annotator=annotator, practice_finished_at__isnull=False)
    return Trial.objects.filter(study=study, kind=Trial.Kind.PRACTICE).exists() and not finished.exists()


def practice_assignment(*, study: Study, token: str) -> Assignment | None:
    """The study's practice assignment with this token, whoever holds it, or None.

    Only these get feedback: a study trial's token posted to the practice page must
    not come back with its sides revealed.
    """
    try:
        return (
            Assignment.objects.select_related("item", "trial")
            .filter(study=study, trial__kind=Trial.Kind.PRACTICE, token=token)
            .first()
        )
    except (ValidationError, ValueError):
        # ValidationError: the token is not even a UUID.
        return None


def practice_position(*, assignment: Assignment) -> tuple[int, int]:
    """(place of the assignment's trial in the practice order, from 1; number of practice trials)."""
    order = list(
        Trial.objects.filter(study_id=assignment.study_id, kind=Trial.Kind.PRACTICE)
        .order_by("id")
        .values_list("id", flat=True)
    )
    return order.index(assignment.trial_id) + 1, len(order)


def practice_remaining(*, study: Study, annotator: Annotator, now: datetime | None = None) -> int:
    """How many practice trials the annotator has still to be given or holds open.

    A practice trial is over for the annotator once answered, or once its assignment
    lapsed unanswered (`services.practice_next` passes over those).
    """
    now = now or timezone.now()
    over = Assignment.objects.filter(annotator=annotator, trial_id=OuterRef("pk")).filter(
        Q(judgment__isnull=False) | Q(released_at__isnull=False) | Q(expires_at__lte=now)
    )
    return Trial.objects.filter(study=study, kind=Trial.Kind.PRACTICE).filter(~Exists(over)).count()
