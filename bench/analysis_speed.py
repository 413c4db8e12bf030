"""Speed of the statistics behind a study report (analysis.stats, no Django).

Simulates a study (default 1,000,000 judgments, 20 generators in two series of ten
along `params`, 5,000 prompts, 2,000 annotators, 5 % catch and 3 % calibration
trials), then times each step on it:

- rates+bootstrap: preference rates with the two-way cluster bootstrap (--boot resamples)
- quality: annotator quality, agreement, exclusions, calibration, side bias, drift
- fits: per series, saturating and free-asymptote curves, each with --fit-boot
  two-way (prompt x annotator) bootstrap refits

Prints seconds per step (best of --repeat), the machine's load average before and
after (other work on the machine slows the figures), and peak resident memory.

    python bench/analysis_speed.py [--judgments 1000000] [--boot 2000] [--repeat 1]
"""

import argparse
import os
import resource
import time

import numpy as np

from analysis.stats import (
    ExclusionRules,
    annotator_quality,
    apply_exclusions,
    calibration_rate,
    compare_forms,
    fit_parity_curve,
    preference_rates,
    series_counts,
    session_drift,
    side_bias,
    simulate_study,
)


def best_of(repeat: int, step):
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--generators", type=int, default=20, help="an even number: two series")
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--annotators", type=int, default=2_000)
    parser.add_argument("--boot", type=int, default=2_000)
    parser.add_argument("--fit-boot", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    per_series = args.generators // 2
    scales = np.logspace(7, 10, per_series)
    rates = np.concatenate([0.5 - 44.0 * scales**-0.3, 0.5 - 20.0 * scales**-0.25])

    print(f"cpus {os.cpu_count()}, load average before {os.getloadavg()[0]:.2f}")
    started = time.perf_counter()
    study = simulate_study(
        rates, n_items=args.items, n_annotators=args.annotators, n_judgments=args.judgments,
        catch_share=0.05, calibration_share=0.03, clickers=range(20), seed=0,
    )
    judgments = study.judgments
    print(f"simulated {len(judgments):,} judgments, {args.generators} generators, {args.items:,} prompts, "
          f"{args.annotators:,} annotators in {time.perf_counter() - started:.2f} s (not counted)")

    def rates_step():
        return preference_rates(judgments, n_boot=args.boot, seed=0)

    def quality_step():
        quality = annotator_quality(judgments)
        exclusions = apply_exclusions(judgments, quality, ExclusionRules())
        calibration_rate(judgments, keep=exclusions.keep, n_boot=args.boot)
        side_bias(judgments)
        session_drift(judgments)
        return exclusions

    def fits_step():
        out = []
        for series in range(2):
            codes = np.arange(series * per_series, (series + 1) * per_series)
            wins, totals = series_counts(judgments, codes)
            saturating = fit_parity_curve(scales, wins, totals, n_boot=args.fit_boot)
            free = fit_parity_curve(scales, wins, totals, form="free", n_boot=args.fit_boot)
            out.append((saturating, free, compare_forms(saturating, free)))
        return out

    total = 0.0
    for name, step in (("rates+bootstrap", rates_step), ("quality", quality_step), ("fits", fits_step)):
        seconds, result = best_of(args.repeat, step)
        total += seconds
        detail = ""
        if name == "rates+bootstrap":
            detail = f"({args.boot} resamples; median half-width {np.median(result.half_width):.4f})"
        elif name == "quality":
            detail = f"({result.n_excluded:,} judgments excluded)"
        else:
            detail = f"(2 series x 2 forms x {args.fit_boot} refits)"
        print(f"{name:<16} {seconds:6.2f} s  {detail}")
    print(f"{'total':<16} {total:6.2f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"load average after {os.getloadavg()[0]:.2f}, peak resident memory {peak:.0f} MiB")


if __name__ == "__main__":
    main()
