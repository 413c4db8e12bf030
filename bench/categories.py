"""Results per category: what they cost a report, and how often their intervals cover.

Cost: a simulated study (default 20,000 judgments, 5 generators in one series along
`params`, 2,000 prompts in 10 categories, 200 annotators, 5 % catch and 3 %
calibration trials) is reported with `ReportOptions` defaults, without and with
`category_fields`; prints seconds of `report_from_input` (best of --repeat) and of
the HTML page.

Coverage: --reps studies of two categories whose two generators have known rates
(0.48 and 0.35 on one, 0.20 and 0.12 on the other, 300 prompts and 6,000 judgments
each); prints how often each 95 % interval covers its truth, how often all four do
(the family) with the plain and with the Bonferroni-adjusted intervals, and how
often the category nearer parity is ranked first.

    python bench/categories.py [--judgments 20000] [--categories 10] [--repeat 3] [--reps 200]
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

# The simulation of categories is the tests' (tests/analysis/stats/simulated_categories.py).
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analysis.categories import item_values_from
from analysis.reports import AnnotatorInfo, ReportInput, ReportOptions, report_from_input
from analysis.scaling import GeneratorInfo
from analysis.stats import ExclusionRules, simulate_study
from analysis.stats.categories import category_rates
from tests.analysis.stats.simulated_categories import TRUTH, two_category_study  # noqa: E402


def best_of(repeat: int, step):
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - started)
    return min(times), result


def cost(args) -> None:
    scales = np.logspace(7, 10, 5)
    study = simulate_study(0.5 - 44.0 * scales**-0.3, n_items=args.items, n_annotators=200,
                           n_judgments=args.judgments, catch_share=0.05, calibration_share=0.03, seed=0)
    generators = tuple(GeneratorInfo(id=g + 1, name=f"ladder-{g}", series_id=1, series="ladder", params=int(x))
                       for g, x in enumerate(scales))
    data = ReportInput(
        judgments=study.judgments, generators=generators,
        annotators=tuple(AnnotatorInfo(pseudonym=str(a), source="simulated") for a in range(200)),
        configuration={"slug": "bench"}, rules=ExclusionRules(),
        item_values=item_values_from([{"category": f"c{i % args.categories}"} for i in range(args.items)]),
    )
    print(f"cpus {os.cpu_count()}, load average before {os.getloadavg()[0]:.2f}")
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parity.settings")
    django.setup()
    from analysis.report_html import report_html

    for label, fields in (("without categories", ()), (f"with {args.categories} categories", ("category",))):
        options = ReportOptions(category_fields=fields)
        seconds, report = best_of(args.repeat, lambda: report_from_input(data, options))
        page, _ = best_of(args.repeat, lambda: report_html(report))
        print(f"{label}: report {seconds:.2f} s, html {page:.2f} s ({len(study.judgments):,} judgments)")
    print(f"load average after {os.getloadavg()[0]:.2f}")


def coverage(args) -> None:
    values = list(TRUTH)
    truth = np.array([TRUTH[v] for v in values])
    covered = np.zeros((args.reps, *truth.shape), bool)
    family = np.zeros(args.reps, bool)
    adjusted = np.zeros(args.reps, bool)
    first = np.zeros(args.reps, bool)
    started = time.perf_counter()
    for rep in range(args.reps):
        judgments, codes, labels = two_category_study(seed=1000 + 2 * rep)
        rates = category_rates(judgments, codes, labels, n_boot=args.boot, seed=rep)
        low, high = rates.grid("low"), rates.grid("high")
        covered[rep] = (low <= truth) & (truth <= high)
        family[rep] = covered[rep].all()
        adjusted[rep] = ((rates.grid("adjusted_low") <= truth) & (truth <= rates.grid("adjusted_high"))).all()
        first[rep] = labels[rates.ranking()[0]] == values[0]
    se = np.sqrt(0.95 * 0.05 / args.reps)
    print(f"coverage over {args.reps} studies, {args.boot} resamples ({time.perf_counter() - started:.0f} s; "
          f"± {se:.3f} at 0.95):")
    for v, value in enumerate(values):
        print(f"  {value}: " + ", ".join(f"rate {t:.2f} {covered[:, v, g].mean():.3f}"
                                         for g, t in enumerate(truth[v])))
    print(f"  all four intervals: {family.mean():.3f} plain, {adjusted.mean():.3f} Bonferroni-adjusted")
    print(f"  {values[0]} ranked first: {first.mean():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judgments", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--categories", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--boot", type=int, default=1000)
    args = parser.parse_args()
    cost(args)
    if args.reps:
        coverage(args)


if __name__ == "__main__":
    main()
