"""analysis endpoints of the researcher API: a study's report, and the history of its reports.

    GET /api/v1/studies/<slug>/report/?format=json|csv|html|csv-categories[&by=FIELD...]
    GET /api/v1/studies/<slug>/reports/                        (every report built, newest first)
    GET /api/v1/studies/<slug>/reports/<id>/?format=json|csv|html
    POST /api/v1/studies/<slug>/reports/<id>/freeze/            {"note": "..."}, owners and members

For anyone who can see the study (`annotate.selectors.study_for_user`: a member of its
workspace, any role, or a superuser); another workspace's study is a 404 like one
that does not exist. The stored report is served while it matches the data; otherwise
the study page's rule applies (`analysis.services.report_delivery`): a study of at most
`PARITY_REPORT_INLINE_MAX` judgments has its report built during the request (a
second or two), a larger one by a worker. Until that worker is done the answer is a
202 Accepted with a JSON body `{"status": "building", "message": ...}` and a
`Retry-After` header, for any format; a later GET gets the report (`manage.py
report` builds one offline).
A build writes the study's generators done when it has a target half-width.
A build that fails is a 500 with the error body (code `report_failed`, the error in
one line as its message), logged with its traceback; the same data are not tried
again, so until they change the same answer comes at once.

`?format=` names the file format here, as for the judgments export: this view
negotiates nothing, its errors are always JSON.

Results per category: the stored report breaks its results down by the study's
`report_categories` setting (item metadata fields), in the JSON (`categories`), the
HTML page and `?format=csv-categories`, their own CSV (one row per field, value and
generator); csv-categories of a study whose setting names no field is a 400
(`no_category_field`). `?by=FIELD` (repeatable, at most `MAX_BY`, each a plain field
name: letters, digits, `_`, `.`, `-`) breaks json, html or csv-categories down by
those fields instead: that report is built during the request and stored nowhere
(nor written to the history), so a study of more than `PARITY_REPORT_INLINE_MAX`
judgments answers 409 (`report_too_large`): set its `report_categories`, or run
`manage.py report --by FIELD`. `by` naming exactly the setting's fields, in its order,
is the stored report. `by` with `format=csv` is a 400: the per-generator CSV has no
category rows.
"""

import logging
import re
from http import HTTPStatus

from django.conf import settings
from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from analysis import exports
from analysis.models import ReportRecord
from annotate import selectors, study_settings
from workspaces.drf import NoNegotiation, require_write
from workspaces.errors import ParityError

log = logging.getLogger(__name__)
FORMATS = {
    "json": ("application/json", "json"),
    "csv": ("text/csv; charset=utf-8", "csv"),
    "html": ("text/html; charset=utf-8", "html"),
}
# The study's current report has one more format than a kept record: the results per category.
REPORT_FORMATS = {**FORMATS, "csv-categories": ("text/csv; charset=utf-8", "csv")}
# `?by=`: a plain item metadata field name, and how many a request may name.
FIELD_NAME = re.compile(r"\w[\w.-]{0,99}")
MAX_BY = 10
# The HTML report is one page made to be saved and opened from disk, with its styles
# in a <style> element. It is sent as an attachment, so the site never shows it; should
# a browser show it all the same, its own policy, in place of the site's, lets those
# styles apply and nothing load or run.
REPORT_HTML_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
RATE_EXAMPLE = {
    "n": 1512, "wins": 598, "n_left": 757, "wins_left": 301, "n_right": 755, "wins_right": 297,
    "n_items": 498, "n_annotators": 61, "rate": 0.3955, "rate_left": 0.3976, "rate_right": 0.3934,
    "raw_rate": 0.3955, "low": 0.3611, "high": 0.4297, "boot_se": 0.0174, "wilson_low": 0.3711,
    "wilson_high": 0.4204, "cp_low": 0.3707, "cp_high": 0.4207, "cgm_se": 0.0151, "cgm_low": 0.3659,
    "cgm_high": 0.4251, "cgm_se_raw": 0.0151,
    "var_item": 0.00015, "var_annotator": 0.00009, "var_cell": 0.00002, "design_effect": 1.43,
    "effective_n": 1057.3, "n_samples": 498, "var_sample": 0.00017, "seed_share": None, "prompt_share": None,
    "level": 0.95, "n_boot": 1000, "half_width": 0.0344, "flags": [],
}
PROVENANCE_EXAMPLE = {
    "software": {"name": "parity", "version": "0.1.0"},
    "trial_seed": 1482930117,
    "corpus": {"id": 3, "name": "coco-val-1500", "items": 1500,
               "items_sha256": "0d9a5c1f2b3e4d5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c"},
    "generators": [{"id": 7, "name": "ladder-M", "backend": "builtin", "checkpoint": "ladder/M/step-40000.pt",
                    "checkpoint_sha256": "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
                    "samples": 1496,
                    "samples_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}],
}
CATEGORY_RATE_EXAMPLE = {
    "id": 7, "name": "ladder-M", "series": "ladder", "rate": 0.462, "low": 0.401, "high": 0.523,
    "adjusted_low": 0.377, "adjusted_high": 0.551, "n": 402, "wins": 186, "n_items": 131, "n_annotators": 58,
    "gap": 0.038, "flags": [],
}
CATEGORIES_EXAMPLE = {"category": {
    "values": ["landscape", "people"], "items": 1500, "items_without_value": 12, "message": None,
    "note": "8 intervals over 2 values and 4 generators: at the 95% level about 0.4 of them (5%) would miss "
            "their true rate by chance alone, ... Bonferroni-adjusted intervals (level 1 − 0.05/8 = 0.9938) ...",
    "level": 0.95, "bonferroni_level": 0.99375, "intervals": 8,
    "by_value": {"landscape": {
        "n_items": 702, "n_judgments": 2210, "generators": [CATEGORY_RATE_EXAMPLE, {"...": "..."}],
        "fits": [{"series": "ladder", "series_id": 2, "axis": "params", "generators": [5, 6, 7], "x": [3e7, 6e7, 1.2e8],
                  "fitted": True, "reason": None, "form": "saturating", "params": {"A": 31.0, "alpha": 0.27},
                  "intervals": {"A": [9.1, 120.0], "alpha": [0.2, 0.35]}, "flags": [],
                  "x_at_gap": {"0.05": {"x": 1.1e9, "low": 3e8, "high": 9e9, "reached": True,
                                        "conditional_on": "reaching parity: ..."}}}],
        "best": {"id": 7, "name": "ladder-M", "rate": 0.462, "low": 0.401, "high": 0.523, "gap": 0.038}},
        "people": {"...": "..."}},
    "where_first": [{"rank": 1, "value": "landscape", "best": {"id": 7, "name": "ladder-M", "gap": 0.038, "...": "..."},
                     "x_at_gap": {"ladder/params": 1.1e9}, "gap_target": 0.05},
                    {"rank": 2, "value": "people", "...": "..."}],
}}
JSON_EXAMPLE = {
    "version": 9, "built_at": "2025-05-02T10:00:00+00:00", "seconds": 1.4,
    "options": {"n_boot": 1000, "fit_boot": 200, "level": 0.95, "seed": 0, "gap_targets": [0.05, 0.01], "bt_boot": 1000,
                "category_fields": [], "version": 9},
    "study": {"id": 4, "name": "COCO ladder", "slug": "coco-ladder", "workspace": "lab", "status": "open",
              **{setting.name: setting.default_value() for setting in study_settings.SETTINGS if setting.in_report},
              "target_half_width": 0.05, "generators_done": [7], "...": "corpus, generators, created_at"},
    "provenance": PROVENANCE_EXAMPLE,
    "counts": {"judgments": 5270, "generated": 4502, "catch": 192, "calibration": 96, "head_to_head": 480,
               "annotators": 61,
               "simulated_annotators": 0, "simulated_judgments": 0, "prompts": 1500, "excluded_annotators": 2,
               "excluded_judgments": 80},
    "warnings": [],
    "generators": [{"id": 7, "name": "ladder-M", "series": "ladder", "series_id": 2, "params": 120000000,
                    "train_images": None, "train_flops": None, "train_step": None, "settings": {"steps": 50},
                    "metrics": {"val_loss": 0.412}, "blank_samples": 0, "rate": RATE_EXAMPLE,
                    "rate_all": RATE_EXAMPLE, "done": True}],
    "exclusions": {"by_rule": {"catch_accuracy": {"annotators": 1, "judgments": 40, "judgments_only": 40},
                               "too_fast": {"annotators": 1, "judgments": 40, "judgments_only": 40}},
                   "n_judgments": 4790, "n_excluded": 80, "share_excluded": 0.0167, "excluded_annotators": 2,
                   "jump": {"flagged": False, "reasons": []}, "rules": {"min_catch_accuracy": 0.8, "...": "..."}},
    "calibration": {"rate": 0.49, "low": 0.41, "high": 0.57, "covers_half": True, "...": "..."},
    "calibration_all": {"...": "as calibration, on all judgments"},
    "side_bias": {"n": 4710, "left": 2371, "share_left": 0.503, "low": 0.49, "high": 0.517, "...": "..."},
    "side_bias_all": {"...": "as side_bias, on all judgments"},
    "drift": {"slope_left": 0.01, "slope_choice": -0.02, "flagged_annotators": 0, "...": "..."},
    "agreement": {"fleiss_kappa": 0.08, "fleiss_trials": 1400, "fleiss_raters": 3, "krippendorff_alpha": 0.08,
                  "alpha_trials": 1480},
    "annotators": [{"pseudonym": "4b0c9a8e-5f7e-4f1e-9a53-0d1f4f4f2a11", "source": "prolific", "simulated": False,
                    "excluded": False, "excluded_by": [], "n": 80, "catch_accuracy": 1.0, "...": "..."}],
    "fits": [{"series": "ladder", "axis": "params", "generators": [5, 6, 7], "x": [3e7, 6e7, 1.2e8],
              "forms": {"saturating": {"params": {"A": 48.1, "alpha": 0.29},
                                       "intervals": {"A": [20.2, 130.0], "alpha": [0.24, 0.35]},
                                       "x_at_gap": {"0.05": {"x": 2.5e10, "low": 4e9, "high": 3e11, "reached": True,
                                                             "conditional_on": "reaching parity: ..."}},
                                       "qaic": 21.3, "boot_converged": 1.0, "flags": [], "...": "..."}},
              "not_fitted": {"free": {"reason": "not_identified", "n_distinct": 3, "needed": 4,
                                      "message": "the free-asymptote form needs at least 4 distinct scale values; "
                                                 "this series has 3"}},
              "comparison": None, "criterion": "qaic", "dispersion": 1.43, "dispersion_basis": "design effect",
              "verdict": {"verdict": "undetermined", "reason": "No asymptote to test: ...", "p_inf": None,
                          "p_below": None, "p_near": None, "margin": 0.05, "alpha": 0.05, "power": 0.8,
                          "judgments": 4502, "judgments_needed": None},
              "errors": {}, "source": "direct"}],
    "bradley_terry": {
        "source": "vs-real and head-to-head", "judgments": 4982, "head_to_head": 480, "method": "bootstrap",
        "level": 0.95, "n_boot": 1000, "fit_flags": [],
        "players": [{"id": None, "name": "real"}, {"id": 7, "name": "ladder-M"}, {"id": 8, "name": "ladder-L"}],
        "generators": [{"id": 7, "name": "ladder-M", "direct_rate": 0.3955, "direct_low": 0.3611,
                        "direct_high": 0.4297, "pooled_rate": 0.3961, "pooled_low": 0.3702, "pooled_high": 0.4226,
                        "theta": -0.4218, "theta_low": -0.5314, "theta_high": -0.3113, "se": 0.0561, "n": 1992,
                        "n_vs_real": 1512, "n_head_to_head": 480, "flags": []}, {"...": "..."}],
        "position_effect": {"gamma": 0.012, "low": -0.045, "high": 0.069, "se": 0.029},
        "wins": [[0, 913, 870], [599, 0, 221], [620, 259, 0]], "totals": [[0, 1512, 1490], [1512, 0, 480],
                                                                           [1490, 480, 0]],
        "fit": {"pearson": 1.3, "deviance": 1.3, "df": 3, "p_value": 0.73, "dispersion": 0.43,
                "reading": "The judgments are consistent with one scale (...)"},
    },
    "timeline": {"unit": "week", "block_effect": [0.0, -0.21], "anchors": [7],
                 "generators": [{"id": 7, "name": "ladder-M", "anchor": True, "raw": 0.3955, "adjusted": 0.4012, "drift_slope": -0.03,
                                 "drift_se": 0.02, "drift_p": 0.13,
                                 "blocks": [{"start": 1746000000.0, "mean_time": 1746300000.0, "n": 800, "wins": 330,
                                             "share": 0.4125, "low": 0.378, "high": 0.447}, {"...": "..."}]}]},
    "alignment": [{"metric": "val_loss", "n": 3, "spearman": -1.0, "spearman_low": -1.0, "spearman_high": 1.0,
                   "kendall": -1.0, "...": "..."}],
    "plan": {"target_half_width": 0.05, "done": [7],
             "generators": [{"id": 7, "name": "ladder-M", "judgments": 1512, "prompts": 498, "half_width": 0.0344,
                             "judgments_needed": 716, "judgments_more": 0, "prompts_needed": 236,
                             "prompts_min": 120, "done": True, "one_way_fallback": False, "basis": "two-way",
                             "flags": []}]},
    "categories": CATEGORIES_EXAMPLE,
}
CSV_EXAMPLE = (
    ",".join(exports.CSV_COLUMNS) + "\r\n"
    "coco-ladder,7,ladder-M,ladder,120000000,,,,applied,1512,598,0.3955,0.3611,0.4297,0.0344,0.3976,0.3934,"
    "0.3955,0.3711,0.4204,0.0151,0.3659,0.4251,0.0174,1.43,1057.3,498,61,0.95,1000,0.3707,0.4207,,"
    "params=undetermined,params/free=not_identified,498,,,0.4012,-0.03,0.13,0.3961,0.3702,0.4226,480,,true,0\r\n"
)
CATEGORIES_CSV_EXAMPLE = (
    "study,field,value,rank,generator_id,generator,series,n,wins,rate,low,high,adjusted_low,adjusted_high,"
    "bonferroni_level,n_items,n_annotators,level,n_boot,flags,best,gap,x_at_gap\r\n"
    "coco-ladder,category,landscape,1,7,ladder-M,ladder,402,186,0.462,0.401,0.523,0.377,0.551,0.99375,131,58,"
    "0.95,1000,,true,0.038,params/0.05=1100000000.0\r\n"
)
HTML_EXAMPLE = (
    '<!doctype html>\n<html lang="en">\n<head>…inline CSS…</head>\n'
    "<body>…tables and inline SVG plots…</body>\n</html>\n"
)
NO_FIELD = {"error": {"code": "no_category_field", "field": "by", "message": (
    "format=csv-categories needs a field to break the results down by: by=FIELD, or the study's "
    "report_categories setting."
)}}
BAD_BY = {"error": {"code": "invalid", "field": "by", "message": (
    "'category;drop' is no item metadata field name: give one of letters, digits, _ . - (at most 100), "
    "such as by=category."
)}}
# As often as the study page polls its panel.
RETRY_AFTER_SECONDS = 10
BUILDING = {
    "status": "building",
    "message": "The report is being built by a worker: ask again after Retry-After seconds.",
}


def _format_responses(json_description: str, csv_description: str, html_description: str,
                      csv_examples: list | None = None) -> dict:
    """The 200 answers of a report in each of its formats, for the schema."""
    return {
        (200, "application/json"): OpenApiResponse(
            OpenApiTypes.OBJECT, description=json_description,
            examples=[OpenApiExample("json", value=JSON_EXAMPLE, media_type="application/json")],
        ),
        (200, "text/csv"): OpenApiResponse(
            OpenApiTypes.STR, description=csv_description,
            examples=[OpenApiExample("csv", value=CSV_EXAMPLE, media_type="text/csv"), *(csv_examples or [])],
        ),
        (200, "text/html"): OpenApiResponse(
            OpenApiTypes.STR, description=html_description,
            examples=[OpenApiExample("html", value=HTML_EXAMPLE, media_type="text/html")],
        ),
    }


class ReportQuery(serializers.Serializer):
    format = serializers.ChoiceField(
        choices=list(FORMATS), default="json",
        help_text="json (default): everything; csv: the per-generator table with and without exclusions; "
        "html: one self-contained page with plots.",
    )


class StudyReportQuery(ReportQuery):
    format = serializers.ChoiceField(
        choices=list(REPORT_FORMATS), default="json",
        help_text="json (default): everything; csv: the per-generator table with and without exclusions; "
        "html: one self-contained page with plots; csv-categories: the results per category, one row per "
        "field, value and generator (a 400 where neither `by` nor the study's report_categories names a field).",
    )
    by = serializers.ListField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False, default=list,
        help_text=f"An item metadata field to break the results down by, instead of the study's "
        f"report_categories setting (repeatable, at most {MAX_BY}; letters, digits, _ . -). For json, html and "
        "csv-categories; the report is built during the request and not stored.",
    )

    def validate_by(self, value: list[str]) -> tuple[str, ...]:
        for name in value:
            if not FIELD_NAME.fullmatch(name):
                raise serializers.ValidationError(
                    f"{name[:100]!r} is no item metadata field name: give one of letters, digits, _ . - "
                    "(at most 100), such as by=category.")
        fields = tuple(dict.fromkeys(value))
        if len(fields) > MAX_BY:
            raise serializers.ValidationError(f"at most {MAX_BY} fields at once, not {len(fields)}.")
        return fields

    def validate(self, attrs: dict) -> dict:
        if attrs["by"] and attrs["format"] == "csv":
            raise serializers.ValidationError(
                {"by": "The per-generator CSV has no category rows: ask for format=csv-categories (or json, html)."})
        return attrs


class NoCategoryField(ParityError):
    code = "no_category_field"
    field = "by"


class StudyReport(APIView):
    """A study's report as JSON, CSV, a self-contained HTML page or its results per category as CSV."""

    renderer_classes = (JSONRenderer,)
    content_negotiation_class = NoNegotiation

    @extend_schema(
        operation_id="study_report",
        summary="A study's report",
        description=(__doc__ or "") + "\n\n" + (exports.__doc__ or ""),
        tags=["studies"],
        parameters=[
            StudyReportQuery,
            OpenApiParameter(
                "Retry-After", OpenApiTypes.INT, OpenApiParameter.HEADER, response=[202],
                description="Seconds to wait before asking again.",
            ),
        ],
        responses={
            **_format_responses(
                "Everything in the report.",
                "The per-generator table (format=csv): one row per generator and exclusion setting; or the "
                "results per category (format=csv-categories): one row per field, value and generator, columns "
                "as in the second example.",
                "One self-contained page: inline CSS and SVG, nothing fetched.",
                csv_examples=[OpenApiExample("csv-categories", value=CATEGORIES_CSV_EXAMPLE, media_type="text/csv")],
            ),
            (400, "application/json"): OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="A format or `by` refused, or format=csv-categories where neither `by` nor the "
                "study's report_categories names a field.",
                examples=[OpenApiExample("no_category_field", value=NO_FIELD, media_type="application/json"),
                          OpenApiExample("bad by", value=BAD_BY, media_type="application/json")],
            ),
            (409, "application/json"): OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="`by` on a study of more than PARITY_REPORT_INLINE_MAX judgments, whose report is "
                "not built during a request.",
            ),
            (202, "application/json"): OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="A study of more than PARITY_REPORT_INLINE_MAX judgments whose report a worker is "
                "building, whatever the format: ask again after Retry-After seconds.",
                examples=[OpenApiExample("building", value=BUILDING, media_type="application/json")],
            ),
        },
    )
    def get(self, request, slug: str):
        from analysis import services  # with the analysis and scipy: see exports

        study = selectors.study_for_user(user=request.user, slug=slug)
        if study is None:
            raise Http404("no such study")
        query = StudyReportQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        file_format, by = query.validated_data["format"], query.validated_data["by"]
        stored_fields = services.stored_category_fields(study)
        if file_format == "csv-categories" and not (by or stored_fields):
            raise NoCategoryField(
                "format=csv-categories needs a field to break the results down by: by=FIELD, or the study's "
                "report_categories setting.")
        if by and by != stored_fields:
            return self._built(study, file_format, by)
        try:
            delivery = services.report_delivery(study=study)
        except Exception as exc:  # numerical code on any data: a JSON error, never Django's HTML page
            log.exception("report of study %s failed", study.slug)
            reason = services.one_line(f"{type(exc).__name__}: {exc}")
            raise services.ReportBuildFailed(reason) from exc
        if delivery.how == services.Delivery.BUILDING:
            return Response(
                BUILDING, status=status.HTTP_202_ACCEPTED,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"},
            )
        snapshot = delivery.snapshot
        if delivery.how == services.Delivery.FAILED:  # logged with its traceback when it failed
            raise services.ReportBuildFailed(services.one_line(snapshot.error))
        body = {"json": snapshot.report_json, "csv": snapshot.report_csv, "html": snapshot.report_html,
                "csv-categories": snapshot.report_categories_csv}[file_format]
        return _report_response(study, file_format, body)

    @staticmethod
    def _built(study, file_format: str, by: tuple[str, ...]) -> HttpResponse:
        """The report broken down by `by`, built now and stored nowhere (`services.study_report_by`)."""
        from analysis import services
        from analysis.category_exports import report_categories_csv
        from analysis.exports import report_json_text
        from analysis.report_html import report_html

        try:
            report = services.study_report_by(study=study, fields=by)
            render = {"json": report_json_text, "html": report_html, "csv-categories": report_categories_csv}
            body = render[file_format](report)
        except ParityError:
            raise
        except Exception as exc:  # as for the stored report: a JSON error, never Django's HTML page
            log.exception("report of study %s by %s failed", study.slug, ", ".join(by))
            raise services.ReportBuildFailed(services.one_line(f"{type(exc).__name__}: {exc}")) from exc
        return _report_response(study, file_format, body)


def _report_response(study, file_format: str, body: str) -> HttpResponse:
    content_type, extension = REPORT_FORMATS[file_format]
    name = f"{study.slug}-report-categories" if file_format == "csv-categories" else f"{study.slug}-report"
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}.{extension}"'
    if file_format == "html":
        response["Content-Security-Policy"] = REPORT_HTML_POLICY  # django-csp keeps a header already set
    response["Cache-Control"] = "no-store"
    return response


# ------------------------------------------------------------------------------
# The history of a study's reports (`models.ReportRecord`)
# ------------------------------------------------------------------------------
HISTORY_DOC = """Every report built for a study is kept as a record: when it was built, how many
judgments it analysed, the sha256 of its JSON content (less its build time and
duration, so the same data give the same hash) and the report format version. Cite a
report by its id. The content of the newest `PARITY_REPORT_HISTORY_KEEP` records of
a study (20 by default) and of every frozen one is kept; an older record that is not
frozen keeps its metadata and hash, and asking for its content is a 410 Gone.
Members of the study's workspace read; owners and members (not viewers) freeze."""
RECORD_EXAMPLE = {
    "id": 41, "built_at": "2025-05-02T10:00:00Z", "judgments": 4790,
    "content_hash": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", "version": 9,
    "frozen": True, "frozen_at": "2025-05-03T09:12:00Z", "frozen_by": "ada", "note": "Final for the paper.",
    "has_content": True,
}
PRUNED = {"error": {"code": "report_pruned", "field": None, "message": (
    "The content of report 12 was pruned (only the newest 20 reports of a study and the frozen ones keep "
    "theirs); its metadata and content hash remain."
)}}


class ReportRecordSerializer(serializers.ModelSerializer):
    frozen = serializers.BooleanField(read_only=True, help_text="Frozen as final: its content is never pruned.")
    frozen_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    has_content = serializers.BooleanField(
        read_only=True, help_text="False once its content was pruned (GET of it is then a 410).")

    class Meta:
        model = ReportRecord
        fields = ["id", "built_at", "judgments", "content_hash", "version", "frozen", "frozen_at", "frozen_by",
                  "note", "has_content"]
        read_only_fields = fields


class ReportFreezeSerializer(serializers.Serializer):
    note = serializers.CharField(
        required=False, allow_blank=True, max_length=2000,
        help_text="Why it is final (for a paper, a decision); given again, it replaces the note.",
    )


def _study(request, slug: str):
    study = selectors.study_for_user(user=request.user, slug=slug)
    if study is None:
        raise Http404("no such study")
    return study


def _record(study, record_id: int):
    record = ReportRecord.objects.filter(study=study, pk=record_id).select_related("frozen_by").first()
    if record is None:
        raise Http404("no such report")
    return record


class ReportPruned(ParityError):
    code = "report_pruned"
    status = HTTPStatus.GONE


class StudyReportList(generics.ListAPIView):
    """A study's built reports, newest first."""

    serializer_class = ReportRecordSerializer

    def get_queryset(self):
        study = _study(self.request, self.kwargs["slug"])
        return ReportRecord.objects.filter(study=study).select_related("frozen_by").order_by("-built_at", "-id")

    @extend_schema(
        operation_id="study_reports_list",
        summary="A study's reports, newest first",
        description=HISTORY_DOC,
        tags=["studies"],
        examples=[OpenApiExample("History", value=RECORD_EXAMPLE, response_only=True)],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class StudyReportRecord(APIView):
    """One kept report of a study, as JSON, CSV or HTML."""

    renderer_classes = (JSONRenderer,)
    content_negotiation_class = NoNegotiation

    @extend_schema(
        operation_id="study_reports_retrieve",
        summary="One kept report of a study, by id",
        description=HISTORY_DOC + "\n\nThe content is the report exactly as it was built, in the format asked.",
        tags=["studies"],
        parameters=[ReportQuery],
        responses={
            **_format_responses("Everything in the report, as it was built.", "The per-generator table.",
                                "One self-contained page."),
            (410, "application/json"): OpenApiResponse(
                OpenApiTypes.OBJECT, description="Its content was pruned; its metadata remain in the list.",
                examples=[OpenApiExample("pruned", value=PRUNED, media_type="application/json")],
            ),
        },
    )
    def get(self, request, slug: str, record_id: int):
        study = _study(request, slug)
        query = ReportQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        file_format = query.validated_data["format"]
        record = _record(study, record_id)
        if not record.has_content:
            raise ReportPruned(
                f"The content of report {record.pk} was pruned (only the newest {settings.PARITY_REPORT_HISTORY_KEEP} "
                "reports of a study and the frozen ones keep theirs); its metadata and content hash remain."
            )
        body = {"json": record.report_json, "csv": record.report_csv, "html": record.report_html}[file_format]
        content_type, extension = FORMATS[file_format]
        response = HttpResponse(body, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{study.slug}-report-{record.pk}.{extension}"'
        if file_format == "html":
            response["Content-Security-Policy"] = REPORT_HTML_POLICY
        response["Cache-Control"] = "no-store"
        return response


class StudyReportFreeze(APIView):
    """Freeze a kept report as final."""

    @extend_schema(
        operation_id="study_reports_freeze",
        summary="Freeze a kept report as final (owner or member)",
        description="A frozen report's content is never pruned, so it can be cited by its id for good. "
        "Idempotent: freezing it again keeps when and by whom it was first frozen; a `note` given replaces "
        "the note. A report whose content was already pruned can still be frozen (its metadata and hash "
        "are the citation). Viewers get a 403.",
        tags=["studies"],
        request=ReportFreezeSerializer,
        responses=ReportRecordSerializer,
        examples=[
            OpenApiExample("Final", value={"note": "Final for the paper."}, request_only=True),
            OpenApiExample("Frozen", value=RECORD_EXAMPLE, response_only=True),
        ],
    )
    def post(self, request, slug: str, record_id: int):
        from analysis import services

        study = _study(request, slug)
        require_write(request, study.workspace)
        body = ReportFreezeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        record = _record(study, record_id)
        record = services.report_record_freeze(record=record, user=request.user, note=body.validated_data.get("note"))
        return Response(ReportRecordSerializer(_record(study, record.pk)).data)
