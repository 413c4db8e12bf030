"""Generator backends: interchangeable ways of making a generator's samples.

As Django chooses a session engine by a dotted path, a generator names its backend
in `Generator.backend`: "upload" (no backend: its samples are uploaded) or a name the
operator allows in `PARITY_GENERATION_BACKENDS`, which maps it to the project's own
short names below or to the dotted path of a class that implements
`generation.backends.base.Backend`. `Generator.backend_config` holds the backend's
options. The worker imports and runs what a backend names with its own access to the
database and storage, so a member picks from the operator's list and never names code.

| backend     | class                                   | backend_config                         |
|-------------|-----------------------------------------|----------------------------------------|
| `builtin`   | `generation.backends.builtin.Backend`   | `{"checkpoint": path}`                 |
| `callable`  | `generation.backends.function.Backend`  | `{"function": name}`                   |
| `diffusers` | `generation.backends.diffusers.Backend` | `{"path": pipeline directory}`         |

Checking a generator (`backend_check`, on every create and update) never imports
torch, nor a user's module, which may: the web process must stay free of both. So
the options of the backends here are checked in full, and a class of another package
not at all; importing it is left to the worker, whose job fails with a clear message
if it cannot. Loading a backend on the worker checks the same rules again, against
the worker's settings: what was allowed when a generator was saved may not be now.
"""

import re
from collections.abc import Mapping

from django.conf import settings as django_settings
from django.utils.module_loading import import_string

from generation.backends.base import Backend
from generation.errors import BackendError

UPLOAD = "upload"
SHORT_NAMES = {
    "builtin": "generation.backends.builtin.Backend",
    "callable": "generation.backends.function.Backend",
    "diffusers": "generation.backends.diffusers.Backend",
}
# Modules of this package import nothing heavy at import time, so the web process may load them.
OWN_PACKAGE = "generation.backends."
DOTTED_CLASS = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")

__all__ = [
    "Backend", "SHORT_NAMES", "UPLOAD", "backend_check", "backend_class", "backend_load", "backend_path",
    "backends_allowed",
]


def backends_allowed() -> dict[str, str]:
    """The backends generators may use, by name: `PARITY_GENERATION_BACKENDS`."""
    return dict(django_settings.PARITY_GENERATION_BACKENDS)


def backend_path(backend: str) -> str:
    """The dotted path of the class of `backend`, a name the operator allows."""
    allowed = backends_allowed()
    if not isinstance(backend, str) or backend not in allowed:
        names = ", ".join(repr(name) for name in [UPLOAD, *allowed])
        raise BackendError(
            f"backend {backend!r} is not one this site allows: use {names} "
            "(the operator lists them in PARITY_GENERATION_BACKENDS)",
            field="backend",
        )
    path = SHORT_NAMES.get(allowed[backend], allowed[backend])
    if not DOTTED_CLASS.fullmatch(path):
        raise BackendError(
            f"backend {backend!r} is set to {path!r} in PARITY_GENERATION_BACKENDS, which is neither "
            f"{', '.join(SHORT_NAMES)} nor the dotted path of a backend class (package.module.Class)",
            field="backend",
        )
    return path


def backend_class(backend: str) -> type[Backend]:
    """The class of `backend`, imported; `BackendError` if it cannot be."""
    path = backend_path(backend)
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise BackendError(f"backend {backend!r} cannot be imported here: {exc}", field="backend") from exc
    if not isinstance(cls, type) or not callable(getattr(cls, "generate", None)):
        raise BackendError(f"backend {backend!r} is not a class with a generate method", field="backend")
    return cls


def backend_check(*, backend: str, config: Mapping, settings: Mapping) -> None:
    """Refuse (`BackendError`, naming the field) a backend, options or settings that cannot work."""
    if not isinstance(config, Mapping):
        raise BackendError("the backend options must be a JSON object")
    if backend == UPLOAD:
        return
    path = backend_path(backend)
    if not path.startswith(OWN_PACKAGE):
        return
    cls = backend_class(backend)
    cls.check_config(config)
    cls.check_settings(settings)


def backend_load(*, backend: str, config: Mapping, device: str | None = None) -> Backend:
    """A backend ready to generate, on `device` (None: the backend's choice). On a worker only."""
    if backend == UPLOAD:
        raise BackendError("this generator has no backend to run: its samples are uploaded", field="backend")
    return backend_class(backend)(dict(config), device=device)
