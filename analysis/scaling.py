"""Scaling fits of a study: per series and scale axis, the preference rate toward parity.

For each series with at least `MIN_POINTS` generators in the study that take at least
`MIN_POINTS` distinct values along an axis (`params`, `train_images`, `train_flops`,
`train_step`, or a numeric inference setting, named ``settings.<key>``), two forms are
fitted by binomial likelihood on the judgment counts with a two-way prompt x annotator
bootstrap (`stats.fit_parity_curve`; exclusions applied):

- ``saturating``: p(x) = 0.5 - A x^(-alpha), which reaches parity;
- ``free``: p(x) = p_inf - A x^(-alpha), with its own asymptote;

with the extrapolated x where the parity gap 0.5 - p(x) falls to each target (for the
saturating form, conditional on the rate reaching parity), their comparison
(`stats.compare_forms`: likelihood ratio and quasi-AIC difference) and the series'
verdict: reaches parity, stays below, or undetermined at this budget, with the
judgments that would tell an asymptote of 0.45 from parity (`stats.asymptote`). The
comparison and the verdict share one dispersion, the robust-over-model variance ratio
of the free fit's asymptote (`stats.asymptote.asymptote_dispersion`); where that is
undefined, the series' mean design effect. The free form needs four distinct values
along the axis: with three, its asymptote is not identified, and the series records
why it was not fitted instead of numbers. Where both `params` and
`train_images` vary, not in lockstep, over at least `JOINT_MIN_POINTS` generators,
the joint form p(N, D) = 0.5 - A N^(-alpha) - B D^(-beta) is fitted as well.

Pooled fits (`pooled_series_fits`), where the study has head-to-head judgments: the
same series, axes and forms fitted to the generators' pooled rates expit(theta) of the
Bradley-Terry fit (`stats.bradley_terry`) instead of their direct vs-real counts. A
generator's pooled rate p with standard error se(theta) enters as an effective count
n_eff = 1 / (p (1 - p) se(theta)^2) (the binomial count whose rate has the same
variance, by the delta method: se(p) = p (1 - p) se(theta)) with p n_eff wins; the
cluster structure is in se already, so the dispersion is 1. Intervals come from
refits on parametric draws of the strengths, N(theta, V) with V the fit's CGM
covariance, so the covariance between generators' pooled rates (they share
head-to-head judgments) is kept; the point fit's weights ignore it.

A generator enters a fit along an axis when it has a positive value on it; the other
axes are not held fixed, so in a ladder where size and compute grow together, the
fits along `params` and along `train_flops` describe the same generators twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.special import expit

from analysis.stats import (
    BradleyTerry,
    CurveFit,
    Judgments,
    RateTable,
    Verdict,
    asymptote_dispersion,
    compare_forms,
    fit_parity_curve,
    parity_verdict,
    percentile_interval,
)
from analysis.stats.fits import FIT_FLAGS
from analysis.stats.series import series_cells

AXES = ("params", "train_images", "train_flops", "train_step")
SETTING = "settings."
MIN_POINTS = 3
JOINT_AXES = ("params", "train_images")
JOINT_AXIS = "params+train_images"
# Four parameters: at least one more point than that.
JOINT_MIN_POINTS = 5
# |correlation| of log N and log D above which they move in lockstep and the joint
# form cannot tell them apart.
LOCKSTEP = 0.995


@dataclass(frozen=True)
class GeneratorInfo:
    """What a report needs of a generator: names, series, scale axes, settings, metrics, blank samples."""

    id: int
    name: str
    series_id: int | None = None
    series: str | None = None
    params: int | None = None
    train_images: int | None = None
    train_flops: float | None = None
    train_step: int | None = None
    settings: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    # Its blank or near-constant samples of the study's corpus (`Sample.blank`).
    blank_samples: int = 0

    def axis_value(self, axis: str) -> float | None:
        """The generator's positive value on a scale axis (``settings.<key>`` for a setting), else None."""
        value = self.settings.get(axis[len(SETTING):]) if axis.startswith(SETTING) else getattr(self, axis)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value) if math.isfinite(value) and value > 0 else None


@dataclass(frozen=True, eq=False)
class SeriesFit:
    """The fits of one series along one axis.

    codes : generator codes of the points (the rate table's order), along the axis.
    x : (G,) values on the axis, or (G, 2) (N, D) for the joint form.
    fits : form name -> CurveFit ("saturating" and "free", or "joint_gap").
    comparison : saturating against free (`stats.compare_forms`), or None.
    dispersion : used in the comparison and the verdict; dispersion_basis: "asymptote"
        (`stats.asymptote.asymptote_dispersion`) or "design effect" (the mean of the
        series' generators, where the former is undefined).
    errors : form name -> why that fit failed.
    notes : caveats a reader needs (`fit_notes`).
    not_fitted : form name -> `stats.fits.NotFitted`, a form the data cannot identify.
    """

    series: str
    series_id: int
    axis: str
    codes: np.ndarray
    x: np.ndarray
    fits: dict
    comparison: dict | None
    dispersion: float
    errors: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    not_fitted: dict = field(default_factory=dict)
    verdict: Verdict | None = None
    dispersion_basis: str = "design effect"
    source: str = "direct"


def candidate_axes(generators: tuple[GeneratorInfo, ...]) -> list[str]:
    """The four scale axes, then every inference setting that is a number for some generator."""
    settings = sorted({
        f"{SETTING}{key}" for g in generators for key in g.settings
        if g.axis_value(f"{SETTING}{key}") is not None
    })
    return [*AXES, *settings]


def fit_notes(fits: dict) -> tuple[str, ...]:
    """Caveats of a series' fits, in words: one per flag of each form (`stats.fits.FIT_FLAGS`)."""
    return tuple(f"The {name} form: {FIT_FLAGS[flag]}." for name, fit in fits.items() for flag in fit.flags)


def _fit(x, cells, form: str, **kwargs):
    """(fit, None): a CurveFit, or a NotFitted form; (None, message) where the fit failed.

    `cells` None: counts come as ``wins`` and ``totals`` keywords (pooled fits)."""
    try:
        # Overflow in a wild bootstrap refit (a coefficient past 1e308) is an infinite
        # replicate, which the percentile intervals handle.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if cells is None:
                return fit_parity_curve(x, form=form, **kwargs), None
            return fit_parity_curve(x, cells=cells, form=form, **kwargs), None
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        return None, str(exc)


def _dispersion(rates: RateTable, codes: np.ndarray) -> float:
    deff = rates.design_effect[codes]
    deff = deff[np.isfinite(deff)]
    return float(max(1.0, deff.mean())) if len(deff) else 1.0


def series_fits(
    judgments: Judgments,
    rates: RateTable,
    generators: tuple[GeneratorInfo, ...],
    *,
    keep: np.ndarray | None = None,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
    targets: tuple[float, ...] = (0.05, 0.01),
) -> list[SeriesFit]:
    """Every fit of the study's series (module docstring), series by name, then axis."""
    judged = rates.n > 0
    by_series: dict[tuple[str, int], list[int]] = {}
    for code, g in enumerate(generators):
        if g.series_id is not None and judged[code]:
            by_series.setdefault((g.series or str(g.series_id), g.series_id), []).append(code)
    settings = {"n_boot": n_boot, "level": level, "seed": seed}
    out = []
    for (name, series_id), members in sorted(by_series.items()):
        if len(members) < MIN_POINTS:
            continue
        series_generators = tuple(generators[c] for c in members)
        for axis in candidate_axes(series_generators):
            points = [(generators[c].axis_value(axis), c) for c in members]
            points = sorted((v, c) for v, c in points if v is not None)
            if len({v for v, _ in points}) < MIN_POINTS:
                continue
            x = np.array([v for v, _ in points])
            codes = np.array([c for _, c in points], dtype=np.int64)
            cells = series_cells(judgments, codes, keep=keep)
            dispersion = _dispersion(rates, codes)
            fits, errors, not_fitted = {}, {}, {}
            for form in ("saturating", "free"):
                fit, error = _fit(x, cells, form, targets=targets, **settings)
                if fit is None:
                    errors[form] = error
                elif isinstance(fit, CurveFit):
                    fits[form] = fit
                else:
                    not_fitted[form] = fit
            basis = "design effect"
            robust = asymptote_dispersion(fits["free"], cells, x) if "free" in fits else np.nan
            if np.isfinite(robust):
                dispersion, basis = robust, "asymptote"
            comparison = None
            if len(fits) == 2:
                comparison = compare_forms(fits["saturating"], fits["free"], dispersion=dispersion)
            wins, totals = cells.per_generator()
            verdict = parity_verdict(x, wins, totals, fits.get("saturating"),
                                     fits.get("free") or not_fitted.get("free"), dispersion=dispersion)
            out.append(SeriesFit(name, series_id, axis, codes, x, fits, comparison, dispersion, errors,
                                 fit_notes(fits), not_fitted, verdict, basis))
        joint = _joint(judgments, rates, generators, members, keep, settings)
        if joint is not None:
            out.append(SeriesFit(name, series_id, *joint))
    return out


def _joint(judgments, rates, generators, members, keep, settings):
    points = []
    for c in members:
        n, d = (generators[c].axis_value(axis) for axis in JOINT_AXES)
        if n is not None and d is not None:
            points.append((n, d, c))
    if len(points) < JOINT_MIN_POINTS:
        return None
    points.sort()
    x = np.array([[n, d] for n, d, _ in points])
    logs = np.log(x)
    if min(len(np.unique(x[:, 0])), len(np.unique(x[:, 1]))) < 2:
        return None
    if abs(np.corrcoef(logs[:, 0], logs[:, 1])[0, 1]) > LOCKSTEP:
        return None
    codes = np.array([c for _, _, c in points], dtype=np.int64)
    cells = series_cells(judgments, codes, keep=keep)
    fit, error = _fit(x, cells, "joint_gap", targets=(), **settings)
    fits = {"joint_gap": fit} if isinstance(fit, CurveFit) else {}
    not_fitted = {"joint_gap": fit} if fit is not None and not fits else {}
    errors = {"joint_gap": error} if fit is None else {}
    return JOINT_AXIS, codes, x, fits, None, _dispersion(rates, codes), errors, fit_notes(fits), not_fitted


def _pooled_fit(x, rate, n_eff, draws, form: str, targets, level: float):
    point, error = _fit(x, None, form, wins=rate * n_eff, totals=n_eff, n_boot=0, targets=targets)
    if not isinstance(point, CurveFit):
        return point, error
    if point.flags:
        # As the direct fits: a flagged fit (not identified) gets no interval.
        return point, None
    names = list(point.params)
    replicates = {name: np.full(len(draws), np.nan) for name in names}
    gaps = {target: np.full(len(draws), np.nan) for target in point.x_at_gap}
    for b, drawn in enumerate(draws):
        refit, _ = _fit(x, None, form, wins=drawn * n_eff, totals=n_eff, n_boot=0, targets=targets,
                        starts=point.theta[None])
        if isinstance(refit, CurveFit):
            for name in names:
                replicates[name][b] = refit.params[name]
            for target in gaps:
                gaps[target][b] = refit.x_at_gap[target][0]
    intervals = {name: tuple(float(v) for v in percentile_interval(replicates[name], level)) for name in names}
    x_at_gap = {target: (value[0], *(float(v) for v in percentile_interval(gaps[target], level)))
                for target, value in point.x_at_gap.items()}
    converged = float(np.isfinite(replicates[names[0]]).mean()) if len(draws) else np.nan
    replicates.update({f"x_at_gap_{target:g}": draws_ for target, draws_ in gaps.items()})
    return replace(point, intervals=intervals, x_at_gap=x_at_gap, replicates=replicates, boot_converged=converged,
                   resampled="Bradley-Terry strengths (parametric)" if len(draws) else ""), None


def pooled_series_fits(
    direct: list[SeriesFit],
    bt: BradleyTerry,
    *,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
    targets: tuple[float, ...] = (0.05, 0.01),
) -> list[SeriesFit]:
    """The direct fits' series, axes and forms refitted to the pooled rates (module
    docstring), ``source="pooled"``; a series whose generators lack pooled estimates
    (or standard errors) on too few scale values is left out."""
    theta, se = bt.theta, bt.se
    usable = np.isfinite(theta) & np.isfinite(se) & (se > 0)
    free = np.flatnonzero(np.isfinite(theta))
    draws = np.empty((0, len(theta)))
    if n_boot and len(free) and np.isfinite(bt.covariance).all():
        rng = np.random.default_rng(seed)
        cov = bt.covariance[:len(free), :len(free)]
        drawn = rng.multivariate_normal(theta[free], cov, size=n_boot, method="eigh")
        draws = np.full((n_boot, len(theta)), np.nan)
        draws[:, free] = drawn
    rate = expit(theta)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = 1.0 / (rate * (1 - rate) * se**2)
    out = []
    for fit in direct:
        keep = usable[fit.codes]
        codes, x = fit.codes[keep], fit.x[keep]
        forms = tuple(fit.fits) + tuple(fit.not_fitted) + tuple(fit.errors)
        if len(np.unique(x, axis=0)) < MIN_POINTS or not forms:
            continue
        fits, errors, not_fitted = {}, {}, {}
        for form in forms:
            result, error = _pooled_fit(x, rate[codes], n_eff[codes], expit(draws[:, codes]), form, targets, level)
            if result is None:
                errors[form] = error
            elif isinstance(result, CurveFit):
                fits[form] = result
            else:
                not_fitted[form] = result
        comparison = None
        if "saturating" in fits and "free" in fits:
            comparison = compare_forms(fits["saturating"], fits["free"], dispersion=1.0)
        out.append(SeriesFit(fit.series, fit.series_id, fit.axis, codes, x, fits, comparison, 1.0, errors,
                             fit_notes(fits), not_fitted, None, "pooled standard errors", source="pooled"))
    return out
