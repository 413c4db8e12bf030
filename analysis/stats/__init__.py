"""Pure numpy/scipy statistics of judgments: no Django, no project imports.

Modules, by question:

- judgments    the input: `Judgments`, equal-length columns, one row per judgment
- rates        preference rate per generator, position-balanced, clustered intervals
- categories   the same per value of an item metadata field, with Bonferroni-adjusted intervals
- bradley_terry  generator strengths from vs-real and head-to-head judgments at once
- pairs        which generator pairs' order is most in doubt (head-to-head trials to serve)
- bootstrap    the vectorised two-way (prompt x annotator) cluster bootstrap
- sandwich     Cameron-Gelbach-Miller two-way cluster-robust variance
- proportions  Wilson and Clopper-Pearson intervals, exact binomial tests (no clustering)
- calibration  calibration rate, side bias, drift over sessions
- quality      annotator quality; agreement: Fleiss' kappa, Krippendorff's alpha
- exclusions   exclusion rules applied at analysis time, exclusion-rate jumps
- fits, forms, optimize, series   scaling-law fits (batched L-BFGS) with two-way bootstrap
- asymptote    does a series reach parity: the verdict and the judgments it would take
- alignment    rank correlation of human rates with automatic metrics
- planning     judgments and prompts needed for a target interval half-width
- timeline     rates per time block, drift over the study, rates adjusted for time
- marginal     from logit-scale effects to marginal rates
- mixed        cross-check: crossed random-effects logistic model, marginalised
- simulate     simulated studies with a known truth
- simulate_bt  simulated vs-real and head-to-head judgments under Bradley-Terry
- study        one call: quality, exclusions, rates with and without them
"""

from .agreement import Agreement, agreement, krippendorff_alpha_nominal, majority_agreement
from .alignment import Alignment, kendall_rows, metric_alignment, spearman_rows
from .asymptote import VERDICTS, Verdict, asymptote_dispersion, parity_verdict
from .bootstrap import cluster_weights, percentile_interval, two_way_sums
from .bradley_terry import BradleyTerry, bradley_terry, study_trials, vs_real_trials
from .calibration import (
    Calibration,
    Drift,
    SideBias,
    calibration_rate,
    session_drift,
    side_bias,
)
from .exclusions import (
    EXCLUSION_RULES,
    ExclusionJump,
    ExclusionRules,
    Exclusions,
    apply_exclusions,
    exclusion_jump,
)
from .fits import CurveFit, compare_forms, fit_loss_curve, fit_parity_curve, x_at_gap
from .forms import FORMS, Form
from .judgments import CALIBRATION, CATCH, GENERATED, HEAD_TO_HEAD, KINDS, Judgments, factorize
from .marginal import intercept_for_rate, marginal_rate
from .mixed import MixedModelRates, mixed_model_rates
from .optimize import BatchResult, lbfgs
from .planning import Plan, generators_done, plan_judgments
from .proportions import binomial_test_half, clopper_pearson_interval, two_proportion_test, wilson_interval
from .quality import AnnotatorQuality, annotator_quality
from .rates import RateTable, balanced_rates, preference_rates
from .sandwich import ClusterVariance, cluster_variance
from .series import series_counts
from .simulate import SimulatedStudy, simulate_study
from .simulate_bt import SimulatedBradleyTerry, simulate_bradley_terry
from .study import StudyAnalysis, analyse_study

__all__ = [
    "CALIBRATION",
    "CATCH",
    "EXCLUSION_RULES",
    "FORMS",
    "GENERATED",
    "HEAD_TO_HEAD",
    "KINDS",
    "VERDICTS",
    "Agreement",
    "Alignment",
    "AnnotatorQuality",
    "BatchResult",
    "BradleyTerry",
    "Calibration",
    "ClusterVariance",
    "CurveFit",
    "Drift",
    "ExclusionJump",
    "ExclusionRules",
    "Exclusions",
    "Form",
    "Judgments",
    "MixedModelRates",
    "Plan",
    "RateTable",
    "SideBias",
    "SimulatedBradleyTerry",
    "SimulatedStudy",
    "StudyAnalysis",
    "Verdict",
    "agreement",
    "analyse_study",
    "annotator_quality",
    "apply_exclusions",
    "asymptote_dispersion",
    "balanced_rates",
    "binomial_test_half",
    "bradley_terry",
    "calibration_rate",
    "clopper_pearson_interval",
    "cluster_variance",
    "cluster_weights",
    "compare_forms",
    "exclusion_jump",
    "factorize",
    "fit_loss_curve",
    "fit_parity_curve",
    "generators_done",
    "intercept_for_rate",
    "kendall_rows",
    "krippendorff_alpha_nominal",
    "lbfgs",
    "majority_agreement",
    "marginal_rate",
    "metric_alignment",
    "mixed_model_rates",
    "parity_verdict",
    "percentile_interval",
    "plan_judgments",
    "preference_rates",
    "series_counts",
    "session_drift",
    "side_bias",
    "simulate_bradley_terry",
    "simulate_study",
    "spearman_rows",
    "study_trials",
    "two_proportion_test",
    "two_way_sums",
    "vs_real_trials",
    "wilson_interval",
    "x_at_gap",
]
