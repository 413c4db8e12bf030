"""`manage.py report STUDY --format html|json|csv|csv-categories [--by FIELD] --out PATH`: a study's report, offline."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from analysis.categories import fields_for
from analysis.category_exports import report_categories_csv
from analysis.exports import report_csv, report_json_text
from analysis.report_html import report_html
from analysis.reports import ReportOptions
from analysis.selectors import study_configuration
from analysis.services import study_report
from annotate.models import Study

RENDERERS = {"html": report_html, "json": report_json_text, "csv": report_csv,
             "csv-categories": report_categories_csv}
# Steps reported by the build (services.study_report and reports.report_from_input), then rendering;
# one more with results per category.
STEPS = 7


class Command(BaseCommand):
    help = (
        "Write a study's report: html (one self-contained page with plots), json (everything), csv "
        "(the per-generator table with and without exclusions) or csv-categories (the rates per value of "
        "each --by field). Progress goes to stderr. With a target half-width, the study's generators done "
        "are updated, as by every report build."
    )

    def add_arguments(self, parser):
        parser.add_argument("study", help="the study's slug")
        parser.add_argument("--format", choices=sorted(RENDERERS), default="html")
        parser.add_argument("--out", type=Path, help="file to write; stdout without it")
        defaults = ReportOptions()
        parser.add_argument("--boot", type=int, default=defaults.n_boot,
                            help=f"two-way bootstrap resamples of the rates (default {defaults.n_boot})")
        parser.add_argument("--fit-boot", type=int, default=defaults.fit_boot,
                            help=f"two-way bootstrap refits per scaling fit (default {defaults.fit_boot})")
        parser.add_argument("--bt-boot", type=int, default=defaults.bt_boot,
                            help="two-way bootstrap refits of the Bradley-Terry fit; 0 takes the sandwich "
                                 f"intervals (default {defaults.bt_boot})")
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument("--by", action="append", default=[], metavar="FIELD",
                            help="an item metadata field to break the results down by (repeatable); "
                                 "without it, the study's report_categories setting where it has one")
        parser.add_argument("--no-plan", action="store_true", help="leave the study's generators done as they are")

    def handle(self, *args, study, format, out, boot, fit_boot, bt_boot, seed, no_plan, by, **options):
        found = Study.objects.select_related("workspace", "corpus").filter(slug=study).first()
        if found is None:
            raise CommandError(f"no study with the slug {study!r}")
        if boot < 1 or fit_boot < 0 or bt_boot < 0:
            raise CommandError("--boot must be at least 1, --fit-boot and --bt-boot at least 0")
        if any(not name.strip() for name in by):
            raise CommandError("--by needs the name of an item metadata field, e.g. --by category")
        report_options = ReportOptions(n_boot=boot, fit_boot=fit_boot, bt_boot=bt_boot, seed=seed,
                                       category_fields=tuple(dict.fromkeys(name.strip() for name in by)))
        if format == "csv-categories" and not fields_for(report_options.category_fields,
                                                         study_configuration(study=found)):
            raise CommandError("--format csv-categories needs a field to break down by: --by FIELD "
                               "(or the study's report_categories setting)")
        quiet = options["verbosity"] == 0
        with tqdm(total=STEPS + bool(by), desc=f"Report of {found.slug}", unit=" steps", disable=quiet,
                  file=sys.stderr, dynamic_ncols=True) as bar:

            def progress(message: str) -> None:
                bar.set_postfix_str(message)
                bar.update(1)

            report = study_report(study=found, options=report_options, progress=progress, write_plan=not no_plan)
            progress(f"writing {format}")
            text = RENDERERS[format](report)
        if out is None:
            self.stdout.write(text, ending="" if text.endswith("\n") else "\n")
            return
        out.write_text(text, encoding="utf-8")
        counts = report.counts
        message = (
            f"Wrote {out} ({format}, {len(text.encode()):,} bytes): {counts['judgments']:,} judgments, "
            f"{len(report.generators)} generators, {len(report.fits)} fits, built in {report.seconds:.1f} s."
        )
        self.stdout.write(self.style.SUCCESS(message))
