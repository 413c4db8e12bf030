"""One call for the judgment-level analysis of a study, with and without exclusions.

Quality is measured on all judgments; the exclusion rules then give a mask, and the
rates, the calibration rate and the side bias are reported both ways, so a reader
sees what the exclusions changed. Scaling fits and metric alignment need series and
metric data from outside the judgments and are separate calls (`fits`, `alignment`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .calibration import Calibration, Drift, SideBias, calibration_rate, session_drift, side_bias
from .exclusions import ExclusionRules, Exclusions, apply_exclusions
from .judgments import Judgments
from .quality import AnnotatorQuality, annotator_quality
from .rates import RateTable, preference_rates


@dataclass(frozen=True, eq=False)
class StudyAnalysis:
    """Results of `analyse_study`; ``*_all`` fields ignore the exclusions."""

    quality: AnnotatorQuality
    exclusions: Exclusions
    rates: RateTable
    rates_all: RateTable
    calibration: Calibration
    calibration_all: Calibration
    side_bias: SideBias
    side_bias_all: SideBias
    drift: Drift


def analyse_study(
    judgments: Judgments,
    *,
    rules: ExclusionRules | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> StudyAnalysis:
    """Quality, exclusions, rates, calibration, side bias and drift of a study.

    `rules` defaults to `ExclusionRules()` (catch accuracy below 80 %, more than 20 %
    of answers under 400 ms).

    The same `seed` gives every bootstrap the same prompt and annotator weights
    stream, so results are reproducible run to run.
    """
    rules = ExclusionRules() if rules is None else rules
    quality = annotator_quality(judgments, fast_ms=rules.fast_ms)
    exclusions = apply_exclusions(judgments, quality, rules)
    keep = exclusions.keep
    settings = {"n_boot": n_boot, "level": level, "seed": seed}
    return StudyAnalysis(
        quality=quality,
        exclusions=exclusions,
        rates=preference_rates(judgments, keep=keep, **settings),
        rates_all=preference_rates(judgments, **settings),
        calibration=calibration_rate(judgments, keep=keep, **settings),
        calibration_all=calibration_rate(judgments, **settings),
        side_bias=side_bias(judgments, keep=keep, level=level),
        side_bias_all=side_bias(judgments, level=level),
        drift=session_drift(judgments),
    )
