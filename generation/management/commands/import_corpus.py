from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from generation.selection import ALLOCATIONS, SelectionError, parse_where
from generation.services import ImportSelection, corpus_import
from workspaces.cli import progress_bar
from workspaces.errors import ParityError
from workspaces.models import Workspace

from ._progress import write_report


class Command(BaseCommand):
    help = (
        "Import a corpus of text-image pairs: a folder with captions.jsonl or captions.csv "
        "(key, caption, file), or WebDataset tar shards as img2dataset writes them "
        "(one shard, a folder of shards, or a quoted glob such as 'shards/*.tar')."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="folder, .tar shard, or glob of shards")
        parser.add_argument("--workspace", required=True, help="workspace slug (created if missing)")
        parser.add_argument("--name", required=True, help="name of the new corpus")
        parser.add_argument("--description", default="")
        parser.add_argument(
            "--skip-bad", action="store_true",
            help="import the good items and write the rejected ones to a report, instead of refusing the whole import",
        )
        parser.add_argument("--report", type=Path, help="where --skip-bad writes its JSONL report")
        parser.add_argument(
            "--where", action="append", default=[], metavar="FILTER",
            help="keep only items passing FIELD OP VALUE (repeatable; all must pass): width, height, aspect, "
                 "byte_size, format, mode or meta.<key>, e.g. \"width>=512\", \"meta.pwatermark<0.5\"",
        )
        parser.add_argument("--sample", type=int, help="import a seeded sample of this many items (of those kept)")
        parser.add_argument("--seed", type=int, default=0, help="seed of --sample: the same seed, the same items")
        parser.add_argument("--stratify-by", default="", metavar="FIELD",
                            help="an item metadata field whose values each get their share of --sample")
        parser.add_argument("--allocation", choices=ALLOCATIONS, default="proportional",
                            help="each value's share of a stratified sample (default proportional)")

    def handle(self, *args, path, workspace, name, description, skip_bad, report, where, sample, seed, stratify_by,
               allocation, **options):
        try:
            wheres = tuple(parse_where(text) for text in where)
        except SelectionError as exc:
            raise CommandError(f"--where: {exc}") from None
        if sample is not None and sample < 1:
            raise CommandError("--sample must be at least 1")
        if stratify_by and sample is None:
            raise CommandError("--stratify-by needs --sample")
        selection = ImportSelection(wheres=wheres, sample=sample, seed=seed, stratify_by=stratify_by,
                                    allocation=allocation)
        workspace_obj, created = Workspace.objects.get_or_create(
            slug=slugify(workspace), defaults={"name": workspace}
        )
        if created:
            self.stdout.write(f"Created workspace {workspace_obj.slug!r}.")
        try:
            with progress_bar(f"Importing {name}", disable=options["verbosity"] == 0) as on_progress:
                corpus, result = corpus_import(
                    workspace=workspace_obj, name=name, source=path, description=description,
                    skip_bad=skip_bad, on_progress=on_progress, selection=selection,
                )
        except ParityError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(
            f"Imported corpus {corpus.name!r} (id {corpus.pk}): {result.created} items."
        ))
        for text, removed in result.filtered:
            self.stdout.write(f"--where {text}: removed {removed} items.")
        if result.sampled is not None:
            self.stdout.write(f"--sample {sample} --seed {seed}: {result.sampled} items drawn.")
        if result.converted:
            self.stdout.write(
                f"{result.converted} images are CMYK, YCbCr or 16-bit: stored as they are, "
                "shown as 8-bit sRGB by the presentation policy."
            )
        if result.rejected:
            report = report or Path(f"{slugify(name)}-rejected.jsonl")
            write_report(report, result.rejected)
            self.stdout.write(self.style.WARNING(
                f"Rejected {len(result.rejected)} records; the report is {report}."
            ))
