"""Coverage and width of the calibration interval against the two-way bootstrap.

Simulated studies with a known truth (`analysis.stats.simulate`), 200 prompts and 30
annotators:

- calibration, no effects: real against real (truth 0.5), judgment noise only,
  --judgments, --small and --tiny judgments, --reps replications each (the tiny
  one, two judgments per annotator, is where the two-way variance is noisiest and
  the one-way fallback, if ever, is used);
- with effects: prompt SD 1.0 and annotator SD 0.5 on the logit scale, marginal
  truth 0.5 and 0.3, --reps-effects replications each, the generated judgments
  passed through `calibration_rate` as if they were calibration ones.

Per scenario and interval (95 %): coverage of the truth with its Monte Carlo
standard error, mean width and width over Wilson's. The intervals: the pigeonhole
two-way bootstrap (percentile, --boot resamples; what the preference rates report),
plain CGM (normal, no small-sample factors), CGM-t (what `calibration_rate` and the
planner use: G / (G - 1) factors, t quantile on min(prompts, annotators) - 1
degrees of freedom), and Wilson (ignores clustering). Then, for the no-effect
scenario, the variance decomposition behind the bootstrap's width: its variance
against the binomial p (1 - p) / n, against V_item + V_annotator + V_cell (Owen
2007) and against CGM V_item + V_annotator - V_cell; and the fallback count.

    python bench/calibration_coverage.py [--reps 1000] [--reps-effects 1000] [--boot 1000]
"""

import argparse
import time
from dataclasses import replace

import numpy as np

from analysis.stats import CALIBRATION, calibration_rate, simulate_study

INTERVALS = ("bootstrap", "cgm", "cgm-t", "wilson")


def _calibration(seed, n_judgments):
    return simulate_study([0.5], identical=[True], n_items=200, n_annotators=30, n_judgments=n_judgments,
                          calibration_share=1.0, seed=seed).judgments, 0.5


def _effects(seed, rate):
    study = simulate_study([rate], n_items=200, n_annotators=30, n_judgments=2000, item_sd=1.0,
                           annotator_sd=0.5, seed=seed)
    judgments = study.judgments
    n = len(judgments)
    return replace(judgments, kind=np.full(n, CALIBRATION), generator=np.full(n, -1)), float(study.truth[0])


def _scenario(name, make, reps, n_boot):
    hits = {k: [] for k in INTERVALS}
    widths = {k: [] for k in INTERVALS}
    decomposition, fallbacks = [], 0
    for seed in range(reps):
        judgments, truth = make(seed)
        calibration = calibration_rate(judgments, n_boot=n_boot, seed=seed)
        t = calibration.table
        fallbacks += calibration.method != "cgm-t"
        bounds = {
            "bootstrap": (calibration.boot_low, calibration.boot_high),
            "cgm": (t.cgm_low[0], t.cgm_high[0]),
            "cgm-t": (t.low[0], t.high[0]),
            "wilson": (t.wilson_low[0], t.wilson_high[0]),
        }
        for k, (low, high) in bounds.items():
            hits[k].append(low <= truth <= high)
            widths[k].append(high - low)
        binomial = t.rate[0] * (1 - t.rate[0]) / t.n[0]
        decomposition.append((t.boot_se[0] ** 2 / binomial,
                              (t.var_item[0] + t.var_annotator[0] + t.var_cell[0]) / binomial,
                              t.cgm_se[0] ** 2 / binomial))
    wilson = np.mean(widths["wilson"])
    print(f"\n{name}: {reps} replications, one-way/negative fallbacks {fallbacks}")
    print(f"  {'interval':10s} {'coverage':>9s} {'+/- se':>7s} {'width':>8s} {'/ wilson':>9s}")
    for k in INTERVALS:
        c = np.mean(hits[k])
        print(f"  {k:10s} {c:9.3f} {np.sqrt(c * (1 - c) / reps):7.3f} {np.mean(widths[k]):8.4f}"
              f" {np.mean(widths[k]) / wilson:9.2f}")
    boot, owen, cgm = np.mean(decomposition, axis=0)
    print(f"  variance / binomial: bootstrap {boot:.2f}, V_item + V_ann + V_cell {owen:.2f},"
          f" CGM V_item + V_ann - V_cell {cgm:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--reps-effects", type=int, default=1000)
    parser.add_argument("--judgments", type=int, default=2000)
    parser.add_argument("--small", type=int, default=300)
    parser.add_argument("--tiny", type=int, default=60)
    parser.add_argument("--boot", type=int, default=1000)
    args = parser.parse_args()
    start = time.perf_counter()
    for n in (args.judgments, args.small, args.tiny):
        _scenario(f"calibration, no effects, {n} judgments", lambda s, n=n: _calibration(s, n), args.reps, args.boot)
    for rate in (0.5, 0.3):
        _scenario(f"prompt SD 1.0, annotator SD 0.5, truth {rate}, 2000 judgments",
                  lambda s, rate=rate: _effects(s, rate), args.reps_effects, args.boot)
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
