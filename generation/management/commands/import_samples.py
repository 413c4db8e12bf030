from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from generation.models import Corpus, Generator
from generation.services import samples_import
from workspaces.cli import progress_bar
from workspaces.errors import ParityError
from workspaces.models import Workspace

from ._progress import write_report


class Command(BaseCommand):
    help = (
        "Import a generator's samples from a bundle: a folder or tar with manifest.jsonl, "
        'one JSON object per line: {"key": item key, "file": path in the bundle, "seed": integer}.'
    )

    def add_arguments(self, parser):
        parser.add_argument("bundle", help="folder or .tar with manifest.jsonl")
        parser.add_argument("--generator", required=True, help="generator name")
        parser.add_argument("--workspace", help="workspace slug, when the generator name is in several")
        parser.add_argument("--corpus", help="corpus the item keys belong to, when the workspace has several")
        parser.add_argument("--create", action="store_true", help="create the generator if it does not exist")
        parser.add_argument("--skip-bad", action="store_true",
                            help="import the good samples and write the rejected ones to a report")
        parser.add_argument("--report", type=Path, help="where --skip-bad writes its JSONL report")

    def handle(self, *args, bundle, generator, workspace, corpus, create, skip_bad, report, **options):
        generator_obj = self._generator(generator, workspace, create)
        corpus_obj = None
        if corpus:
            try:
                corpus_obj = Corpus.objects.get(workspace=generator_obj.workspace, name=corpus)
            except Corpus.DoesNotExist:
                raise CommandError(f"no corpus named {corpus!r} in workspace {generator_obj.workspace.slug!r}") from None
        try:
            with progress_bar(f"Importing samples of {generator}", disable=options["verbosity"] == 0) as on_progress:
                result = samples_import(
                    generator=generator_obj, source=bundle, corpus=corpus_obj,
                    skip_bad=skip_bad, on_progress=on_progress,
                )
        except ParityError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(
            f"Imported {result.created} samples for {generator_obj.name!r}"
            + (f"; {result.skipped} already there were skipped." if result.skipped else ".")
        ))
        if result.rejected:
            report = report or Path(f"{slugify(generator)}-rejected.jsonl")
            write_report(report, result.rejected)
            self.stdout.write(self.style.WARNING(
                f"Rejected {len(result.rejected)} samples; the report is {report}."
            ))

    def _generator(self, name, workspace, create) -> Generator:
        generators = Generator.objects.filter(name=name).select_related("workspace")
        if workspace:
            generators = generators.filter(workspace__slug=workspace)
        found = list(generators[:2])
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise CommandError(f"several workspaces have a generator named {name!r}: add --workspace")
        if not create:
            raise CommandError(f"no generator named {name!r}" + (f" in {workspace!r}" if workspace else "")
                               + " (add --create to make it)")
        if not workspace:
            raise CommandError("--create needs --workspace")
        try:
            workspace_obj = Workspace.objects.get(slug=workspace)
        except Workspace.DoesNotExist:
            raise CommandError(f"no workspace {workspace!r}") from None
        return Generator.objects.create(workspace=workspace_obj, name=name)
