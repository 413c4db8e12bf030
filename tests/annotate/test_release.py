"""`assignments_release`: one annotator's open assignments go back to the pool at once."""

from annotate.models import Assignment, Trial
from annotate.services import assignments_next, assignments_release, judgment_record
from tests.annotate.builders import annotators
from tests.annotate.invariants import assert_invariants
from tests.annotate.test_engine import opened


def test_release_frees_the_annotators_open_slots_only(db):
    study = opened(generators=1, items=4, k=1)
    visitor, other = annotators(2)
    judged, ahead = assignments_next(study=study, annotator=visitor, ahead=1)
    judgment_record(assignment_token=judged.token, annotator=visitor, choice="left")
    (current, _) = assignments_next(study=study, annotator=visitor, ahead=1)
    assert current.pk == ahead.pk
    (theirs,) = assignments_next(study=study, annotator=other, ahead=0)

    assert assignments_release(study=study, annotator=visitor) == 2
    assert assignments_release(study=study, annotator=visitor) == 0
    mine = Assignment.objects.filter(annotator=visitor)
    assert set(mine.filter(released_at__isnull=False).values_list("judgment", flat=True)) == {None}
    assert mine.get(pk=judged.pk).released_at is None
    assert Assignment.objects.get(pk=theirs.pk).released_at is None
    # Slots: the judged one and the other annotator's open one still count.
    assert sorted(Trial.objects.filter(study=study).values_list("active_count", flat=True)) == [0, 0, 1, 1]
    # The visitor is never given a released trial again; the other annotator can be.
    issued = {a.trial_id for a in mine}
    nexts = assignments_next(study=study, annotator=visitor, ahead=3)
    assert not issued & {a.trial_id for a in nexts}
    assert_invariants(study)
