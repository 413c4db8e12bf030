"""Results per category in a report built from plain values: JSON, the categories' CSV, the
HTML section, the study's default fields, and what a field no item has gives."""

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from html import unescape

import numpy as np
import pytest
from django.utils.html import escape

from analysis.categories import MAX_VALUES, item_values_from
from analysis.category_exports import CATEGORY_CSV_COLUMNS, report_categories_csv
from analysis.exports import CSV_COLUMNS, report_csv, report_json
from analysis.report_html import report_html
from analysis.reports import AnnotatorInfo, ReportInput, ReportOptions, report_from_input
from analysis.scaling import GeneratorInfo
from analysis.stats import ExclusionRules
from tests.analysis.stats.simulated_categories import ITEMS, two_category_study

# A series of four along params: near parity on landscapes, far from it on people.
PARAMS = (10**7, 10**8, 10**9, 10**10)
TRUTH = {"landscape": (0.30, 0.38, 0.44, 0.47), "people": (0.08, 0.12, 0.17, 0.22)}
OPTIONS = ReportOptions(n_boot=300, fit_boot=20, bt_boot=0, category_fields=("category",))
HOSTILE = '<script>alert("x")</script> & $x^$'


def report_input(*, values=None, configuration=None, small: int = 0) -> ReportInput:
    judgments, codes, labels = two_category_study(truth=TRUTH, n_judgments=8000, small=small)
    if values is None:
        values = [labels[c] if c >= 0 else None for c in codes]
    generators = tuple(GeneratorInfo(id=10 + g, name=f"ladder-{g}", series_id=1, series="ladder", params=p)
                       for g, p in enumerate(PARAMS))
    return ReportInput(
        judgments=judgments, generators=generators,
        annotators=tuple(AnnotatorInfo(pseudonym=f"a{a}", source="prolific") for a in range(judgments.n_annotators)),
        configuration={"slug": "cats", **(configuration or {})}, rules=ExclusionRules(),
        item_values=item_values_from([{"category": v, "other": 1} for v in values]),
    )


@pytest.fixture(scope="module")
def report():
    return report_from_input(report_input(small=6), OPTIONS)


def test_json_ranks_the_category_near_parity_first_with_rates_fits_and_flags(report):
    section = report_json(report)["categories"]["category"]
    assert section["values"] == ["landscape", "people", "rare"]
    assert [row["value"] for row in section["where_first"]] == ["landscape", "people", "rare"]
    first, second, rare = section["where_first"]
    assert first["best"]["id"] == second["best"]["id"] == 13 and rare["best"] is None
    assert first["best"]["gap"] < 0.1 < second["best"]["gap"]
    # The saturating fit per value: parity closer along params on landscapes.
    assert first["x_at_gap"]["ladder/params"] < second["x_at_gap"]["ladder/params"]
    people = section["by_value"]["people"]
    assert people["n_items"] == ITEMS
    for row, truth in zip(people["generators"], TRUTH["people"]):
        assert row["low"] <= truth <= row["high"]
        assert row["adjusted_low"] <= row["low"] and row["high"] <= row["adjusted_high"]
    (fit,) = people["fits"]
    assert fit["fitted"] and fit["axis"] == "params" and fit["generators"] == [10, 11, 12, 13]
    assert fit["x_at_gap"]["0.05"]["conditional_on"].startswith("reaching parity")
    small = section["by_value"]["rare"]
    assert "too_few_judgments" in small["generators"][0]["flags"] and small["generators"][0]["low"] is None
    assert small["fits"][0]["fitted"] is False and "a fit needs 3" in small["fits"][0]["reason"]
    assert section["intervals"] == 8 and section["bonferroni_level"] == pytest.approx(1 - 0.05 / 8)
    assert "would miss their true rate by chance alone" in section["note"]
    assert report_json(report)["options"]["category_fields"] == ["category"]
    json.dumps(report_json(report), allow_nan=False)


def test_the_categories_have_their_own_csv_and_the_generators_csv_is_unchanged(report):
    rows = list(csv.DictReader(io.StringIO(report_categories_csv(report))))
    assert tuple(rows[0]) == CATEGORY_CSV_COLUMNS
    assert len(rows) == 3 * len(PARAMS)
    best = [(row["value"], row["generator"], row["rank"]) for row in rows if row["best"] == "true"]
    assert best == [("landscape", "ladder-3", "1"), ("people", "ladder-3", "2")]
    assert all(row["rank"] == "" for row in rows if row["value"] == "rare")
    assert rows[0]["x_at_gap"].startswith("params/0.05=")
    generators = list(csv.reader(io.StringIO(report_csv(report))))
    assert tuple(generators[0]) == CSV_COLUMNS and len(generators) == 1 + 2 * len(PARAMS)


def _svg_texts(html: str) -> list[list[str]]:
    return [["".join(node.itertext()) for node in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")]
            for svg in re.findall(r"<svg .*?</svg>", html, re.S)]


def test_the_html_has_the_section_with_a_forest_plot_and_where_parity_comes_first(report):
    html = report_html(report)
    assert 'id="report-categories"' in html and 'data-field="category"' in html
    section = html[html.index('id="report-categories"'):]
    assert section.index('data-value="landscape"') < section.index('data-value="people"')
    assert "Where parity comes first" in section and 'data-flag="too_few_judgments"' in section
    assert "Bonferroni" in section
    (plot,) = [texts for texts in _svg_texts(html) if "landscape" in texts]
    assert {"people", "rare", "ladder-0"} <= set(plot)


def test_hostile_values_and_field_names_stay_text():
    values = [HOSTILE if i % 2 else "plain" for i in range(2 * ITEMS)]
    data = report_input(values=values)
    metas = [{HOSTILE: v} for v in values]
    data = replace(data, item_values=item_values_from(metas))
    report = report_from_input(data, ReportOptions(n_boot=100, fit_boot=0, bt_boot=0, category_fields=(HOSTILE,)))
    html = report_html(report)
    assert "<script" not in html
    assert escape(HOSTILE) in html
    assert f"By <bdi>{escape(HOSTILE)}</bdi>" in html
    assert any(HOSTILE[:29] in " ".join(texts) for texts in _svg_texts(html))
    assert report_json(report)["categories"][HOSTILE]["values"] == sorted(["plain", HOSTILE])
    rows = list(csv.DictReader(io.StringIO(report_categories_csv(report))))
    assert {row["value"] for row in rows} == {"plain", HOSTILE} and rows[0]["field"] == HOSTILE


def test_a_field_no_item_has_gives_a_message_not_a_crash():
    report = report_from_input(report_input(), ReportOptions(n_boot=50, fit_boot=0, bt_boot=0,
                                                             category_fields=("nope",)))
    section = report_json(report)["categories"]["nope"]
    assert section["by_value"] == {} and section["values"] == [] and section["where_first"] == []
    assert section["message"].startswith("No judged item has a value of the field 'nope'")
    assert report_categories_csv(report).splitlines() == [",".join(CATEGORY_CSV_COLUMNS)]
    html = unescape(report_html(report))
    assert "No judged item has a value of the field 'nope'" in html


def test_a_field_of_too_many_values_is_not_broken_down():
    report = report_from_input(report_input(values=[f"item {i}" for i in range(2 * ITEMS)]),
                               ReportOptions(n_boot=50, fit_boot=0, bt_boot=0, category_fields=("category",)))
    section = report_json(report)["categories"]["category"]
    assert section["by_value"] == {} and f"more than {MAX_VALUES}" in section["message"]


def test_the_study_setting_is_the_default_and_the_options_win():
    data = report_input(configuration={"report_categories": ["other", "category"]})
    cheap = {"n_boot": 50, "fit_boot": 0, "bt_boot": 0}
    assert list(report_json(report_from_input(data, ReportOptions(**cheap)))["categories"]) == ["other", "category"]
    chosen = report_from_input(data, ReportOptions(**cheap, category_fields=("category",)))
    assert list(report_json(chosen)["categories"]) == ["category"]
    # No field named anywhere: an empty section and no category table in the page.
    plain = report_from_input(report_input(), ReportOptions(**cheap))
    assert report_json(plain)["categories"] == {} and 'id="report-categories"' not in report_html(plain)


def test_exclusions_apply_per_category(report):
    section = report_json(report)["categories"]["category"]
    kept = sum(row["n"] for value in section["by_value"].values() for row in value["generators"])
    assert kept == int(np.sum(report.analysis.rates.n))


# ------------------------------------------------------------------------------
# From the database: Item.meta and the command
# ------------------------------------------------------------------------------
@pytest.fixture
def planted(db):
    from tests.analysis.builders import GENERATED_ITEMS, planted_study

    planted = planted_study(annotators=12)
    for index, item in enumerate(planted.items[:GENERATED_ITEMS]):
        # Half people, half landscape; two items with a list (no category) and one without the field.
        item.meta = {"category": "people" if index % 2 else "landscape", "width": 512}
        if index < 2:
            item.meta["category"] = ["people", "landscape"]
        if index == 2:
            del item.meta["category"]
        item.save(update_fields=["meta"])
    return planted


def test_the_reader_reads_item_meta_once_and_only_when_asked(planted, django_assert_num_queries):
    from analysis.selectors import report_input

    data = report_input(study=planted.study)
    ids = [int(pk) for pk in data.judgments.item_labels]
    by_id = {item.pk: item for item in planted.items}
    with django_assert_num_queries(1):
        categories = data.item_values("category")
        widths = data.item_values("width")
    assert categories == [by_id[pk].meta.get("category") for pk in ids]
    assert widths.count(512) == 40 and data.item_values("nope") == [None] * len(ids)


def test_the_command_breaks_down_by_a_field_in_json_and_its_own_csv(planted):
    from django.core.management import CommandError, call_command

    cheap = ["--boot", "100", "--fit-boot", "5", "--bt-boot", "0"]
    stdout = io.StringIO()
    call_command("report", "ladder", "--format", "json", "--by", "category", "--by", "width", *cheap,
                 stdout=stdout, stderr=io.StringIO())
    body = json.loads(stdout.getvalue())
    assert body["options"]["category_fields"] == ["category", "width"]
    section = body["categories"]["category"]
    assert section["values"] == ["landscape", "people"] and section["items_without_value"] == 3
    # Kept judgments only: the excluded annotators' are out, as in the main table.
    kept = sum(row["n"] for value in section["by_value"].values() for row in value["generators"])
    assert kept < sum(g["rate"]["n"] for g in body["generators"]) < sum(g["rate_all"]["n"]
                                                                       for g in body["generators"])
    assert body["categories"]["width"]["values"] == ["512"]
    stdout = io.StringIO()
    call_command("report", "ladder", "--format", "csv-categories", "--by", "category", *cheap, stdout=stdout,
                 stderr=io.StringIO(), verbosity=0)
    rows = list(csv.DictReader(io.StringIO(stdout.getvalue())))
    assert len(rows) == 2 * 4 and {row["field"] for row in rows} == {"category"}
    with pytest.raises(CommandError, match="csv-categories needs a field"):
        call_command("report", "ladder", "--format", "csv-categories", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="--by needs the name"):
        call_command("report", "ladder", "--by", " ", stdout=io.StringIO(), stderr=io.StringIO())
