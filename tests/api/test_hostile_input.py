"""Hostile input never gives a 500, on PostgreSQL, whose text columns refuse NUL.

The sweep reads the schema /api/schema/ serves and sends, for every operation, each
query parameter and each field of its request body (top level, inside objects, inside
arrays) a NUL, a lone surrogate, a 1 MB string and 5,000 levels of nesting, as the owner
of a workspace whose objects the paths point at. Every answer is a 400 in the API's
error body naming the parameter or field, and nothing is written to the database. The
annotator's pages get the same treatment through their query parameters and forms, and
answer with a plain 400 page.
"""

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from analysis.models import ReportRecord
from annotate import services
from annotate.models import Annotator, Participation
from generation.models import GenerationJob, ImportJob, Series
from tests.annotate.builders import build_study
from tests.api.conftest import member, token_client
from workspaces.models import Membership

# The sweeps need PostgreSQL, whose DataError on a NUL was the 500; the examples run anywhere.
postgres = pytest.mark.usefixtures("postgres_only")

NUL = "name\x00with nul"
SURROGATE = "lone \ud800 surrogate"
MEGABYTE = "m" * 1_000_000
DEPTH = 5_000
# A value of each kind, by the name the failures are reported under.
TEXTS = {"nul": NUL, "surrogate": SURROGATE, "megabyte": MEGABYTE}
# A lone surrogate cannot be percent-encoded as UTF-8: these are the bytes a client
# would send for one (CESU-8), which the server decodes to replacement characters.
SURROGATE_BYTES = "%ED%A0%80"
# A multipart body is UTF-8: it cannot carry a lone surrogate.
FORM_TEXTS = {"nul": NUL, "megabyte": MEGABYTE}
# As they stand in a query string or a form body.
QUERY_VALUES = {"nul": "name%00with%00nul", "surrogate bytes": SURROGATE_BYTES, "megabyte": MEGABYTE}
# Tables a refused request may still write: the session store and a token's last use.
UNWATCHED = {"django_session", "parity_personaltoken"}


# ------------------------------------------------------------------------------
# The workspace and the watch on its tables
# ------------------------------------------------------------------------------
@pytest.fixture
def world(settings, workspace):
    """The owner's API client, what their workspace holds, and an open study to judge in."""
    settings.PARITY_API_WRITE_RATE = None
    settings.PARITY_RATE_JOIN = settings.PARITY_RATE_SUBMIT = settings.PARITY_RATE_LOGIN = None
    owner = member(workspace, "olga", Membership.Role.OWNER)
    study = build_study(workspace=workspace, generators=2, items=4, k=2, slug="ladder")
    services.study_build_trials(study=study, rng_seed=1)
    services.study_open(study=study)
    draft = build_study(workspace=workspace, generators=1, items=2, slug="draft")
    generators = [*study.generators.all(), *draft.generators.all()]
    series = Series.objects.create(workspace=workspace, name="ladder")
    job = ImportJob.objects.create(
        workspace=workspace, kind=ImportJob.Kind.SAMPLES, generator=generators[0], corpus=study.corpus,
        filename="bundle.tar", total=4,
    )
    generation_job = GenerationJob.objects.create(generator=generators[0], corpus=study.corpus, total=4)
    known = {
        "corpora": study.corpus_id, "generators": generators[0].pk, "series": series.pk, "jobs": job.pk,
        "generation-jobs": generation_job.pk, "studies": draft.slug,
        "reports": ReportRecord.objects.create(
            study=draft, built_at=timezone.now(), content_hash="0" * 64, version=1, report_json="{}",
        ).pk,
    }
    api = token_client(owner)
    # A server error is an answer to note, not an exception to stop at.
    api.raise_request_exception = False
    return {"api": api, "known": known, "study": study}


def writes() -> int:
    """Rows inserted, updated or deleted so far in this transaction, in every table but UNWATCHED
    (rolled-back savepoints included: a write undone by an error was still attempted)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_xact_user_tables"
            " WHERE relname <> ALL(%s)",
            [sorted(UNWATCHED)],
        )
        return cursor.fetchone()[0]


ANY = object()  # a 400 may name any field (or none): it is not about the hostile value


class Sweep:
    """Sends requests, and notes each answer that breaks a promise instead of stopping.

    Each request is rolled back after, so that every one meets the same database and a
    server error cannot spoil the next.
    """

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.sent = 0

    def check(self, what: str, send, *, field, html: bool = False, refused: bool = True) -> None:
        """Where `refused`, `send()` must answer 400 naming `field`, with nothing written; in any
        case never 5xx, and a 400 of the API has its documented body."""
        savepoint = transaction.savepoint()
        before = writes()
        try:
            response = send()
            self.sent += 1
            if response.status_code >= 500:
                self.problems.append(f"{what}: {response.status_code}")
                return
            if refused and writes() != before:
                self.problems.append(f"{what}: {response.status_code} and the database changed")
        finally:
            transaction.savepoint_rollback(savepoint)
            transaction.set_rollback(False)
        if not refused and response.status_code != 400:
            return
        if response.status_code != 400:
            self.problems.append(f"{what}: {response.status_code}, not 400")
        elif html:
            if not response["Content-Type"].startswith("text/html") or (field and field not in response.text):
                self.problems.append(f"{what}: a 400 that is not a page naming {field!r}")
        else:
            error = response.json().get("error", {})
            if set(error) - {"details"} != {"code", "message", "field"} or field not in (ANY, error["field"]):
                self.problems.append(f"{what}: {error} does not name {field!r}")

    def assert_clean(self) -> None:
        assert not self.problems, f"{len(self.problems)} of {self.sent}:\n" + "\n".join(self.problems[:40])


# ------------------------------------------------------------------------------
# What the issue reported, one by one
# ------------------------------------------------------------------------------
def test_a_nul_in_a_filter_is_a_400_naming_it(world):
    for path in ("/api/v1/generators/?workspace=%00", f"/api/v1/corpora/{world['known']['corpora']}/items/?key=%00"):
        response = world["api"].get(path)
        assert response.status_code == 400
        assert response.json() == {"error": {
            "code": "invalid", "field": path.split("?")[1].split("=")[0],
            "message": f"The query parameter {path.split('?')[1].split('=')[0]!r} holds a NUL character (U+0000), "
                       "which cannot be stored as text.",
        }}


def test_json_nested_5000_deep_is_a_parse_error_naming_the_field(world):
    body = '{"workspace": "lab", "name": "fresh", "settings": {"sampler": ' + deep() + "}}"
    response = world["api"].post("/api/v1/generators/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"error": {
        "code": "parse_error", "field": "settings.sampler",
        "message": "The value of field 'settings.sampler' is nested deeper than 32 levels.",
    }}


def test_a_lone_surrogate_in_json_is_a_parse_error_naming_the_field(world):
    body = '{"workspace": "lab", "name": "fresh", "metrics": {"fid": 1.0, "cl\\ud800ip": 0.3}}'
    response = world["api"].post("/api/v1/generators/", body, content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("parse_error", "metrics")
    assert error["message"].startswith("A key of object 'metrics' holds a lone surrogate (U+D800)")


def test_a_nul_in_the_prolific_id_is_a_plain_page_and_no_annotator(world):
    response = page_client().get(f"/s/{world['study'].slug}/?PROLIFIC_PID=5f0c%00&STUDY_ID=s1")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert "The query parameter &#x27;PROLIFIC_PID&#x27; holds a NUL character" in response.text
    assert not Annotator.objects.filter(source=Annotator.Source.PROLIFIC).exists()
    assert not Participation.objects.exists()


# ------------------------------------------------------------------------------
# The API, from its schema
# ------------------------------------------------------------------------------
def operations(api) -> list[tuple[str, str, dict, dict]]:
    """(method, path with real ids, operation, schema) of every operation /api/schema/ serves."""
    schema = api.get("/api/schema/?format=json").json()
    found = []
    for template, methods in schema["paths"].items():
        for method, operation in methods.items():
            found.append((method, template, operation, schema))
    return found


def resolved(template: str, known: dict) -> str:
    value = known[template.removeprefix("/api/v1/").split("/")[0]]
    # A study's kept report, under the study the other parameter names.
    template = re.sub(r"/reports/\{[^}]+\}/", f"/reports/{known['reports']}/", template)
    return re.sub(r"\{[^}]+\}", str(value), template)


def body_fields(operation: dict, schema: dict, media_type: str) -> dict[str, dict]:
    content = operation.get("requestBody", {}).get("content", {})
    if media_type not in content:
        return {}
    component = schema["components"]["schemas"][content[media_type]["schema"]["$ref"].split("/")[-1]]
    return {name: spec for name, spec in component["properties"].items() if not spec.get("readOnly")}


def deep(depth: int = DEPTH) -> str:
    """JSON text of `depth` nested arrays (json.dumps itself cannot write it)."""
    return "[" * depth + "]" * depth


def json_values(name: str, spec: dict) -> list[tuple[str, str, str]]:
    """(label, JSON text of the value, field the error must name) for one body field."""
    values = [(label, json.dumps(text), name) for label, text in TEXTS.items()]
    values.append(("deep", deep(), name))
    if spec.get("type") in (None, "object"):
        # A JSON field: inside it, as a value and as a key.
        values += [(f"{label} inside", json.dumps({"k": text}), f"{name}.k") for label, text in TEXTS.items()]
        values += [(f"{label} key", json.dumps({text: 1}), name) for label, text in TEXTS.items()]
        values.append(("deep inside", '{"k": ' + deep() + "}", f"{name}.k"))
    if spec.get("type") == "array":
        values += [(f"{label} item", json.dumps([text]), f"{name}.0") for label, text in TEXTS.items()]
    return values


def body_with(base: dict, name: str, value_text: str) -> str:
    """`base` as JSON text with `name` set to the raw JSON `value_text`."""
    others = {key: value for key, value in base.items() if key != name}
    head = json.dumps(others)[:-1]
    return f'{head}{", " if others else ""}"{name}": {value_text}}}'


BASE_BODIES = {
    ("post", "/api/v1/generators/"): {"workspace": "lab", "name": "fresh"},
    ("put", "/api/v1/generators/{id}/"): {"workspace": "lab", "name": "ladder-g0"},
    ("patch", "/api/v1/generators/{id}/"): {"description": "changed"},
    ("post", "/api/v1/series/"): {"workspace": "lab", "name": "fresh"},
    ("post", "/api/v1/studies/"): {"workspace": "lab", "name": "Fresh", "slug": "fresh"},
    ("patch", "/api/v1/studies/{slug}/"): {"description": "changed"},
    ("post", "/api/v1/studies/{slug}/open/"): {"seed": 1},
    ("post", "/api/v1/studies/{slug}/generators/"): {"generators": ["ladder-g0"]},
    ("post", "/api/v1/generation-jobs/"): {"seeds_per_item": 1},
    ("post", "/api/v1/studies/{slug}/reports/{record_id}/freeze/"): {"note": "final"},
}


@postgres
def test_every_query_parameter_and_json_field_of_the_api(world):
    api, known = world["api"], world["known"]
    sweep = Sweep()
    for method, template, operation, schema in operations(api):
        path = resolved(template, known) if "{" in template else template
        call = getattr(api, method)
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "query":
                continue
            name = parameter["name"]
            for label, value in QUERY_VALUES.items():
                sweep.check(f"{method.upper()} {template} ?{name}={label}", lambda: call(f"{path}?{name}={value}"),
                            field=name, refused=label != "surrogate bytes")
        fields = body_fields(operation, schema, "application/json")
        if fields:
            base = BASE_BODIES[(method, template)]
            # A key of the body itself, and the body as one deep value.
            for label, text in TEXTS.items():
                sweep.check(f"{method.upper()} {template} body key {label}",
                            lambda: call(path, json.dumps({text: 1}), content_type="application/json"), field=None)
            sweep.check(f"{method.upper()} {template} deep body",
                        lambda: call(path, deep(), content_type="application/json"), field=None)
        for name, spec in fields.items():
            for label, value_text, field in json_values(name, spec):
                body = body_with(base, name, value_text)
                sweep.check(f"{method.upper()} {template} {name}: {label}",
                            lambda: call(path, body, content_type="application/json"), field=field)
    sweep.assert_clean()


@postgres
def test_every_form_field_of_the_upload_operations(world):
    """The multipart operations (uploads): each text field, and the uploaded file's name."""
    api, known = world["api"], world["known"]
    sweep = Sweep()
    for method, template, operation, schema in operations(api):
        fields = body_fields(operation, schema, "multipart/form-data")
        if not fields or body_fields(operation, schema, "application/json"):
            continue
        path = resolved(template, known) if "{" in template else template
        valid = {"workspace": "lab", "name": "fresh", "item_key": "k0", "seed": 1, "corpus": known["corpora"]}

        def send(name=None, text=None, file_name="bundle.jsonl"):
            upload = SimpleUploadedFile(file_name, b"{}\n", content_type="application/jsonl")
            data = {key: value for key, value in valid.items() if key in fields}
            return api.post(path, {**data, "file": upload, **({name: text} if name else {})}, format="multipart")

        for name in fields:
            for label, text in FORM_TEXTS.items():
                sweep.check(f"{method.upper()} {template} {name}: {label}", lambda: send(name, text), field=name)
        # Django drops a NUL from an uploaded file's name: never a 500 either way.
        sweep.check(f"{method.upper()} {template} file name: nul", lambda: send(file_name=f"bundle{NUL}.jsonl"),
                    field=ANY, refused=False)
    sweep.assert_clean()


@postgres
@pytest.mark.parametrize("name", ["settings", "metrics", "backend_config"])
def test_a_json_field_sent_as_a_form_field(world, name):
    """A JSON field in a form body is JSON text that the field itself decodes."""
    api, sweep = world["api"], Sweep()
    values = {"nul": ('{"k": "\\u0000"}', f"{name}.k"), "surrogate": ('{"k": "\\ud800"}', f"{name}.k"),
              "deep": (deep(), name), "deep inside": ('{"k": ' + deep() + "}", f"{name}.k")}
    for label, (text, field) in values.items():
        sweep.check(f"POST generators form {name}: {label}",
                    lambda: api.post("/api/v1/generators/", {"workspace": "lab", "name": "fresh", name: text}),
                    field=field)
    sweep.assert_clean()


# ------------------------------------------------------------------------------
# The annotator's pages
# ------------------------------------------------------------------------------
def page_client() -> Client:
    return Client(raise_request_exception=False)


def form(data: dict) -> dict:
    """The keyword arguments of a urlencoded POST whose values are already encoded."""
    body = "&".join(f"{name}={value}" for name, value in data.items())
    return {"data": body, "content_type": "application/x-www-form-urlencoded"}


@postgres
def test_the_annotator_pages(world):
    study = world["study"]
    entry = f"/s/{study.slug}/"
    sweep = Sweep()
    for name in ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID"):
        for label, value in QUERY_VALUES.items():
            query = f"PROLIFIC_PID=5f0c&{name}={value}" if name != "PROLIFIC_PID" else f"{name}={value}"
            sweep.check(f"GET {entry}?{name}={label}", lambda: page_client().get(f"{entry}?{query}"), field=name,
                        html=True, refused=label != "surrogate bytes")

    # An annotator who has consented, posting each field of the consent, trial and practice forms.
    client = page_client()
    assert client.get(entry, {"PROLIFIC_PID": "5f0c"}).status_code == 200
    for label, value in QUERY_VALUES.items():
        sweep.check(f"POST consent x={label}", lambda: client.post(f"{entry}consent/", **form({"x": value})),
                    field="x", html=True, refused=label != "surrogate bytes")
    assert client.post(f"{entry}consent/").status_code == 302
    for page in ("trial", "practice"):
        for name in ("token", "choice", "client_ms"):
            for label, value in QUERY_VALUES.items():
                data = {"token": "0" * 36, "choice": "left", "client_ms": "800", name: value}
                sweep.check(f"POST {page} {name}={label}", lambda: client.post(f"{entry}{page}/", **form(data)),
                            field=name, html=True, refused=label != "surrogate bytes")
            sweep.check(f"POST {page} multipart {name}=nul",
                        lambda: client.post(f"{entry}{page}/", {"token": "0" * 36, name: NUL}), field=name,
                        html=True)
    sweep.check("GET image key nul", lambda: client.get(f"{entry}img/a%00b/"), field=None, html=True)
    sweep.check("GET entry with a NUL in the session cookie",
                lambda: page_client().get(entry, {"PROLIFIC_PID": "x1"}, HTTP_COOKIE="sessionid=abcdefgh%00ijkl\x00"),
                field=None, html=True, refused=False)
    sweep.assert_clean()


@postgres
def test_the_sign_in_form(world):
    sweep = Sweep()
    for label, value in QUERY_VALUES.items():
        sweep.check(f"POST login username={label}",
                    lambda: page_client().post("/login/", **form({"username": value, "password": "x"})),
                    field="username", html=True, refused=label != "surrogate bytes")
    sweep.assert_clean()

