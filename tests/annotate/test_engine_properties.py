"""Random studies and random interleavings of next, submit and expiry keep the invariants.

Each example builds its own study inside a transaction that it rolls back, so the
function-scoped `db` fixture is shared safely by every example.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate.errors import AssignmentExpired, AssignmentNotYours, QuotaReached
from annotate.services import assignment_next, assignments_expire, judgment_record, study_build_trials, study_open
from tests.annotate.builders import annotators, build_study
from tests.annotate.invariants import assert_invariants

TIMEOUT = 60

shapes = st.fixed_dictionaries({
    "generators": st.integers(1, 3),
    "items": st.integers(1, 6),
    "k": st.integers(1, 3),
    "annotators": st.integers(1, 5),
    "quota": st.integers(1, 8),
    "catch_rate": st.sampled_from([0.0, 0.3]),
    "calibration_rate": st.sampled_from([0.0, 0.3]),
    "head_to_head_share": st.sampled_from([0.0, 0.5]),
    "anchors": st.integers(0, 1),
    "anchor_share": st.sampled_from([0.0, 0.2]),
})
steps = st.lists(
    st.tuples(
        st.sampled_from(["next", "next", "submit", "submit", "foreign", "expire"]),
        st.integers(0, 4),  # who
        st.integers(0, 4),  # whose token, for "foreign"
        st.sampled_from([0, 1, 20, 45, 90]),  # seconds that pass before the step
    ),
    max_size=40,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=shapes, script=steps)
def test_invariants_hold_after_every_step(db, shape, script):
    with transaction.atomic():
        people_count = shape.pop("annotators")
        study = build_study(timeout=TIMEOUT, **shape)
        study_build_trials(study=study, rng_seed=0)
        study_open(study=study)
        people = annotators(people_count)
        last = {}  # annotator index -> the last assignment issued to them
        clock = timezone.now()
        for op, who, whose, elapsed in script:
            clock += timedelta(seconds=elapsed)
            who, whose = who % people_count, whose % people_count
            if op == "next":
                try:
                    assignment = assignment_next(study=study, annotator=people[who], now=clock)
                except QuotaReached:
                    assignment = None
                if assignment is not None:
                    assert assignment.annotator_id == people[who].pk
                    assert assignment.expires_at > clock
                    last[who] = assignment
            elif op == "submit" and who in last:
                assignment = last[who]
                try:
                    judgment = judgment_record(
                        assignment_token=assignment.token, annotator=people[who], choice="right", now=clock
                    )
                except AssignmentExpired:
                    assert clock >= assignment.expires_at
                else:
                    assert judgment.assignment.annotator_id == people[who].pk
            elif op == "foreign" and whose in last and whose != who:
                try:
                    judgment_record(
                        assignment_token=last[whose].token, annotator=people[who], choice="left", now=clock
                    )
                except AssignmentNotYours:
                    pass
                else:
                    raise AssertionError("a foreign token was accepted")
            elif op == "expire":
                assignments_expire(now=clock)
            assert_invariants(study)
        transaction.set_rollback(True)
