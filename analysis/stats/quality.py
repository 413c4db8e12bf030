"""Annotator quality: catch trials, response times, side bias, agreement.

These are the inputs of the exclusion rules (`exclusions`); they are computed on all
judgments, before any exclusion.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .agreement import Agreement, agreement, majority_agreement
from .judgments import CATCH, Judgments
from .proportions import binomial_test_half

RT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def group_quantile(values: np.ndarray, group: np.ndarray, n_groups: int, q: float) -> np.ndarray:
    """Per-group q-quantile (linear interpolation, numpy's default), NaN values ignored."""
    values = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(values)
    values, group = values[ok], np.asarray(group)[ok]
    # Sort by value, then stably by group (a radix sort for small integer codes).
    order = np.argsort(values)
    order = order[np.argsort(group[order].astype(np.int32), kind="stable")]
    values, group = values[order], group[order]
    count = np.bincount(group, minlength=n_groups)
    start = np.cumsum(count) - count
    position = q * np.maximum(count - 1, 0)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, np.maximum(count - 1, 0))
    result = np.full(n_groups, np.nan)
    has = count > 0
    low = values[(start + below)[has]]
    high = values[(start + above)[has]]
    result[has] = low + (position[has] - below[has]) * (high - low)
    return result


@dataclass(frozen=True, eq=False)
class AnnotatorQuality:
    """Quality per annotator (arrays over annotator codes) and overall.

    n : judgments (all kinds).
    catch_n, catch_correct, catch_accuracy : catch trials and the share where the
        uncorrupted reference was chosen.
    rt_median_ms : median response time; fast_share: share of answers under `fast_ms`
        among those with a known response time.
    share_left, side_p : share of left choices and its exact binomial test of 1/2.
    agreement_n, agreement_share : judgments compared with the leave-one-out majority
        of their trial and the share agreeing (`agreement.majority_agreement`).
    rt_quantiles : overall response-time quantiles at `RT_QUANTILES`.
    fast_ms : the threshold of a too-fast answer.
    agreement : Fleiss' kappa and Krippendorff's alpha over shared trials.
    """

    labels: tuple
    n: np.ndarray
    catch_n: np.ndarray
    catch_correct: np.ndarray
    catch_accuracy: np.ndarray
    rt_median_ms: np.ndarray
    fast_share: np.ndarray
    share_left: np.ndarray
    side_p: np.ndarray
    agreement_n: np.ndarray
    agreement_share: np.ndarray
    rt_quantiles: dict
    fast_ms: float
    agreement: Agreement

    def rows(self) -> list[dict]:
        """One plain dict per annotator (for CSV and JSON)."""
        names = [f.name for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray)]
        return [
            {"label": label, **{name: getattr(self, name)[index].item() for name in names}}
            for index, label in enumerate(self.labels)
        ]


def annotator_quality(judgments: Judgments, *, fast_ms: float = 400.0) -> AnnotatorQuality:
    """Quality statistics of every annotator (see `AnnotatorQuality`)."""
    a = judgments.annotator
    n_annotators = judgments.n_annotators
    n = np.bincount(a, minlength=n_annotators)
    catch = judgments.kind == CATCH
    catch_n = np.bincount(a[catch], minlength=n_annotators)
    catch_correct = np.bincount(a[catch], weights=judgments.correct[catch], minlength=n_annotators).astype(np.int64)
    rt = judgments.rt_ms
    known = ~np.isnan(rt)
    timed = np.bincount(a[known], minlength=n_annotators)
    fast = np.bincount(a[known], weights=rt[known] < fast_ms, minlength=n_annotators)
    left = np.bincount(a, weights=judgments.chose_left, minlength=n_annotators).astype(np.int64)
    agreement_n, agreement_share = majority_agreement(judgments)
    with np.errstate(invalid="ignore", divide="ignore"):
        catch_accuracy = catch_correct / catch_n
        fast_share = fast / timed
        share_left = left / n
    quantiles = np.quantile(rt[known], RT_QUANTILES) if known.any() else np.full(len(RT_QUANTILES), np.nan)
    return AnnotatorQuality(
        labels=judgments.annotator_labels,
        n=n,
        catch_n=catch_n,
        catch_correct=catch_correct,
        catch_accuracy=catch_accuracy,
        rt_median_ms=group_quantile(rt, a, n_annotators, 0.5),
        fast_share=fast_share,
        share_left=share_left,
        side_p=binomial_test_half(left, n),
        agreement_n=agreement_n,
        agreement_share=agreement_share,
        rt_quantiles=dict(zip(RT_QUANTILES, quantiles.tolist())),
        fast_ms=fast_ms,
        agreement=agreement(judgments),
    )
