"""Writes of the generation domain, one module a subject; callers import from here.

- imports: corpora and samples from files, all-or-nothing (the CLI's imports)
- generators: series and generators
- import_jobs: an uploaded bundle imported by a worker, with progress and cancel
- uploads: an uploaded bundle imported during the request
- generation_jobs: generation jobs queued, cancelled, resumed
- generation_run: a generation job run by a worker or the `generate` command
- heartbeat: running jobs whose worker is gone, found and marked interrupted
- enqueue: how a service hands a job to a worker without importing the tasks
"""

from generation.services.generation_jobs import (
    UPLOAD_BACKEND,
    generation_job_cancel,
    generation_job_create,
    generation_job_resume,
)
from generation.services.generation_run import DEFAULT_WORKERS, generation_job_run, sample_seed
from generation.services.generators import generator_create, generator_delete, generator_update, series_create
from generation.services.heartbeat import generation_jobs_interrupt_lost
from generation.services.import_jobs import import_job_cancel, import_job_create, import_job_run
from generation.services.imports import (
    ImportSelection,
    archive_limits,
    corpus_import,
    sample_add,
    samples_import,
)
from generation.services.uploads import upload_import

__all__ = [
    "DEFAULT_WORKERS",
    "UPLOAD_BACKEND",
    "archive_limits",
    "ImportSelection",
    "corpus_import",
    "generation_job_cancel",
    "generation_job_create",
    "generation_job_resume",
    "generation_job_run",
    "generation_jobs_interrupt_lost",
    "generator_create",
    "generator_delete",
    "generator_update",
    "import_job_cancel",
    "import_job_create",
    "import_job_run",
    "sample_add",
    "sample_seed",
    "samples_import",
    "series_create",
    "upload_import",
]
