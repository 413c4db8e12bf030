"""Head-to-head trials: which generators meet, and the trials that show them.

A head-to-head trial puts two generators' samples of one prompt side by side, judged
like a vs-real trial (the same page, presentation policy, side draw and k). Which
pairs meet is `Study.head_to_head_active`: the neighbours along a scale axis within
each series (`neighbour_pairs`, written by every trial build), or, for
``head_to_head_pairs = "uncertain"``, the pairs whose order the judgments so far leave
most in doubt, written by the analysis (`studies.study_head_to_head_pairs_write`);
until the analysis has written any, the neighbours stand in.
"""

from collections import Counter, defaultdict
from itertools import pairwise

from annotate.models import Study, Trial
from generation.models import SCALE_AXES, Generator, Sample


def neighbour_pairs(generators: list[Generator], axis: str = "") -> list[tuple[int, int]]:
    """Pairs of generators next to each other along `axis` within each series, smaller first.

    Blank `axis`: per series, the first of the four scale axes on which its generators
    differ. Generators of no series form one group of their own; a group with no axis
    that varies is ordered by id (the order they were registered in). Generators
    without a value on the axis come last, by id.
    """
    groups: dict[int | None, list[Generator]] = defaultdict(list)
    for generator in generators:
        groups[generator.series_id].append(generator)
    pairs = []
    for members in groups.values():
        chosen = axis or next(
            (a for a in SCALE_AXES if len({g.axis_value(a) for g in members} - {None}) > 1), "")

        def key(g: Generator, chosen=chosen):
            value = g.axis_value(chosen) if chosen else None
            return (value is None, value or 0.0, g.pk)

        ordered = sorted(members, key=key)
        pairs += [(a.pk, b.pk) for a, b in pairwise(ordered)]
    return pairs


def study_pairs(study: Study) -> list[tuple[int, int]]:
    """The pairs a build serves: the neighbours, or the analysis' uncertain pairs once written."""
    removed = study.removed_generator_ids()
    if study.head_to_head_pairs == Study.Pairs.UNCERTAIN:
        written = [(a, b) for a, b in study.head_to_head_active or () if a not in removed and b not in removed]
        if written:
            return written
    served = [g for g in study.generators.order_by("pk") if g.pk not in removed]
    return neighbour_pairs(served, study.head_to_head_axis)


def head_to_head_trials(study: Study, pairs: list[tuple[int, int]], *, set_aside: set[int],
                        allowed: set[int] | None = None) -> list[Trial]:
    """The missing head-to-head trials of `pairs`, unsaved: per pair and prompt with
    samples of both, the i-th lowest seed of one against the i-th of the other, for i
    below ``seeds_per_item``; prompts set aside for practice, or not `allowed` (the
    study's selection of items, `services.items`), left out."""
    if not pairs:
        return []
    generator_ids = {g for pair in pairs for g in pair}
    samples: dict[tuple[int, int], list[int]] = defaultdict(list)
    for sample_id, generator_id, item_id in (
        Sample.objects.filter(item__corpus_id=study.corpus_id, generator_id__in=generator_ids,
                              **({} if study.include_blank_samples else {"blank": False}))
        .order_by("generator_id", "item_id", "seed", "id").values_list("id", "generator_id", "item_id")
    ):
        if item_id not in set_aside and (allowed is None or item_id in allowed) \
                and len(samples[generator_id, item_id]) < study.seeds_per_item:
            samples[generator_id, item_id].append(sample_id)
    built = Counter(Trial.objects.filter(study=study, kind=Trial.Kind.HEAD_TO_HEAD).values_list(
        "sample_id", "opponent_sample_id"))
    by_generator: dict[int, list[int]] = defaultdict(list)
    for generator_id, item_id in samples:
        by_generator[generator_id].append(item_id)
    trials = []
    for a, b in pairs:
        for item_id in sorted(set(by_generator[a]) & set(by_generator[b])):
            for mine, theirs in zip(samples[a, item_id], samples[b, item_id]):
                if built[mine, theirs] or built[theirs, mine]:
                    continue
                trials.append(Trial(study=study, kind=Trial.Kind.HEAD_TO_HEAD, item_id=item_id, sample_id=mine,
                                    generator_id=a, opponent_sample_id=theirs, opponent_id=b))
    return trials
