"""`python manage.py generate`: run a generator's backend over a corpus's items in this process.

The same run as a GPU worker's (generation/services/generation_run.py), with a progress bar; the job
is recorded like any other, so the generator page and the API show it. Ctrl-C leaves
the job interrupted. `--resume N` resumes job N here, a job interrupted by Ctrl-C or
whose worker was lost; `--generator NAME --resume` resumes that generator's newest
interrupted job. A resumed job makes only the samples still missing.
"""

from django.core.management.base import BaseCommand, CommandError

from generation import services
from generation.models import Corpus, GenerationJob, Generator
from workspaces.cli import progress_bar
from workspaces.errors import ParityError

from ._progress import one_named

SHOWN_ERRORS = 10
# `--resume` without a job id: the generator's newest interrupted job.
NEWEST = "newest"


class Command(BaseCommand):
    help = (
        "Make a generator's samples for a corpus's items with its backend, here and now (a GPU if there is one). "
        "Samples that exist are skipped, so a rerun makes only what is missing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--generator", help="generator name (not needed with --job)")
        parser.add_argument("--workspace", help="workspace slug, when the generator name is in several")
        parser.add_argument("--corpus", help="corpus name, when the workspace has several")
        parser.add_argument("--items", nargs="+", metavar="KEY", help="item keys (default: every item)")
        parser.add_argument("--seeds", type=int, default=1, help="samples per item, each with its own seed (default 1)")
        parser.add_argument("--batch-size", type=int, help="images per backend call (default: the backend's)")
        parser.add_argument("--device", help="cuda, cuda:1, cpu… (default: the backend's choice, a GPU if any)")
        parser.add_argument("--workers", type=int, default=services.DEFAULT_WORKERS,
                            help=f"threads encoding and storing images (default {services.DEFAULT_WORKERS})")
        parser.add_argument("--job", type=int, help="run this queued or interrupted job instead of starting one")
        parser.add_argument(
            "--resume", nargs="?", const=NEWEST, metavar="JOB",
            help="resume interrupted job JOB here, making only the samples still missing; "
                 "without JOB, the newest interrupted job of --generator",
        )

    def handle(self, *args, generator, workspace, corpus, items, seeds, batch_size, device, workers, job, resume,
               **options):
        if (batch_size is not None and batch_size < 1) or workers < 1:
            raise CommandError("--batch-size and --workers are at least 1")
        if resume is not None:
            job_obj = self._resumed(resume, generator, workspace)
        elif job is not None:
            job_obj = self._job(job)
        else:
            job_obj = self._new_job(generator, workspace, corpus, items, seeds)
        self.stdout.write(
            f"Job {job_obj.pk}: {job_obj.total} samples of {job_obj.generator.name!r} "
            f"for corpus {job_obj.corpus.name!r} ({job_obj.generator.backend} backend)."
        )
        try:
            with progress_bar(
                f"Generating {job_obj.generator.name}", total=job_obj.total, unit=" images",
                disable=options["verbosity"] == 0,
            ) as on_progress:
                job_obj = services.generation_job_run(
                    job_id=job_obj.pk, device=device, batch_size=batch_size, workers=workers, on_progress=on_progress
                )
        except KeyboardInterrupt:
            raise CommandError(
                f"Interrupted: job {job_obj.pk} keeps the samples made; resume it with --resume {job_obj.pk}.",
                returncode=130,
            ) from None
        self._report(job_obj)

    def _job(self, job_id: int) -> GenerationJob:
        jobs = GenerationJob.objects.select_related("generator", "corpus").filter(pk=job_id)
        services.generation_jobs_interrupt_lost(jobs=jobs)
        job = jobs.first()
        if job is None:
            raise CommandError(f"no generation job {job_id}")
        if job.status == GenerationJob.Status.RUNNING:
            raise CommandError(f"job {job_id} is running on a worker, which writes its heartbeat: cancel it first")
        if job.status not in (GenerationJob.Status.QUEUED, GenerationJob.Status.INTERRUPTED):
            raise CommandError(
                f"job {job_id} has ended ({job.status}); start a new one, which skips the samples that exist"
            )
        return job

    def _resumed(self, resume: str, name: str | None, workspace: str | None) -> GenerationJob:
        if resume == NEWEST:
            if not name:
                raise CommandError("give --resume JOB, or --generator with --resume for its newest interrupted job")
            generator = self._generator(name, workspace)
            services.generation_jobs_interrupt_lost(jobs=generator.jobs.all())
            job = generator.jobs.filter(status=GenerationJob.Status.INTERRUPTED).order_by("-created_at", "-pk").first()
            if job is None:
                raise CommandError(f"generator {generator.name!r} has no interrupted job")
        else:
            try:
                job = GenerationJob.objects.filter(pk=int(resume)).first()
            except ValueError:
                raise CommandError(f"--resume takes a job id, not {resume!r}") from None
            if job is None:
                raise CommandError(f"no generation job {resume}")
        try:
            services.generation_job_resume(job=job, enqueue=False)
        except ParityError as exc:
            raise CommandError(str(exc)) from None
        return GenerationJob.objects.select_related("generator", "corpus").get(pk=job.pk)

    def _new_job(self, name, workspace, corpus, items, seeds) -> GenerationJob:
        if not name:
            raise CommandError("give --generator (or --job to resume a job)")
        generator = self._generator(name, workspace)
        try:
            return services.generation_job_create(
                generator=generator, corpus=self._corpus(generator, corpus), item_keys=items,
                seeds_per_item=seeds, enqueue=False,
            )
        except ParityError as exc:
            raise CommandError(str(exc)) from None

    def _generator(self, name: str, workspace: str | None) -> Generator:
        return one_named(Generator.objects.all(), what="generator", name=name, workspace=workspace)

    def _corpus(self, generator: Generator, name: str | None) -> Corpus:
        corpora = Corpus.objects.filter(workspace=generator.workspace)
        if name:
            corpora = corpora.filter(name=name)
        found = list(corpora[:2])
        if len(found) == 1:
            return found[0]
        if name:
            raise CommandError(f"no corpus named {name!r} in workspace {generator.workspace.slug!r}")
        if not found:
            raise CommandError(f"workspace {generator.workspace.slug!r} has no corpus: import one first")
        raise CommandError(f"workspace {generator.workspace.slug!r} has several corpora: add --corpus")

    def _report(self, job: GenerationJob) -> None:
        rate = f"{job.images_per_second:.2f} images/s" if job.images_per_second else "no images made"
        self.stdout.write(f"Device {job.device or '—'}, batch size {job.batch_size or '—'}, {rate}.")
        counts = f"{job.done} made, {job.skipped} already there, {job.failed} failed"
        for error in job.errors[:SHOWN_ERRORS]:
            where = f"{error['item_key']} (seed {error['seed']}): " if "item_key" in error else ""
            self.stderr.write(f"  {where}{error['error']}")
        if job.error_count > SHOWN_ERRORS:
            self.stderr.write(f"  … and {job.error_count - SHOWN_ERRORS} more (the job's errors list the first 1,000)")
        if job.status == GenerationJob.Status.SUCCEEDED:
            style = self.style.SUCCESS if not job.failed else self.style.WARNING
            self.stdout.write(style(f"Job {job.pk} succeeded: {counts}."))
        elif job.status == GenerationJob.Status.CANCELLED:
            self.stdout.write(self.style.WARNING(f"Job {job.pk} was cancelled: {counts}."))
        else:
            raise CommandError(f"job {job.pk} {job.status}: {counts}")
