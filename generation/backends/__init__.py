"""Generator backends: interchangeable ways of making a generator's samples.

As Django chooses a session engine by a dotted path, a generator names its backend
in `Generator.backend`: one of the short names below, the dotted path of a class
that implements `generation.backends.base.Backend`, or "upload" (no backend: its
samples are uploaded). `Generator.backend_config` holds the backend's options.

| backend     | class                                   | backend_config                         |
|-------------|-----------------------------------------|----------------------------------------|
| `builtin`   | `generation.backends.builtin.Backend`   | `{"checkpoint": path}`                 |
| `callable`  | `generation.backends.function.Backend`  | `{"function": "package.module:name"}`  |
| `diffusers` | `generation.backends.diffusers.Backend` | `{"path": pipeline directory}`         |

Checking a generator (`backend_check`, on every create and update) never imports
torch, nor a user's module, which may: the web process must stay free of both. So
the options of the backends here are checked in full, and a class of another package
only for the shape of its path; importing it is left to the worker, whose job fails
with a clear message if it cannot.
"""

import re
from collections.abc import Mapping

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

__all__ = ["Backend", "SHORT_NAMES", "UPLOAD", "backend_check", "backend_class", "backend_load", "backend_path"]


def backend_path(backend: str) -> str:
    """The dotted path of the class of `backend` (a short name or a dotted path)."""
    path = SHORT_NAMES.get(backend, backend)
    if not isinstance(path, str) or not DOTTED_CLASS.fullmatch(path):
        raise BackendError(
            f"unknown backend {backend!r}: use 'upload', {', '.join(repr(n) for n in SHORT_NAMES)}, "
            "or the dotted path of a backend class (package.module.Class)",
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
