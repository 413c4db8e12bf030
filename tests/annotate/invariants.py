"""The invariants of the assignment engine, recounted from the rows themselves."""

from collections import Counter

from annotate.models import Assignment, Judgment, Participation, Study, Trial


def assert_invariants(study: Study) -> None:
    k = Study.objects.get(pk=study.pk).judgments_per_trial
    assignments = list(Assignment.objects.filter(study=study).values(
        "id", "trial_id", "annotator_id", "item_id", "released_at"))
    judged = set(Judgment.objects.filter(assignment__study=study).values_list("assignment_id", flat=True))
    active = Counter(a["trial_id"] for a in assignments if a["released_at"] is None)
    judgments = Counter(a["trial_id"] for a in assignments if a["id"] in judged)
    trials = {t["id"]: t for t in Trial.objects.filter(study=study).values("id", "kind", "active_count", "judgment_count")}
    for trial in trials.values():
        assert trial["active_count"] == active[trial["id"]], trial
        assert trial["judgment_count"] == judgments[trial["id"]], trial
        # Practice trials are shown to everyone: k does not apply to them.
        assert trial["active_count"] <= k or trial["kind"] == Trial.Kind.PRACTICE, trial
    assert not any(a["released_at"] is not None and a["id"] in judged for a in assignments)
    pairs = Counter((a["annotator_id"], a["trial_id"]) for a in assignments)
    assert max(pairs.values(), default=1) == 1
    references = Counter((a["annotator_id"], a["item_id"]) for a in assignments)
    assert max(references.values(), default=1) == 1
    # The engine's running counts per annotator agree with the rows they summarise.
    study_rows = [a for a in assignments if trials[a["trial_id"]]["kind"] != Trial.Kind.PRACTICE]
    issued = Counter(a["annotator_id"] for a in study_rows)
    made = Counter(a["annotator_id"] for a in study_rows if a["id"] in judged)
    for participation in Participation.objects.filter(study=study):
        assert participation.issued == issued[participation.annotator_id], participation
        assert participation.judged == made[participation.annotator_id], participation
