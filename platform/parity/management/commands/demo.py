"""The demo content of `make run`, built the first time only.

The corpus is drawn by the project itself (generation.scenes: shapes with exact
captions), written as WebDataset shards and imported through the same path as any
researcher's corpus, so the demo exercises the real ingest.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from generation.models import Corpus, Membership, Workspace
from generation.scenes import write_webdataset
from generation.services import corpus_import

from generation.management.commands._progress import progress_bar

DEMO_USER = "researcher"
DEMO_PASSWORD = "parity-demo"


class Command(BaseCommand):
    help = "Create the demo workspace, researcher login and procedural scenes corpus (once)."

    def add_arguments(self, parser):
        parser.add_argument("--items", type=int, default=300)
        parser.add_argument("--size", type=int, default=256)

    def handle(self, *args, items, size, **options):
        with transaction.atomic():
            workspace, _ = Workspace.objects.get_or_create(slug="demo", defaults={"name": "Demo"})
            user = get_user_model().objects.filter(username=DEMO_USER).first()
            if user is None:
                user = get_user_model().objects.create_superuser(DEMO_USER, password=DEMO_PASSWORD)
            Membership.objects.get_or_create(
                workspace=workspace, user=user, defaults={"role": Membership.Role.OWNER}
            )
        if not Corpus.objects.filter(workspace=workspace, name="scenes").exists():
            shards_dir = settings.VAR_DIR / "demo" / "scenes"
            shards_dir.mkdir(parents=True, exist_ok=True)
            with progress_bar("Drawing demo scenes") as on_progress:
                write_webdataset(shards_dir, items, size=size, shard_size=100, seed=0, progress=on_progress)
            with progress_bar("Importing demo corpus") as on_progress:
                corpus, result = corpus_import(
                    workspace=workspace, name="scenes", source=str(shards_dir),
                    description="Procedurally drawn shapes with exact compositional captions.",
                    on_progress=on_progress,
                )
            self.stdout.write(f"Demo corpus 'scenes': {result.created} items.")
        self.stdout.write(f"Researcher login: {DEMO_USER} / {DEMO_PASSWORD}")
