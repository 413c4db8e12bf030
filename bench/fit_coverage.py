"""Coverage of the scaling-fit intervals against a known curve (analysis.stats, no Django).

Each replication simulates one series (`analysis.stats.simulate_study`): a ladder of
--sizes sizes log-spaced from 1e6 to 1e9 whose marginal preference rates follow

    p(x) = 0.5 - 0.3 (x / 1e6)^(-0.25),   so A = 0.3 * 1e6^0.25 and alpha = 0.25,

--judgments judgments per size on average, --prompts prompts (SD --prompt-sd on the
logit scale) and --annotators annotators (SD --annotator-sd). It fits the saturating
form with --boot bootstrap refits, resampling prompts x annotators (`series_cells`)
and, with --prompts-only, prompts alone as well (`series_counts`, the earlier fit),
and counts how often each interval holds the truth: A, alpha and the size at parity
gaps 0.05 and 0.01, x = 1e6 (0.3 / gap)^4.

Prints, per quantity and bootstrap, the coverage with its Monte Carlo standard error
and the median interval width (on log10 for A and the sizes); then the seconds taken.

    python bench/fit_coverage.py [--reps 200] [--boot 400] [--prompts-only]
"""

import argparse
import time

import numpy as np

from analysis.stats import fit_parity_curve, series_counts, simulate_study
from analysis.stats.series import series_cells

GAPS = (0.05, 0.01)


def truth() -> dict:
    a, alpha = 0.3 * 1e6**0.25, 0.25
    return {"A": a, "alpha": alpha, **{f"x at gap {g:g}": 1e6 * (0.3 / g) ** 4 for g in GAPS}}


def intervals(fit) -> dict:
    out = {name: fit.intervals[name] for name in ("A", "alpha")}
    for g in GAPS:
        out[f"x at gap {g:g}"] = fit.x_at_gap[g][1:]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--boot", type=int, default=400)
    parser.add_argument("--sizes", type=int, default=6)
    parser.add_argument("--judgments", type=int, default=300, help="per size")
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--annotators", type=int, default=30)
    parser.add_argument("--prompt-sd", type=float, default=1.0)
    parser.add_argument("--annotator-sd", type=float, default=0.5)
    parser.add_argument("--prompts-only", action="store_true", help="also the prompt-only bootstrap")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    sizes = np.geomspace(1e6, 1e9, args.sizes)
    rates = 0.5 - 0.3 * (sizes / 1e6) ** -0.25
    target = truth()
    schemes = ["prompts x annotators"] + (["prompts"] if args.prompts_only else [])
    hits = {s: {k: [] for k in target} for s in schemes}
    widths = {s: {k: [] for k in target} for s in schemes}
    started = time.perf_counter()
    for rep in range(args.reps):
        study = simulate_study(
            rates, n_items=args.prompts, n_annotators=args.annotators, n_judgments=args.judgments * args.sizes,
            item_sd=args.prompt_sd, annotator_sd=args.annotator_sd, seed=args.seed + rep,
        )
        codes = np.arange(args.sizes)
        for scheme in schemes:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                if scheme == "prompts":
                    wins, totals = series_counts(study.judgments, codes)
                    fit = fit_parity_curve(sizes, wins, totals, n_boot=args.boot, seed=rep, targets=GAPS)
                else:
                    fit = fit_parity_curve(sizes, cells=series_cells(study.judgments, codes), n_boot=args.boot,
                                           seed=rep, targets=GAPS)
            for name, (low, high) in intervals(fit).items():
                hits[scheme][name].append(low <= target[name] <= high)
                logged = name != "alpha"
                with np.errstate(divide="ignore", invalid="ignore"):
                    widths[scheme][name].append(np.log10(high / low) if logged else high - low)
    seconds = time.perf_counter() - started

    print(f"{args.reps} replications, {args.boot} refits each; {args.sizes} sizes 1e6-1e9, "
          f"{args.judgments} judgments per size, {args.prompts} prompts (SD {args.prompt_sd}), "
          f"{args.annotators} annotators (SD {args.annotator_sd}); nominal 0.95")
    print(f"{'quantity':<16} {'truth':>10}  {'bootstrap':<22} {'coverage':>8} {'± MC se':>8} {'median width':>13}")
    for name, value in target.items():
        for scheme in schemes:
            cover = float(np.mean(hits[scheme][name]))
            se = np.sqrt(cover * (1 - cover) / args.reps)
            unit = "" if name == "alpha" else " (log10)"
            print(f"{name:<16} {value:>10.4g}  {scheme:<22} {cover:>8.3f} {se:>8.3f} "
                  f"{float(np.median(widths[scheme][name])):>7.3g}{unit}")
    print(f"{seconds:.1f} s")


if __name__ == "__main__":
    main()
