"""The `callable` backend: a researcher's own Python function makes the images.

`backend_config`: `{"function": name}`, a name the operator gives a function in
`PARITY_CALLABLES` (`name=package.module:function`, or `package.module.function`):
the worker runs the function with its own access to the database and storage, so a
member picks one of the operator's functions and never names code. The function is
called as `function(prompts, seeds, **settings)` with the generator's inference
settings, and returns one PIL image per prompt, in order. It must be importable on
the worker (installed there, or on its PYTHONPATH). A function with a `device`
parameter is also given the job's device (a string such as "cuda:0", or None when
the job leaves the choice to it).

Seeds are non-negative integers below 2**63; a function that needs 32-bit seeds
(e.g. `numpy.random.seed`) reduces them itself, e.g. `seed % 2**32`.
"""

import importlib
import inspect
import re

from django.conf import settings as django_settings

from generation.backends.base import Backend as BaseBackend
from generation.errors import BackendError

DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def function_parts(path: str) -> tuple[str, str]:
    """("package.module", "name") of "package.module:name" or "package.module.name"."""
    module, sep, name = path.partition(":")
    if not sep:
        module, _, name = path.rpartition(".")
    if not module or not name or not DOTTED.fullmatch(module) or not DOTTED.fullmatch(name):
        raise BackendError(
            f"function must look like 'package.module:name', not {path!r}", field="backend_config.function"
        )
    return module, name


def function_path(name: str) -> str:
    """The dotted path of the function the operator calls `name` in `PARITY_CALLABLES`."""
    allowed = dict(django_settings.PARITY_CALLABLES)
    if not isinstance(name, str) or name not in allowed:
        offered = f"use one of {', '.join(repr(key) for key in allowed)}" if allowed else "it allows none"
        raise BackendError(
            f"function {name!r} is not one this site allows: {offered} "
            "(the operator lists them in PARITY_CALLABLES)",
            field="backend_config.function",
        )
    return allowed[name]


class Backend(BaseBackend):
    required = ("function",)

    def __init__(self, config, *, device=None):
        super().__init__(config, device=device)
        module_name, name = function_parts(function_path(self.config["function"]))
        try:
            target = importlib.import_module(module_name)
            for part in name.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as exc:
            raise BackendError(f"function {self.config['function']!r} cannot be imported here: {exc}") from exc
        if not callable(target):
            raise BackendError(f"{self.config['function']!r} is not callable")
        self.function = target
        try:
            self.takes_device = "device" in inspect.signature(target).parameters
        except (TypeError, ValueError):  # builtins and some C functions have no signature
            self.takes_device = False

    @classmethod
    def check_config(cls, config):
        config = super().check_config(config)
        function_path(config["function"])
        return config

    @property
    def device_name(self) -> str:
        return self.device or "chosen by the function"

    def generate(self, prompts, seeds, **settings):
        if self.takes_device:
            settings = {**settings, "device": self.device}
        return self.function(list(prompts), list(seeds), **settings)
