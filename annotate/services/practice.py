"""Practice: catch pairs on set-aside items, issued in order before the study, with feedback."""

import secrets
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from annotate.errors import StudyClosed
from annotate.models import Annotator, Assignment, Participation, Side, Study, Trial

PRACTICE_ISSUE_ATTEMPTS = 3


def practice_next(*, study: Study, annotator: Annotator, now: datetime | None = None) -> Assignment | None:
    """The annotator's current practice assignment, or None when practice is over for them.

    Practice trials come in one fixed order (by id), each issued once as an ordinary
    assignment with its own random side; an open one is returned again, so a reload
    does not skip ahead. One that lapsed unanswered is passed over rather than issued
    again: nobody gets the same trial twice, practice included. Practice has no k:
    every annotator gets every practice trial. Nothing is issued once the annotator's
    practice is finished. Raises `StudyClosed` when the study is not open.
    """
    if study.status != Study.Status.OPEN:
        raise StudyClosed(f"study {study.slug!r} is not open")
    now = now or timezone.now()
    for attempt in range(PRACTICE_ISSUE_ATTEMPTS):
        try:
            with transaction.atomic():
                return _practice_issue(study, annotator, now)
        except IntegrityError:
            # A concurrent first entry created the participation, or (lock bypassed)
            # issued this trial: the next pass finds their row.
            if attempt == PRACTICE_ISSUE_ATTEMPTS - 1:
                raise
    return None


def _practice_issue(study: Study, annotator: Annotator, now: datetime) -> Assignment | None:
    # The participation's row lock serialises one annotator's requests (two tabs, a
    # double click), as it does for study trials.
    participation, _ = Participation.objects.select_for_update().get_or_create(study=study, annotator=annotator)
    if participation.practice_finished_at is not None:
        return None
    mine = Assignment.objects.filter(study=study, annotator=annotator, trial__kind=Trial.Kind.PRACTICE)
    current = (
        mine.filter(released_at__isnull=True, judgment__isnull=True, expires_at__gt=now)
        .select_related("item", "trial")
        .order_by("issued_at", "id")
        .first()
    )
    if current is not None:
        return current
    issued = Assignment.objects.filter(annotator=annotator, trial_id=OuterRef("pk"))
    trial = (
        Trial.objects.filter(study=study, kind=Trial.Kind.PRACTICE)
        .filter(~Exists(issued))
        .select_related("item")
        .order_by("id")
        .first()
    )
    if trial is None:
        return None
    # No k to respect, but the check judgment_count <= active_count must still hold.
    Trial.objects.filter(pk=trial.pk).update(active_count=F("active_count") + 1)
    return Assignment.objects.create(
        trial=trial,
        annotator=annotator,
        study=study,
        item=trial.item,
        # Drawn apart from the engine's balanced side blocks, which cover study trials only.
        reference_side=secrets.choice(Side.values),
        issued_at=now,
        shown_at=now,
        expires_at=now + timedelta(seconds=study.assignment_timeout_seconds),
    )
