"""The annotator's journey through a study: one small state machine over the participation.

Each annotator page tells the journey what happened (an entry, a consent, an answer,
or nothing but a visit) and asks what comes next. The answer is a `Next`: a `Step`
and what that step shows.

    entry     NOT_OPEN | TAKEN | FULL | CONSENT | PRACTICE
    consent   PRACTICE                       ENTRY when the session has no annotator
    practice  PRACTICE + assignment | FEEDBACK | TRIAL
                                             ENTRY before consent, or once the study closed
    trial     TRIAL + assignment | BREAK | DONE | FULL | PRACTICE
              TRIAL alone: the answer is recorded, the next trial is asked for apart
                                             ENTRY before consent, or once the study closed
    done      DONE + completion code         ENTRY unless this session finished

A step that comes with what to show (an assignment, feedback, a break, a completion
code) is shown by the page that asked; any other step names the page to go to.
Entry answers PRACTICE once consent is given, whether or not practice is left: the
practice page knows, and sends the annotator on to the trials.

What the session remembers (`JourneyMemory`) spares the trial page, the annotation
hot path, every read it can: the annotator's key, their consent and the end of their
practice come from it, and no annotator row is read there.
"""

import enum
from dataclasses import dataclass

from django.contrib.sessions.backends.base import SessionBase

from annotate import selectors
from annotate.errors import AssignmentUnknown, ParticipationTaken, QuotaReached, StudyClosed
from annotate.models import Annotator, Assignment, Judgment, Study
from annotate.services.engine import assignments_next, judgment_record, judgment_record_and_next
from annotate.services.participations import (
    annotator_for_invite,
    annotator_for_prolific,
    participation_consent,
    participation_enter,
    participation_finish,
    practice_finish,
)
from annotate.services.practice import practice_next
from workspaces.errors import ParityError


class Step(enum.StrEnum):
    """Where the annotator stands in the study, and so what the pages show next."""

    NOT_OPEN = "not_open"
    FULL = "full"
    TAKEN = "taken"
    ENTRY = "entry"
    CONSENT = "consent"
    PRACTICE = "practice"
    FEEDBACK = "feedback"
    TRIAL = "trial"
    BREAK = "break"
    DONE = "done"


@dataclass(frozen=True)
class Next:
    """What the journey answers: the step, and what the page of that step shows."""

    step: Step
    annotator: Annotator | None = None
    # PRACTICE, FEEDBACK and TRIAL: the assignment to show.
    assignment: Assignment | None = None
    # TRIAL: issued ahead, so that the page can preload their images.
    upcoming: tuple[Assignment, ...] = ()
    # TRIAL and BREAK: the annotator's study judgments so far.
    judged: int = 0
    # FEEDBACK: the judgment on the practice assignment, and whether practice is over with it.
    judgment: Judgment | None = None
    last: bool = False
    # DONE: what Prolific pays on; empty for anyone who did not come from Prolific.
    completion_code: str = ""
    # An answer that was not recorded, and why: the page says so above what it shows.
    refused: Exception | None = None


@dataclass(frozen=True)
class ProlificEntry:
    """What a Prolific link brings: the participant's id, Prolific's ids of study and
    session, and the key of the browser it came in (the participation is bound to it)."""

    participant_id: str
    study_id: str = ""
    session_id: str = ""
    browser_key: str = ""


@dataclass(frozen=True)
class Answer:
    """A choice posted on a practice or study trial."""

    token: str
    choice: str
    client_response_ms: int | None = None


class JourneyMemory:
    """What one browser's session remembers of its journey through one study.

    Its keys in the session are those the views always wrote, so that sessions open
    across a deploy go on where they were.
    """

    def __init__(self, session: SessionBase, study: Study) -> None:
        self._session = session
        self._prefix = f"annotate:{study.pk}:"

    def _get(self, name: str):
        return self._session.get(self._prefix + name)

    def _set(self, name: str, value) -> None:
        self._session[self._prefix + name] = value

    @property
    def annotator_id(self) -> int | None:
        return self._get("annotator")

    def annotator(self) -> Annotator | None:
        """The row of the session's annotator, where a page needs more than its key."""
        annotator_id = self.annotator_id
        return Annotator.objects.filter(pk=annotator_id).first() if annotator_id else None

    def join(self, annotator: Annotator) -> None:
        """From now on this session judges as `annotator`; another annotator's consent (one
        whose row has since gone included) does not carry over to them."""
        if self.annotator_id != annotator.pk:
            self._set("consented", False)
        self._set("annotator", annotator.pk)

    @property
    def consented(self) -> bool:
        return bool(self._get("consented"))

    def remember_consent(self) -> None:
        self._set("consented", True)

    def practiced(self, annotator: Annotator) -> bool:
        # Keyed to the annotator, so that another Prolific id entering this browser does
        # not inherit the practice of the one before.
        return self._get("practiced") == annotator.pk

    def remember_practiced(self, annotator: Annotator) -> None:
        self._set("practiced", annotator.pk)

    @property
    def finished(self) -> bool:
        return bool(self._get("finished"))

    def remember_finished(self) -> None:
        self._set("finished", True)

    def session_key(self) -> str:
        """The session's key, saving a new session first: the key is what a release ends."""
        if self._session.session_key is None:
            self._session.save()
        return self._session.session_key


# ------------------------------------------------------------------------------
# Entry and consent
# ------------------------------------------------------------------------------
def journey_enter(
    *, study: Study, memory: JourneyMemory, prolific: ProlificEntry | None = None, user=None
) -> Next:
    """Someone follows the study's link: their annotator and participation, found or
    made, and where they start.

    A Prolific link wins over an invited account: Prolific pays by its own id. A
    signed-in `user` whom a researcher invited judges as their account; anyone else
    as the session's annotator, or a new anonymous one. Nothing is written for a study
    that is not open, nor for a Prolific id bound to another browser (TAKEN).
    """
    if study.status != Study.Status.OPEN:
        return Next(Step.NOT_OPEN)
    invited = None if prolific is not None or user is None else selectors.invited_annotator(study=study, user=user)
    if prolific is not None:
        annotator = annotator_for_prolific(external_id=prolific.participant_id)
        try:
            participation_enter(
                study=study,
                annotator=annotator,
                prolific_study_id=prolific.study_id,
                prolific_session_id=prolific.session_id,
                browser_key=prolific.browser_key,
                session_key=memory.session_key(),
            )
        except ParticipationTaken:
            return Next(Step.TAKEN)
        memory.join(annotator)
    elif invited is not None:
        annotator = invited
        memory.join(annotator)
    else:
        annotator = memory.annotator()
        if annotator is None:
            annotator = annotator_for_invite()
            memory.join(annotator)
        participation_enter(study=study, annotator=annotator)
    if selectors.study_full_for(study=study, annotator=annotator):
        return Next(Step.FULL, annotator=annotator)
    if _consented(study, memory, annotator):
        return Next(Step.PRACTICE, annotator=annotator)
    return Next(Step.CONSENT, annotator=annotator)


def journey_consent(*, study: Study, memory: JourneyMemory) -> Next:
    """The annotator agreed: recorded, and practice (or the trials, past it) comes next."""
    annotator = memory.annotator()
    if annotator is None:
        return Next(Step.ENTRY)
    participation_consent(study=study, annotator=annotator)
    memory.remember_consent()
    return Next(Step.PRACTICE, annotator=annotator)


def _consented(study: Study, memory: JourneyMemory, annotator: Annotator) -> bool:
    """Consent from the session, else from the database (given in another browser)."""
    if memory.consented:
        return True
    if selectors.annotator_has_consented(study=study, annotator=annotator):
        memory.remember_consent()
        return True
    return False


# ------------------------------------------------------------------------------
# Practice
# ------------------------------------------------------------------------------
def journey_practice(*, study: Study, memory: JourneyMemory, answer: Answer | None = None) -> Next:
    """The practice page: the current practice trial, feedback on an `answer`, or on to the trials.

    Feedback follows each answer, and its button asks for the next practice trial;
    the trials come once practice is over (at once for a study without practice).
    """
    annotator = memory.annotator()
    if annotator is None or not _consented(study, memory, annotator):
        return Next(Step.ENTRY)
    if memory.practiced(annotator):
        return Next(Step.TRIAL, annotator=annotator)
    refused = None
    if answer is not None:
        try:
            return _practice_feedback(study, memory, annotator, answer)
        except (ParityError, ValueError) as exc:
            refused = exc
    try:
        assignment = practice_next(study=study, annotator=annotator)
    except StudyClosed:
        return Next(Step.ENTRY)
    if assignment is None:
        _practice_over(study, memory, annotator)
        return Next(Step.TRIAL, annotator=annotator)
    return Next(Step.PRACTICE, annotator=annotator, assignment=assignment, refused=refused)


def _practice_feedback(study: Study, memory: JourneyMemory, annotator: Annotator, answer: Answer) -> Next:
    assignment = selectors.practice_assignment(study=study, token=answer.token)
    if assignment is None:
        # Feedback reveals the sides, so only a practice assignment may get it.
        raise AssignmentUnknown("no practice assignment of this study has this token")
    judgment = judgment_record(
        assignment_token=assignment.token,
        annotator=annotator,
        choice=answer.choice,
        client_response_ms=answer.client_response_ms,
    )
    last = selectors.practice_remaining(study=study, annotator=annotator) == 0
    if last:
        _practice_over(study, memory, annotator)
    # A repeated submit gets the first answer's feedback: the judgment is the first one.
    return Next(Step.FEEDBACK, annotator=annotator, assignment=assignment, judgment=judgment, last=last)


def _practice_over(study: Study, memory: JourneyMemory, annotator: Annotator) -> None:
    practice_finish(study=study, annotator=annotator)
    memory.remember_practiced(annotator)


def _practice_pending(study: Study, memory: JourneyMemory, annotator: Annotator) -> bool:
    """Practice before the trials, from the database until its end is remembered."""
    if memory.practiced(annotator):
        return False
    if selectors.practice_pending(study=study, annotator=annotator):
        return True
    memory.remember_practiced(annotator)
    return False


# ------------------------------------------------------------------------------
# Trials, breaks and the end
# ------------------------------------------------------------------------------
def journey_trial(
    *, study: Study, memory: JourneyMemory, answer: Answer | None = None, issue_with_answer: bool = False
) -> Next:
    """The trial page: record an `answer`, then the current trial, a break, or the end.

    With `issue_with_answer` the next trial is issued in the answer's transaction and
    shown at once; without it a recorded answer answers TRIAL alone, and the next
    trial is asked for apart (a redirect after the post).
    """
    annotator_id = memory.annotator_id
    # The engine needs only the annotator's key: no row is read for it.
    annotator = Annotator(pk=annotator_id) if annotator_id else None
    if annotator is None or not _consented(study, memory, annotator):
        return Next(Step.ENTRY)
    if _practice_pending(study, memory, annotator):
        return Next(Step.PRACTICE, annotator=annotator)
    judged = issued = refused = None
    if answer is not None:
        try:
            judged, issued = _trial_judge(study, annotator, answer, issue_with_answer)
        except (ParityError, ValueError) as exc:
            refused = exc
        else:
            if selectors.break_due(study=study, judged=judged):
                # The next assignment is issued only on Continue, so a break does not
                # run down its timeout.
                return Next(Step.BREAK, annotator=annotator, judged=judged)
            if not issue_with_answer:
                return Next(Step.TRIAL, annotator=annotator)
    return _trial_current(study, memory, annotator, judged, issued, refused)


def _trial_judge(
    study: Study, annotator: Annotator, answer: Answer, issue_with_answer: bool
) -> tuple[int, list[Assignment] | None]:
    """The annotator's study judgments with this answer, and what was issued with it."""
    submitted = {
        "assignment_token": answer.token,
        "annotator": annotator,
        "choice": answer.choice,
        "client_response_ms": answer.client_response_ms,
    }
    issued = None
    if issue_with_answer:
        judgment, issued = judgment_record_and_next(study=study, **submitted)
    else:
        judgment = judgment_record(**submitted)
    judged = judgment.annotator_judged
    if judged is None:  # a practice trial's token posted here
        judged = selectors.annotator_judged_count(study=study, annotator=annotator)
    return judged, issued


def _trial_current(
    study: Study,
    memory: JourneyMemory,
    annotator: Annotator,
    judged: int | None,
    issued: list[Assignment] | None,
    refused: Exception | None,
) -> Next:
    if judged is None:
        judged = selectors.annotator_judged_count(study=study, annotator=annotator)
    # One ahead, so that the page can preload the next trial's images; none when a
    # break comes next, so that no assignment's timeout runs during the break.
    ahead = 0 if selectors.break_due(study=study, judged=judged + 1) else 1
    try:
        if issued is None:
            issued = assignments_next(study=study, annotator=annotator, ahead=ahead)
        current, *upcoming = issued or [None]
    except StudyClosed:
        return Next(Step.ENTRY)
    except QuotaReached:
        current, upcoming = None, []
    if current is None and judged == 0 and selectors.study_full_for(study=study, annotator=annotator):
        return Next(Step.FULL, annotator=annotator)
    if current is None:
        participation_finish(study=study, annotator=annotator)
        memory.remember_finished()
        return Next(Step.DONE, annotator=annotator)
    return Next(
        Step.TRIAL, annotator=annotator, assignment=current, upcoming=tuple(upcoming), judged=judged, refused=refused
    )


def journey_done(*, study: Study, memory: JourneyMemory) -> Next:
    """The end, for a session that finished the study: with Prolific's completion code
    for a Prolific participant (others have nowhere to take it)."""
    annotator = memory.annotator()
    if annotator is None or not memory.finished:
        return Next(Step.ENTRY)
    code = study.completion_code if annotator.source == Annotator.Source.PROLIFIC else ""
    return Next(Step.DONE, annotator=annotator, completion_code=code)
