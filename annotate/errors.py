"""The error family of the annotate domain: why an annotator cannot get or judge a trial.

Every class derives from `workspaces.errors.ParityError` and carries its API `code`
and `status`; those an annotator can meet on the trial page also carry what the page
says (`annotator_message`) and its status. "Nothing left to judge" is not an error:
`assignment_next` returns None for it.
"""

from http import HTTPStatus

from workspaces.errors import Conflict, ParityError


class AnnotateError(ParityError):
    """Root of the annotate domain's errors."""

    annotator_message = "Something went wrong with that answer; it was not recorded."
    annotator_status = HTTPStatus.BAD_REQUEST


class StudyClosed(AnnotateError, Conflict):
    """The study is not open, so it issues no assignments."""

    code = "study_closed"
    annotator_message = "This study is not accepting answers right now. Thank you for your interest."
    annotator_status = HTTPStatus.OK


class StudyNotReady(AnnotateError, Conflict):
    """The study cannot open yet, e.g. it has no trials."""

    code = "study_not_ready"


class StudyNotDraft(AnnotateError, Conflict):
    """The study has been opened: its configuration no longer changes."""

    code = "study_not_draft"


class StudyInvalid(AnnotateError):
    """A study's configuration is inconsistent; `field` names the field at fault."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class QuotaReached(AnnotateError, Conflict):
    """The annotator has judged (or holds open) as many trials as the study allows."""

    code = "quota_reached"
    annotator_message = "You have answered all the trials this study asks of you."
    annotator_status = HTTPStatus.OK


class AssignmentUnknown(AnnotateError):
    """No assignment has this token."""

    code = "not_found"
    status = HTTPStatus.NOT_FOUND
    annotator_message = "That answer did not match any trial, so it was not recorded. Here is the next one."
    annotator_status = HTTPStatus.OK


class AssignmentNotYours(AnnotateError):
    """The assignment was issued to another annotator.

    The API says "not found", not "not yours": whether someone else's assignment exists is
    nobody's business."""

    code = "not_found"
    status = HTTPStatus.NOT_FOUND
    annotator_message = "That trial belongs to another participant, so your answer was not recorded."
    annotator_status = HTTPStatus.FORBIDDEN


class AssignmentExpired(AnnotateError, Conflict):
    """The assignment expired before it was judged; its trial went back to the pool."""

    code = "assignment_expired"
    annotator_message = (
        "That trial timed out before your answer arrived, so it was not recorded. Here is the next one."
    )
    annotator_status = HTTPStatus.OK


class ParticipationTaken(AnnotateError):
    """The participation of this Prolific id is bound to another browser."""


class ParticipantUnknown(AnnotateError):
    """No participant of the study has this Prolific id."""


class InviteRefused(AnnotateError):
    """Some names of an invite match no active account, or several; nobody was invited."""

    code = "invite_refused"

    def __init__(self, *, unknown: list[str], ambiguous: list[str]):
        parts = []
        if unknown:
            parts.append("no account found for " + ", ".join(unknown))
        if ambiguous:
            parts.append("more than one account has the email " + ", ".join(ambiguous) + " (use the username)")
        super().__init__("Nobody was invited: " + "; ".join(parts) + ".")
        self.unknown = unknown
        self.ambiguous = ambiguous

    def details(self) -> dict:
        return {"unknown": self.unknown, "ambiguous": self.ambiguous}
