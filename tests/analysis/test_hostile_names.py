"""No name breaks a report: generator, series, metric and setting names reach the HTML
page (tables and SVG plots), the JSON and the CSV exactly as written, as text.

matplotlib reads text between two ``$`` as math (``$x^$`` failed every format of the
stored report), the SVG keeps text as text, and the HTML page must never carry a
name as markup."""

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from html import unescape

import pytest
from django.utils.html import escape

from analysis.plots import LABEL_CHARS
from analysis.services import report_snapshot_build
from generation.models import Generator, Series
from tests.analysis.builders import planted_study

HOSTILE = {
    "math": "$x^$",
    "backslashes": r"\$\frac{1}{0}$ C:\temp\ \\",
    "percent": "100% %s %(name)s %Y",
    "markup": '<script>alert("x")</script> style="fill: red" & <!-- -->',
    "right-to-left override": "\u202eevil generator",
    "500 characters": "W" * 250 + "$" + "é" * 249,  # W: among the widest letters
}
NAME_CHARS = Generator._meta.get_field("name").max_length
assert Series._meta.get_field("name").max_length == NAME_CHARS


def _svg_texts(html: str) -> list[list[str]]:
    """The text of each inline SVG plot, as XML parses it (so it must parse)."""
    plots = []
    for svg in re.findall(r"<svg .*?</svg>", html, re.S):
        root = ET.fromstring(svg)
        plots.append(["".join(node.itertext()) for node in root.iter("{http://www.w3.org/2000/svg}text")])
    return plots


# A label too wide for its plot squeezes the axes to nothing: matplotlib only warns.
@pytest.mark.filterwarnings("error:constrained_layout not applied")
@pytest.mark.parametrize("name", HOSTILE.values(), ids=HOSTILE.keys())
def test_every_format_of_the_report_shows_a_hostile_name_literally(db, name):
    planted = planted_study(annotators=12)
    # A generator's and a series' names stop at the column's length; metric and setting
    # names (JSON keys) do not.
    short = name[:NAME_CHARS]
    Series.objects.filter(pk=planted.generators[0].series_id).update(name=short)
    for index, generator in enumerate(planted.generators):
        if index == 0:
            generator.name = short
        generator.metrics[name] = float(index)
        generator.settings[name] = 10 ** (index + 1)
        generator.save(update_fields=["name", "metrics", "settings"])

    snapshot = report_snapshot_build(study=planted.study)
    assert snapshot.error == ""

    body = json.loads(snapshot.report_json)
    assert body["generators"][0]["name"] == short and body["generators"][0]["series"] == short
    assert {a["metric"] for a in body["alignment"]} >= {name}
    assert {(fit["series"], fit["axis"]) for fit in body["fits"]} >= {(short, "params"), (short, f"settings.{name}")}

    rows = list(csv.DictReader(io.StringIO(snapshot.report_csv)))
    assert [(row["generator"], row["series"]) for row in rows[:2]] == [(short, short)] * 2

    for html in (snapshot.report_html, snapshot.panel_html):
        assert "<script" not in html and "<!-- -->" not in html
        assert escape(short) in html  # the generators' table, whole
        assert f"<bdi>{escape(short)}</bdi> along <bdi>params</bdi>" in html
        text = unescape(html)
        assert short in text and f"settings.{name}" in text and name in text
        # In the plots: the name cut to the label's length (shorter in the alignment's
        # small panels), as text, never as math.
        label = name[:LABEL_CHARS - 1]
        forest, *others = _svg_texts(html)
        assert any(label in t for t in forest), forest
        assert sum(any(label[:12] in t for t in plot) for plot in others) >= 3  # scaling (two axes), alignment
        assert not any("\\$" in t for plot in (forest, *others) for t in plot if "\\$" not in name)
