"""The assignment engine: building trials, issuing, judging and expiring assignments."""

from collections import Counter
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from annotate.errors import (
    AssignmentExpired,
    AssignmentNotYours,
    AssignmentUnknown,
    QuotaReached,
    StudyClosed,
    StudyNotReady,
)
from annotate.models import Assignment, Judgment, Participation, Trial
from annotate.services import (
    SIDE_BLOCK_SIZES,
    assignment_next,
    assignments_expire,
    judgment_record,
    judgment_record_and_next,
    study_build_trials,
    study_close,
    study_open,
)
from tests.annotate.builders import annotators, build_study
from tests.annotate.invariants import assert_invariants
from workspaces.errors import ParityError


def opened(**kwargs):
    study = build_study(**kwargs)
    study_build_trials(study=study, rng_seed=0)
    study_open(study=study)
    return study


def judge(study, annotator, choice="left", now=None):
    assignment = assignment_next(study=study, annotator=annotator, now=now)
    if assignment is None:
        return None
    judgment_record(assignment_token=assignment.token, annotator=annotator, choice=choice, now=now)
    return assignment


# ------------------------------------------------------------------------------
# Building trials
# ------------------------------------------------------------------------------
def test_build_makes_one_trial_per_generator_and_item_with_the_lowest_seed(db):
    study = build_study(generators=3, items=10, seeds=(7, 2, 5), catch_rate=0.2, calibration_rate=0.1)
    created = study_build_trials(study=study, rng_seed=1)
    counts = Counter(study.trials.values_list("kind", flat=True))
    assert counts == {"generated": 30, "catch": 2, "calibration": 1}
    assert created == 33
    assert set(study.trials.filter(kind="generated").values_list("sample__seed", flat=True)) == {2}
    assert study.trials.filter(kind="generated").values("sample__generator", "item").distinct().count() == 30


def test_build_is_idempotent(db):
    study = build_study(generators=2, items=5, catch_rate=0.2, calibration_rate=0.2)
    first = study_build_trials(study=study, rng_seed=1)
    assert study_build_trials(study=study, rng_seed=2) == 0
    assert study.trials.count() == first == 12


def test_catch_images_are_stored_corrupted_copies_and_calibration_has_none(db):
    study = build_study(generators=1, items=5, catch_rate=0.4, calibration_rate=0.4)
    study_build_trials(study=study, rng_seed=3)
    catches = list(study.trials.filter(kind="catch").select_related("item"))
    assert len(catches) == 2
    for trial in catches:
        name = trial.control_image.name
        assert name.startswith("controls/") and name.endswith(".png") and len(name) == len("controls/.png") + 64
        assert default_storage.exists(name)
        with default_storage.open(name) as control, default_storage.open(trial.item.image.name) as reference:
            assert control.read() != reference.read()
    assert set(study.trials.filter(kind="calibration").values_list("control_image", flat=True)) == {""}


def test_a_study_without_trials_cannot_open(db):
    study = build_study(generators=0, items=2)
    with pytest.raises(StudyNotReady):
        study_open(study=study)


# ------------------------------------------------------------------------------
# Issuing
# ------------------------------------------------------------------------------
def test_a_study_that_is_not_open_issues_nothing(db):
    study = build_study()
    study_build_trials(study=study)
    (annotator,) = annotators(1)
    with pytest.raises(StudyClosed):
        assignment_next(study=study, annotator=annotator)
    study_open(study=study)
    assert assignment_next(study=study, annotator=annotator) is not None
    study_close(study=study)
    with pytest.raises(StudyClosed) as refused:
        assignment_next(study=study, annotator=annotator)
    assert isinstance(refused.value, ParityError)


def test_a_reload_resumes_the_open_assignment(db):
    study = opened()
    (annotator,) = annotators(1)
    first = assignment_next(study=study, annotator=annotator)
    again = assignment_next(study=study, annotator=annotator)
    assert again.pk == first.pk
    assert Assignment.objects.count() == 1
    assert Trial.objects.get(pk=first.trial_id).active_count == 1
    assert first.expires_at - first.issued_at == timedelta(seconds=study.assignment_timeout_seconds)


def test_the_quota_counts_judged_and_open_assignments(db):
    study = opened(generators=2, items=6, quota=3)
    (annotator,) = annotators(1)
    judge(study, annotator)
    judge(study, annotator)
    open_ = assignment_next(study=study, annotator=annotator)
    # The open one is resumed, not counted twice.
    assert assignment_next(study=study, annotator=annotator).pk == open_.pk
    judgment_record(assignment_token=open_.token, annotator=annotator, choice="left")
    with pytest.raises(QuotaReached):
        assignment_next(study=study, annotator=annotator)
    assert Assignment.objects.filter(annotator=annotator).count() == 3


def test_k_is_never_exceeded_and_nothing_is_seen_twice(db):
    study = opened(generators=3, items=5, k=2, catch_rate=0.2, calibration_rate=0.2)
    people = annotators(12)
    exhausted = set()
    while len(exhausted) < len(people):
        for person in people:
            if person.pk not in exhausted and judge(study, person) is None:
                exhausted.add(person.pk)
    assert_invariants(study)
    assert set(study.trials.values_list("judgment_count", flat=True)) == {2}
    seen = Counter(Assignment.objects.values_list("annotator_id", "item_id"))
    assert max(seen.values()) == 1


def test_sides_are_balanced_per_annotator_in_blocks_of_varying_size(db):
    study = opened(generators=1, items=120, k=1, quota=120)
    (annotator,) = annotators(1)
    sides = [judge(study, annotator).reference_side for _ in range(120)]
    left = right = 0
    ends = []  # where the running count is level: a block may end only there
    for n, side in enumerate(sides, 1):
        left, right = left + (side == "left"), right + (side == "right")
        assert abs(left - right) <= max(SIDE_BLOCK_SIZES) // 2
        if left == right:
            ends.append(n)
    # Balanced blocks end on a level count, and not all at one period.
    gaps = {b - a for a, b in zip([0, *ends], ends)}
    assert max(b - a for a, b in zip([0, *ends], ends)) <= max(SIDE_BLOCK_SIZES)
    assert len(gaps) > 1


def test_the_fewest_judged_trial_comes_first(db):
    study = opened(generators=1, items=3, k=3)
    first, second, third = annotators(3)
    a = judge(study, first)
    b = judge(study, second)
    c = judge(study, third)
    assert len({a.trial_id, b.trial_id, c.trial_id}) == 3
    # Every trial has one judgment; the next annotator's trial is one of them.
    d = judge(study, annotators(1)[0])
    assert Trial.objects.get(pk=d.trial_id).judgment_count == 2


def test_generators_are_balanced_within_an_annotator(db):
    study = opened(generators=3, items=30, k=5)
    (annotator,) = annotators(1)
    seen = Counter(judge(study, annotator).trial.sample.generator_id for _ in range(30))
    assert sorted(seen.values()) == [10, 10, 10]


def test_a_generator_marked_done_is_no_longer_served(db):
    study = opened(generators=3, items=30, k=5)
    first, second = annotators(2)
    before = Counter(judge(study, first).trial.sample.generator_id for _ in range(6))
    done = sorted(before)[0]
    study.generators_done = [done]
    study.save(update_fields=["generators_done"])
    after = Counter(judge(study, person).trial.sample.generator_id for person in (first, second) for _ in range(12))
    assert len(before) == 3 and done not in after
    assert sorted(after.values()) == [12, 12]
    study.generators_done = [g for g in before]
    study.save(update_fields=["generators_done"])
    assert judge(study, first) is None


def test_controls_are_mixed_in(db):
    study = opened(generators=1, items=20, k=1, catch_rate=0.25, calibration_rate=0.25)
    kinds = Counter()
    for person in annotators(4):
        while (assignment := judge(study, person)) is not None:
            kinds[assignment.trial.kind] += 1
    assert kinds == {"generated": 20, "catch": 5, "calibration": 5}


# ------------------------------------------------------------------------------
# Judging
# ------------------------------------------------------------------------------
def test_a_double_submit_returns_the_same_judgment(db):
    study = opened()
    (annotator,) = annotators(1)
    assignment = assignment_next(study=study, annotator=annotator)
    now = assignment.issued_at + timedelta(seconds=3)
    first = judgment_record(assignment_token=assignment.token, annotator=annotator, choice="left",
                            client_response_ms=2900, now=now)
    second = judgment_record(assignment_token=assignment.token, annotator=annotator, choice="right", now=now)
    assert second.pk == first.pk and second.choice == "left"
    assert first.server_response_ms == 3000
    assert Judgment.objects.count() == 1
    assert Trial.objects.get(pk=assignment.trial_id).judgment_count == 1


def test_a_bad_choice_is_refused(db):
    study = opened()
    (annotator,) = annotators(1)
    assignment = assignment_next(study=study, annotator=annotator)
    with pytest.raises(ValueError):
        judgment_record(assignment_token=assignment.token, annotator=annotator, choice="real")


def test_an_expired_assignment_cannot_be_judged(db):
    study = opened(timeout=60)
    (annotator,) = annotators(1)
    assignment = assignment_next(study=study, annotator=annotator)
    late = assignment.issued_at + timedelta(seconds=61)
    with pytest.raises(AssignmentExpired, match="expired"):
        judgment_record(assignment_token=assignment.token, annotator=annotator, choice="left", now=late)
    assert not Judgment.objects.exists()


def test_only_the_owner_may_judge(db):
    study = opened()
    owner, other = annotators(2)
    assignment = assignment_next(study=study, annotator=owner)
    with pytest.raises(AssignmentNotYours):
        judgment_record(assignment_token=assignment.token, annotator=other, choice="left")
    assert not Judgment.objects.exists()


@pytest.mark.parametrize("token", ["3f2c0d4e-0000-4000-8000-000000000000", "not-a-uuid"])
def test_an_unknown_token_is_refused(db, token):
    study = opened()
    (annotator,) = annotators(1)
    assignment_next(study=study, annotator=annotator)
    with pytest.raises(AssignmentUnknown):
        judgment_record(assignment_token=token, annotator=annotator, choice="left")


# ------------------------------------------------------------------------------
# Judging and issuing in one transaction (an htmx submit)
# ------------------------------------------------------------------------------
def test_record_and_next_records_and_issues_the_next_two(db):
    study = opened(quota=10)
    (annotator,) = annotators(1)
    first = assignment_next(study=study, annotator=annotator)
    now = first.issued_at + timedelta(seconds=2)
    judgment, issued = judgment_record_and_next(
        assignment_token=first.token, study=study, annotator=annotator, choice="right", now=now
    )
    assert judgment.assignment_id == first.pk and judgment.choice == "right" and judgment.annotator_judged == 1
    assert len(issued) == 2 and first.pk not in {a.pk for a in issued}
    current, upcoming = (Assignment.objects.get(pk=a.pk) for a in issued)
    assert current.shown_at == now and upcoming.shown_at is None
    assert Participation.objects.get(study=study, annotator=annotator).judged == 1
    # A double submit: the same judgment, the same two assignments, nothing new.
    again, reissued = judgment_record_and_next(
        assignment_token=first.token, study=study, annotator=annotator, choice="left", now=now
    )
    assert again.pk == judgment.pk and again.choice == "right"
    assert [a.pk for a in reissued] == [a.pk for a in issued]
    assert Assignment.objects.filter(annotator=annotator).count() == 3
    assert_invariants(study)


def test_record_and_next_keeps_the_last_judgment_of_the_quota(db):
    study = opened(quota=2)
    (annotator,) = annotators(1)
    assignment = assignment_next(study=study, annotator=annotator)
    _, issued = judgment_record_and_next(assignment_token=assignment.token, study=study, annotator=annotator,
                                         choice="left")
    assert len(issued) == 1  # the quota leaves room for one, not one ahead
    judgment, issued = judgment_record_and_next(assignment_token=issued[0].token, study=study,
                                                annotator=annotator, choice="left")
    assert issued == [] and judgment.annotator_judged == 2
    assert Judgment.objects.filter(assignment__annotator=annotator).count() == 2
    with pytest.raises(QuotaReached):
        assignment_next(study=study, annotator=annotator)


def test_record_and_next_issues_nothing_when_a_break_is_due(db):
    study = opened(quota=10)
    study.break_every = 1
    study.save()
    (annotator,) = annotators(1)
    assignment = assignment_next(study=study, annotator=annotator)
    judgment, issued = judgment_record_and_next(assignment_token=assignment.token, study=study,
                                                annotator=annotator, choice="left")
    assert issued is None and judgment.annotator_judged == 1
    assert Assignment.objects.filter(annotator=annotator).count() == 1


def test_record_and_next_writes_nothing_for_an_expired_assignment(db):
    study = opened(timeout=60)
    (annotator,) = annotators(1)
    assignment = assignment_next(study=study, annotator=annotator)
    late = assignment.issued_at + timedelta(seconds=61)
    with pytest.raises(AssignmentExpired):
        judgment_record_and_next(assignment_token=assignment.token, study=study, annotator=annotator,
                                 choice="left", now=late)
    assert not Judgment.objects.exists()
    assert Participation.objects.get(study=study, annotator=annotator).judged == 0


# ------------------------------------------------------------------------------
# Expiry
# ------------------------------------------------------------------------------
def test_an_expired_assignment_returns_its_trial_to_the_pool_once(db):
    study = opened(generators=1, items=1, k=1, timeout=60)
    first, second = annotators(2)
    assignment = assignment_next(study=study, annotator=first)
    trial = assignment.trial
    assert assignment_next(study=study, annotator=second) is None  # the only slot is taken
    late = timezone.now() + timedelta(seconds=120)
    assert assignments_expire(now=late) == 1
    assert assignments_expire(now=late + timedelta(seconds=1)) == 0
    trial.refresh_from_db()
    assert trial.active_count == 0
    assignment.refresh_from_db()
    assert assignment.released_at == late
    # Another annotator gets it; the first never sees that trial or reference again.
    again = assignment_next(study=study, annotator=second, now=late)
    assert again.trial_id == trial.pk
    assert assignment_next(study=study, annotator=first, now=late) is None
    trial.refresh_from_db()
    assert trial.active_count == 1
    assert_invariants(study)


def test_expiry_is_lazy_inside_assignment_next(db):
    study = opened(generators=1, items=1, k=1, timeout=60)
    first, second = annotators(2)
    assignment_next(study=study, annotator=first)
    late = timezone.now() + timedelta(seconds=61)
    assert assignment_next(study=study, annotator=second, now=late) is not None
    assert_invariants(study)


def test_a_judged_assignment_never_expires(db):
    study = opened(generators=1, items=1, k=1, timeout=60)
    (annotator,) = annotators(1)
    judge(study, annotator)
    assert assignments_expire(now=timezone.now() + timedelta(hours=1)) == 0
    assert Trial.objects.get().active_count == 1
