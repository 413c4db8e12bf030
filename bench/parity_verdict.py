"""How often each series verdict is given against a known asymptote (analysis.stats, no Django).

Each replication simulates one series (`analysis.stats.simulate_study`): a ladder of
--sizes sizes log-spaced from 1e6 to 1e9 whose marginal preference rates follow

    p(x) = p_inf - 0.3 (x / 1e6)^(-0.25)

for a true asymptote p_inf of 0.5, 0.45 and 0.4, with --prompts prompts (SD
--prompt-sd on the logit scale) and --annotators annotators (SD --annotator-sd), at
each budget of --budgets judgments per size. It fits the saturating and the free form
(`fit_parity_curve`, no bootstrap: the verdict does not use one) and gives the verdict
(`stats.asymptote.parity_verdict`) with the asymptote's cluster-robust dispersion.

Prints, per truth and budget: the share of replications given each verdict, the
rejection rate of the test "p_inf = 0.5" with that dispersion and, for comparison,
with the series' mean design effect (the dispersion before), and the median of the
judgments the verdict says would tell 0.45 from parity at 80 % power. Then the power
check: replications of the 0.45 truth at that median number of judgments (of the
largest budget), with prompts and annotators added in proportion (the statement holds
the design, judgments per prompt and per annotator, as it is), and the share in which
the test rejects: the power the statement promises.

    python bench/parity_verdict.py [--reps 200] [--budgets 300,3000] [--power-reps 100]
"""

import argparse
import time

import numpy as np
from scipy import stats

from analysis.stats import preference_rates, simulate_study
from analysis.stats.asymptote import VERDICTS, asymptote_dispersion, parity_verdict
from analysis.stats.fits import CurveFit, fit_parity_curve
from analysis.stats.series import series_cells

TRUTHS = (0.5, 0.45, 0.4)


def replicate(sizes, p_inf, per_size, args, seed, scale=1.0):
    rates = p_inf - 0.3 * (sizes / 1e6) ** -0.25
    study = simulate_study(rates, n_items=round(args.prompts * scale), n_annotators=round(args.annotators * scale),
                           n_judgments=per_size * len(sizes), item_sd=args.prompt_sd,
                           annotator_sd=args.annotator_sd, seed=seed)
    cells = series_cells(study.judgments, np.arange(len(sizes)))
    wins, totals = cells.per_generator()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        saturating = fit_parity_curve(sizes, cells=cells, n_boot=0)
        free = fit_parity_curve(sizes, cells=cells, form="free", n_boot=0)
    robust = asymptote_dispersion(free, cells, sizes) if isinstance(free, CurveFit) else np.nan
    deff = preference_rates(study.judgments, n_boot=0).design_effect
    deff = max(1.0, float(np.nanmean(deff)))
    dispersion = robust if np.isfinite(robust) else deff
    verdict = parity_verdict(sizes, wins, totals, saturating, free, dispersion=dispersion)
    lr = 2 * (saturating.objective - free.objective) if isinstance(free, CurveFit) else np.nan
    return verdict, lr, dispersion, deff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--budgets", default="300,3000", help="judgments per size, comma-separated")
    parser.add_argument("--sizes", type=int, default=6)
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--annotators", type=int, default=30)
    parser.add_argument("--prompt-sd", type=float, default=1.0)
    parser.add_argument("--annotator-sd", type=float, default=0.5)
    parser.add_argument("--power-reps", type=int, default=100, help="0 skips the power check")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = np.geomspace(1e6, 1e9, args.sizes)
    budgets = [int(b) for b in args.budgets.split(",")]
    critical = stats.chi2.isf(0.05, 1)
    started = time.perf_counter()

    print(f"{args.reps} replications; {args.sizes} sizes 1e6-1e9, p(x) = p_inf - 0.3 (x/1e6)^-0.25; "
          f"{args.prompts} prompts (SD {args.prompt_sd}), {args.annotators} annotators (SD {args.annotator_sd})")
    head = "  ".join(f"{key:>18}" for key in VERDICTS)
    print(f"{'p_inf':>5} {'per size':>8}  {head}  {'reject 0.5':>10} {'(mean deff)':>11} {'needed (median)':>15}")
    needed_045 = None
    for budget in budgets:
        for p_inf in TRUTHS:
            counts = dict.fromkeys(VERDICTS, 0)
            reject = reject_deff = 0
            needed = []
            for rep in range(args.reps):
                verdict, lr, dispersion, deff = replicate(sizes, p_inf, budget, args, args.seed + rep)
                counts[verdict.verdict] += 1
                reject += lr / dispersion > critical
                reject_deff += lr / deff > critical
                needed.append(verdict.judgments_needed)
            shares = "  ".join(f"{counts[key] / args.reps:>18.3f}" for key in VERDICTS)
            median = float(np.nanmedian(needed))
            if p_inf == 0.45 and budget == max(budgets):
                needed_045 = median
            print(f"{p_inf:>5} {budget:>8}  {shares}  {reject / args.reps:>10.3f} {reject_deff / args.reps:>11.3f} "
                  f"{median:>15,.0f}")

    if args.power_reps and needed_045:
        per_size = int(np.ceil(needed_045 / args.sizes))
        scale = per_size / max(budgets)
        rejected = 0
        for rep in range(args.power_reps):
            verdict, lr, dispersion, _ = replicate(sizes, 0.45, per_size, args, 10_000 + args.seed + rep, scale)
            rejected += lr / dispersion > critical
        print(f"power check: p_inf 0.45 at {per_size * args.sizes:,} judgments ({per_size:,} per size, "
              f"{round(args.prompts * scale)} prompts, {round(args.annotators * scale)} annotators), "
              f"{args.power_reps} replications: the test of 0.5 rejects in {rejected / args.power_reps:.3f} "
              f"(promised 0.8)")
    print(f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
