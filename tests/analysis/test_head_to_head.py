"""Head-to-head trials in a study's report, from the database: the judgments as read
by `selectors.study_data`, the Bradley-Terry section (pooled rates, win matrix, fit
check), pooled scaling fits, the CSV's appended columns, anchors on the timeline, and
the uncertain pairs the analysis hands to the assignment engine."""

import csv
import io
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from scipy.special import expit, logit

from analysis import services
from analysis.exports import CSV_COLUMNS, report_csv, report_json
from analysis.report_html import report_html
from analysis.selectors import study_data
from analysis.services import study_plan_update, study_plan_update_request_open, study_report
from analysis.stats import HEAD_TO_HEAD
from annotate.models import Annotator, Assignment, Judgment, Side, Study, Trial
from generation.models import Sample
from tests.analysis.builders import GENERATED_ITEMS, OTHER, TRUTH, planted_study
from tests.analysis.conftest import TEST_OPTIONS

# Neighbours along the series: (probe, opponent) generator indices.
PAIRS = ((0, 1), (1, 2), (2, 3))
JUDGES = 12


def add_head_to_head(planted, *, judges: int = JUDGES, seed: int = 1) -> np.ndarray:
    """Head-to-head trials of `PAIRS` on the generated items, judged by `judges` new
    annotators (each sees every such item once, in one pair) with Bradley-Terry
    probabilities from `TRUTH`; returns the (G, G) wins of row over column."""
    rng = np.random.default_rng(seed)
    study, generators = planted.study, planted.generators
    items = planted.items[:GENERATED_ITEMS]
    samples = {(s.generator_id, s.item_id): s for s in Sample.objects.filter(generator__in=generators)}
    trials = Trial.objects.bulk_create(
        Trial(study=study, kind=Trial.Kind.HEAD_TO_HEAD, item=item, generator=generators[a],
              sample=samples[(generators[a].pk, item.pk)], opponent=generators[b],
              opponent_sample=samples[(generators[b].pk, item.pk)])
        for item in items for a, b in PAIRS
    )
    by_key = {(t.generator_id, t.opponent_id, t.item_id): t for t in trials}
    people = Annotator.objects.bulk_create(Annotator(source=Annotator.Source.INVITE) for _ in range(judges))
    wins = np.zeros((len(generators), len(generators)), dtype=np.int64)
    plan = []
    for p, person in enumerate(people):
        for index, item in enumerate(items):
            a, b = PAIRS[(index + p) % len(PAIRS)]
            trial = by_key[(generators[a].pk, generators[b].pk, item.pk)]
            probe_wins = rng.random() < expit(logit(TRUTH[a]) - logit(TRUTH[b]))
            wins[(a, b) if probe_wins else (b, a)] += 1
            # The opponent's sample sits on the reference's side.
            reference = Side.LEFT if rng.random() < 0.5 else Side.RIGHT
            plan.append((trial, person, reference, OTHER[reference] if probe_wins else reference))
    expires = timezone.now() + timedelta(hours=1)
    assignments = Assignment.objects.bulk_create(
        Assignment(trial=trial, annotator=person, study=study, item_id=trial.item_id, reference_side=reference,
                   expires_at=expires)
        for trial, person, reference, _ in plan
    )
    Judgment.objects.bulk_create(
        Judgment(assignment=assignment, choice=choice, client_response_ms=1500, server_response_ms=1540)
        for assignment, (_, _, _, choice) in zip(assignments, plan)
    )
    return wins


@pytest.fixture
def paired(db):
    planted = planted_study(slug="paired", annotators=24)
    planted.wins = add_head_to_head(planted)
    return planted


def test_study_data_reads_the_opponent_with_the_generators_codes(paired):
    judgments = study_data(study=paired.study).judgments
    pair = judgments.kind == HEAD_TO_HEAD
    assert pair.sum() == JUDGES * GENERATED_ITEMS
    ids = np.array(judgments.generator_labels)
    probe, opponent = ids[judgments.generator[pair]], ids[judgments.opponent[pair]]
    index = {g.pk: i for i, g in enumerate(paired.generators)}
    assert {(index[a], index[b]) for a, b in zip(probe.tolist(), opponent.tolist())} == set(PAIRS)
    assert (judgments.opponent[~pair] == -1).all()
    # The probe won where the other side than the reference's was chosen.
    won = np.zeros_like(paired.wins)
    for a, b, chose in zip(probe.tolist(), opponent.tolist(), judgments.chose_generated[pair].tolist()):
        won[(index[a], index[b]) if chose else (index[b], index[a])] += 1
    assert (won == paired.wins).all()


def test_report_pools_head_to_head_judgments_on_one_scale(paired):
    report = study_report(study=paired.study, options=TEST_OPTIONS)
    body = report_json(report)
    assert body["version"] >= 8
    assert body["counts"]["head_to_head"] == JUDGES * GENERATED_ITEMS
    bt = body["bradley_terry"]
    assert bt["source"] == "vs-real and head-to-head"
    assert bt["head_to_head"] == JUDGES * GENERATED_ITEMS
    assert [p["name"] for p in bt["players"]] == ["real"] + [g.name for g in paired.generators]
    rates = {g["id"]: g["rate"] for g in body["generators"]}
    wins, totals = np.array(bt["wins"]), np.array(bt["totals"])
    # Generators among themselves: exactly the head-to-head judgments written (no one
    # who judged them is excluded).
    assert (wins[1:, 1:] == paired.wins).all()
    assert (totals[1:, 1:] == paired.wins + paired.wins.T).all()
    for i, (g, row) in enumerate(zip(paired.generators, bt["generators"]), start=1):
        assert row["id"] == g.pk
        # Against the real images: the kept vs-real judgments of the rate table.
        assert totals[0, i] == totals[i, 0] == rates[g.pk]["n"] == row["n_vs_real"]
        assert wins[i, 0] == rates[g.pk]["wins"]
        assert row["n_head_to_head"] == totals[i, 1:].sum()
        assert row["pooled_low"] < row["pooled_rate"] < row["pooled_high"]
        assert row["pooled_low"] <= TRUTH[i - 1] <= row["pooled_high"]
        assert row["direct_rate"] == rates[g.pk]["rate"]
        assert row["flags"] == []
    # The middle generators meet two neighbours: their pooled intervals are the narrower.
    for row in bt["generators"][1:3]:
        assert row["pooled_high"] - row["pooled_low"] < row["direct_high"] - row["direct_low"]
    assert bt["fit"]["df"] > 0 and 0 <= bt["fit"]["p_value"] <= 1 and bt["fit"]["reading"]
    assert bt["position_effect"]["low"] < bt["position_effect"]["gamma"] < bt["position_effect"]["high"]
    # Scaling fits on either: the direct ones first, unchanged, then the pooled ones.
    sources = [fit["source"] for fit in body["fits"]]
    assert sources == sorted(sources) and "direct" in sources and "pooled" in sources
    pooled = [fit for fit in body["fits"] if fit["source"] == "pooled"]
    assert pooled[0]["forms"]["saturating"]["intervals"]["alpha"][0] is not None

    rows = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert tuple(rows[0]) == CSV_COLUMNS
    for row in rows:
        g = next(g for g in bt["generators"] if g["id"] == int(row["generator_id"]))
        if row["exclusions"] == "applied":
            assert float(row["pooled_rate"]) == pytest.approx(g["pooled_rate"])
            assert float(row["pooled_low"]) < float(row["pooled_rate"]) < float(row["pooled_high"])
            assert int(row["n_head_to_head"]) == g["n_head_to_head"] > 0
            assert row["bt_flags"] == ""
        else:
            assert row["pooled_rate"] == row["n_head_to_head"] == ""

    page = report_html(report)
    assert 'id="report-bradley-terry"' in page and 'id="win-matrix"' in page
    assert "One scale: Bradley–Terry" in page and 'data-source="pooled"' in page
    assert 'id="pooled-vs-real-only"' not in page


def test_without_head_to_head_the_pooled_section_is_the_vs_real_fit(db):
    planted = planted_study(slug="alone", annotators=12)
    report = study_report(study=planted.study, options=TEST_OPTIONS)
    bt = report_json(report)["bradley_terry"]
    assert bt["source"] == "vs-real only" and bt["head_to_head"] == 0
    for row in bt["generators"]:
        assert row["n_head_to_head"] == 0
        assert row["pooled_rate"] == pytest.approx(row["direct_rate"], abs=0.03)
    assert all(fit["source"] == "direct" for fit in report_json(report)["fits"])
    assert 'id="pooled-vs-real-only"' in report_html(report)


def test_anchors_come_first_on_the_timeline(db):
    planted = planted_study(slug="anchored", annotators=12)
    anchor = planted.generators[2]
    Study.objects.filter(pk=planted.study.pk).update(anchor_generators=[anchor.pk])
    planted.study.refresh_from_db()
    report = study_report(study=planted.study, options=TEST_OPTIONS)
    timeline = report_json(report)["timeline"]
    assert timeline["anchors"] == [anchor.pk]
    assert timeline["generators"][0]["id"] == anchor.pk and timeline["generators"][0]["anchor"]
    assert not any(g["anchor"] for g in timeline["generators"][1:])
    rows = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert {row["generator_id"] for row in rows if row["anchor"] == "true"} == {str(anchor.pk)}


def test_plan_update_serves_the_uncertain_pairs(paired, monkeypatch):
    study = paired.study
    Study.objects.filter(pk=study.pk).update(status=Study.Status.OPEN, head_to_head_share=0.3,
                                             head_to_head_pairs=Study.Pairs.UNCERTAIN)
    study.refresh_from_db()
    sent = []
    monkeypatch.setattr(services, "task_send", lambda *, name, args=(): sent.append((name, args)))
    assert study_plan_update_request_open() == 1 and sent == [("study_plan_update_task", (study.pk,))]
    before = Trial.objects.filter(study=study, kind=Trial.Kind.HEAD_TO_HEAD).count()
    # No target half-width: nothing done is written, but the pairs are.
    assert study_plan_update(study=study, options=TEST_OPTIONS) is None
    study.refresh_from_db()
    ids = {g.pk for g in paired.generators}
    pairs = study.head_to_head_active
    assert len(pairs) == len(ids) - 1 == len({tuple(p) for p in pairs})
    assert all(a != b and {a, b} <= ids for a, b in pairs)
    # Some chosen pair was not served before (the far pairs of the ladder): its trials are built.
    served_before = {(paired.generators[a].pk, paired.generators[b].pk) for a, b in PAIRS}
    if any(tuple(p) not in served_before and tuple(p[::-1]) not in served_before for p in pairs):
        assert Trial.objects.filter(study=study, kind=Trial.Kind.HEAD_TO_HEAD).count() > before


def test_plan_update_leaves_neighbour_pairs_alone(paired):
    study = paired.study
    Study.objects.filter(pk=study.pk).update(status=Study.Status.OPEN, head_to_head_share=0.3)
    study.refresh_from_db()
    assert study.head_to_head_pairs == Study.Pairs.NEIGHBOURS
    assert study_plan_update(study=study, options=TEST_OPTIONS) is None
    study.refresh_from_db()
    assert study.head_to_head_active == []
