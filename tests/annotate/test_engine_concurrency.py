"""Fifty annotators race through one study on PostgreSQL, each on its own connection."""

import threading
from collections import Counter

import pytest
from django.db import connection

from annotate.errors import QuotaReached
from annotate.models import Assignment, Judgment
from annotate.services import (
    assignment_next,
    judgment_record,
    judgment_record_and_next,
    study_build_trials,
    study_open,
)
from tests.annotate.builders import annotators, build_study
from tests.annotate.invariants import assert_invariants

THREADS = 50
K = 3


@pytest.mark.postgres
@pytest.mark.parametrize("submit, mixed", [("record then next", False), ("record and next", False),
                                           ("record and next", True)])
def test_racing_annotators_never_break_the_invariants(postgres_only, transactional_db, submit, mixed):
    # `mixed`: head-to-head trials of neighbouring generators and an anchor generator too.
    study = build_study(generators=3, items=40, k=K, quota=20, catch_rate=0.05, calibration_rate=0.05,
                        **({"head_to_head_share": 0.3, "anchors": 1, "anchor_share": 0.2} if mixed else {}))
    study_build_trials(study=study, rng_seed=0)
    study_open(study=study)
    people = annotators(THREADS)
    acknowledged: list[tuple[int, int]] = []  # (annotator, judgment) pairs judgment_record returned
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)
    lock = threading.Lock()

    def annotate(person):
        try:
            start.wait()
            issued = None
            while True:
                if issued == []:  # the answer to the last submit: nothing is left
                    return
                try:
                    # As the pages do: an htmx submit is answered with the next trial.
                    assignment = issued[0] if issued else assignment_next(study=study, annotator=person)
                except QuotaReached:
                    return
                if assignment is None:
                    return
                # Every other submit is sent twice, as a double click would.
                for _ in range(1 + assignment.pk % 2):
                    if submit == "record and next":
                        judgment, issued = judgment_record_and_next(
                            assignment_token=assignment.token, study=study, annotator=person, choice="left"
                        )
                    else:
                        judgment = judgment_record(assignment_token=assignment.token, annotator=person, choice="left")
                    with lock:
                        acknowledged.append((person.pk, judgment.pk))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=annotate, args=(person,)) for person in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors[:3]

    assert_invariants(study)
    recorded = dict(Judgment.objects.values_list("pk", "assignment__annotator_id"))
    for annotator_id, judgment_id in acknowledged:
        assert recorded[judgment_id] == annotator_id
    assert len(recorded) == len({j for _, j in acknowledged})
    per_annotator = Counter(Assignment.objects.filter(study=study).values_list("annotator_id", flat=True))
    assert max(per_annotator.values()) <= 20
    # The pool was drained: every trial holds k judgments.
    assert set(study.trials.values_list("judgment_count", flat=True)) == {K}
    if mixed:
        # Three generators in a row: two neighbour pairs, each a head-to-head trial per item.
        assert study.trials.filter(kind="head_to_head").count() == 2 * 40


@pytest.mark.postgres
def test_one_annotator_firing_requests_at_once_gets_one_assignment(postgres_only, transactional_db):
    study = build_study(generators=2, items=10, k=3)
    study_build_trials(study=study, rng_seed=0)
    study_open(study=study)
    (person,) = annotators(1)
    got, errors = [], []
    start = threading.Barrier(10)

    def request():
        try:
            start.wait()
            got.append(assignment_next(study=study, annotator=person).pk)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors[:3]
    assert len(got) == 10 and len(set(got)) == 1
    assert Assignment.objects.filter(annotator=person).count() == 1
    assert_invariants(study)
