"""Rates over time: per generator and time block, a test for drift, and rates adjusted
for the time blocks.

Annotator pools and their strictness drift over the weeks a study runs, and a
generator that joined late was judged only by the later pool. Blocks are the calendar
weeks (UTC) of the submission times where the judgments span at least two, else
`n_blocks` blocks of equal numbers of judgments in submission order (and one block
where no time is known).

- Per generator and block: judgments, wins, the raw share with its Wilson interval,
  and the block's mean submission time (for a plot against date).
- Drift: per generator, the OLS slope of chose_generated on the submission time
  scaled to [0, 1] over the study (a slope is the change from its first judgment to
  its last), with its two-way (prompt x annotator) cluster-robust standard error
  (`sandwich`) and a normal p-value; NaN with fewer than `MIN_JUDGMENTS` judgments or
  one time.
- Adjusted rates: a logistic model with a generator and a block effect,
  logit P = mu_g + beta_b (beta_first = 0), fitted by maximum likelihood on the
  (generator, block) counts; each generator's adjusted rate is
  sum_b pi_b expit(mu_g + beta_b), with pi_b the block's share of all generated
  judgments: every generator as if judged over the study's whole time mix (direct
  standardisation). Beside the raw share, it shows how much of a difference between
  generators is when they were judged. Generators that won or lost every judgment
  have no finite mu_g: NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import expit

from .bradley_terry import newton
from .judgments import GENERATED, Judgments, compact
from .proportions import wilson_interval
from .sandwich import cluster_variance

WEEK_S = 7 * 86_400
# Fewer judgments than this: no slope for the generator.
MIN_JUDGMENTS = 20


@dataclass(frozen=True, eq=False)
class Timeline:
    """Rates per generator and time block (arrays (G, B) unless noted).

    labels : generator labels; unit : "week" or "block"; starts : (B,) first
        submission time of each block (seconds, NaN where unknown).
    n, wins, share, low, high : judgments, wins, raw share and its Wilson interval.
    mean_time : mean submission time per cell (NaN where empty).
    slope, slope_se, slope_p : (G,) the drift test (module docstring).
    raw, adjusted : (G,) the raw share over all blocks and the block-adjusted rate.
    block_effect : (B,) beta_b of the adjusted model (0 for the first block).
    """

    labels: tuple
    unit: str
    starts: np.ndarray
    n: np.ndarray
    wins: np.ndarray
    share: np.ndarray
    low: np.ndarray
    high: np.ndarray
    mean_time: np.ndarray
    slope: np.ndarray
    slope_se: np.ndarray
    slope_p: np.ndarray
    raw: np.ndarray
    adjusted: np.ndarray
    block_effect: np.ndarray


def _blocks(time_s: np.ndarray, n_blocks: int) -> tuple[np.ndarray, str]:
    known = np.isfinite(time_s)
    if len(time_s) == 0 or not known.all():
        return np.zeros(len(time_s), np.int64), "block"
    week = np.floor(time_s / WEEK_S).astype(np.int64)
    if len(np.unique(week)) >= 2:
        return compact(week)[0], "week"
    order = np.argsort(time_s, kind="stable")
    block = np.empty(len(time_s), np.int64)
    block[order] = np.arange(len(time_s)) * n_blocks // len(time_s)
    return block, "block"


def rate_timeline(judgments: Judgments, *, keep: np.ndarray | None = None, n_blocks: int = 6) -> Timeline:
    """Rates of every generator over time (module docstring)."""
    mask = judgments.kind == GENERATED
    if keep is not None:
        mask &= np.asarray(keep, bool)
    g = judgments.generator[mask]
    y = judgments.chose_generated[mask].astype(float)
    t = judgments.time_s[mask]
    G = judgments.n_generators
    block, unit = _blocks(t, n_blocks)
    B = int(block.max()) + 1 if len(block) else 1
    cell = g * B + block
    n = np.bincount(cell, minlength=G * B).reshape(G, B).astype(float)
    wins = np.bincount(cell, weights=y, minlength=G * B).reshape(G, B)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = wins / n
        mean_time = np.bincount(cell, weights=np.nan_to_num(t), minlength=G * B).reshape(G, B) / n
        raw = wins.sum(axis=1) / n.sum(axis=1)
    low, high = wilson_interval(wins, n)
    starts = np.full(B, np.nan)
    if len(t) and np.isfinite(t).all():
        starts = np.full(B, np.inf)
        np.minimum.at(starts, block, t)
    slope, slope_se, slope_p = _drift(g, y, t, judgments.item[mask], judgments.annotator[mask], G)
    adjusted, effect = _adjusted(wins, n)
    return Timeline(tuple(judgments.generator_labels), unit, starts, n.astype(np.int64), wins.astype(np.int64),
                    share, low, high, mean_time, slope, slope_se, slope_p, raw, adjusted, effect)


def _drift(g, y, t, item, annotator, G):
    slope, se, p = (np.full(G, np.nan) for _ in range(3))
    if len(t) == 0 or not np.isfinite(t).all() or t.max() == t.min():
        return slope, se, p
    x = (t - t.min()) / (t.max() - t.min())
    psi = np.zeros((G, len(x)))
    for code in range(G):
        rows = g == code
        if rows.sum() < MIN_JUDGMENTS:
            continue
        dx = x[rows] - x[rows].mean()
        sxx = float(dx @ dx)
        if sxx <= 0:
            continue
        dy = y[rows] - y[rows].mean()
        slope[code] = float(dx @ dy) / sxx
        psi[code, rows] = dx * (dy - slope[code] * dx) / sxx
    variance = cluster_variance(psi, item, annotator).two_way[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.where(np.isfinite(slope), np.sqrt(np.clip(variance, 0, None)), np.nan)
        p = np.where(se > 0, 2 * stats.norm.sf(np.abs(slope / se)), np.nan)
    return slope, se, p


def _adjusted(wins: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    G, B = n.shape
    effect = np.zeros(B)
    adjusted = np.full(G, np.nan)
    judged = n.sum(axis=1) > 0
    varied = judged & (wins.sum(axis=1) > 0) & (wins.sum(axis=1) < n.sum(axis=1))
    if not varied.any():
        return adjusted, effect
    rows = np.flatnonzero(varied)
    # Design over the (generator, block) cells: a generator's own intercept, and a
    # block effect for every block but the first.
    X = np.zeros((len(rows) * B, len(rows) + B - 1))
    for index, code in enumerate(rows):
        X[index * B:(index + 1) * B, index] = 1
        X[index * B + 1:(index + 1) * B, len(rows):] = np.eye(B - 1)
    beta, converged = newton(wins[rows].reshape(1, -1), n[rows].reshape(1, -1), X)
    if not converged[0]:
        return adjusted, effect
    mu, effect[1:] = beta[0, :len(rows)], beta[0, len(rows):]
    weight = n.sum(axis=0) / n.sum()
    adjusted[rows] = expit(mu[:, None] + effect[None, :]) @ weight
    return adjusted, effect
