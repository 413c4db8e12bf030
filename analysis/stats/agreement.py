"""Agreement between annotators on shared trials.

A trial is one (kind, generator, item) comparison, and on a head-to-head trial also its
opponent and probe sample (a pair of generators may meet on several samples of one
prompt); the value an annotator gives it is whether they chose the probe image (not
which side). Trials judged by at least two
annotators are "shared".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .judgments import HEAD_TO_HEAD, Judgments, compact


def trial_codes(judgments: Judgments) -> tuple[np.ndarray, int]:
    """Code of each judgment's trial, (kind, generator, opponent, item[, sample]), and the number of trials."""
    players = judgments.n_generators + 1
    key = ((judgments.kind.astype(np.int64) * players + judgments.generator + 1) * players + judgments.opponent + 1) \
        * (max(judgments.n_items, 1)) + judgments.item
    pair = judgments.kind == HEAD_TO_HEAD
    if not pair.any():
        return compact(key)
    code, _ = compact(key)
    sample, n_samples = compact(np.where(pair, judgments.sample + 1, 0))
    return compact(code * n_samples + sample)


def rating_counts(trial: np.ndarray, value: np.ndarray, n_trials: int) -> np.ndarray:
    """(n_trials, 2) counts of value False / True per trial."""
    value = np.asarray(value, dtype=bool)
    ones = np.bincount(trial, weights=value, minlength=n_trials)
    total = np.bincount(trial, minlength=n_trials)
    return np.stack([total - ones, ones], axis=1).astype(np.int64)


def krippendorff_alpha_nominal(counts: np.ndarray) -> float:
    """Krippendorff's alpha for nominal data from a units x categories count table.

    Units with fewer than two values are not pairable and drop out. With n_uc the
    number of values c in unit u and m_u = sum_c n_uc, the coincidences are

        o_ck = sum_u n_uc (n_uk - [c = k]) / (m_u - 1),   n_c = sum_k o_ck,  n = sum_c n_c

    and alpha = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k.

    Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability. Annenberg
    School for Communication, University of Pennsylvania, Section "Nominal data".
    NaN when all pairable values fall in one category (no expected disagreement).
    """
    counts = np.asarray(counts, dtype=np.float64)
    m = counts.sum(axis=1)
    counts = counts[m >= 2]
    m = m[m >= 2]
    if len(m) == 0:
        return float("nan")
    weighted = counts / (m - 1)[:, None]
    coincidence = weighted.T @ counts - np.diag(weighted.sum(axis=0))
    n_c = coincidence.sum(axis=1)
    n = n_c.sum()
    observed = coincidence.sum() - np.trace(coincidence)
    expected = n_c.sum() ** 2 - (n_c**2).sum()
    if expected == 0:
        return float("nan")
    return float(1 - (n - 1) * observed / expected)


@dataclass(frozen=True)
class Agreement:
    """Chance-corrected agreement on shared trials.

    fleiss_kappa : Fleiss' kappa (statsmodels) over the trials with the most common
        number of judgments `fleiss_raters` (Fleiss needs a fixed number per trial);
        `fleiss_trials` of them.
    krippendorff_alpha : nominal alpha over every shared trial (`alpha_trials`),
        whatever its number of judgments.
    """

    fleiss_kappa: float
    fleiss_trials: int
    fleiss_raters: int
    krippendorff_alpha: float
    alpha_trials: int


def agreement(judgments: Judgments, *, keep: np.ndarray | None = None) -> Agreement:
    """Fleiss' kappa and Krippendorff's alpha of "chose the probe" on shared trials.

    Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters.
    Psychological Bulletin 76(5), 378-382; computed by
    ``statsmodels.stats.inter_rater.fleiss_kappa``. Alpha: `krippendorff_alpha_nominal`.
    """
    # Imported here: statsmodels brings pandas, seconds of import time that only
    # this function needs.
    from statsmodels.stats.inter_rater import fleiss_kappa

    mask = np.ones(len(judgments), bool) if keep is None else np.asarray(keep, bool)
    trial, n_trials = trial_codes(judgments)
    counts = rating_counts(trial[mask], judgments.chose_generated[mask], n_trials)
    per_trial = counts.sum(axis=1)
    shared = counts[per_trial >= 2]
    kappa, fleiss_trials, raters = float("nan"), 0, 0
    if len(shared):
        sizes, frequency = np.unique(shared.sum(axis=1), return_counts=True)
        raters = int(sizes[np.argmax(frequency)])
        table = shared[shared.sum(axis=1) == raters]
        fleiss_trials = len(table)
        if table[:, 1].sum() not in (0, table.sum()):
            kappa = float(fleiss_kappa(table, method="fleiss"))
    return Agreement(kappa, fleiss_trials, raters, krippendorff_alpha_nominal(shared), len(shared))


def majority_agreement(judgments: Judgments, *, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per annotator: judgments compared with a majority, and the share agreeing.

    Each judgment on a trial with at least two other judgments is compared with the
    majority of the *other* judgments of that trial (leave-one-out, so an annotator
    is not compared with themself); ties are skipped. Returns ``(n_compared, share)``
    over annotator codes (share NaN where nothing was compared).
    """
    mask = np.ones(len(judgments), bool) if keep is None else np.asarray(keep, bool)
    trial, n_trials = trial_codes(judgments)
    y = judgments.chose_generated
    counts = rating_counts(trial[mask], y[mask], n_trials)
    others = counts[trial] - np.stack([~y, y], axis=1)
    comparable = mask & (others.sum(axis=1) >= 2) & (others[:, 0] != others[:, 1])
    agrees = (others[:, 1] > others[:, 0]) == y
    n_annotators = judgments.n_annotators
    annotator = judgments.annotator[comparable]
    n = np.bincount(annotator, minlength=n_annotators)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.bincount(annotator, weights=agrees[comparable], minlength=n_annotators) / n
    return n, share
