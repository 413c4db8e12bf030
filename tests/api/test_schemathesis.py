"""The researcher API against its own OpenAPI schema: schemathesis generates requests for
every operation of the schema the application serves, calls the application in-process
through its WSGI entry point (as gunicorn calls it), and checks that no answer is a
server error and that each one is what the schema says (status code, content type, body).

The caller is a researcher with a real bearer token, owner of a workspace with a small
corpus, generators with samples, an open study with judgments, a draft study and a
queued import job. Most path parameters are pointed at those objects, so that generated
bodies and queries reach the code behind the 404.

Each generated request runs in a savepoint that is rolled back, with the rate-limit
counts cleared: every request meets the same workspace, on SQLite as on PostgreSQL.

The operations are collected from the schema drf-spectacular makes at import (the
served one needs a researcher, so a database); `test_the_served_schema_is_the_one_tested`
holds that it is the schema /api/schema/ serves. (schemathesis.pytest.from_fixture, which
would load it per test, does not run on pytest 9: it writes `Function._nodeid`.)
"""

import zlib

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from analysis.models import ReportRecord
from analysis.reports import REPORT_VERSION
from annotate import services
from annotate.models import Annotator
from generation.models import GenerationJob, ImportJob, Series
from parity.tokens import token_create
from parity.wsgi import application
from tests.annotate.builders import build_study
from tests.api.conftest import member
from workspaces.models import Membership

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Small, so that the whole API runs in about a minute on two cores.
MAX_EXAMPLES = 15
# One generated path parameter in KEEP_ONE_IN is sent as generated (mostly a 404); the others
# are replaced by an existing object's id or slug.
KEEP_ONE_IN = 5


def served_schema() -> dict:
    """The schema SpectacularAPIView serves, made as it makes it."""
    return SchemaGenerator().get_schema(request=None, public=True)


schema = schemathesis.openapi.from_dict(
    served_schema(),
    config=SchemathesisConfig.from_dict({
        "seed": 20250130,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    }),
)
schema.app = application


@pytest.fixture
def _in_process_connections():
    """The WSGI handler closes the database connection around each request, which would
    end the test's transaction; Django's test client switches this off in the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def build_workspace(workspace) -> dict:
    """An open study with judgments, a draft study, generators with samples, a series and a
    queued job; the ids (slugs for studies) by the first path segment that names them."""
    study = build_study(workspace=workspace, generators=2, items=4, k=2, catch_rate=0.25, slug="ladder")
    services.study_build_trials(study=study, rng_seed=1)
    services.study_open(study=study)
    for annotator in [Annotator.objects.create(source=Annotator.Source.SIMULATED) for _ in range(2)]:
        for _ in range(2):
            assignment = services.assignment_next(study=study, annotator=annotator)
            services.judgment_record(assignment_token=assignment.token, annotator=annotator, choice="left")
    draft = build_study(workspace=workspace, generators=1, items=2, slug="draft")
    series = Series.objects.create(workspace=workspace, name="ladder")
    generators = [*study.generators.all(), *draft.generators.all()]
    generators[0].series = series
    generators[0].save(update_fields=["series"])
    job = ImportJob.objects.create(
        workspace=workspace, kind=ImportJob.Kind.SAMPLES, generator=generators[0], corpus=study.corpus,
        filename="bundle.tar", total=4,
    )
    generation_job = GenerationJob.objects.create(generator=generators[0], corpus=study.corpus, total=4)
    # A kept report of the open study, as a build leaves one (its content stands in).
    record = ReportRecord.objects.create(
        study=study, built_at=timezone.now(), judgments=4, content_hash="0" * 64, version=REPORT_VERSION,
        report_json="{}", report_csv="study\r\n", report_html="<!doctype html>\n",
    )
    return {
        "record_id": [record.pk],
        "corpora": [study.corpus_id, draft.corpus_id],
        "generators": [g.pk for g in generators],
        "series": [series.pk],
        "jobs": [job.pk],
        "generation-jobs": [generation_job.pk],
        "studies": [study.slug, draft.slug],
    }


@pytest.fixture
def researcher_api(_in_process_connections, workspace) -> dict:
    """The owner's Authorization header, and what their workspace holds."""
    owner = member(workspace, "olga", Membership.Role.OWNER)
    known = build_workspace(workspace)
    _, secret = token_create(user=owner, name="schemathesis")
    return {"headers": {"Authorization": f"Bearer {secret}"}, "known": known}


def aim(case, known: dict) -> None:
    """Point the path parameters at existing objects, but one in KEEP_ONE_IN; the generated
    value picks which object, so the run stays deterministic. A parameter named in `known`
    (a report's `record_id`) takes its own objects; the others those of the path's first segment."""
    choices = known.get(case.operation.path.removeprefix("/api/v1/").split("/")[0])
    for name, value in (case.path_parameters or {}).items():
        digest = zlib.crc32(repr(value).encode())
        pool = known.get(name, choices)  # a parameter with objects of its own (a report's id)
        if pool and digest % KEEP_ONE_IN:
            case.path_parameters[name] = pool[digest % len(pool)]


@pytest.mark.django_db
def test_the_served_schema_is_the_one_tested(researcher_api):
    served = schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json", application, headers=researcher_api["headers"]
    )
    assert served.raw_schema == schema.raw_schema


@pytest.mark.slow
@pytest.mark.django_db
@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_its_schema_says(case, researcher_api):
    aim(case, researcher_api["known"])
    cache.clear()
    with transaction.atomic():
        try:
            case.call_and_validate(headers=researcher_api["headers"], checks=CHECKS)
        finally:
            transaction.set_rollback(True)
