"""A study in the database whose truth is known, for the report tests.

Four generators of one series along `params` (1e7 to 1e10) with true preference rates
0.15, 0.25, 0.35 and 0.45, each with metrics that order them (a loss falling with
scale, a score rising). Every annotator judges each of the study's items once (the
database refuses a second look at a reference): the first `GENERATED_ITEMS` items as
generated trials, spread over the generators in rotation, then catch and calibration
trials. Rows are written in bulk, straight into the tables, as the engine would
leave them.

Planted annotators:
- ``clicker``: answers at random in 150 ms and picks the corrupted image on every
  catch trial (fails both the fast-answer and the catch-accuracy rule);
- ``careless``: takes its time but fails every catch trial (catch accuracy only);
- ``simulated``: a well-behaved annotator marked `Annotator.Source.SIMULATED`.
"""

from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from django.utils import timezone

from annotate.models import Annotator, Assignment, Judgment, Side, Study, Trial
from generation.models import Generator, Sample, Series
from tests.annotate.builders import build_study

TRUTH = (0.15, 0.25, 0.35, 0.45)
PARAMS = (10**7, 10**8, 10**9, 10**10)
GENERATED_ITEMS, CATCH_ITEMS, CALIBRATION_ITEMS = 40, 8, 6
ITEMS = GENERATED_ITEMS + CATCH_ITEMS + CALIBRATION_ITEMS
OTHER = {Side.LEFT: Side.RIGHT, Side.RIGHT: Side.LEFT}


@dataclass
class Planted:
    study: Study
    generators: list[Generator]
    items: list
    trials: dict
    annotators: list[Annotator] = field(default_factory=list)
    clicker: Annotator | None = None
    careless: Annotator | None = None
    simulated: Annotator | None = None


def planted_study(*, slug: str = "ladder", annotators: int = 30, seed: int = 0, workspace=None) -> Planted:
    """The study with `annotators` annotators, the first three planted (module docstring)."""
    planted = study_with_trials(slug=slug, workspace=workspace)
    people = add_annotators(planted, annotators, seed=seed, plant=True)
    planted.clicker, planted.careless, planted.simulated = people[:3]
    return planted


def study_with_trials(*, slug: str = "ladder", workspace=None) -> Planted:
    """The study, its generators and trials, without judgments."""
    study = build_study(workspace=workspace, generators=len(TRUTH), items=ITEMS, k=1000, slug=slug)
    series = Series.objects.create(workspace=study.workspace, name=f"{slug}-series")
    generators = list(
        Generator.objects.filter(workspace=study.workspace, name__startswith=f"{slug}-g").order_by("name"))
    for generator, params in zip(generators, PARAMS):
        generator.series = series
        generator.params = params
        generator.metrics = {"val_loss": 3.0 - np.log10(params) / 5, "clip_score": np.log10(params) * 3}
        generator.settings = {"sampler": "ddim", "steps": 50}
        generator.save(update_fields=["series", "params", "metrics", "settings"])
    items = list(study.corpus.items.order_by("key"))
    samples = {(s.generator_id, s.item_id): s for s in Sample.objects.filter(generator__in=generators)}
    trials = []
    for item in items[:GENERATED_ITEMS]:
        for generator in generators:
            trials.append(Trial(study=study, kind=Trial.Kind.GENERATED, item=item, generator=generator,
                                sample=samples[(generator.pk, item.pk)]))
    for item in items[GENERATED_ITEMS:GENERATED_ITEMS + CATCH_ITEMS]:
        trials.append(Trial(study=study, kind=Trial.Kind.CATCH, item=item))
    for item in items[GENERATED_ITEMS + CATCH_ITEMS:]:
        trials.append(Trial(study=study, kind=Trial.Kind.CALIBRATION, item=item))
    Trial.objects.bulk_create(trials)
    by_key = {
        (t.generator_id if t.kind == Trial.Kind.GENERATED else t.kind, t.item_id): t
        for t in Trial.objects.filter(study=study)
    }
    return Planted(study, generators, items, by_key)


def add_annotators(planted: Planted, n: int, *, seed: int = 0, plant: bool = False) -> list[Annotator]:
    """`n` new annotators who each judge every item of the study once; with `plant`, the
    first three are the clicker, the careless one and the simulated one."""
    rng = np.random.default_rng(seed)
    people = [Annotator(source=Annotator.Source.INVITE) for _ in range(n)]
    if plant:
        people[2].source = Annotator.Source.SIMULATED
    Annotator.objects.bulk_create(people)
    people = list(Annotator.objects.filter(pk__in=[p.pk for p in people]).order_by("pk"))
    clicker, careless = (people[0], people[1]) if plant else (None, None)
    generators, trials, offset = planted.generators, planted.trials, len(planted.annotators)
    plan = []  # (trial, annotator, reference side, choice, client ms)
    for a, person in enumerate(people, start=offset):
        for index, item in enumerate(planted.items):
            reference = Side.LEFT if rng.random() < 0.5 else Side.RIGHT
            if index < GENERATED_ITEMS:
                g = (index + a) % len(generators)
                trial = trials[(generators[g].pk, item.pk)]
                chose_probe = rng.random() < (0.5 if person == clicker else TRUTH[g])
            elif index < GENERATED_ITEMS + CATCH_ITEMS:
                trial = trials[("catch", item.pk)]
                chose_probe = person in (clicker, careless)
            else:
                trial = trials[("calibration", item.pk)]
                chose_probe = rng.random() < 0.5
            choice = OTHER[reference] if chose_probe else reference
            ms = 150 if person == clicker else int(rng.integers(900, 3000))
            plan.append((trial, person, reference, choice, ms))
    expires = timezone.now() + timedelta(hours=1)
    assignments = Assignment.objects.bulk_create(
        Assignment(trial=trial, annotator=person, study=planted.study, item_id=trial.item_id,
                   reference_side=reference, expires_at=expires)
        for trial, person, reference, _, _ in plan
    )
    Judgment.objects.bulk_create(
        Judgment(assignment=assignment, choice=choice, client_response_ms=ms, server_response_ms=ms + 40)
        for assignment, (_, _, _, choice, ms) in zip(assignments, plan)
    )
    planted.annotators += people
    return people
