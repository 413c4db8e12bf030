"""The interface every generator backend implements.

A backend turns prompts and seeds into images. It is built on a worker from the
generator's `backend_config` and a device, then asked for batches:
`generate(prompts, seeds, **settings)`, where `settings` are the generator's
inference settings. Image i must depend only on `prompts[i]`, `seeds[i]` and the
settings, never on the rest of the batch, so that a rerun that makes only the
missing samples gives the same images as a run that made them all.

This module imports neither torch nor any backend's library: the web process
checks a generator's backend configuration with `check_config` and
`check_settings`, which must stay cheap and import nothing heavy.
"""

from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from PIL import Image

if TYPE_CHECKING:
    import numpy as np

from generation.errors import BackendError

# Keys every backend's configuration may have.
COMMON_KEYS = ("batch_size",)


class Backend:
    """Base class of generator backends; subclasses implement `generate`.

    Attributes a subclass sets:

    - `required`, `optional`: the keys of its `backend_config` besides `batch_size`;
      any other key is refused, so that a typo cannot pass unnoticed.
    - `settings_taken`: the inference settings it understands, or None for any.
    - `default_batch_size`: images per call when neither the job nor `batch_size` says.
    """

    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    settings_taken: tuple[str, ...] | None = None
    default_batch_size = 8

    def __init__(self, config: Mapping[str, Any], *, device: str | None = None):
        self.config = self.check_config(config)
        self.device = device

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict:
        """The configuration, checked: an object with the required keys and no unknown one."""
        if not isinstance(config, Mapping):
            raise BackendError("the backend options must be a JSON object")
        missing = [key for key in cls.required if key not in config]
        if missing:
            raise BackendError(f"the backend options need {', '.join(repr(k) for k in missing)}")
        known = {*cls.required, *cls.optional, *COMMON_KEYS}
        unknown = sorted(key for key in config if key not in known)
        if unknown:
            raise BackendError(
                f"unknown backend option {unknown[0]!r}; this backend takes {', '.join(sorted(known))}"
            )
        size = config.get("batch_size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise BackendError(f"batch_size must be a whole number of at least 1, not {size!r}")
        return dict(config)

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> dict:
        """The inference settings, checked against `settings_taken`."""
        if not isinstance(settings, Mapping):
            raise BackendError("the inference settings must be a JSON object", field="settings")
        if cls.settings_taken is not None:
            unknown = sorted(key for key in settings if key not in cls.settings_taken)
            if unknown:
                raise BackendError(
                    f"inference setting {unknown[0]!r} is not one this backend takes "
                    f"({', '.join(cls.settings_taken)})",
                    field="settings",
                )
        return dict(settings)

    @property
    def batch_size(self) -> int:
        return self.config.get("batch_size") or self.default_batch_size

    @property
    def device_name(self) -> str:
        """What the job records as its device, e.g. "cuda:0 (NVIDIA H100 80GB HBM3)" or "cpu"."""
        return self.device or "cpu"

    def prepare(self, settings: Mapping[str, Any]) -> None:
        """Check the settings once before a run, now that the backend is loaded (`BackendError` if bad)."""
        self.check_settings(settings)

    def generate(self, prompts: list[str], seeds: list[int], **settings) -> "list[Image.Image] | np.ndarray":
        """One image per (prompt, seed), in order: PIL images, or one uint8 array
        [N, H, W, C] (`generation.engine.pipeline.generate_pipelined` takes either)."""
        raise NotImplementedError

    def close(self) -> None:
        """Free what the backend holds (GPU memory); called once the job is over."""


def path_under(root: Path, name: str, *, option: str, setting: str) -> Path:
    """Where `name` (relative to `root`, or absolute) lies, symlinks followed; inside `root` only.

    `BackendError` naming `backend_config.<option>` for a `..`, or a path that ends
    outside `root` once its links are followed: a member must not make the worker
    read a file the operator did not put there for generators.
    """
    field = f"backend_config.{option}"
    where = f"the folder the operator sets in {setting}"
    if not isinstance(name, str) or "\x00" in name:
        raise BackendError(f"{option} must be a path inside {where}", field=field)
    if ".." in PurePath(name).parts:
        raise BackendError(f"{option} {name!r} must not contain '..': give a path inside {where}", field=field)
    try:
        base = Path(root).resolve()
        path = (base / name).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise BackendError(f"{option} {name!r} cannot be resolved: {exc}", field=field) from exc
    if not path.is_relative_to(base):
        raise BackendError(f"{option} {name!r} lies outside {where}", field=field)
    return path


def torch_device(device: str | None):
    """The torch device to run on: `device` as given, else CUDA when there is one, else the CPU."""
    import torch

    if device:
        chosen = torch.device(device)
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise BackendError(f"device {device!r} was asked for, but this machine has no CUDA device")
        return chosen
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def torch_device_name(device) -> str:
    """A torch device as a job records it: the index and the card's name for CUDA."""
    import torch

    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
