"""The `diffusers` backend: a local diffusers pipeline directory (as `save_pretrained` writes it).

`backend_config`: `{"path": directory}`, and optionally `"dtype"`: "float32"
(the default), "float16" or "bfloat16". The directory lies inside
`PARITY_DIFFUSERS_DIR`: a relative path is read from there, an absolute one must
lie inside it, and a `..` or a symlink that leads out is refused. It is read with
`local_files_only=True`: nothing is ever downloaded, so every file the pipeline
needs (weights, scheduler, tokenizer) must be in it. Needs the optional extra
`pip install parity[diffusers]` on the worker.

Inference settings: `steps` becomes `num_inference_steps`, `guidance` becomes
`guidance_scale` and `resolution` becomes `height` and `width`; any other setting
is passed by its own name (`negative_prompt`, `eta`, ...), and one the pipeline does
not take fails the job before any image is made.

Prompts: a text-to-image pipeline (one whose call takes `prompt`) gets them. An
unconditional pipeline (e.g. `DDPMPipeline`) takes no prompt, so its images depend
on the seed alone; its prompts are ignored, which makes it a baseline, not a
text-to-image model.

Seeds: each image gets its own `torch.Generator` seeded with its seed, so image i
does not depend on the rest of its batch.
"""

import inspect
from pathlib import Path

from django.conf import settings as django_settings

from generation.backends.base import Backend as BaseBackend
from generation.backends.base import path_under, torch_device, torch_device_name
from generation.errors import BackendError

DTYPES = ("float32", "float16", "bfloat16")
# Parity's names of common settings, and the pipeline argument each becomes.
RENAMED = {"steps": "num_inference_steps", "guidance": "guidance_scale"}


def pipeline_path(name: str) -> Path:
    """Where the pipeline folder `name` of a generator's options lies on this machine, inside
    `PARITY_DIFFUSERS_DIR` (`BackendError` naming `backend_config.path` otherwise)."""
    root = Path(django_settings.PARITY_DIFFUSERS_DIR)
    return path_under(root, name, option="path", setting="PARITY_DIFFUSERS_DIR")


class Backend(BaseBackend):
    required = ("path",)
    optional = ("dtype",)
    default_batch_size = 4

    def __init__(self, config, *, device=None):
        super().__init__(config, device=device)
        try:
            import torch
            from diffusers import DiffusionPipeline
        except ImportError as exc:
            raise BackendError(
                f"the diffusers backend needs the diffusers package on the worker (pip install parity[diffusers]): {exc}"
            ) from exc
        self.torch_device = torch_device(device)
        dtype = getattr(torch, self.config.get("dtype", "float32"))
        path = pipeline_path(self.config["path"])
        # A name that is no folder would be looked up as a model of the Hugging Face cache.
        if not path.is_dir():
            raise BackendError(f"no diffusers pipeline folder {self.config['path']!r} on this worker")
        try:
            pipeline = DiffusionPipeline.from_pretrained(str(path), local_files_only=True, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise BackendError(f"no diffusers pipeline could be loaded from {self.config['path']!r}: {exc}") from exc
        pipeline.set_progress_bar_config(disable=True)
        self.pipeline = pipeline.to(self.torch_device)
        self.parameters = set(inspect.signature(self.pipeline.__call__).parameters)
        self.conditional = "prompt" in self.parameters

    @classmethod
    def check_config(cls, config):
        config = super().check_config(config)
        if not isinstance(config["path"], str) or not config["path"].strip():
            raise BackendError(
                "path must be the directory of a diffusers pipeline, a non-empty string", field="backend_config.path"
            )
        pipeline_path(config["path"])
        if config.get("dtype", "float32") not in DTYPES:
            raise BackendError(f"dtype must be one of {', '.join(DTYPES)}, not {config['dtype']!r}")
        return config

    @property
    def device_name(self) -> str:
        return torch_device_name(self.torch_device)

    def call_arguments(self, settings) -> dict:
        """The pipeline's keyword arguments for the generator's settings; `BackendError` for one it lacks."""
        arguments = {}
        for name, value in settings.items():
            if name == "resolution":
                arguments.update(height=value, width=value)
            else:
                arguments[RENAMED.get(name, name)] = value
        unknown = sorted(name for name in arguments if name not in self.parameters)
        if unknown:
            raise BackendError(
                f"this {type(self.pipeline).__name__} takes no {unknown[0]!r} (from the generator's settings)",
                field="settings",
            )
        return arguments

    def prepare(self, settings) -> None:
        self.call_arguments(settings)

    def generate(self, prompts, seeds, **settings):
        import torch

        arguments = self.call_arguments(settings)
        # CPU generators give the same noise on every device; the pipelines move it.
        generators = [torch.Generator("cpu").manual_seed(int(seed)) for seed in seeds]
        if self.conditional:
            arguments["prompt"] = list(prompts)
        else:
            arguments["batch_size"] = len(seeds)
        with torch.inference_mode():
            output = self.pipeline(generator=generators, output_type="pil", **arguments)
        return list(output.images)

    def close(self) -> None:
        self.pipeline = None
