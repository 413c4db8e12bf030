"""Participations: who enters a study, consent, finishing, and invites of named accounts."""

from collections.abc import Iterable
from datetime import datetime
from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from annotate.errors import InviteRefused, ParticipantUnknown, ParticipationTaken
from annotate.models import Annotator, Participation, Study


def participation_enter(
    *, study: Study, annotator: Annotator, prolific_study_id: str = "", prolific_session_id: str = "",
    browser_key: str = "", session_key: str = "",
) -> Participation:
    """The annotator's participation in the study, created on first entry.

    Prolific ids that come with the link are stored; a return visit with a new
    SESSION_ID replaces the old one. Ids left out of a link leave the stored ones alone.
    With `browser_key` the participation is bound to that browser on first entry, and
    another browser's entry raises `ParticipationTaken`, changing nothing; the bound
    browser's `session_key` is kept for `participation_release`.
    """
    with transaction.atomic():
        # Locked when binding: two browsers entering with one id at once bind one of them.
        rows = Participation.objects.select_for_update() if browser_key else Participation.objects
        participation, _ = rows.get_or_create(study=study, annotator=annotator)
        changed = []
        if browser_key:
            if participation.browser_key and participation.browser_key != browser_key:
                raise ParticipationTaken(
                    "This Prolific ID is already taking part in this study in another browser."
                )
            if not participation.browser_key:
                participation.browser_key = browser_key
                changed.append("browser_key")
            if session_key and session_key != participation.session_key:
                participation.session_key = session_key
                changed.append("session_key")
        for field, value in (("prolific_study_id", prolific_study_id), ("prolific_session_id", prolific_session_id)):
            if value and value != getattr(participation, field):
                setattr(participation, field, value)
                changed.append(field)
        if changed:
            participation.save(update_fields=changed)
    return participation


def annotator_for_prolific(*, external_id: str) -> Annotator:
    """The annotator of a Prolific participant, created on their first entry to any study."""
    annotator, _ = Annotator.objects.get_or_create(source=Annotator.Source.PROLIFIC, external_id=external_id)
    return annotator


def annotator_for_invite() -> Annotator:
    """A new anonymous annotator, for a browser that came by the study's invite link."""
    return Annotator.objects.create(source=Annotator.Source.INVITE)


def participation_release(*, study: Study, external_id: str) -> Participation:
    """Unbind a Prolific participant's participation from its browser.

    For a participant who lost their browser (another device, cleared cookies): the
    next browser that enters with the id takes the participation over, with its
    consent, judgments and open trials; the old browser's session stops answering.
    Raises `ParticipantUnknown` when no participant of the study has the id.
    """
    participation = Participation.objects.filter(
        study=study, annotator__source=Annotator.Source.PROLIFIC, annotator__external_id=external_id
    ).first()
    if participation is None:
        raise ParticipantUnknown(f"No participant of this study has the Prolific ID {external_id!r}.")
    if participation.session_key:
        import_module(settings.SESSION_ENGINE).SessionStore(session_key=participation.session_key).delete()
    Participation.objects.filter(pk=participation.pk).update(browser_key="", session_key="")
    participation.browser_key = participation.session_key = ""
    return participation


def participation_consent(*, study: Study, annotator: Annotator, now: datetime | None = None) -> Participation:
    """Record the annotator's consent; the first consent's time is kept."""
    return _participation_stamp(study, annotator, "consented_at", now)


def participation_finish(*, study: Study, annotator: Annotator, now: datetime | None = None) -> Participation:
    """Record that the annotator has nothing left to judge; the first finish's time is kept."""
    return _participation_stamp(study, annotator, "finished_at", now)


def practice_finish(*, study: Study, annotator: Annotator, now: datetime | None = None) -> Participation:
    """Record that the annotator is through practice; the first time is kept."""
    return _participation_stamp(study, annotator, "practice_finished_at", now)


def annotator_mark_simulated(*, study: Study, external_id: str) -> Annotator:
    """Mark the annotator who entered `study` with Prolific id `external_id` as simulated.

    `manage.py simulate_annotators` calls it right after each simulated annotator has
    entered over HTTP, before its consent: the pages treat it as any Prolific
    participant, while the data says what it is. The external id is kept. Raises
    `Annotator.DoesNotExist` when no Prolific annotator with that id entered the study.
    """
    annotator = Annotator.objects.get(
        source=Annotator.Source.PROLIFIC, external_id=external_id, participations__study=study
    )
    annotator.source = Annotator.Source.SIMULATED
    annotator.save(update_fields=["source"])
    return annotator


def _participation_stamp(study: Study, annotator: Annotator, field: str, now: datetime | None) -> Participation:
    participation, _ = Participation.objects.get_or_create(study=study, annotator=annotator)
    if getattr(participation, field) is None:
        setattr(participation, field, now or timezone.now())
        participation.save(update_fields=[field])
    return participation


# ------------------------------------------------------------------------------
# Invites of named accounts
# ------------------------------------------------------------------------------

def participation_invite(*, study: Study, names: Iterable[str], now: datetime | None = None) -> list[Participation]:
    """Invite existing accounts, each named by username or email, to the study: all or none.

    A username names its account; otherwise the email (any case) must belong to
    exactly one active account. Each account gets its annotator (source "account")
    if it has none, and a participation stamped `invited_at`; inviting again keeps
    the first time. Raises `InviteRefused`, inviting nobody, when a name matches no
    active account or several.
    """
    wanted = list(dict.fromkeys(name.strip() for name in names if name.strip()))
    accounts = list(
        get_user_model()
        .objects.filter(is_active=True)
        .annotate(email_lower=Lower("email"))
        .filter(Q(username__in=wanted) | Q(email_lower__in=[name.lower() for name in wanted]))
    )
    users, unknown, ambiguous = {}, [], []
    for name in wanted:
        by_username = [user for user in accounts if user.get_username() == name]
        matches = by_username or [user for user in accounts if user.email and user.email.lower() == name.lower()]
        if not matches:
            unknown.append(name)
        elif len(matches) > 1:
            ambiguous.append(name)
        else:
            users[matches[0].pk] = matches[0]
    if unknown or ambiguous:
        raise InviteRefused(unknown=unknown, ambiguous=ambiguous)
    now = now or timezone.now()
    invited = []
    with transaction.atomic():
        for user in users.values():
            annotator, _ = Annotator.objects.get_or_create(user=user, defaults={"source": Annotator.Source.ACCOUNT})
            participation, _ = Participation.objects.get_or_create(
                study=study, annotator=annotator, defaults={"invited_at": now}
            )
            if participation.invited_at is None:
                participation.invited_at = now
                participation.save(update_fields=["invited_at"])
            invited.append(participation)
    return invited
