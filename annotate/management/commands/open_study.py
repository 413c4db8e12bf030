from django.core.management.base import BaseCommand, CommandError

from annotate.models import Study
from annotate.selectors import study_links
from annotate.services import study_build_trials, study_open
from workspaces.errors import ParityError


class Command(BaseCommand):
    help = (
        "Build a study's trials (one per generator and item with a sample, plus catch and "
        "calibration controls at the study's rates) and open it to annotators."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the study's slug, as in its link /s/<slug>/")
        parser.add_argument("--seed", type=int, help="seed for choosing control items (reproducible)")

    def handle(self, *args, slug, seed, **options):
        try:
            study = Study.objects.get(slug=slug)
        except Study.DoesNotExist:
            raise CommandError(f"no study with slug {slug!r}") from None
        try:
            created = study_build_trials(study=study, rng_seed=seed)
            study_open(study=study)
        except ParityError as exc:
            raise CommandError(str(exc)) from None
        counts = {kind: study.trials.filter(kind=kind).count() for kind in ("generated", "catch", "calibration")}
        self.stdout.write(self.style.SUCCESS(
            f"Study {study.slug!r} is open: {created} new trials "
            f"({counts['generated']} generated, {counts['catch']} catch, {counts['calibration']} calibration)."
        ))
        # Prolific fills in its {{%...%}} placeholders when it sends a participant.
        links = study_links(study=study)
        self.stdout.write(f"Invite link:   {links['invite_url']}")
        self.stdout.write(f"Prolific link: {links['prolific_url']}")
