"""The report's series section: a form the data cannot identify is named with its
reason instead of numbers, and forms are compared by the quasi-AIC."""

from html import unescape

from analysis.exports import report_json
from analysis.report_html import report_html
from analysis.services import study_report
from generation.models import Generator
from tests.analysis.builders import planted_study
from tests.analysis.conftest import TEST_OPTIONS

REASON = "the free-asymptote form needs at least 4 distinct scale values; this series has 3"


def test_three_sizes_leave_the_free_form_unfitted_and_say_why(db):
    planted = planted_study(annotators=12)
    Generator.objects.filter(pk=planted.generators[0].pk).update(params=None)
    report = study_report(study=planted.study, options=TEST_OPTIONS)

    (fit,) = report_json(report)["fits"]
    assert fit["axis"] == "params" and len(fit["x"]) == 3
    assert set(fit["forms"]) == {"saturating"} and fit["comparison"] is None
    assert fit["not_fitted"] == {"free": {"reason": "not_identified", "message": REASON, "n_distinct": 3,
                                          "needed": 4}}
    text = unescape(report_html(report))
    assert f"The free form is not fitted: {REASON}." in text
    assert "free form · QAIC" not in text and "saturating form · QAIC" in text


def test_four_sizes_fit_both_forms_and_compare_them_by_the_quasi_aic(db):
    planted = planted_study(annotators=12)
    report = study_report(study=planted.study, options=TEST_OPTIONS)
    (fit,) = report_json(report)["fits"]
    assert set(fit["forms"]) == {"saturating", "free"} and fit["not_fitted"] == {}
    assert fit["criterion"] == "qaic" and "delta_qaic" in fit["comparison"]
    # A form flagged not identified is not bootstrapped; the saturating one here is.
    assert fit["forms"]["saturating"]["flags"] == []
    assert all(form["resampled"] == ("" if "not_identified" in form["flags"] else "prompts x annotators")
               for form in fit["forms"].values())
    text = unescape(report_html(report))
    assert "ΔQAIC = " in text and "AIC =" not in text.replace("QAIC =", "")


def test_each_series_has_a_verdict_in_json_html_and_csv(db):
    import csv
    import io

    from analysis.exports import report_csv

    planted = planted_study(annotators=12)
    report = study_report(study=planted.study, options=TEST_OPTIONS)
    (fit,) = report_json(report)["fits"]
    verdict = fit["verdict"]
    assert verdict["verdict"] in ("reaches_parity", "stays_below_parity", "undetermined")
    assert verdict["margin"] == 0.05 and verdict["power"] == 0.8
    assert verdict["judgments"] == sum(g["rate"]["n"] for g in report_json(report)["generators"])
    assert fit["dispersion_basis"] in ("asymptote", "design effect") and fit["dispersion"] >= 1
    text = unescape(report_html(report))
    assert f'data-verdict="{verdict["verdict"]}"' in text and verdict["reason"] in text
    assert "(conditional on reaching parity)" in text
    rows = list(csv.DictReader(io.StringIO(report_csv(report))))
    applied = [row for row in rows if row["exclusions"] == "applied"]
    assert {row["verdicts"] for row in applied} == {f"params={verdict['verdict']}"}
    assert all(row["verdicts"] == "" for row in rows if row["exclusions"] == "none")


def test_three_sizes_give_an_undetermined_verdict_that_names_the_missing_size(db):
    planted = planted_study(annotators=12)
    Generator.objects.filter(pk=planted.generators[0].pk).update(params=None)
    report = study_report(study=planted.study, options=TEST_OPTIONS)
    (fit,) = report_json(report)["fits"]
    assert fit["verdict"]["verdict"] == "undetermined" and fit["verdict"]["judgments_needed"] is None
    assert REASON in fit["verdict"]["reason"]
    assert "needs the free-asymptote form, and so a fourth scale value" in unescape(report_html(report))
