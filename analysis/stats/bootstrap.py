"""Two-way cluster bootstrap of weighted sums, vectorised over resamples.

Judgments of one prompt are correlated (some prompts are hard for every generator) and
so are judgments of one annotator (some people are stricter). Resampling judgments
independently ignores both and gives intervals that are far too narrow. The two-way
(pigeonhole, product-weight) bootstrap of Owen & Eckles resamples prompts and
annotators independently and weights each judgment by the product of its prompt's
and its annotator's weights:

    S*_b[g, k] = sum_j  u_b[item_j] * v_b[annotator_j] * x_k[j]   over j in group g

Owen, A. B. (2007). The pigeonhole bootstrap. Annals of Applied Statistics 1(2).
Owen, A. B. & Eckles, D. (2012). Bootstrapping data arrays of arbitrary order.
Annals of Applied Statistics 6(3), 895-927.

The interval is conservative. In expectation the bootstrap variance of a mean is
V_item + V_annotator + V_cell, against the Cameron-Gelbach-Miller V_item +
V_annotator - V_cell (`sandwich`): each one-way part already holds the
judgment-level variance, so it is counted three times instead of once (Owen 2007,
Section 3). It matters most where judgment-level noise dominates (a generator whose
samples are the references themselves); with prompt and annotator effects of the
size seen in practice the 95 % interval covers about 97 % of the time.
The calibration rate and the planner, where judgment noise is most of the variance,
use the corrected CGM interval instead (`sandwich.two_way_interval`).

Cost. A resample touches every judgment once, so B resamples cost B x (number of
distinct (group, item, annotator) cells) multiply-adds; no Python loop runs over
either. The cells are aggregated first; then, for a chunk of resamples at once,

    Z = K @ Wc                  K: sparse (values x groups x rows) by columns,
                                Wc: column weights, columns x chunk
    S = sum_rows Z * Wr         Wr: row weights, rows x chunk

where "rows" is whichever of item and annotator forms fewer (group, level) pairs and
"columns" is the other. Weights are integers (resample counts), so float32 sums are
exact below 2**24 and are used to halve memory traffic.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp

from .judgments import compact

SCHEMES = ("multinomial", "poisson")
# Bytes allowed for the dense chunk products Z (rows x chunk, float32).
CHUNK_BYTES = 96 * 2**20
# Share of (group, level) pairs present above which Z holds a row for every pair.
DENSE_SHARE = 0.25


def cluster_weights(
    rng: np.random.Generator, n_clusters: int, n_boot: int, scheme: str = "multinomial"
) -> np.ndarray:
    """Resample weights of `n_clusters` clusters, shaped (n_clusters, n_boot), float32.

    ``multinomial``: counts of each cluster among `n_clusters` draws with replacement
    (the classical cluster bootstrap; the pigeonhole bootstrap of Owen 2007 when used
    for two factors). ``poisson``: independent Poisson(1) weights (mean 1, variance
    1; the product-weight bootstrap of Owen & Eckles 2012, Section 3).

    Resample b uses the b-th block of `n_clusters` draws of `rng`, so splitting the
    resamples into chunks gives the same weights as drawing them at once.
    """
    if scheme == "multinomial":
        draws = rng.integers(0, n_clusters, size=(n_boot, n_clusters), dtype=np.int64)
        flat = draws * n_boot + np.arange(n_boot, dtype=np.int64)[:, None]
        counts = np.bincount(flat.ravel(), minlength=n_clusters * n_boot)
        return counts.reshape(n_clusters, n_boot).astype(np.float32)
    if scheme == "poisson":
        return np.ascontiguousarray(rng.poisson(1.0, size=(n_boot, n_clusters)).T, dtype=np.float32)
    raise ValueError(f"scheme must be one of {SCHEMES}")


def two_way_sums(
    values: np.ndarray,
    group: np.ndarray,
    item: np.ndarray,
    annotator: np.ndarray,
    *,
    n_groups: int,
    n_boot: int,
    seed: int | np.random.SeedSequence = 0,
    scheme: str = "multinomial",
) -> np.ndarray:
    """Bootstrap replicates of per-group sums under two-way cluster resampling.

    Parameters
    ----------
    values : (n_values, n) array
        Quantities to sum, one row per quantity (e.g. wins and losses).
    group : (n,) int codes in ``0 .. n_groups - 1`` (e.g. generator x side).
    item, annotator : (n,) int codes of the two crossed cluster factors.
    n_boot : number of resamples.
    seed : seeds two independent streams, one for item and one for annotator weights.
    scheme : "multinomial" or "poisson", see `cluster_weights`.

    Returns
    -------
    (n_boot, n_groups, n_values) float64 array of
    ``S*_b[g, k] = sum_{j in g} u_b[item_j] v_b[annotator_j] values[k, j]``.

    Notes
    -----
    Owen & Eckles (2012), Section 3; the implementation is described in the module
    docstring. Clusters are resampled among those present in the input.
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    n_values, n = values.shape
    group = np.asarray(group, dtype=np.int64)
    item, n_items = compact(np.asarray(item))
    annotator, n_annotators = compact(np.asarray(annotator))
    item_rng, annotator_rng = (np.random.Generator(np.random.PCG64(s)) for s in _spawn(seed))
    out = np.zeros((n_boot, n_groups, n_values))
    if n == 0 or n_boot == 0:
        return out

    # Rows: the factor with fewer (group, level) pairs, so that Z stays small.
    by_item = group * n_items + item
    by_annotator = group * n_annotators + annotator
    item_pairs = np.count_nonzero(np.bincount(by_item, minlength=n_groups * n_items))
    annotator_pairs = np.count_nonzero(np.bincount(by_annotator, minlength=n_groups * n_annotators))
    rows_are_annotators = annotator_pairs <= item_pairs
    if rows_are_annotators:
        pair_key, n_row_levels, col_level, n_col_levels = by_annotator, n_annotators, item, n_items
    else:
        pair_key, n_row_levels, col_level, n_col_levels = by_item, n_items, annotator, n_annotators
    present = np.bincount(pair_key, minlength=n_groups * n_row_levels) > 0
    # Dense layout: a row for every (group, level), reduced by one einsum. Sparse
    # layout (few pairs present): rows for present pairs only, reduced by a gather
    # of row weights and a sparse sum.
    dense = present.sum() >= DENSE_SHARE * len(present)
    if dense:
        pair, n_pairs = pair_key, len(present)
    else:
        lookup = np.cumsum(present) - 1
        pair, n_pairs = lookup[pair_key], int(present.sum())
        pair_codes = np.flatnonzero(present)
        row_level_of_row = np.tile(pair_codes % n_row_levels, n_values)
        aggregate = sp.csr_matrix(
            (np.ones(n_values * n_pairs, dtype=np.float32),
             (np.repeat(np.arange(n_values), n_pairs) * n_groups + np.tile(pair_codes // n_row_levels, n_values),
              np.arange(n_values * n_pairs))),
            shape=(n_values * n_groups, n_values * n_pairs),
        )

    # K: one block of rows per value, zero entries left out (wins and losses split
    # the judgments, so together they hold one entry per cell).
    value_index, judgment = np.nonzero(values)
    K = sp.csr_matrix(
        (values[value_index, judgment].astype(np.float32),
         (value_index * n_pairs + pair[judgment], col_level[judgment])),
        shape=(n_values * n_pairs, n_col_levels),
    )
    K.sum_duplicates()

    chunk = int(np.clip(CHUNK_BYTES // max(1, 4 * n_values * n_pairs), 8, n_boot))
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        item_w = cluster_weights(item_rng, n_items, size, scheme)
        annotator_w = cluster_weights(annotator_rng, n_annotators, size, scheme)
        col_w, row_w = (item_w, annotator_w) if rows_are_annotators else (annotator_w, item_w)
        Z = K @ col_w
        if dense:
            sums = np.einsum("vglb,lb->vgb", Z.reshape(n_values, n_groups, n_row_levels, size), row_w)
        else:
            Z *= row_w[row_level_of_row]
            sums = (aggregate @ Z).reshape(n_values, n_groups, size)
        out[start:start + size] = sums.transpose(2, 1, 0)
    return out


def _spawn(seed: int | np.random.SeedSequence) -> list[np.random.SeedSequence]:
    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return sequence.spawn(2)


def percentile_interval(replicates: np.ndarray, level: float = 0.95, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval: the (1-level)/2 and (1+level)/2 quantiles.

    NaN replicates (a resample with no judgments in a group) are ignored; infinite
    ones are kept, so an interval may reach +/- inf (a target never reached).
    Efron, B. & Tibshirani, R. (1993). An Introduction to the Bootstrap, Ch. 13.
    """
    replicates = np.asarray(replicates, dtype=np.float64)
    if replicates.size == 0:  # no group at all (a study without generated judgments)
        empty = np.full(tuple(np.delete(replicates.shape, axis)), np.nan)
        return empty, empty.copy()
    big = np.finfo(np.float64).max / 4
    clipped = np.clip(replicates, -big, big)
    tails = [(1 - level) / 2, (1 + level) / 2]
    with warnings.catch_warnings():  # a group without judgments: NaN, no warning
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanquantile(clipped, tails, axis=axis)
    # A bound among the clipped infinities is infinite, whichever end it is.
    low = np.where(low <= -big, -np.inf, np.where(low >= big, np.inf, low))
    high = np.where(high >= big, np.inf, np.where(high <= -big, -np.inf, high))
    return low, high
