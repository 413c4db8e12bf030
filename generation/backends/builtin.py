"""The built-in backend: the project's own engine (`generation.engine`), from a checkpoint file.

`backend_config`: `{"checkpoint": path}`. A relative path is read under
`PARITY_CHECKPOINT_DIR` (by default `var/checkpoints`), where `train_ladder` writes
its checkpoints, so the same generator works on every worker that mounts that
folder wherever it lies. Nothing outside that folder is read: an absolute path must
lie inside it, and a `..` or a symlink that leads out is refused.

Inference settings: `steps` (sampling steps, default 30), `guidance`
(classifier-free guidance scale, default 3.0) and `bf16` (null: bf16 on CUDA only).
"""

from pathlib import Path

from django.conf import settings as django_settings

from generation.backends.base import Backend as BaseBackend
from generation.backends.base import path_under, torch_device, torch_device_name
from generation.errors import BackendError


def checkpoint_path(name: str) -> Path:
    """Where the checkpoint `name` of a generator's options lies on this machine, inside
    `PARITY_CHECKPOINT_DIR` (`BackendError` naming `backend_config.checkpoint` otherwise)."""
    root = Path(django_settings.PARITY_CHECKPOINT_DIR)
    return path_under(root, name, option="checkpoint", setting="PARITY_CHECKPOINT_DIR")


class Backend(BaseBackend):
    required = ("checkpoint",)
    settings_taken = ("steps", "guidance", "bf16")
    default_batch_size = 64

    def __init__(self, config, *, device=None):
        super().__init__(config, device=device)
        from generation.engine import load_checkpoint

        path = checkpoint_path(self.config["checkpoint"])
        if not path.is_file():
            raise BackendError(f"checkpoint {self.config['checkpoint']!r} not found on this worker (looked at {path})")
        self.torch_device = torch_device(device)
        self.model = load_checkpoint(path, device=self.torch_device)

    @classmethod
    def check_config(cls, config):
        config = super().check_config(config)
        checkpoint = config["checkpoint"]
        if not isinstance(checkpoint, str) or not checkpoint.strip():
            raise BackendError(
                "checkpoint must be the path of a checkpoint file, a non-empty string",
                field="backend_config.checkpoint",
            )
        checkpoint_path(checkpoint)
        return config

    @property
    def device_name(self) -> str:
        return torch_device_name(self.torch_device)

    def generate(self, prompts, seeds, **settings):
        # One uint8 array for the batch: the job's encoders take it as it is.
        return self.model.generate_array(prompts, seeds, batch_size=len(prompts), **settings)

    def close(self) -> None:
        self.model = None
