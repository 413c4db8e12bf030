"""The error family of the annotate domain: why an annotator cannot get or judge a trial.

Every class derives from `generation.errors.ParityError`, so the API and the htmx
pages map them once to a clear message. "Nothing left to judge" is not an error:
`assignment_next` returns None for it.
"""

from generation.errors import ParityError


class AnnotateError(ParityError):
    """Root of the annotate domain's errors."""


class StudyClosed(AnnotateError):
    """The study is not open, so it issues no assignments."""


class StudyNotReady(AnnotateError):
    """The study cannot open yet, e.g. it has no trials."""


class StudyNotDraft(AnnotateError):
    """The study has been opened: its configuration no longer changes."""


class StudyInvalid(AnnotateError):
    """A study's configuration is inconsistent; `field` names the field at fault."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class QuotaReached(AnnotateError):
    """The annotator has judged (or holds open) as many trials as the study allows."""


class AssignmentUnknown(AnnotateError):
    """No assignment has this token."""


class AssignmentNotYours(AnnotateError):
    """The assignment was issued to another annotator."""


class AssignmentExpired(AnnotateError):
    """The assignment expired before it was judged; its trial went back to the pool."""


class ParticipationTaken(AnnotateError):
    """The participation of this Prolific id is bound to another browser."""


class ParticipantUnknown(AnnotateError):
    """No participant of the study has this Prolific id."""


class InviteRefused(AnnotateError):
    """Some names of an invite match no active account, or several; nobody was invited."""

    def __init__(self, *, unknown: list[str], ambiguous: list[str]):
        parts = []
        if unknown:
            parts.append("no account found for " + ", ".join(unknown))
        if ambiguous:
            parts.append("more than one account has the email " + ", ".join(ambiguous) + " (use the username)")
        super().__init__("Nobody was invited: " + "; ".join(parts) + ".")
        self.unknown = unknown
        self.ambiguous = ambiguous
