"""The error family of the generation domain.

`ParityError` is the root every domain error derives from; the API and the htmx
pages map it once to a clear message, and the CLI prints it without a traceback.
"""


class ParityError(Exception):
    """An error a user can act on; its message says what is wrong and where."""


class IngestError(ParityError):
    """An import was refused; nothing of it was written."""

    def __init__(self, message: str, *, rejections: list["Rejection"] | None = None):
        super().__init__(message)
        self.rejections = rejections or []


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


class NameTaken(ParityError):
    """Another object of the workspace already has this name (a series, a generator)."""

    def __init__(self, message: str, *, field: str = "name"):
        super().__init__(message)
        self.field = field


class InUse(ParityError):
    """The object cannot be deleted: something that must be kept refers to it (a study's trials)."""


class Duplicate(ParityError):
    """The object exists already (a sample for the same generator, item and seed)."""

    def __init__(self, message: str, *, existing_id: int):
        super().__init__(message)
        self.existing_id = existing_id


class ImportCancelled(ParityError):
    """A running import job was cancelled; its transaction is rolled back."""


class NotCancellable(ParityError):
    """The job has finished, or runs where it cannot be stopped."""


class NotResumable(ParityError):
    """Only an interrupted generation job is resumed: this one is queued, running or has ended."""


class BackendError(ParityError):
    """A generator's backend is unknown, badly configured, or failed to load or to generate.

    `field` names the generator field at fault: `backend`, `backend_config` or `settings`,
    or one option of `backend_config` (`backend_config.function`).
    """

    def __init__(self, message: str, *, field: str = "backend_config"):
        super().__init__(message)
        self.field = field
