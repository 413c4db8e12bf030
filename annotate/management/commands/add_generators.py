"""`manage.py add_generators STUDY NAME...`: generators join a draft or open study."""

from django.core.management.base import BaseCommand, CommandError

from annotate.models import Study
from annotate.selectors import generators_named
from annotate.services import study_add_generators, study_remove_generators
from workspaces.errors import ParityError


class Command(BaseCommand):
    help = (
        "Add generators (names or ids, of the study's workspace) to a draft or open study. Once its "
        "trials are built, the newcomers' trials are built now and served first until they catch up; "
        "existing trials and judgments are untouched. With --remove, stop serving them instead "
        "(their trials and judgments are kept)."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the study's slug, as in its link /s/<slug>/")
        parser.add_argument("generators", nargs="+", metavar="NAME", help="generator names or ids")
        parser.add_argument("--seed", type=int, help="seed of the new trials' random keys (reproducible)")
        parser.add_argument("--remove", action="store_true", help="remove the generators from the study")

    def handle(self, *args, slug, generators, seed, remove, **options):
        try:
            study = Study.objects.get(slug=slug)
        except Study.DoesNotExist:
            raise CommandError(f"no study with slug {slug!r}") from None
        found, unknown = generators_named(study=study, values=generators)
        if unknown is not None:
            raise CommandError(f"no generator {unknown!r} in workspace {study.workspace.slug!r}")
        names = ", ".join(g.name for g in found)
        try:
            if remove:
                study_remove_generators(study=study, generators=found)
                self.stdout.write(self.style.SUCCESS(
                    f"Removed from {study.slug!r}: {names}. Their trials are no longer served; "
                    "their judgments stay in the report."))
                return
            study, created = study_add_generators(study=study, generators=found, rng_seed=seed)
        except ParityError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(
            f"Study {study.slug!r} ({study.status}): {names} in; {created} new trials."))
