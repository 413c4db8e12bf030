"""Series and generators: created, changed and deleted as the API, the pages and the CLI ask."""

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from generation.backends import backend_check
from generation.errors import InUse, NameTaken
from generation.models import Generator, Series
from workspaces.errors import ParityError
from workspaces.models import Workspace

# Fields of a generator that `generator_update` may change; its workspace is fixed.
GENERATOR_FIELDS = (
    "name", "description", "series", "params", "train_images", "train_flops", "train_step",
    "settings", "metrics", "backend", "backend_config",
)


def series_create(*, workspace: Workspace, name: str, description: str = "") -> Series:
    try:
        with transaction.atomic():
            return Series.objects.create(workspace=workspace, name=name, description=description)
    except IntegrityError:
        raise NameTaken(f"workspace {workspace.slug!r} already has a series named {name!r}") from None


def generator_create(*, workspace: Workspace, name: str, **fields) -> Generator:
    """A new generator of `workspace`; `fields` are any of `GENERATOR_FIELDS`."""
    generator = Generator(workspace=workspace, name=name)
    return generator_update(generator=generator, **fields)


def generator_update(*, generator: Generator, **fields) -> Generator:
    unknown = set(fields) - set(GENERATOR_FIELDS)
    if unknown:
        raise TypeError(f"not a generator field: {', '.join(sorted(unknown))}")
    for name, value in fields.items():
        setattr(generator, name, value)
    backend_check(backend=generator.backend, config=generator.backend_config, settings=generator.settings)
    if generator.series is not None and generator.series.workspace_id != generator.workspace_id:
        raise ParityError(f"series {generator.series.name!r} belongs to another workspace")
    try:
        with transaction.atomic():
            generator.save()
    except IntegrityError:
        if Generator.objects.filter(workspace=generator.workspace_id, name=generator.name).exclude(
            pk=generator.pk
        ).exists():
            raise NameTaken(f"the workspace already has a generator named {generator.name!r}") from None
        raise
    return generator


def generator_delete(*, generator: Generator) -> None:
    """Delete a generator with its samples and jobs; refused while a study's trials use them."""
    try:
        with transaction.atomic():
            generator.delete()
    except ProtectedError:
        raise InUse(f"generator {generator.name!r} has trials in a study; it cannot be deleted") from None
