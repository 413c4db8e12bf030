"""A study's report built from the database, against a study whose truth is known
(tests/analysis/builders.py): JSON, CSV, HTML, exclusions, fits, alignment, simulated
annotators, and the planning hook that writes `Study.generators_done`."""

import csv
import io
import json
import re
from html import unescape

import numpy as np
import pytest

from analysis.exports import CSV_COLUMNS, report_csv, report_json
from analysis.report_html import report_html
from analysis.reports import AnnotatorInfo, ReportInput, ReportOptions, report_from_input
from analysis.scaling import GeneratorInfo
from analysis.services import study_plan_update, study_report
from analysis.stats import ExclusionRules, Judgments, clopper_pearson_interval, wilson_interval
from annotate.models import Study
from generation.models import Generator
from tests.analysis.builders import CATCH_ITEMS, PARAMS, TRUTH, add_annotators, planted_study, study_with_trials
from tests.analysis.conftest import TEST_OPTIONS
from tests.annotate.builders import build_study


@pytest.fixture
def planted(db):
    return planted_study()


@pytest.fixture
def report(planted):
    return study_report(study=planted.study, options=TEST_OPTIONS)


def test_json_has_the_rates_in_scale_order_with_intervals_that_cover_the_truth(planted, report):
    body = report_json(report)
    generators = body["generators"]
    assert [g["id"] for g in generators] == [g.pk for g in planted.generators]
    assert [g["params"] for g in generators] == list(PARAMS)
    rates = [g["rate"]["rate"] for g in generators]
    assert rates == sorted(rates)
    for g, truth in zip(generators, TRUTH):
        rate = g["rate"]
        assert rate["low"] < rate["rate"] < rate["high"]
        assert rate["low"] <= truth <= rate["high"]
        assert rate["level"] == 0.95 and rate["n_boot"] == TEST_OPTIONS.n_boot
        # Without exclusions: the excluded annotators' judgments are back in.
        assert g["rate_all"]["n"] > rate["n"]
    assert body["study"]["slug"] == "ladder"
    assert body["study"]["presentation_policy"]["format"] == "JPEG"
    # Strict JSON: NaN and infinities are null.
    json.dumps(body, allow_nan=False)


def test_exclusions_remove_the_planted_annotators_and_count_per_rule(planted, report):
    body = report_json(report)
    per_annotator = len(planted.items)
    assert body["exclusions"]["by_rule"] == {
        "catch_accuracy": {"annotators": 2, "judgments": 2 * per_annotator, "judgments_only": per_annotator},
        "too_fast": {"annotators": 1, "judgments": per_annotator, "judgments_only": 0},
    }
    assert body["exclusions"]["n_excluded"] == body["counts"]["excluded_judgments"] == 2 * per_annotator
    assert body["exclusions"]["jump"]["flagged"] is False
    rows = {row["pseudonym"]: row for row in body["annotators"]}
    assert rows[str(planted.clicker.pseudonym)]["excluded_by"] == ["catch_accuracy", "too_fast"]
    assert rows[str(planted.careless.pseudonym)]["excluded_by"] == ["catch_accuracy"]
    assert sum(row["excluded"] for row in rows.values()) == 2
    # No database or platform id of an annotator leaves in a report.
    assert {row["pseudonym"] for row in body["annotators"]} == {str(a.pseudonym) for a in planted.annotators}
    assert all("label" not in row for row in body["annotators"])


def test_rules_follow_the_study_settings(planted):
    Study.objects.filter(pk=planted.study.pk).update(exclude_catch_accuracy_below=None, exclude_fast_share_above=None)
    planted.study.refresh_from_db()
    body = report_json(study_report(study=planted.study, options=TEST_OPTIONS))
    assert body["exclusions"]["by_rule"] == {} and body["exclusions"]["n_excluded"] == 0
    assert all(g["rate"]["n"] == g["rate_all"]["n"] for g in body["generators"])


def test_the_catch_rule_waits_for_min_catch_trials(planted):
    Study.objects.filter(pk=planted.study.pk).update(min_catch_trials=CATCH_ITEMS + 1)
    planted.study.refresh_from_db()
    report = study_report(study=planted.study, options=TEST_OPTIONS)
    rows = {row["pseudonym"]: row for row in report_json(report)["annotators"]}
    # Every annotator was dealt CATCH_ITEMS catch trials: too few to be judged on them.
    assert rows[str(planted.careless.pseudonym)]["excluded_by"] == []
    assert rows[str(planted.clicker.pseudonym)]["excluded_by"] == ["too_fast"]
    assert f"catch-trial accuracy below (annotators with at least {CATCH_ITEMS + 1} catch trials)" in unescape(
        report_html(report))


def test_the_series_is_fitted_along_params_with_extrapolation(planted, report):
    body = report_json(report)
    (fit,) = body["fits"]  # steps and the sampler do not vary: params is the only axis
    assert (fit["series"], fit["axis"]) == ("ladder-series", "params")
    assert fit["generators"] == [g.pk for g in planted.generators]
    assert fit["x"] == [float(p) for p in PARAMS]
    saturating = fit["forms"]["saturating"]
    assert set(saturating["params"]) == {"A", "alpha"}
    low, high = saturating["intervals"]["alpha"]
    assert 0 < low < saturating["params"]["alpha"] < high
    for gap in ("0.05", "0.01"):
        entry = saturating["x_at_gap"][gap]
        assert set(entry) == {"x", "low", "high", "reached", "conditional_on"}
        assert entry["conditional_on"].startswith("reaching parity")
    assert saturating["x_at_gap"]["0.05"]["reached"] and saturating["x_at_gap"]["0.05"]["x"] > PARAMS[-1]
    assert saturating["x_at_gap"]["0.01"]["x"] > saturating["x_at_gap"]["0.05"]["x"]
    assert set(fit["forms"]["free"]["params"]) == {"A", "alpha", "p_inf"}
    assert set(fit["comparison"]) == {"lr", "df", "p_value", "delta_qaic"} and fit["comparison"]["df"] == 1
    assert all(isinstance(note, str) for note in fit["notes"])


def test_alignment_with_metrics_has_the_right_sign(report):
    alignment = {row["metric"]: row for row in report_json(report)["alignment"]}
    assert alignment["val_loss"]["spearman"] == pytest.approx(-1.0)  # lower loss, more often chosen
    assert alignment["clip_score"]["spearman"] == pytest.approx(1.0)
    assert alignment["val_loss"]["kendall"] == pytest.approx(-1.0)
    assert alignment["val_loss"]["n"] == 4
    assert alignment["val_loss"]["spearman_low"] <= alignment["val_loss"]["spearman_high"]


def test_simulated_annotators_are_counted_and_marked(planted, report):
    body = report_json(report)
    assert body["counts"]["simulated_annotators"] == 1
    assert body["counts"]["simulated_judgments"] == len(planted.items)
    rows = {row["pseudonym"]: row for row in body["annotators"]}
    simulated = str(planted.simulated.pseudonym)
    assert rows[simulated]["simulated"] is True and rows[simulated]["source"] == "simulated"
    assert sum(row["simulated"] for row in rows.values()) == 1
    html = report_html(report)
    assert "1 of 30 annotators" in html
    row = re.search(rf'<tr class="[^"]*simulated[^"]*" data-annotator="{simulated}">(.*?)</tr>', html, re.S)
    assert row and "simulated-badge" in row.group(1)


def test_csv_has_the_documented_columns_with_and_without_exclusions(planted, report):
    text = report_csv(report)
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 2 * len(planted.generators)
    assert [row["exclusions"] for row in rows[:2]] == ["applied", "none"]
    assert [row["generator"] for row in rows[::2]] == [g.name for g in planted.generators]
    assert [int(row["params"]) for row in rows[::2]] == list(PARAMS)
    for row in rows:
        assert float(row["low"]) <= float(row["rate"]) <= float(row["high"])
        assert row["study"] == "ladder" and row["series"] == "ladder-series"
        assert row["train_images"] == ""  # unknown


BOUND_COLUMNS = ("low", "high", "wilson_low", "wilson_high", "cgm_low", "cgm_high", "cp_low", "cp_high")


def test_csv_ends_with_the_clopper_pearson_interval_beside_wilson(report):
    # Columns are only added at the end: a script reading by position keeps working.
    assert CSV_COLUMNS[30:32] == ("cp_low", "cp_high") and CSV_COLUMNS.index("n_boot") == 29
    assert CSV_COLUMNS[32:41] == ("flags", "verdicts", "fit_flags", "n_samples", "seed_share", "prompt_share",
                                 "time_adjusted", "drift_slope", "drift_p")
    assert CSV_COLUMNS[41:] == ("pooled_rate", "pooled_low", "pooled_high", "n_head_to_head", "bt_flags", "anchor",
                                "blank_samples")
    rows = list(csv.DictReader(io.StringIO(report_csv(report))))
    body = report_json(report)
    for row in rows[::2]:
        n, wins = int(row["n"]), int(row["wins"])
        expected = clopper_pearson_interval(wins, n, 0.95)
        assert (float(row["cp_low"]), float(row["cp_high"])) == pytest.approx(expected, abs=1e-15)
        assert (float(row["wilson_low"]), float(row["wilson_high"])) == pytest.approx(wilson_interval(wins, n))
    rate = body["generators"][0]["rate"]
    assert rate["cp_low"] < rate["raw_rate"] < rate["cp_high"]
    assert {"cp_low", "cp_high"} <= set(body["calibration"])


def test_bounds_at_no_wins_and_all_wins_are_exactly_0_and_1_in_csv_and_json():
    # Three generators: never chosen, always chosen, in between. Unclamped, Wilson's
    # lower bound at k = 0 comes out like -3.47e-18 for many n.
    item = np.tile(np.arange(41), 3)
    generator = np.repeat([0, 1, 2], 41)
    chose = np.r_[np.zeros(41, bool), np.ones(41, bool), np.arange(41) % 3 == 0]
    judgments = Judgments.build(generator=generator, item=item, annotator=item % 7,
                                generated_left=np.arange(len(item)) % 2 == 0, chose_generated=chose)
    data = ReportInput(
        judgments=judgments,
        generators=tuple(GeneratorInfo(id=i + 1, name=name) for i, name in enumerate(("never", "always", "some"))),
        annotators=tuple(AnnotatorInfo(pseudonym=f"p{a}", source="prolific") for a in range(7)),
        configuration={"slug": "edges"},
        rules=ExclusionRules(min_catch_accuracy=None, max_fast_share=None),
    )
    report = report_from_input(data, ReportOptions(n_boot=50, fit_boot=5))
    rows = {(row["generator"], row["exclusions"]): row for row in csv.DictReader(io.StringIO(report_csv(report)))}
    for (name, _), row in rows.items():
        # Never or always chosen: no clustered interval of zero width, a flag instead.
        flagged = name in ("never", "always")
        assert ("no_variation" in row["flags"].split(";")) == flagged
        for column in BOUND_COLUMNS:
            if flagged and column in ("low", "high", "cgm_low", "cgm_high"):
                assert row[column] == "", (name, column, row[column])
                continue
            assert "e" not in row[column].lower() and 0 <= float(row[column]) <= 1, (name, column, row[column])
    for setting in ("applied", "none"):
        never, always = rows["never", setting], rows["always", setting]
        assert [never[c] for c in ("wilson_low", "cp_low")] == ["0.0", "0.0"]
        assert [always[c] for c in ("wilson_high", "cp_high")] == ["1.0", "1.0"]
    rates = {g["name"]: g["rate"] for g in report_json(report)["generators"]}
    assert (rates["never"]["wilson_low"], rates["never"]["cp_low"]) == (0.0, 0.0)
    assert (rates["always"]["wilson_high"], rates["always"]["cp_high"]) == (1.0, 1.0)


def test_html_is_self_contained_and_shows_the_configuration(planted, report):
    html = report_html(report)
    text = unescape(html)
    assert html.startswith("<!doctype html>")
    assert html.count("<svg") >= 4  # forest, scaling, calibration, alignment
    assert "<script" not in html and "<link" not in html and "<img" not in html
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html)
    assert "@import" not in html
    assert not re.search(r"""url\(\s*["']?(?!#)""", html)  # only references inside the page: url(#clip)
    for shown in ('"quality": 90', '"crop": "center"', "exclude_catch_accuracy_below", "fast_response_ms",
                  "ladder-g3", "Preference rate per generator", "Scaling", "Exclusions", "Calibration",
                  "Wilson", "Clopper–Pearson"):
        assert shown in text, shown
    rates = report.analysis.rates
    first = report.order[0]
    row = re.search(r'<tr data-generator="ladder-g0">(.*?)</tr>', html, re.DOTALL).group(1)
    shown = re.search(r'class="nowrap clopper-pearson">\[([\d.]+), ([\d.]+)\]<', row).groups()
    assert shown == (f"{rates.cp_low[first]:.3f}", f"{rates.cp_high[first]:.3f}")
    assert re.search(rf'class="nowrap wilson">\[{rates.wilson_low[first]:.3f}, {rates.wilson_high[first]:.3f}\]<', row)


def test_html_escapes_names(planted):
    planted.generators[0].name = '<script>alert("x")</script>'
    planted.generators[0].save(update_fields=["name"])
    html = report_html(study_report(study=planted.study, options=TEST_OPTIONS))
    assert "<script" not in html
    assert "&lt;script&gt;" in html


def test_a_study_without_judgments_still_reports(db):
    study = build_study(generators=2, items=3, slug="empty")
    report = study_report(study=study, options=TEST_OPTIONS)
    body = report_json(report)
    assert body["counts"]["judgments"] == 0 and body["fits"] == []
    assert [(g["rate"]["n"], g["rate"]["rate"]) for g in body["generators"]] == [(0, None), (0, None)]
    json.dumps(body, allow_nan=False)
    assert "No judgments of generated trials yet." in report_html(report)
    assert len(report_csv(report).splitlines()) == 1 + 2 * 2


def test_a_generator_not_judged_yet_has_a_row_without_a_rate(planted):
    before = report_json(study_report(study=planted.study, options=TEST_OPTIONS))
    idle = Generator.objects.create(workspace=planted.study.workspace, name="ladder-idle",
                                    series=planted.generators[0].series, params=10**11, metrics={"val_loss": 0.1})
    planted.study.generators.add(idle)
    report = study_report(study=planted.study, options=TEST_OPTIONS)
    body = report_json(report)
    json.dumps(body, allow_nan=False)
    row = body["generators"][-1]  # the largest of the series
    assert row["id"] == idle.pk
    for rate in (row["rate"], row["rate_all"]):
        assert (rate["n"], rate["n_items"], rate["n_annotators"]) == (0, 0, 0)
        assert rate["rate"] is None and rate["low"] is None and rate["high"] is None
    # The judged generators, the fit and the alignment are as they were without it.
    judged = body["generators"][:-1]
    assert [(g["id"], g["rate"]["n"], g["rate"]["rate"]) for g in judged] == \
        [(g["id"], g["rate"]["n"], g["rate"]["rate"]) for g in before["generators"]]
    assert [g["rate"]["low"] for g in judged] == pytest.approx([g["rate"]["low"] for g in before["generators"]])
    assert [fit["generators"] for fit in body["fits"]] == [fit["generators"] for fit in before["fits"]]
    assert {a["metric"]: a["n"] for a in body["alignment"]} == {"val_loss": 4, "clip_score": 4}

    rows = list(csv.DictReader(io.StringIO(report_csv(report))))
    idle_rows = [r for r in rows if r["generator"] == "ladder-idle"]
    assert [(r["exclusions"], r["n"], r["rate"], r["low"]) for r in idle_rows] == [("applied", "0", "", ""),
                                                                                   ("none", "0", "", "")]
    html = report_html(report)
    table_row = re.search(r'<tr data-generator="ladder-idle">(.*?)</tr>', html, re.DOTALL).group(1)
    assert "no judgments yet" in table_row
    assert "ladder-idle (no judgments yet)" in html  # its line of the forest plot
    assert "No judgments of generated trials yet." not in html


def test_the_plan_marks_generators_done_once_their_interval_is_narrow_enough(db):
    planted = study_with_trials(slug="plan")
    Study.objects.filter(pk=planted.study.pk).update(target_half_width=0.12)
    planted.study.refresh_from_db()
    # 10 judgments per generator and annotator: below the 100 judgments a generator needs.
    add_annotators(planted, 8, seed=1)
    assert study_plan_update(study=planted.study, options=TEST_OPTIONS) == []
    assert Study.objects.get(pk=planted.study.pk).generators_done == []

    add_annotators(planted, 40, seed=2)
    report = study_report(study=planted.study, options=TEST_OPTIONS)
    body = report_json(report)
    # Done by the plan's interval (two-way cluster-robust), not the rate's wider bootstrap one.
    done = [row["id"] for row in body["plan"]["generators"] if row["half_width"] <= 0.12 and row["judgments"] >= 100]
    assert done  # the target is met by some generators
    assert Study.objects.get(pk=planted.study.pk).generators_done == sorted(done) == body["plan"]["done"]
    assert [g["done"] for g in body["generators"]] == [g["id"] in done for g in body["generators"]]
    for row in body["plan"]["generators"]:
        assert row["judgments_more"] == 0 if row["done"] else row["judgments_more"] > 0
        assert row["prompts_min"] <= row["prompts_needed"]
    assert "Plan for a half-width of 0.12" in report_html(report)
    # The periodic update agrees with the report.
    assert study_plan_update(study=planted.study, options=TEST_OPTIONS) == sorted(done)


def test_calibration_says_which_interval_it_is_beside_the_bootstrap_one(report):
    body = report_json(report)
    calibration = body["calibration"]
    assert calibration["method"] == "cgm-t" and calibration["df"] >= 1
    # With no prompt or annotator effect the corrected interval is the narrower one.
    assert calibration["high"] - calibration["low"] < calibration["boot_high"] - calibration["boot_low"]
    assert calibration["covers_half"] == (calibration["low"] <= 0.5 <= calibration["high"])
    side = body["side_bias"]
    assert 0 <= side["cp_low"] <= side["share_left"] <= side["cp_high"] <= 1
    assert "two-way cluster-robust (CGM) with a t quantile" in report_html(report)


def test_without_a_target_the_generators_done_are_left_alone(planted):
    Study.objects.filter(pk=planted.study.pk).update(generators_done=[planted.generators[0].pk])
    planted.study.refresh_from_db()
    report = study_report(study=planted.study, options=TEST_OPTIONS)
    assert report.plan is None and report_json(report)["plan"] is None
    assert study_plan_update(study=planted.study) is None
    assert Study.objects.get(pk=planted.study.pk).generators_done == [planted.generators[0].pk]


def test_same_seed_same_report(planted):
    options = ReportOptions(n_boot=100, fit_boot=10, seed=3)
    first = report_json(study_report(study=planted.study, options=options))
    second = report_json(study_report(study=planted.study, options=options))
    for body in (first, second):
        body.pop("built_at"), body.pop("seconds")
    assert first == second


def test_degenerate_rates_show_their_flags_on_the_page_in_json_and_in_csv():
    # One judgment; five of one annotator; a generator nobody ever chose; one fine generator.
    rows = [(1, 0, 0, True, False)]
    rows += [(2, i, 0, i % 2 == 0, i < 2) for i in range(5)]
    rows += [(3, i % 20, i % 6, i % 2 == 0, False) for i in range(60)]
    rows += [(4, i % 20, i % 6, i % 2 == 0, i % 3 == 0) for i in range(60)]
    generator, item, annotator, left, chose = zip(*rows)
    judgments = Judgments.build(generator=generator, item=item, annotator=annotator, generated_left=left,
                                chose_generated=chose, generators=[1, 2, 3, 4, 5])
    names = ("one", "five", "never", "fine", "unjudged")
    data = ReportInput(
        judgments=judgments,
        generators=tuple(GeneratorInfo(id=i + 1, name=name) for i, name in enumerate(names)),
        annotators=tuple(AnnotatorInfo(pseudonym=f"p{a}", source="prolific") for a in range(6)),
        configuration={"slug": "degenerate"},
        rules=ExclusionRules(min_catch_accuracy=None, max_fast_share=None),
        target_half_width=0.05,
    )
    report = report_from_input(data, ReportOptions(n_boot=100, fit_boot=5))
    body = report_json(report)
    flags = {g["name"]: g["rate"]["flags"] for g in body["generators"]}
    assert {"too_few_judgments", "single_cluster"} <= set(flags["one"]) and "too_few_judgments" in flags["five"]
    assert flags["never"] == ["no_variation"] and flags["fine"] == [] and flags["unjudged"] == ["no_judgments"]
    for g in body["generators"]:
        if g["name"] != "fine":
            assert g["rate"]["low"] is None and g["rate"]["high"] is None and g["rate"]["effective_n"] is None
    plan = {row["name"]: row for row in body["plan"]["generators"]}
    assert plan["one"]["basis"] == "wilson" and plan["one"]["judgments_more"] >= 99 and not plan["one"]["done"]
    text = unescape(report_html(report))
    for flag in ("too_few_judgments", "single_cluster", "no_variation", "no_judgments"):
        assert f'data-flag="{flag}"' in text
    assert 'id="rate-flags"' in text
    assert "exclusions applied, no interval" in text  # the forest plot keeps the rate, as a cross
    csv_flags = {(row["generator"], row["exclusions"]): row["flags"]
                 for row in csv.DictReader(io.StringIO(report_csv(report)))}
    assert csv_flags["never", "applied"] == "no_variation" and csv_flags["fine", "applied"] == ""
    assert set(csv_flags["one", "none"].split(";")) >= {"too_few_judgments", "single_cluster"}


def test_a_study_of_two_seeds_per_prompt_reports_the_seeds_as_a_factor(db):
    from annotate import services
    from annotate.models import Annotator

    study = build_study(generators=1, items=6, seeds=(0, 1), k=3, slug="seeded")
    Study.objects.filter(pk=study.pk).update(seeds_per_item=2)
    study.refresh_from_db()
    services.study_build_trials(study=study)
    services.study_open(study=study)
    for index in range(6):
        annotator = Annotator.objects.create(source=Annotator.Source.SIMULATED)
        while (assignment := services.assignment_next(study=study, annotator=annotator)) is not None:
            services.judgment_record(assignment_token=assignment.token, annotator=annotator,
                                     choice="left" if (assignment.pk + index) % 3 else "right")
    report = study_report(study=study, options=TEST_OPTIONS)
    (generator,) = report_json(report)["generators"]
    assert generator["rate"]["n_samples"] == 12 and generator["rate"]["n_items"] == 6
    assert generator["rate"]["var_sample"] is not None
    assert "<th class=\"num\">Samples</th>" in report_html(report)
    row = next(csv.DictReader(io.StringIO(report_csv(report))))
    assert row["n_samples"] == "12"


def test_the_report_shows_rates_over_time_raw_and_adjusted(report):
    body = report_json(report)
    timeline = body["timeline"]
    assert timeline["unit"] in ("week", "block") and len(timeline["generators"]) == len(body["generators"])
    for entry, generator in zip(timeline["generators"], body["generators"]):
        assert entry["name"] == generator["name"]
        assert sum(block["n"] for block in entry["blocks"]) == generator["rate"]["n"]
        assert entry["raw"] == pytest.approx(generator["rate"]["raw_rate"])
        assert 0 < entry["adjusted"] < 1
    html = report_html(report)
    assert 'id="report-timeline"' in html and 'id="timeline-table"' in html
    row = next(csv.DictReader(io.StringIO(report_csv(report))))
    assert float(row["time_adjusted"]) == pytest.approx(timeline["generators"][0]["adjusted"])
