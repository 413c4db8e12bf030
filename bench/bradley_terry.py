"""Coverage and speed of the Bradley-Terry fit (analysis.stats.bradley_terry, no Django).

(a) Coverage. Each replication simulates one study (`simulate_bradley_terry`): --generators
generators with strengths evenly spaced from -2 to 0.5 on the logit scale, --judgments
judgments, --prompts prompts and --annotators annotators, a position effect of 0.2,
either without random effects or with prompt SD --prompt-sd and annotator SD
--annotator-sd (per player, so every comparison carries both; see the simulator). Two
designs with the same total judgments: vs-real only, and pooled (half vs-real, half
head-to-head). Each is fitted with --boot two-way refits; the truth is the pooled
vs-real rate expit(theta) of the simulated (pseudo-true) strengths. Printed per
condition and interval method (CGM sandwich with t, the default; percentile of the
mapped bootstrap refits, `method="bootstrap"`): the
coverage over all generators and replications with its Monte Carlo standard error
(from the spread of per-replication coverage) and the median interval width.

(b) Speed: one fit with --speed-boot two-way refits on --speed-judgments judgments of
20 generators (half vs-real, half head-to-head), 2,000 prompts, 1,000 annotators.

    python bench/bradley_terry.py [--reps 200] [--boot 400] [--skip-speed] [--skip-coverage]
"""

import argparse
import time

import numpy as np
from scipy.special import expit

from analysis.stats import bradley_terry, percentile_interval, simulate_bradley_terry
from analysis.stats.bradley_terry import BT_FLAGS


def coverage(args) -> None:
    theta = np.linspace(-2.0, 0.5, args.generators)
    print(f"coverage of the pooled vs-real rate's {args.level:.0%} interval, {args.reps} replications, "
          f"{args.generators} generators, {args.judgments} judgments, {args.boot} refits")
    print(f"{'random effects':>16} {'design':>9} {'method':>10} {'coverage':>9} {'MC SE':>6} {'median width':>13}")
    for effects in ((0.0, 0.0), (args.prompt_sd, args.annotator_sd)):
        for share, design in ((1.0, "vs-real"), (0.5, "pooled")):
            hits = {"bootstrap": [], "sandwich": []}
            widths = {"bootstrap": [], "sandwich": []}
            for rep in range(args.reps):
                sim = simulate_bradley_terry(
                    theta, n_judgments=args.judgments, vs_real_share=share, gamma=0.2, n_items=args.prompts,
                    n_annotators=args.annotators, item_sd=effects[0], annotator_sd=effects[1], seed=rep)
                fit = bradley_terry(**sim.arrays, n_boot=args.boot, level=args.level, seed=rep)
                boot_low, boot_high = percentile_interval(fit.replicates, args.level)
                bounds = {"bootstrap": (expit(boot_low), expit(boot_high)), "sandwich": (fit.rate_low, fit.rate_high)}
                for name, (low, high) in bounds.items():
                    hits[name].append(np.mean((low <= sim.truth_rate) & (sim.truth_rate <= high)))
                    widths[name].append(np.median(high - low))
            label = "none" if effects[0] == 0 else f"{effects[0]:g} / {effects[1]:g}"
            for name in hits:
                h = np.array(hits[name])
                print(f"{label:>16} {design:>9} {name:>10} {h.mean():9.3f} {h.std(ddof=1) / np.sqrt(len(h)):6.3f} "
                      f"{np.median(widths[name]):13.4f}")


def speed(args) -> None:
    theta = np.linspace(-2.0, 0.5, 20)
    sim = simulate_bradley_terry(theta, n_judgments=args.speed_judgments, vs_real_share=0.5, gamma=0.2,
                                 n_items=2000, n_annotators=1000, item_sd=1.0, annotator_sd=0.5, seed=0)
    start = time.perf_counter()
    fit = bradley_terry(**sim.arrays, n_boot=args.speed_boot, seed=0)
    seconds = time.perf_counter() - start
    print(f"speed: {args.speed_judgments:,} judgments, 20 generators, {args.speed_boot} two-way refits: "
          f"{seconds:.2f} s (refits kept {fit.boot_converged:.3f})")
    gamma = fit.gamma_replicates[np.isfinite(fit.gamma_replicates)]
    print(f"  position effect {fit.gamma:.3f} [{fit.gamma_low:.3f}, {fit.gamma_high:.3f}] (se {fit.gamma_se:.4f}, "
          f"refits' sd {gamma.std(ddof=1):.4f}; simulated as 0.2 within a prompt and annotator, less once their effects are averaged over); fit X2 {fit.pearson:.0f} on {fit.df} df")
    flagged = {f"{fit.players[g + 1]}: {', '.join(BT_FLAGS[f] for f in flags)}" for g, flags in enumerate(fit.flags)
               if flags}
    print(f"  flagged generators: {'; '.join(sorted(flagged)) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--boot", type=int, default=400)
    parser.add_argument("--generators", type=int, default=8)
    parser.add_argument("--judgments", type=int, default=4000)
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--annotators", type=int, default=30)
    parser.add_argument("--prompt-sd", type=float, default=1.0)
    parser.add_argument("--annotator-sd", type=float, default=0.5)
    parser.add_argument("--level", type=float, default=0.95)
    parser.add_argument("--speed-judgments", type=int, default=1_000_000)
    parser.add_argument("--speed-boot", type=int, default=2000)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-coverage", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    if not args.skip_coverage:
        coverage(args)
    if not args.skip_speed:
        speed(args)
    print(f"total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
