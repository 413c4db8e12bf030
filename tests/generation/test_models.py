"""Constraints enforced by the database itself, not only by the import services."""

import pytest
from django.db import IntegrityError, transaction

from generation.models import Corpus, Generator, Item, Sample


def image_fields(n: int = 0) -> dict:
    return {"image": f"originals/{n:02d}/x{n}.png", "sha256": f"{n:064x}", "width": 8, "height": 8,
            "format": "PNG", "mode": "RGB", "byte_size": 100}


@pytest.fixture
def corpus(workspace):
    return Corpus.objects.create(workspace=workspace, name="photos")


@pytest.fixture
def item(corpus):
    return Item.objects.create(corpus=corpus, key="a", caption="a cat", **image_fields(1))


@pytest.mark.parametrize("write", ["create", "bulk_create"])
def test_item_key_is_unique_per_corpus(corpus, item, write):
    duplicate = Item(corpus=corpus, key="a", caption="another cat", **image_fields(2))
    with pytest.raises(IntegrityError), transaction.atomic():
        if write == "create":
            duplicate.save()
        else:
            Item.objects.bulk_create([duplicate])
    assert Item.objects.count() == 1


def test_the_same_key_in_another_corpus_is_fine(workspace, item):
    other = Corpus.objects.create(workspace=workspace, name="other")
    Item.objects.create(corpus=other, key="a", caption="a cat", **image_fields(1))
    assert Item.objects.filter(key="a").count() == 2


@pytest.mark.parametrize("write", ["create", "bulk_create"])
def test_item_caption_cannot_be_empty(corpus, write):
    with pytest.raises(IntegrityError), transaction.atomic():
        if write == "create":
            Item.objects.create(corpus=corpus, key="b", caption="", **image_fields(2))
        else:
            Item.objects.bulk_create([Item(corpus=corpus, key="b", caption="", **image_fields(2))])
    assert Item.objects.count() == 0


@pytest.mark.parametrize("write", ["create", "bulk_create"])
def test_sample_is_unique_per_generator_item_and_seed(workspace, item, write):
    generator = Generator.objects.create(workspace=workspace, name="model")
    Sample.objects.create(generator=generator, item=item, seed=7, **image_fields(3))
    with pytest.raises(IntegrityError), transaction.atomic():
        if write == "create":
            Sample.objects.create(generator=generator, item=item, seed=7, **image_fields(4))
        else:
            Sample.objects.bulk_create([Sample(generator=generator, item=item, seed=7, **image_fields(4))])
    # Another seed, or another generator, is a different sample.
    Sample.objects.create(generator=generator, item=item, seed=8, **image_fields(4))
    other = Generator.objects.create(workspace=workspace, name="other")
    Sample.objects.create(generator=other, item=item, seed=7, **image_fields(4))
    assert Sample.objects.count() == 3
