"""The error family of the generation domain, below `workspaces.errors.ParityError`."""

from workspaces.errors import Conflict, ParityError


class IngestError(ParityError):
    """An import was refused; nothing of it was written."""

    code = "import_refused"

    def __init__(self, message: str, *, rejections: list["Rejection"] | None = None):
        super().__init__(message)
        self.rejections = rejections or []

    def details(self) -> list | None:
        return [rejection.as_dict() for rejection in self.rejections] or None


class Rejection(ParityError):
    """One record of an import is bad. `origin` names its file and line or tar member."""

    def __init__(self, origin: str, message: str):
        # A file or member name that is not UTF-8 reaches Python with lone surrogates, which
        # no response, report or database can carry, nor a NUL: they are written as escapes.
        origin, message = (
            text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
            for text in (origin, message)
        )
        super().__init__(f"{origin}: {message}")
        self.origin = origin
        self.reason = message

    def as_dict(self) -> dict:
        return {"origin": self.origin, "reason": self.reason}


class NameTaken(Conflict):
    """Another object of the workspace already has this name (a series, a generator)."""

    code = "name_taken"

    def __init__(self, message: str, *, field: str = "name"):
        super().__init__(message)
        self.field = field


class InUse(Conflict):
    """The object cannot be deleted: something that must be kept refers to it (a study's trials)."""

    code = "in_use"


class Duplicate(Conflict):
    """The object exists already (a sample for the same generator, item and seed)."""

    code = "duplicate"

    def __init__(self, message: str, *, existing_id: int):
        super().__init__(message)
        self.existing_id = existing_id

    def details(self) -> dict:
        return {"existing_id": self.existing_id}


class ImportCancelled(ParityError):
    """A running import job was cancelled; its transaction is rolled back."""


class NotCancellable(Conflict):
    """The job has finished, or runs where it cannot be stopped."""

    code = "not_cancellable"


class NotResumable(Conflict):
    """Only an interrupted generation job is resumed: this one is queued, running or has ended."""

    code = "not_resumable"


class BackendError(ParityError):
    """A generator's backend is unknown, badly configured, or failed to load or to generate.

    `field` names the generator field at fault: `backend`, `backend_config` or `settings`,
    or one option of `backend_config` (`backend_config.function`).
    """

    def __init__(self, message: str, *, field: str = "backend_config"):
        super().__init__(message)
        self.field = field
