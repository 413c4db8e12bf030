"""The report's plots draw under the site's Content-Security-Policy, inline in the study page.

matplotlib writes a style attribute on every element and one <style> rule, which a
policy whose style-src has no 'unsafe-inline' refuses: the plots would lose their
colours and lines (SVG's default fill is black). analysis/plots.py turns them into
SVG presentation attributes, which the policy does not govern.
"""

import re
from xml.etree import ElementTree

from analysis.report_html import report_html
from analysis.services import study_report
from tests.analysis.builders import planted_study
from tests.analysis.conftest import TEST_OPTIONS

SVG = "{http://www.w3.org/2000/svg}"
# Presentation attributes that matplotlib's drawing properties may become; a property
# outside this set would be an attribute SVG ignores.
PRESENTATION = {
    "clip-path", "fill", "fill-opacity", "font-family", "font-size", "font-stretch", "font-style",
    "font-weight", "letter-spacing", "opacity", "stroke", "stroke-dasharray", "stroke-dashoffset",
    "stroke-linecap", "stroke-linejoin", "stroke-miterlimit", "stroke-opacity", "stroke-width",
    "text-anchor",
}
MARKUP = {
    "aria-label", "class", "d", "height", "id", "role", "transform", "version", "viewBox", "width", "x", "y",
    "{http://www.w3.org/1999/xlink}href",
}


def test_the_plots_carry_no_inline_style(db):
    html = report_html(study_report(study=planted_study().study, options=TEST_OPTIONS))
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) >= 4  # forest, scaling, calibration, alignment
    for svg in svgs:
        root = ElementTree.fromstring(svg)  # an attribute written twice would not parse
        elements = list(root.iter())
        assert [e.tag for e in elements if e.tag == f"{SVG}style"] == []
        assert [e.tag for e in elements if "style" in e.attrib] == []
        assert set().union(*(e.attrib for e in elements)) <= PRESENTATION | MARKUP
        # matplotlib's one rule, for every element, is on the root, which they inherit from.
        assert (root.get("stroke-linejoin"), root.get("stroke-linecap")) == ("round", "butt")
        assert any(e.get("fill") == "#ffffff" for e in elements)  # the figure's ground
