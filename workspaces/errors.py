"""The root of every domain error. Each class says how it reaches a user: its `code` and
HTTP `status` in the API, its `field` where one request field is at fault and its
`details()` for a client to act on. The API, the htmx pages and the CLI render any
subclass the same way, so no module keeps a table of every app's errors.
"""

from http import HTTPStatus


class ParityError(Exception):
    """An error a user can act on; its message says what is wrong and where.

    Subclasses set `code` (snake case, stable: clients branch on it) and `status`.
    """

    code = "invalid"
    status = HTTPStatus.BAD_REQUEST
    field: str | None = None

    def details(self) -> dict | list | None:
        """What a client needs beyond the message (the rejected records of an import), or None."""
        return None


class Conflict(ParityError):
    """The request is fine but the state of what it names does not allow it (409)."""

    status = HTTPStatus.CONFLICT
