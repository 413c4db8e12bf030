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
    assert all(form["resampled"] == "prompts x annotators" for form in fit["forms"].values())
    text = unescape(report_html(report))
    assert "ΔQAIC = " in text and "AIC =" not in text.replace("QAIC =", "")
