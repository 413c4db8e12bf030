"""Reads of the generation domain. Every queryset the researcher pages and API serve
comes from one of the `*_for` functions below, narrowed by `workspaces.access`, so no
view can forget the check.
"""

import hashlib

from django.db.models import Count, QuerySet

from generation.models import Corpus, GenerationJob, Generator, ImportJob, Item, Sample, Series
from workspaces.access import readable

# Keys looked up per query: well under SQLite's limit on the parameters of one statement.
KEYS_PER_QUERY = 1000


def corpora_for(*, user) -> QuerySet[Corpus]:
    """The user's corpora, each with `item_count`."""
    return readable(Corpus.objects.select_related("workspace"), user=user).annotate(
        item_count=Count("items")
    )


def items_for(*, user, corpus_id: int) -> QuerySet[Item]:
    """The items of a corpus the user sees; empty for any other corpus."""
    corpora = readable(Corpus.objects.filter(pk=corpus_id), user=user)
    return Item.objects.filter(corpus__in=corpora.values("pk"))


def series_for(*, user) -> QuerySet[Series]:
    return readable(Series.objects.select_related("workspace"), user=user)


def generators_for(*, user) -> QuerySet[Generator]:
    return readable(Generator.objects.select_related("workspace", "series"), user=user)


def samples_for(*, user, generator_id: int) -> QuerySet[Sample]:
    """The samples of a generator the user sees; empty for any other generator."""
    generators = readable(Generator.objects.filter(pk=generator_id), user=user)
    return Sample.objects.filter(generator__in=generators.values("pk")).select_related("item")


def import_jobs_for(*, user) -> QuerySet[ImportJob]:
    return readable(ImportJob.objects.select_related("workspace"), user=user)


def generation_jobs_for(*, user) -> QuerySet[GenerationJob]:
    """The generation jobs of the user's generators (a job's workspace is its generator's)."""
    found = GenerationJob.objects.select_related("generator__workspace", "corpus")
    return readable(found, user=user, via="generator__workspace")


def item_keys_missing(*, corpus: Corpus, keys: list[str]) -> list[str]:
    """The keys of `keys` that no item of `corpus` has, in the order given."""
    found: set[str] = set()
    for start in range(0, len(keys), KEYS_PER_QUERY):
        chunk = keys[start:start + KEYS_PER_QUERY]
        found.update(Item.objects.filter(corpus=corpus, key__in=chunk).values_list("key", flat=True))
    return [key for key in keys if key not in found]


def held_out(keys: list[str], fraction: float) -> set[str]:
    """The validation keys of a corpus: the `fraction` of `keys` whose sha256 is lowest.

    It depends on the keys alone, so `train_ladder` holds out the same items for every
    size, and the demo generates its study's samples for exactly those unseen prompts.
    """
    if fraction <= 0 or len(keys) < 2:
        return set()
    count = min(len(keys) - 1, max(1, round(len(keys) * fraction)))
    return set(sorted(keys, key=lambda key: hashlib.sha256(key.encode()).hexdigest())[:count])
