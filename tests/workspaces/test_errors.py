"""Each domain error says its own code and HTTP status; the API renders any of them from
the class alone, so a new error needs no table anywhere."""

import importlib
import re
from http import HTTPStatus

import pytest
from rest_framework.test import APIRequestFactory

from workspaces.drf import exception_handler
from workspaces.errors import ParityError

# Modules that define domain errors; importing them registers the subclasses.
ERROR_MODULES = ["generation.errors", "annotate.errors", "analysis.services"]


def every_error() -> list[type[ParityError]]:
    for name in ERROR_MODULES:
        importlib.import_module(name)
    found, todo = [], [ParityError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("cls", every_error(), ids=lambda cls: cls.__name__)
def test_each_error_carries_a_code_and_a_status(cls):
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", cls.code), cls.code
    assert 400 <= HTTPStatus(cls.status) < 600


def render(exc: Exception):
    request = APIRequestFactory().get("/api/v1/")
    return exception_handler(exc, {"request": request, "view": None})


def test_a_new_error_class_is_rendered_from_its_attributes():
    class Frozen(ParityError):
        code = "frozen"
        status = HTTPStatus.LOCKED
        field = "name"

        def details(self):
            return {"until": "tomorrow"}

    response = render(Frozen("The series is frozen."))
    assert response.status_code == 423
    assert response.data == {
        "error": {"code": "frozen", "message": "The series is frozen.", "field": "name", "details": {"until": "tomorrow"}}
    }


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        (lambda: __import__("generation.errors").errors.NameTaken("taken"), 409, "name_taken"),
        (lambda: __import__("generation.errors").errors.Duplicate("there", existing_id=7), 409, "duplicate"),
        (lambda: __import__("annotate.errors").errors.AssignmentNotYours("x"), 404, "not_found"),
        (lambda: __import__("annotate.errors").errors.StudyClosed("closed"), 409, "study_closed"),
        (lambda: __import__("generation.errors").errors.BackendError("bad", field="settings"), 400, "invalid"),
    ],
)
def test_the_api_answers_what_each_class_says(make, status, code):
    exc = make()
    response = render(exc)
    assert (response.status_code, response.data["error"]["code"]) == (status, code)
    assert response.data["error"]["field"] == exc.field


def test_a_report_build_failure_is_a_server_error_with_its_reason():
    from analysis.services import ReportBuildFailed

    response = render(ReportBuildFailed("LinAlgError: singular matrix"))
    assert response.status_code == 500
    assert response.data["error"] == {
        "code": "report_failed",
        "message": "The report could not be built: LinAlgError: singular matrix",
        "field": None,
    }
