"""A series' judgment counts, per generator and prompt or per (generator, prompt,
annotator) cell, and the two-way resampled rates the parity fits are bootstrapped on
(`fits.fit_parity_curve`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .judgments import GENERATED, Judgments, compact


@dataclass(frozen=True, eq=False)
class SeriesCells:
    """Wins and judgments of a series' generators per (generator, prompt, annotator) cell.

    generator : (m,) row of the cell's generator (0 .. n_generators - 1, in the order
        given to `series_cells`); item, annotator : (m,) codes of its prompt and annotator;
    wins, totals : (m,) judgments won by the generated image, and all judgments.
    """

    generator: np.ndarray
    item: np.ndarray
    annotator: np.ndarray
    wins: np.ndarray
    totals: np.ndarray
    n_generators: int

    def per_generator(self) -> tuple[np.ndarray, np.ndarray]:
        """Wins and judgments of each generator, (G,) each."""
        size = self.n_generators
        return (np.bincount(self.generator, weights=self.wins, minlength=size),
                np.bincount(self.generator, weights=self.totals, minlength=size))


def two_way_rates(cells: SeriesCells, wins: np.ndarray, totals: np.ndarray, boot_wins: np.ndarray,
                   boot_totals: np.ndarray) -> np.ndarray:
    """Generator rates of two-way bootstrap resamples, (B, G), recentred on the
    Cameron-Gelbach-Miller covariance.

    The product-weight resample counts each judgment's own noise three times
    (`bootstrap`): in expectation its covariance of the rates is
    (1 - 1/A) V_item + (1 - 1/I) V_annotator + V_cell, against the two-way
    cluster-robust V_item + V_annotator - V_cell (`sandwich`, here with the covariance
    across generators). Where that noise dominates, as in a series of a few hundred
    judgments per generator, percentile intervals of a fit on such resamples are far
    wider than their level says (bench/fit_coverage.py). Each resample's deviation
    from the observed rates is mapped by V_target^(1/2) V_boot^(-1/2) (symmetric
    roots, the target's negative eigenvalues set to zero): the resampling of prompts
    and annotators keeps its shape and its covariance becomes the robust one.
    """
    rate = np.divide(wins, totals, out=np.full(len(totals), 0.5), where=totals > 0)
    if len(cells.wins) == 0:
        return np.broadcast_to(rate, boot_wins.shape).copy()
    residual = cells.wins - rate[cells.generator] * cells.totals
    scaled = residual / np.maximum(totals, 1)[cells.generator]
    n_items, n_annotators = int(cells.item.max()) + 1, int(cells.annotator.max()) + 1
    parts = []
    for level in (cells.item, cells.annotator, cells.item * n_annotators + cells.annotator):
        m = sp.csr_matrix((scaled, (cells.generator, level)), shape=(cells.n_generators, int(level.max()) + 1))
        parts.append((m @ m.T).toarray())
    v_item, v_annotator, v_cell = parts
    boot = (1 - 1 / n_annotators) * v_item + (1 - 1 / n_items) * v_annotator + v_cell
    target = v_item + v_annotator - v_cell
    with np.errstate(invalid="ignore", divide="ignore"):
        replicates = boot_wins / boot_totals
    replicates = np.where(np.isfinite(replicates), replicates, rate)
    mapping = _root(target, 0.5) @ _root(boot, -0.5)
    return np.clip(rate + (replicates - rate) @ mapping.T, 0.0, 1.0)


def _root(matrix: np.ndarray, power: float) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    floor = values.max() * 1e-12 if power < 0 else 0.0
    values = np.maximum(values, floor)
    with np.errstate(divide="ignore"):
        scaled = np.where(values > 0, values ** power, 0.0)
    return (vectors * scaled) @ vectors.T


def _series_rows(judgments: Judgments, generators: np.ndarray, keep) -> tuple[np.ndarray, np.ndarray]:
    """The generated judgments of `generators` (kept ones only) and each one's row in them."""
    mask = (judgments.kind == GENERATED) & np.isin(judgments.generator, generators)
    if keep is not None:
        mask &= np.asarray(keep, bool)
    position = np.full(max(judgments.n_generators, 1), -1)
    position[generators] = np.arange(len(generators))
    return mask, position[judgments.generator[mask]]


def series_cells(judgments: Judgments, generators, *, keep: np.ndarray | None = None) -> SeriesCells:
    """Wins and judgments of each generator (codes, in the order given) per prompt and
    annotator: the input of `fit_parity_curve`'s two-way bootstrap (`SeriesCells`)."""
    generators = np.asarray(generators, dtype=np.int64)
    mask, row = _series_rows(judgments, generators, keep)
    item, n_items = compact(judgments.item[mask])
    annotator, n_annotators = compact(judgments.annotator[mask])
    key = (row * n_items + item) * n_annotators + annotator
    cell, first, code = np.unique(key, return_index=True, return_inverse=True)
    wins = np.bincount(code, weights=judgments.chose_generated[mask], minlength=len(cell))
    totals = np.bincount(code, minlength=len(cell)).astype(float)
    return SeriesCells(row[first], item[first], annotator[first], wins, totals, len(generators))


def series_counts(judgments: Judgments, generators, *, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Wins and judgments of each generator (codes, in the order given) per prompt.

    Returns ``(wins, totals)``, each (G, I) over the I prompts judged for any of the
    generators; the input of `fit_parity_curve` and its prompt bootstrap.
    """
    generators = np.asarray(generators, dtype=np.int64)
    mask, row = _series_rows(judgments, generators, keep)
    item, n_items = compact(judgments.item[mask])
    flat = row * n_items + item
    size = len(generators) * n_items
    wins = np.bincount(flat, weights=judgments.chose_generated[mask], minlength=size).reshape(len(generators), n_items)
    totals = np.bincount(flat, minlength=size).reshape(len(generators), n_items).astype(float)
    return wins, totals
