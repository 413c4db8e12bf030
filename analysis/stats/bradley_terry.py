"""Bradley-Terry strengths of generators from vs-real and head-to-head judgments at once.

Players are the real reference images (player 0, strength fixed at 0) and the G
generators (players 1 .. G). A trial shows two images of the same prompt, a left and a
right one; the annotator chooses one. The model (Bradley, R. A. & Terry, M. E. (1952).
Rank analysis of incomplete block designs I. Biometrika 39, 324-345), with a position
(left-side) effect gamma shared by all trials:

    P(left chosen) = expit(theta_left - theta_right + gamma),   theta_real = 0

so a generator's pooled vs-real rate, position-balanced at gamma = 0, is
expit(theta_g): its vs-real trials measure it directly and its head-to-head trials
against other generators sharpen it through the differences theta_g - theta_h.

Fit. Judgments are aggregated first into counts per ordered (left, right) pair, n_lr
and w_lr (left chosen), so a million judgments cost no more than (G + 1)^2 cells. With
x_lr = e_left - e_right over the generators (the real column dropped) and a 1 for
gamma, the log-likelihood sum_lr w_lr log p_lr + (n_lr - w_lr) log(1 - p_lr) is a
binomial GLM with logit link; it is maximised by Newton's method (IRLS; McCullagh &
Nelder 1989, Section 4.4), score X'(w - n p), information H = X' diag(n p (1 - p)) X,
run for many count vectors at once (the bootstrap resamples) as batched solves.
The MLE exists where every player's comparisons connect it to the real images with
wins both ways: the players strongly connected to the real images in the graph
"i beat j at least once" (Ford, L. R. (1957). Amer. Math. Monthly 64, 28-33; Hunter,
D. R. (2004). MM algorithms for generalized Bradley-Terry models. Ann. Statist. 32,
384-406, Assumption 1). Other generators are flagged (`BT_FLAGS`) with NaN estimates,
no penalty is added, and the fit uses the judgments among the identified players only.

Intervals. Judgments of one prompt, and of one annotator, are correlated. The
Cameron-Gelbach-Miller (2011) two-way cluster-robust covariance of the estimates
beta = (theta, gamma) is the sandwich H^-1 (c_I B_item + c_A B_annotator - B_cell) H^-1
with B_c = sum over clusters of the summed scores x_j (y_j - p_j), outer products, and
c = G/(G - 1) for G prompts or annotators (`sandwich.two_way_interval`). The two-way
bootstrap (`bootstrap.two_way_sums`, as Chatbot Arena bootstraps its Bradley-Terry
fit: Chiang, W.-L. et al. (2024). Chatbot Arena: an open platform for evaluating LLMs
by human preference. ICML) resamples prompts x annotators, recounts every ordered pair
and refits. The product weights count each judgment's own noise three times
(`bootstrap`, `series.two_way_rates`): the refits' deviations from the estimate have,
to first order, covariance H^-1 ((1 - 1/A) B_item + (1 - 1/I) B_annotator + B_cell) H^-1;
they are mapped by V_target^(1/2) V_boot^(-1/2) onto the CGM covariance (symmetric
roots) and widened by t_(df) / z, df = min(prompts, annotators) - 1; ``method=
"bootstrap"`` takes the percentile interval of these mapped refits. The default,
``method="sandwich"``, is the normal-theory interval beta +/- t_(df) se from the CGM
covariance. Chosen by simulation (bench/bradley_terry.py, 200 replications of 8
generators, 4,000 judgments, 200 prompts, 30 annotators): the sandwich covered the
pooled rate 0.946-0.956 of the time with and without prompt and annotator effects,
vs-real alone or pooled, the mapped bootstrap 0.940-0.953 with intervals about 1 %
narrower; the unmapped product-weight bootstrap covered 0.99-1.00 with intervals up to
1.8 times as wide (triple counting).
The mapped refits are kept (`BradleyTerry.replicates`) for quantities of several
strengths at once (ranks, differences).
Rate intervals are expit of theta's, as expit is monotone.

Goodness of fit (transitivity). Over the ordered pairs with judgments, the Pearson
statistic X^2 = sum (w - n p)^2 / (n p (1 - p)) and the deviance
G^2 = 2 sum [w log(w / n p) + (n - w) log((n - w) / n (1 - p))], with
df = pairs - parameters, are referred to chi-square(df): a model that orders players
on one line cannot fit intransitive pairs (A beats B beats C beats A) or a position
effect that differs between pairs. The statistic assumes independent judgments;
prompt and annotator effects inflate it (dispersion X^2 / df above 1) even when the
model holds, so read a small p-value with the design effect in mind.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy import stats
from scipy.sparse.csgraph import connected_components
from scipy.special import expit

from .bootstrap import percentile_interval, two_way_sums
from .judgments import GENERATED, HEAD_TO_HEAD, Judgments, _flag_column, _integer_column, compact

# Flag -> what it means, for the report. Any flag but `no_vs_real` and `single_cluster`
# leaves the generator without an estimate; `single_cluster` leaves it without interval.
BT_FLAGS = {
    "no_judgments": "no judgment involves the generator: its strength is not identified",
    "no_variation": "the generator won every judgment, or lost every one: its strength is infinite",
    "not_identified": "the generator's wins and losses do not connect it to the real images both ways "
                      "(perfect separation against a group of players): no finite estimate",
    "single_cluster": "one prompt or one annotator: the spread between them cannot be estimated, no interval",
    "no_vs_real": "no vs-real judgment: the strength rests on head-to-head judgments only",
}
WITHHOLDING = ("no_judgments", "no_variation", "not_identified")
# Newton: largest step per parameter and iteration; a refit beyond MAX_THETA has run off
# to infinity (perfect separation in that resample) and is left out (NaN).
MAX_STEP, MAX_THETA, MAX_ITER, TOL = 2.0, 25.0, 60, 1e-10


@dataclass(frozen=True, eq=False)
class BradleyTerry:
    """A Bradley-Terry fit (module docstring); arrays are (G,) unless noted.

    labels : generator labels; players : ("real",) + labels, the order of the matrices.
    theta, theta_low, theta_high : strength (logit scale, real = 0) and its interval.
    se : CGM two-way standard error of theta (small-sample factors included).
    rate, rate_low, rate_high : pooled vs-real rate expit(theta) and its interval.
    gamma, gamma_low, gamma_high, gamma_se : the position (left-side) effect.
    n : judgments of each generator; n_vs_real : its vs-real judgments.
    direct_rate : position-balanced vs-real rate from vs-real judgments alone.
    wins, totals : (G+1, G+1) judgments where row player beat column player, and all
        judgments between the two (symmetric), real at index 0.
    left_wins, left_totals : (G+1, G+1) the same per ordered pair (row on the left).
    covariance : (K, K) CGM covariance of (theta of identified generators, gamma).
    pearson, deviance, df, p_value, dispersion : goodness of fit (module docstring);
        p_value is Pearson's.
    replicates : (n_boot, G) refitted thetas, mapped onto the CGM covariance (NaN
        for a refit that ran off or a withheld generator); gamma_replicates (n_boot,).
    boot_converged : share of refits kept.
    method : "bootstrap" or "sandwich", what low and high come from.
    flags : per generator, names of `BT_FLAGS`; fit_flags : "rough" where fewer than
        90 % of refits were kept, "not_converged" where the full fit did not converge.
    """

    labels: tuple
    players: tuple
    level: float
    n_boot: int
    method: str
    theta: np.ndarray
    theta_low: np.ndarray
    theta_high: np.ndarray
    se: np.ndarray
    rate: np.ndarray
    rate_low: np.ndarray
    rate_high: np.ndarray
    gamma: float
    gamma_low: float
    gamma_high: float
    gamma_se: float
    n: np.ndarray
    n_vs_real: np.ndarray
    direct_rate: np.ndarray
    wins: np.ndarray
    totals: np.ndarray
    left_wins: np.ndarray
    left_totals: np.ndarray
    covariance: np.ndarray
    pearson: float
    deviance: float
    df: int
    p_value: float
    dispersion: float
    replicates: np.ndarray
    gamma_replicates: np.ndarray
    boot_converged: float
    flags: tuple = ()
    fit_flags: tuple = ()

    @property
    def half_width(self) -> np.ndarray:
        """Larger distance from the pooled rate to an end of its interval."""
        return np.maximum(self.rate - self.rate_low, self.rate_high - self.rate)


def newton(wins: np.ndarray, totals: np.ndarray, X: np.ndarray, start: np.ndarray | None = None):
    """Binomial-logit MLE of each row of counts: ``(beta (B, K), converged (B,))``.

    wins, totals : (B, P) counts per cell; X : (P, K) design. Batched Newton (IRLS)
    with steps capped at MAX_STEP per parameter; a tiny ridge (1e-9) on the
    information only keeps parameters without data at their start.
    """
    wins, totals = np.atleast_2d(wins).astype(float), np.atleast_2d(totals).astype(float)
    B, (P, K) = len(wins), X.shape
    beta = np.zeros((B, K)) if start is None else np.array(np.broadcast_to(start, (B, K)), dtype=float)
    outer = (X[:, :, None] * X[:, None, :]).reshape(P, K * K)
    active = np.arange(B)
    converged = np.zeros(B, bool)
    for _ in range(MAX_ITER):
        b = beta[active]
        p = expit(b @ X.T)
        n = totals[active]
        grad = (wins[active] - n * p) @ X
        info = ((n * p * (1 - p)) @ outer).reshape(len(active), K, K) + 1e-9 * np.eye(K)
        step = np.linalg.solve(info, grad[..., None])[..., 0]
        size = np.abs(step).max(axis=1)
        step *= np.minimum(1.0, MAX_STEP / np.maximum(size, 1e-300))[:, None]
        beta[active] = b + step
        done = (size < TOL) | (np.abs(beta[active]).max(axis=1) > MAX_THETA)
        converged[active[done]] = size[done] < TOL
        active = active[~done]
        if len(active) == 0:
            break
    return beta, converged & (np.abs(beta).max(axis=1) <= MAX_THETA)


def _root(matrix: np.ndarray, power: float) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    values = np.maximum(values, values.max() * 1e-12 if power < 0 else 0.0)
    with np.errstate(divide="ignore"):
        scaled = np.where(values > 0, values ** power, 0.0)
    return (vectors * scaled) @ vectors.T


def _check(left, right, chose_left, item, annotator, n_generators: int):
    columns = {"left": left, "right": right, "chose_left": chose_left, "item": item, "annotator": annotator}
    n = len(np.asarray(left).reshape(-1))
    for name, values in columns.items():
        if len(np.asarray(values).reshape(-1)) != n:
            raise ValueError(f"column {name} has {len(np.asarray(values).reshape(-1))} rows, left has {n}")
    chose = _flag_column("chose_left", chose_left)
    out = {}
    for name in ("left", "right", "item", "annotator"):
        array = _integer_column(name, columns[name]).astype(np.int64)
        low = -1 if name in ("left", "right") else 0
        high = n_generators - 1 if name in ("left", "right") else np.iinfo(np.int64).max
        bad = (array < low) | (array > high)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"column {name}: row {row} holds {array[row]}, not a code in {low} .. {high}")
        out[name] = array
    same = out["left"] == out["right"]
    if same.any():
        row = int(np.flatnonzero(same)[0])
        raise ValueError(f"columns left and right: row {row} shows player {out['left'][row]} against itself")
    return out["left"] + 1, out["right"] + 1, chose, out["item"], out["annotator"]


def _cgm(score_rows, cluster_codes, X):
    # B_c = X' R_c' R_c X, R_c the residual sums per (cluster, cell): sparse, summed once.
    parts = []
    for codes in cluster_codes:
        R = sp.csr_matrix((score_rows[1], (codes, score_rows[0])), shape=(int(codes.max()) + 1, len(X)))
        parts.append(X.T @ (R.T @ R).toarray() @ X)
    return parts


def study_trials(judgments: Judgments, *, keep: np.ndarray | None = None, head_to_head: bool = True) -> dict:
    """The arrays of `bradley_terry` for a study's vs-real and head-to-head judgments.

    The probe's generator is on the side `generated_left`; the other image is the real
    one (-1) on a vs-real trial, the opponent on a head-to-head trial. Control trials
    are left out, and so are head-to-head trials with ``head_to_head=False``.
    """
    mask = (judgments.kind == GENERATED) | (head_to_head & (judgments.kind == HEAD_TO_HEAD))
    if keep is not None:
        mask &= np.asarray(keep, dtype=bool)
    g, on_left = judgments.generator[mask], judgments.generated_left[mask]
    other = np.where(judgments.kind[mask] == HEAD_TO_HEAD, judgments.opponent[mask], -1)
    return {"left": np.where(on_left, g, other), "right": np.where(on_left, other, g),
            "chose_left": judgments.chose_left[mask], "item": judgments.item[mask],
            "annotator": judgments.annotator[mask], "labels": tuple(judgments.generator_labels)}


def vs_real_trials(judgments: Judgments, *, keep: np.ndarray | None = None) -> dict:
    """`study_trials` of the generated (vs-real) judgments alone."""
    return study_trials(judgments, keep=keep, head_to_head=False)


def bradley_terry(
    *,
    left,
    right,
    chose_left,
    item,
    annotator,
    labels: tuple,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int | np.random.SeedSequence = 0,
    method: str = "sandwich",
) -> BradleyTerry:
    """Fit the Bradley-Terry model with a position effect (module docstring).

    Parameters
    ----------
    left, right : (n,) player codes of the two images: -1 the real image, 0 .. G-1 a
        generator (codes into `labels`).
    chose_left : (n,) bool, the annotator chose the left image.
    item, annotator : (n,) non-negative codes of the prompt and the annotator.
    labels : the G generator labels.
    n_boot : two-way (prompt x annotator) bootstrap resamples, each refitted; 0 skips
        the bootstrap (then ``method="bootstrap"`` falls back to the sandwich).
    method : "sandwich" (CGM normal with t, the default) or "bootstrap" (percentile of
        the mapped refits); see the module docstring.

    Returns
    -------
    BradleyTerry. Bad input (columns of different lengths, a code out of range, a
    player against itself) raises ValueError naming the column and the first bad row.
    """
    if method not in ("bootstrap", "sandwich"):
        raise ValueError('method must be "bootstrap" or "sandwich"')
    G = len(labels)
    P = G + 1
    lp, rp, y, item, annotator = _check(left, right, chose_left, item, annotator, G)
    cell = lp * P + rp
    left_totals = np.bincount(cell, minlength=P * P).reshape(P, P).astype(float)
    left_wins = np.bincount(cell, weights=y, minlength=P * P).reshape(P, P)
    wins = left_wins + (left_totals - left_wins).T
    totals = left_totals + left_totals.T

    # Identified players: strongly connected to the real images through wins.
    played = totals.sum(axis=1) > 0
    _, component = connected_components(sp.csr_matrix(wins > 0), directed=True, connection="strong")
    identified = played & (component == component[0])
    identified[0] = True
    won_all_or_none = (wins.sum(axis=1) == 0) | (wins.sum(axis=1) == totals.sum(axis=1))
    n_vs_real = totals[1:, 0]
    flags = []
    fitted = identified[lp] & identified[rp]
    n_items = len(np.unique(item[fitted]))
    n_annotators = len(np.unique(annotator[fitted]))
    for g in range(1, P):
        f = []
        if not played[g]:
            f.append("no_judgments")
        elif not identified[g]:
            f.append("no_variation" if won_all_or_none[g] else "not_identified")
        if identified[g] and min(n_items, n_annotators) < 2:
            f.append("single_cluster")
        if played[g] and n_vs_real[g - 1] == 0:
            f.append("no_vs_real")
        flags.append(tuple(f))

    # Design over the identified generators' columns and gamma; cells with judgments.
    free = np.flatnonzero(identified[1:]) + 1
    column = np.full(P, -1)
    column[free] = np.arange(len(free))
    K = len(free) + 1
    cells = np.flatnonzero((left_totals.reshape(-1) > 0) & identified[np.arange(P * P) // P]
                           & identified[np.arange(P * P) % P])
    X = np.zeros((len(cells), K))
    rows = np.arange(len(cells))
    cl, cr = cells // P, cells % P
    X[rows[column[cl] >= 0], column[cl][column[cl] >= 0]] = 1.0
    X[rows[column[cr] >= 0], column[cr][column[cr] >= 0]] = -1.0
    X[:, -1] = 1.0
    w_cell, n_cell = left_wins.reshape(-1)[cells], left_totals.reshape(-1)[cells]
    fit_flags = []
    beta = np.full(K, np.nan)
    if len(cells):
        b, ok = newton(w_cell[None], n_cell[None], X)
        beta = b[0]
        if not ok[0]:
            fit_flags.append("not_converged")
    p_cell = expit(X @ beta)

    # CGM two-way covariance of beta from the scores, aggregated per (cluster, cell).
    lookup = np.full(P * P, -1)
    lookup[cells] = rows
    j_cell = lookup[cell[fitted]]
    resid = y[fitted] - p_cell[j_cell]
    item_c, _ = compact(item[fitted])
    annotator_c, n_ann = compact(annotator[fitted])
    covariance = np.full((K, K), np.nan)
    boot_target = None
    if len(cells) and min(n_items, n_annotators) >= 2:
        info = X.T @ ((n_cell * p_cell * (1 - p_cell))[:, None] * X)
        h_inv = np.linalg.pinv(info)
        b_item, b_ann, b_cell = (h_inv @ m @ h_inv for m in _cgm(
            (j_cell, resid), (item_c, annotator_c, item_c * n_ann + annotator_c), X))
        c_i, c_a = n_items / (n_items - 1), n_annotators / (n_annotators - 1)
        covariance = _root(c_i * b_item + c_a * b_ann - b_cell, 1.0)  # eigenvalues clipped at 0
        boot_target = (1 - 1 / n_annotators) * b_item + (1 - 1 / n_items) * b_ann + b_cell
    se_beta = np.sqrt(np.diag(covariance))
    df = max(min(n_items, n_annotators) - 1, 1)
    q = stats.t.ppf((1 + level) / 2, df)

    # Two-way bootstrap: recount cells, refit, map onto the CGM covariance.
    replicates = np.full((n_boot, K), np.nan)
    kept = np.nan
    if n_boot and boot_target is not None:
        sums = two_way_sums(np.stack([y[fitted], ~y[fitted]]).astype(float), j_cell, item[fitted],
                            annotator[fitted], n_groups=len(cells), n_boot=n_boot, seed=seed)
        b, ok = newton(sums[:, :, 0], sums[:, :, 0] + sums[:, :, 1], X, beta)
        kept = float(ok.mean())
        mapping = _root(covariance, 0.5) @ _root(boot_target, -0.5) * (q / stats.norm.ppf((1 + level) / 2))
        replicates = np.where(ok[:, None], beta + (b - beta) @ mapping.T, np.nan)
        if kept < 0.9:
            fit_flags.append("rough")
    if method == "bootstrap" and n_boot:
        low, high = percentile_interval(replicates, level)
    else:
        low, high = beta - q * se_beta, beta + q * se_beta

    def spread(values, fill=np.nan):
        out = np.full(G, fill)
        out[free - 1] = values[:-1]
        return out

    theta = spread(beta)
    no_interval = np.array([any(f in WITHHOLDING or f == "single_cluster" for f in fl) for fl in flags])
    theta_low, theta_high, se = (np.where(no_interval, np.nan, spread(a)) for a in (low, high, se_beta))
    boot_theta = np.full((n_boot, G), np.nan)
    boot_theta[:, free - 1] = replicates[:, :-1]

    pearson = deviance = p_value = dispersion = np.nan
    dof = len(cells) - K
    if len(cells):
        expected = n_cell * p_cell
        with np.errstate(divide="ignore", invalid="ignore"):
            pearson = float(np.sum((w_cell - expected) ** 2 / (expected * (1 - p_cell))))
            losses = n_cell - w_cell
            deviance = float(2 * np.sum(np.where(w_cell > 0, w_cell * np.log(w_cell / expected), 0.0)
                                        + np.where(losses > 0, losses * np.log(losses / (n_cell - expected)), 0.0)))
        if dof > 0:
            p_value, dispersion = float(stats.chi2.sf(pearson, dof)), pearson / dof
    with np.errstate(invalid="ignore", divide="ignore"):
        side_rates = np.stack([left_wins[1:, 0] / left_totals[1:, 0],
                               1 - left_wins[0, 1:] / left_totals[0, 1:]])
        present = np.isfinite(side_rates)
        direct_rate = np.where(present, side_rates, 0.0).sum(axis=0) / present.sum(axis=0)
    return BradleyTerry(
        labels=tuple(labels), players=("real",) + tuple(labels), level=level, n_boot=n_boot, method=method,
        theta=theta, theta_low=theta_low, theta_high=theta_high, se=se,
        rate=expit(theta), rate_low=expit(theta_low), rate_high=expit(theta_high),
        gamma=float(beta[-1]), gamma_low=float(low[-1]), gamma_high=float(high[-1]), gamma_se=float(se_beta[-1]),
        n=totals[1:].sum(axis=1).astype(np.int64), n_vs_real=n_vs_real.astype(np.int64), direct_rate=direct_rate,
        wins=wins.astype(np.int64), totals=totals.astype(np.int64),
        left_wins=left_wins.astype(np.int64), left_totals=left_totals.astype(np.int64),
        covariance=covariance, pearson=pearson, deviance=deviance, df=dof, p_value=p_value, dispersion=dispersion,
        replicates=boot_theta, gamma_replicates=replicates[:, -1], boot_converged=kept,
        flags=tuple(flags), fit_flags=tuple(fit_flags),
    )
