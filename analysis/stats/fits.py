"""Scaling fits: the preference rate (or a loss) as a function of scale.

Parity curves (forms in `forms`) are fitted by binomial likelihood on the judgment
counts of each generator of a series, not by least squares on rates: a rate from 40
judgments weighs less than one from 4,000, and rates near 0 or 1 are not symmetric.
The objective is half the binomial deviance,

    f(theta) = sum_k  w_k log(w_k / (n_k p_k)) + (n_k - w_k) log((n_k - w_k) / (n_k (1 - p_k)))

(minimised where the log-likelihood sum_k w_k log p_k + (n_k - w_k) log(1 - p_k) is
maximised; McCullagh, P. & Nelder, J. A. (1989). Generalized Linear Models, 2nd ed.,
Section 4.4). Loss curves minimise the Huber loss of log residuals,

    f(theta) = sum_k  w_k Huber_delta(log Lhat_k - log L_k),   delta = 1e-3

(Hoffmann, J. et al. (2022). Training compute-optimal large language models,
Appendix D.2; replicated by Besiroglu, T. et al. (2024). Chinchilla scaling: a
replication attempt). Both run L-BFGS from a grid of starting points and keep the
best (`optimize.lbfgs`, all starts in one batch).

Uncertainty: judgments of one prompt are correlated across generators, and so are
judgments of one annotator (some people are stricter with every generator). Given
counts per (generator, prompt, annotator) cell (`series.series_cells`), parity curves are
bootstrapped over prompts and annotators at once, as the rates are (`bootstrap`,
Owen & Eckles 2012): each resample weights every cell by its prompt's and its
annotator's resample counts and recounts every generator's wins and judgments; the
resampled rates are brought to the two-way cluster-robust covariance (the product
weights count each judgment's own noise three times, `series.two_way_rates`), and each
resample is refitted (from the full-data optimum). Resampling prompts alone treats
the annotators as fixed, and every fitted quantity inherits the annotators' spread
without its share of the interval. Given counts per prompt only (`series.series_counts`),
the bootstrap is over prompts. Loss curves are bootstrapped over data points.
Intervals are percentile intervals.

A parity fit that cannot be trusted says so with flags (`FIT_FLAGS`) and has no
intervals rather than wrong ones. Its parameters are not identified where the
expected (Fisher) information at the estimate, I = J' diag(n / (p (1 - p))) J with J
the Jacobian of the fitted rates, is numerically singular (relative to its largest
eigenvalue, or per judgment): the optimum sits on a ridge or at a boundary, such as an
asymptote run off to 0 or 1 or a gap run off to zero, and the refits of a bootstrap
would only wander along it. With one prompt or one annotator the two-way bootstrap has
nothing to resample; a percentile interval of zero width (every refit the same) is
dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .bootstrap import cluster_weights, percentile_interval, two_way_sums
from .forms import FORMS, Form
from .optimize import lbfgs
from .series import SeriesCells, two_way_rates


class _Binomial:
    """Half binomial deviance of rows of counts (module docstring) with its gradient."""

    def __init__(self, form: Form, logx: np.ndarray, wins: np.ndarray, totals: np.ndarray, data_rows: np.ndarray):
        self.form, self.logx, self.data_rows = form, logx, data_rows
        self.wins, self.totals = np.atleast_2d(wins).astype(float), np.atleast_2d(totals).astype(float)
        losses = self.totals - self.wins
        with np.errstate(invalid="ignore", divide="ignore"):
            saturated = np.where(self.wins > 0, self.wins * np.log(self.wins / self.totals), 0.0) + \
                np.where(losses > 0, losses * np.log(losses / self.totals), 0.0)
        self.saturated = saturated.sum(axis=1)

    def __call__(self, theta: np.ndarray, rows: np.ndarray):
        data = self.data_rows[rows]
        w, n = self.wins[data], self.totals[data]
        p, jac = self.form.predict(theta, self.logx)
        inside = (p > 0) & (p < 1)
        safe = np.where(inside, p, 0.5)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            loglik = np.where(w > 0, w * np.log(safe), 0.0) + np.where(n - w > 0, (n - w) * np.log1p(-safe), 0.0)
            value = self.saturated[data] - loglik.sum(axis=1)
            dp = -w / safe + (n - w) / (1 - safe)
        value = np.where(inside.all(axis=1), value, np.inf)
        return value, np.einsum("bn,bnk->bk", dp, jac)


class _HuberLog:
    """Weighted Huber loss of log residuals (module docstring) with its gradient."""

    def __init__(self, form: Form, logx: np.ndarray, values: np.ndarray, weights: np.ndarray, data_rows: np.ndarray,
                 delta: float):
        self.form, self.logx, self.data_rows, self.delta = form, logx, data_rows, delta
        self.log_values = np.log(np.asarray(values, dtype=float))
        self.weights = np.atleast_2d(weights).astype(float)

    def __call__(self, theta: np.ndarray, rows: np.ndarray):
        weights = self.weights[self.data_rows[rows]]
        pred, jac = self.form.predict(theta, self.logx)
        positive = pred > 0
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            r = np.log(np.where(positive, pred, 1.0)) - self.log_values[None]
            small = np.abs(r) <= self.delta
            loss = np.where(small, 0.5 * r**2, self.delta * (np.abs(r) - 0.5 * self.delta))
            value = np.where(positive.all(axis=1), (weights * loss).sum(axis=1), np.inf)
            psi = weights * np.clip(r, -self.delta, self.delta) / np.where(positive, pred, 1.0)
        return value, np.einsum("bn,bnk->bk", psi, jac)


# Flag -> what it means, for the report.
FIT_FLAGS = {
    "not_identified": "the data do not identify the form's parameters (too few scale values, or an estimate "
                      "on a ridge or at a boundary of the form): no intervals",
    "no_variation": "every generator's judgments all went the same way: the likelihood has no maximum "
                    "inside the form",
    "single_cluster": "one prompt or one annotator in the series: nothing to resample, no intervals",
    "no_spread": "every bootstrap refit gave the same value: no interval of zero width is shown",
    "rough": "fewer than 90 % of the bootstrap refits converged: the intervals are rough",
}
# Share of converged refits below which a fit is flagged `rough`.
MIN_CONVERGED = 0.9
# Smallest eigenvalue of the expected information, relative to the largest and per
# judgment, below which the parameters are not identified. Identified fits of simulated
# ladders sit at 1e-6 and above on both; ridges and boundaries at 1e-14 and below.
MIN_INFORMATION = 1e-9


def identified(form: Form, theta: np.ndarray, logx: np.ndarray, totals: np.ndarray) -> bool:
    """Whether the expected information at `theta` is far from singular (module docstring)."""
    p, jac = form.predict(np.atleast_2d(theta), logx)
    p, jac = p[0], jac[0]
    if not (np.all(np.isfinite(jac)) and np.all((p > 0) & (p < 1))):
        return False
    information = jac.T @ ((totals / (p * (1 - p)))[:, None] * jac)
    values = np.linalg.eigvalsh((information + information.T) / 2)
    smallest, largest = values[0], values[-1]
    return bool(largest > 0 and smallest > MIN_INFORMATION * largest
                and smallest > MIN_INFORMATION * totals.sum())


def minimise_deviance(form, x: np.ndarray, wins: np.ndarray, totals: np.ndarray,
                      starts: np.ndarray) -> tuple[np.ndarray, float]:
    """Internal parameters and half deviance of the best fit of `form` to per-generator
    counts, from every row of `starts` (no bootstrap). `form` needs only a `predict`
    like `Form.predict`, so a form with a parameter held fixed fits the same way.
    The deviance does not depend on where log x is centred."""
    logx = np.log(np.asarray(x, dtype=float)).reshape(len(wins), -1)
    logx = logx - logx.mean(axis=0)
    return _best_of(_Binomial(form, logx, wins, totals, np.zeros(len(starts), np.int64)), starts)


def _best_of(objective, starts: np.ndarray) -> tuple[np.ndarray, float]:
    values, _ = objective(starts, np.arange(len(starts)))
    starts = starts[np.isfinite(values)]
    if len(starts) == 0:
        raise ValueError("no starting point gives a valid prediction at every data point")
    result = lbfgs(objective, starts)
    f = np.where(np.isfinite(result.f), result.f, np.inf)
    best = int(np.argmin(f))
    return result.x[best], float(f[best])


@dataclass(frozen=True, eq=False)
class CurveFit:
    """A fitted curve with bootstrap intervals.

    form : name of the form (`forms.FORMS`).
    params : reported parameters (natural units of x); intervals: name -> (low, high).
    objective : minimised value (half deviance for parity curves, Huber sum for loss).
    n_params, n_points : fitted parameters and data points (generators).
    x_at_gap : target gap -> (x, low, high): the scale where 0.5 - p(x) falls to the
        target (inf where the fitted curve never gets there). Single-axis forms only.
    replicates : name -> (n_boot,) bootstrap replicates of each parameter and of
        ``x_at_gap_<target>``.
    boot_converged : share of bootstrap refits that met the convergence test.
    resampled : what the bootstrap resampled: "prompts x annotators", "prompts",
        "points" (loss curves), or "" (no bootstrap).
    flags : names of `FIT_FLAGS` that apply; intervals of a flagged quantity are NaN.
    theta, log_ref : internal parameters and centring of log x (for `predict`).
    """

    form: str
    params: dict
    intervals: dict
    objective: float
    n_params: int
    n_points: int
    x_at_gap: dict
    replicates: dict
    boot_converged: float
    theta: np.ndarray
    log_ref: np.ndarray
    level: float
    resampled: str = ""
    flags: tuple[str, ...] = ()

    def qaic(self, dispersion: float = 1.0) -> float:
        """Quasi-AIC of a parity curve, 2 objective / dispersion + 2 n_params.

        The objective is the half deviance, minus the log-likelihood up to the
        saturated model's, which cancels between forms of the same data; with
        dispersion 1 this is the AIC. Burnham, K. P. & Anderson, D. R. (2002). Model
        Selection and Multimodel Inference, 2nd ed., Section 2.5. NaN for loss curves,
        whose objective is no likelihood.
        """
        if self.form == "loss":
            return float("nan")
        return 2 * self.objective / dispersion + 2 * self.n_params

    def predict(self, x) -> np.ndarray:
        """The fitted curve at scale values x ((n,) or (n, axes))."""
        logx = np.log(np.asarray(x, dtype=float)).reshape(-1, FORMS[self.form].axes) - self.log_ref
        return FORMS[self.form].predict(np.atleast_2d(self.theta), logx)[0][0]


@dataclass(frozen=True)
class NotFitted:
    """A form left unfitted, and why.

    form : name of the form; reason : a flag of `FIT_FLAGS`, ``not_identified`` (too
    few distinct scale values for its parameters, `Form.min_points`) or
    ``no_variation``; message : the reason in words;
    n_distinct, needed : distinct scale values of the data, and the form's minimum.
    """

    form: str
    reason: str
    message: str
    n_distinct: int
    needed: int


def x_at_gap(form: str, params: dict[str, np.ndarray], target: float) -> np.ndarray:
    """Scale x where the parity gap 0.5 - p(x) equals `target`.

    saturating: A x^(-alpha) = target, so x = (A / target)^(1 / alpha).
    free: 0.5 - p_inf + A x^(-alpha) = target, so x = (A / (target - 0.5 + p_inf))^(1 / alpha),
    infinite where target <= 0.5 - p_inf (the asymptote stays farther from parity).
    Infinite where alpha <= 0. Computed on logs, so extreme values overflow to inf.
    """
    log_a = np.log(np.asarray(params["A"], dtype=float))
    alpha = np.asarray(params["alpha"], dtype=float)
    room = np.full_like(alpha, target) if form == "saturating" else target - 0.5 + np.asarray(params["p_inf"])
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        log_x = (log_a - np.log(np.where(room > 0, room, 1.0))) / alpha
        x = np.exp(log_x)
    return np.where((room > 0) & (alpha > 0), x, np.inf)


def _interval(draws: np.ndarray, level: float, flags: list) -> tuple[float, float]:
    low, high = (float(v) for v in percentile_interval(draws, level))
    if low == high and np.isfinite(low):
        if "no_spread" not in flags:
            flags.append("no_spread")
        return np.nan, np.nan
    return low, high


def _summarise(form: Form, theta: np.ndarray, objective: float, boot_theta: np.ndarray | None, boot_ok,
               log_ref: np.ndarray, n_points: int, targets, level: float, resampled: str,
               flags: tuple[str, ...] = ()) -> CurveFit:
    flags = list(flags)
    params = {name: float(v[0]) for name, v in form.natural_params(theta, log_ref).items()}
    replicates = form.natural_params(boot_theta, log_ref) if boot_theta is not None else {}
    gaps = {}
    if form.axes == 1 and form.name != "loss":
        for target in targets:
            point = float(x_at_gap(form.name, {k: np.array([v]) for k, v in params.items()}, target)[0])
            if boot_theta is not None:
                draws = x_at_gap(form.name, replicates, target)
                replicates[f"x_at_gap_{target:g}"] = draws
                low, high = _interval(draws, level, flags)
            else:
                low = high = np.nan
            gaps[target] = (point, low, high)
    intervals = {name: _interval(replicates[name], level, flags) if boot_theta is not None else (np.nan, np.nan)
                 for name in form.natural}
    converged = float(np.mean(boot_ok)) if boot_theta is not None else np.nan
    if converged < MIN_CONVERGED:
        flags.append("rough")
    return CurveFit(
        form=form.name, params=params, intervals=intervals, objective=objective, n_params=len(form.internal),
        n_points=n_points, x_at_gap=gaps, replicates=replicates,
        boot_converged=converged,
        theta=np.asarray(theta).reshape(-1), log_ref=log_ref, level=level,
        resampled=resampled if boot_theta is not None else "", flags=tuple(flags),
    )


def fit_parity_curve(
    x,
    wins=None,
    totals=None,
    *,
    cells: SeriesCells | None = None,
    form: str = "saturating",
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    targets=(0.05, 0.01),
    starts: np.ndarray | None = None,
) -> CurveFit | NotFitted:
    """Fit a parity curve to the generators of a series by binomial likelihood.

    Parameters
    ----------
    x : (G,) scale values along one axis, or (G, 2) for ``joint_gap`` (N, D).
    wins, totals : (G, I) counts per generator and prompt (from `series_counts`), for
        a prompt bootstrap; or (G,) totals, then only with ``n_boot=0``.
    cells : instead of wins and totals, counts per (generator, prompt, annotator)
        (`series.series_cells`), for the two-way prompt x annotator bootstrap.
    form : "saturating", "free" or "joint_gap" (`forms`).
    n_boot : bootstrap resamples, each refitted.
    targets : parity gaps for `CurveFit.x_at_gap`.
    starts : internal starting points (rows), default `Form.starts`.

    Returns
    -------
    CurveFit; formulas and references in the module docstring. `NotFitted` where x
    has fewer distinct values than the form needs (`Form.min_points`), or where every
    generator's judgments went one way. A fit flagged ``not_identified`` or
    ``single_cluster`` is not bootstrapped (`FIT_FLAGS`).
    """
    shape = FORMS[form]
    x = np.asarray(x, dtype=float).reshape(-1, shape.axes)
    n_distinct = len(np.unique(x, axis=0))
    if n_distinct < shape.min_points:
        values = "scale values" if shape.axes == 1 else "(N, D) pairs"
        return NotFitted(
            form, "not_identified",
            f"the {shape.label} form needs at least {shape.min_points} distinct {values}; this series has {n_distinct}",
            n_distinct, shape.min_points,
        )
    logx = np.log(x)
    log_ref = logx.mean(axis=0)
    logx = logx - log_ref
    if cells is not None:
        if wins is not None or totals is not None:
            raise ValueError("pass either cells or wins and totals")
        total_wins, total_n = cells.per_generator()
    else:
        wins, totals = np.asarray(wins, dtype=float), np.asarray(totals, dtype=float)
        if wins.ndim != 2 and n_boot:
            raise ValueError("the prompt bootstrap needs counts per prompt, (G, I) arrays")
        total_wins = wins.sum(axis=1) if wins.ndim == 2 else wins
        total_n = totals.sum(axis=1) if totals.ndim == 2 else totals
    judged = total_n > 0
    if not ((total_wins[judged] > 0) & (total_wins[judged] < total_n[judged])).any():
        return NotFitted(form, "no_variation", "every generator's judgments all went the same way",
                         n_distinct, shape.min_points)
    grid = shape.starts() if starts is None else np.atleast_2d(starts)
    objective = _Binomial(shape, logx, total_wins, total_n, np.zeros(len(grid), np.int64))
    theta, value = _best_of(objective, grid)

    flags = []
    if not identified(shape, theta, logx, total_n):
        flags.append("not_identified")
    if cells is not None:
        clusters = min(len(np.unique(cells.item)), len(np.unique(cells.annotator)))
    else:
        clusters = int((np.asarray(totals).sum(axis=0) > 0).sum()) if np.ndim(totals) == 2 else 0
    if n_boot and clusters < 2:
        flags.append("single_cluster")
    boot_theta = boot_ok = None
    resampled = ""
    if n_boot and not flags:
        if cells is not None:
            sums = two_way_sums(np.stack([cells.wins, cells.totals - cells.wins]), cells.generator, cells.item,
                                cells.annotator, n_groups=len(logx), n_boot=n_boot, seed=seed)
            boot_totals = np.broadcast_to(total_n, (n_boot, len(total_n)))
            boot_wins = two_way_rates(cells, total_wins, total_n, sums[:, :, 0], sums[:, :, 0] + sums[:, :, 1]) \
                * boot_totals
            resampled = "prompts x annotators"
        else:
            weights = cluster_weights(np.random.default_rng(seed), wins.shape[1], n_boot).astype(np.float64)
            # (B x I) @ (I x G): OpenBLAS is several times faster this way round.
            boot_wins, boot_totals = weights.T @ wins.T, weights.T @ totals.T
            resampled = "prompts"
        boot = _Binomial(shape, logx, boot_wins, boot_totals, np.arange(n_boot))
        result = lbfgs(boot, np.repeat(theta[None], n_boot, axis=0))
        boot_theta, boot_ok = result.x, result.converged
    return _summarise(shape, theta[None], value, boot_theta, boot_ok, log_ref, len(logx), targets, level, resampled,
                      tuple(flags))


def fit_loss_curve(
    N,
    D,
    loss,
    *,
    delta: float = 1e-3,
    starts: np.ndarray | None = None,
    n_boot: int = 0,
    level: float = 0.95,
    seed: int = 0,
) -> CurveFit:
    """Fit L(N, D) = E + A / N^alpha + B / D^beta by Huber loss on log values.

    The method of Hoffmann et al. (2022) as replicated by Besiroglu et al. (2024):
    Huber (delta = 1e-3) on log L, L-BFGS from a grid of starting points (default the
    replication's 4,500-point grid, `Form.starts`; pass a coarser grid, as rows of
    (log E, log A, alpha, log B, beta), for speed), best fit kept. The bootstrap
    resamples data points.
    """
    shape = FORMS["loss"]
    logx = np.log(np.stack([np.asarray(N, float), np.asarray(D, float)], axis=1))
    log_ref = logx.mean(axis=0)
    logx = logx - log_ref
    grid = shape.starts() if starts is None else np.atleast_2d(np.asarray(starts, dtype=float)).copy()
    grid[:, 1] -= grid[:, 2] * log_ref[0]
    grid[:, 3] -= grid[:, 4] * log_ref[1]
    n = len(logx)
    objective = _HuberLog(shape, logx, loss, np.ones((1, n)), np.zeros(len(grid), np.int64), delta)
    theta, value = _best_of(objective, grid)
    boot_theta = boot_ok = None
    if n_boot:
        weights = cluster_weights(np.random.default_rng(seed), n, n_boot).T.astype(np.float64)
        boot = _HuberLog(shape, logx, loss, weights, np.arange(n_boot), delta)
        result = lbfgs(boot, np.repeat(theta[None], n_boot, axis=0))
        boot_theta, boot_ok = result.x, result.converged
    return _summarise(shape, theta[None], value, boot_theta, boot_ok, log_ref, n, (), level, "points")


def compare_forms(restricted: CurveFit, full: CurveFit, *, dispersion: float = 1.0) -> dict:
    """Quasi-likelihood-ratio and quasi-AIC comparison of nested parity curves on the same data.

    lr = 2 (f_restricted - f_full) / dispersion, referred to chi-square with
    df = k_full - k_restricted (Wilks, S. S. (1938). Ann. Math. Statist. 9, 60-62);
    e.g. saturating (p_inf = 0.5) inside free. Judgments of one prompt are
    correlated, so the binomial likelihood overstates the evidence: passing the
    series' design effect as `dispersion` gives the quasi-likelihood ratio
    (McCullagh & Nelder 1989, Section 9.2.4). delta_qaic = qaic_restricted -
    qaic_full (`CurveFit.qaic`, the same dispersion; positive favours the full form):
    an AIC that kept the binomial likelihood would count the same overstated
    evidence that the ratio discounts. Burnham & Anderson add a parameter for the
    estimated dispersion; it is shared by both forms and cancels in the difference.
    """
    df = full.n_params - restricted.n_params
    lr = max(0.0, 2 * (restricted.objective - full.objective)) / dispersion
    return {"lr": lr, "df": df, "p_value": float(stats.chi2.sf(lr, df)),
            "delta_qaic": restricted.qaic(dispersion) - full.qaic(dispersion)}
