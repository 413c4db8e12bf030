"""Every model has an admin page whose list, filters and search work on real rows."""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from annotate.models import Annotator, Assignment, Judgment, Participation, Study, Trial
from generation.models import Corpus, GenerationJob, Generator, ImportJob, Item, Sample, Series
from workspaces.models import Membership


@pytest.fixture
def rows(workspace, django_user_model):
    user = django_user_model.objects.create_superuser("root", password="pw-for-tests-only")
    Membership.objects.create(workspace=workspace, user=user, role="owner")
    corpus = Corpus.objects.create(workspace=workspace, name="needle-corpus")
    stored = {"image": "originals/a.png", "sha256": "a" * 64, "width": 4, "height": 4,
              "format": "PNG", "mode": "RGB", "byte_size": 3}
    item = Item.objects.create(corpus=corpus, key="needle-key", caption="a red circle", **stored)
    series = Series.objects.create(workspace=workspace, name="needle-series")
    generator = Generator.objects.create(workspace=workspace, series=series, name="needle-gen", params=10**6)
    job = GenerationJob.objects.create(generator=generator, corpus=corpus)
    ImportJob.objects.create(workspace=workspace, kind="samples", generator=generator, corpus=corpus,
                             filename="needle.tar", created_by=user)
    sample = Sample.objects.create(generator=generator, item=item, seed=3, job=job, **stored)
    study = Study.objects.create(workspace=workspace, name="needle-study", slug="needle-study", corpus=corpus)
    trial = Trial.objects.create(study=study, item=item, sample=sample)
    annotator = Annotator.objects.create(source="prolific", external_id="needle-pid")
    assignment = Assignment.objects.create(
        trial=trial, annotator=annotator, study=study, item=item, reference_side="left",
        expires_at=timezone.now() + timedelta(minutes=10),
    )
    Judgment.objects.create(assignment=assignment, choice="right", server_response_ms=800)
    Participation.objects.create(study=study, annotator=annotator, prolific_study_id="needle-study-id")
    return user


MODELS = [Membership, Corpus, Item, Series, Generator, GenerationJob, ImportJob, Sample,
          Study, Trial, Annotator, Assignment, Judgment, Participation]


def test_every_model_is_registered():
    for model in MODELS:
        assert admin.site.is_registered(model), model.__name__


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_changelist_lists_searches_and_filters(client, rows, model):
    client.force_login(rows)
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    listing = client.get(url)
    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 1
    model_admin = admin.site._registry[model]
    if model_admin.search_fields:
        assert client.get(url, {"q": "no-such-thing-anywhere"}).context["cl"].result_count == 0
    for spec in listing.context["cl"].filter_specs:
        for choice in spec.choices(listing.context["cl"]):
            assert client.get(url + choice["query_string"]).status_code == 200


def test_judgments_cannot_be_changed_in_the_admin(client, rows):
    client.force_login(rows)
    judgment = Judgment.objects.get()
    page = client.post(reverse("admin:annotate_judgment_change", args=[judgment.pk]), {"choice": "left"})
    assert page.status_code in (302, 403) or "readonly" in page.content.decode()
    assert Judgment.objects.get().choice == "right"
    assert client.get(reverse("admin:annotate_judgment_delete", args=[judgment.pk])).status_code == 403


@pytest.mark.parametrize("model", [GenerationJob, ImportJob], ids=lambda m: m.__name__)
def test_jobs_are_records_in_the_admin(client, rows, model):
    client.force_login(rows)
    job = model.objects.get()
    name = f"admin:generation_{model._meta.model_name}"
    assert client.get(reverse(f"{name}_add")).status_code == 403
    page = client.get(reverse(f"{name}_change", args=[job.pk]))
    assert page.status_code == 200
    assert not any(field in page.context["adminform"].form.fields for field in ("status", "done", "total"))
