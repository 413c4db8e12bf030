"""Which generators to pit head to head next: the pairs whose order is most in doubt.

A head-to-head judgment of generators g and h informs theta_g - theta_h directly, so
it helps most where the fit (`bradley_terry`) leaves the order of g and h in doubt.
With the CGM covariance of the strengths, the chance that the fitted order of two
identified generators is the wrong one is, to normal approximation,

    P(order wrong) = Phi(-|theta_g - theta_h| / se(theta_g - theta_h)),
    se^2 = V_gg + V_hh - 2 V_gh,

which is 0.5 for two generators of equal strength and falls to 0 as their intervals
part. A generator without an estimate (flagged, `BT_FLAGS`: not judged, or won or lost
everything) comes first, paired with its nearest neighbour by direct (vs-real) rate,
or, without one, with the identified generator of median strength; its doubt counts
as 0.5 (nothing is known of its order).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .bradley_terry import BradleyTerry


def order_doubt(bt: BradleyTerry) -> np.ndarray:
    """(G, G) P(order wrong) of each pair of identified generators (module docstring);
    NaN on the diagonal and where a generator has no estimate, 0.5 where a pair has no
    standard error (one prompt or one annotator)."""
    theta = bt.theta
    G = len(theta)
    doubt = np.full((G, G), np.nan)
    free = np.flatnonzero(np.isfinite(theta))
    if len(free) < 2:
        return doubt
    # The covariance is over the identified generators in code order, then the position effect.
    cov = bt.covariance[:len(free), :len(free)]
    variance = np.diag(cov)[:, None] + np.diag(cov)[None, :] - 2 * cov
    gap = np.abs(theta[free][:, None] - theta[free][None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        z = gap / np.sqrt(np.clip(variance, 0, None))
    block = np.where(np.isfinite(z) & (variance > 0), stats.norm.sf(z), 0.5)
    doubt[np.ix_(free, free)] = block
    np.fill_diagonal(doubt, np.nan)
    return doubt


def _partner(bt: BradleyTerry, g: int) -> int | None:
    others = [h for h in range(len(bt.theta)) if h != g]
    if not others:
        return None
    rate = bt.direct_rate
    if np.isfinite(rate[g]):
        near = [h for h in others if np.isfinite(rate[h])]
        if near:
            # Identified partners first, then nearest by direct rate, then by code.
            return min(near, key=lambda h: (not np.isfinite(bt.theta[h]), abs(rate[h] - rate[g]), h))
    identified = [h for h in others if np.isfinite(bt.theta[h])]
    if identified:
        ranked = sorted(identified, key=lambda h: (bt.theta[h], h))
        return ranked[(len(ranked) - 1) // 2]
    return others[0]


def uncertain_pairs(bt: BradleyTerry, n_pairs: int) -> list[tuple]:
    """The `n_pairs` generator pairs whose order is most in doubt, as label pairs
    (the smaller code's label first), most doubtful first (module docstring).

    Generators without an estimate come first, each with its partner; then identified
    pairs by P(order wrong), highest first, ties by code.
    """
    G = len(bt.theta)
    chosen: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()

    def add(g: int, h: int) -> None:
        pair = (min(g, h), max(g, h))
        if pair not in seen:
            seen.add(pair)
            chosen.append(pair)

    for g in range(G):
        if not np.isfinite(bt.theta[g]):
            partner = _partner(bt, g)
            if partner is not None:
                add(g, partner)
    doubt = order_doubt(bt)
    rows, cols = np.triu_indices(G, k=1)
    values = doubt[rows, cols]
    finite = np.isfinite(values)
    ranked = sorted(zip(-values[finite], rows[finite], cols[finite]))
    for _, g, h in ranked:
        add(int(g), int(h))
    return [(bt.labels[g], bt.labels[h]) for g, h in chosen[:max(int(n_pairs), 0)]]
