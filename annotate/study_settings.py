"""A study's settings, each declared once: kind, default, bounds, help text, and whether
it may change once the study is open.

The model's fields stay in `models.py`, where Django and the migrations read them;
everything else about a setting derives from `SETTINGS`: the API's writable fields with
their bounds and help (`serializers`), what `services.study_create` and `study_update`
accept, the admin's fieldsets and help, the report's configuration
(`analysis.selectors.study_configuration`) and the API's examples.
`tests/annotate/test_study_settings.py` checks the model's defaults, help texts,
validators and constraints against this declaration, and that no other module keeps a
list of the settings. Adding a setting takes its line here, its model field and a
migration.

A setting that switches an exclusion rule on or off names the rule (`rule`) by the one
name the rule has everywhere: in the analysis (`stats.EXCLUSION_RULES`), the report's
`by_rule` and `excluded_by`, its page, the API's help and the README.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from generation.presentation import PresentationPolicy

Kind = Literal["int", "float", "bool", "choice", "text", "json"]
NUMERIC: tuple[Kind, ...] = ("int", "float")


@dataclass(frozen=True)
class StudySetting:
    """One setting of a study.

    default : the value a study starts with, or a function that makes it (for a mutable value).
    min, max : what a client may set (numeric kinds); the database's own checks are never
        narrower (a test makes sure).
    nullable : None (blank in the admin) switches the setting off.
    changes_after_open : whether `study_update` may change it once the study is open.
    group : the admin's fieldset.
    rule : the exclusion rule this setting switches on or off, by its name in reports.
    in_report : part of a report's configuration (a completion code, or consent text, is not).
    rebuilds : changing it on a study whose trials are built builds the trials it now needs.
    """

    name: str
    kind: Kind
    default: Any
    help: str
    group: str
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    changes_after_open: bool = False
    rule: str = ""
    in_report: bool = True
    rebuilds: bool = False

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default

    def describe(self, *, blank: str) -> str:
        """The help text with the rule and the default; `blank` names an empty value ("null", "blank")."""
        parts = [f"Exclusion rule `{self.rule}`." if self.rule else "", self.help]
        default = self.default_value()
        if self.kind in ("text", "json"):
            pass
        elif default is None:
            parts.append(f"Default {blank} (off).")
        elif self.nullable:
            parts.append(f"Default {_shown(default)}; {blank} switches it off.")
        else:
            parts.append(f"Default {_shown(default)}.")
        return " ".join(part for part in parts if part)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _policy() -> dict:
    return PresentationPolicy().to_dict()


SETTINGS: tuple[StudySetting, ...] = (
    StudySetting(
        "question", "choice", "preference", group="Question",
        help="What annotators are asked: `preference`, `realism`, or `custom` with its own text.",
    ),
    StudySetting("question_text", "text", "", group="Question", help="The question asked; required for `custom`."),
    StudySetting("instructions", "text", "", group="Question", help="Shown with the consent text before the study."),
    StudySetting(
        "consent_text", "text", "", group="Question", in_report=False,
        help="What annotators agree to before their first trial.",
    ),
    StudySetting(
        "judgments_per_trial", "int", 3, min=1, max=1000, group="Trials", help="k: judgments each trial needs.",
    ),
    StudySetting(
        "catch_rate", "float", 0.1, min=0, max=1, group="Trials", help="Catch trials per study item, from 0 to 1.",
    ),
    StudySetting(
        "calibration_rate", "float", 0.05, min=0, max=1, group="Trials",
        help="Calibration trials per study item, from 0 to 1.",
    ),
    StudySetting(
        "seeds_per_item", "int", 1, min=1, max=100, group="Trials",
        help="Samples judged per generator and prompt: its lowest seeds up to this many, each its own trial.",
    ),
    StudySetting(
        "quota_per_annotator", "int", 40, min=1, max=100_000, group="Sessions",
        help="Most judgments one annotator makes.",
    ),
    StudySetting(
        "assignment_timeout_seconds", "int", 600, min=10, max=86_400, group="Sessions",
        help="An unanswered assignment returns to the pool after this many seconds.",
    ),
    StudySetting(
        "exposure_ms", "int", None, min=1, max=600_000, nullable=True, group="Sessions",
        help="Mask both images this long after they appear (timed exposure).",
    ),
    StudySetting(
        "break_every", "int", 0, min=0, max=100_000, group="Sessions",
        help="Offer a break after every this many judgments; 0 never does.",
    ),
    StudySetting(
        "practice_trials", "int", 3, min=0, max=50, group="Trials",
        help="Practice trials with feedback before the study; their items are set aside, never in the study.",
    ),
    StudySetting(
        "presentation_policy", "json", _policy, group="Presentation",
        help="The presentation policy both images of every trial went through.",
    ),
    StudySetting(
        "completion_code", "text", "", group="Sessions", in_report=False,
        help="Shown to annotators who finish; Prolific participants are sent back with it.",
    ),
    StudySetting(
        "exclude_catch_accuracy_below", "float", 0.8, min=0, max=1, nullable=True, group="Exclusion rules",
        rule="catch_accuracy", help="Exclude annotators whose catch-trial accuracy is below this share.",
    ),
    StudySetting(
        "min_catch_trials", "int", 1, min=1, max=10_000, group="Exclusion rules",
        help="Apply the catch-trial rule only to annotators dealt at least this many catch trials.",
    ),
    StudySetting(
        "exclude_fast_share_above", "float", 0.2, min=0, max=1, nullable=True, group="Exclusion rules",
        rule="too_fast", help="Exclude annotators with more than this share of answers under fast_response_ms.",
    ),
    StudySetting(
        "fast_response_ms", "int", 400, min=0, max=60_000, group="Exclusion rules",
        help="A client response time under this counts as too fast to have looked.",
    ),
    StudySetting(
        "exclude_side_bias", "bool", False, group="Exclusion rules", rule="side_bias",
        help="Exclude annotators with a significant side bias (Bonferroni-corrected).",
    ),
    StudySetting(
        "exclude_agreement_below", "float", None, min=0, max=1, nullable=True, group="Exclusion rules",
        rule="agreement", help="Exclude annotators agreeing with the majority on shared trials below this share.",
    ),
    StudySetting(
        "target_half_width", "float", None, min=0.001, max=0.5, nullable=True, group="Planning",
        help="Stop serving a generator once its 95% interval is at most this half-width; blank never stops.",
    ),
    StudySetting(
        "item_filters", "json", list, group="Items",
        help="Filters on the references' facts and the items' metadata, such as \"width>=512\" or "
        "\"meta.pwatermark<0.5\"; an item must pass all.",
    ),
    StudySetting(
        "sample_size", "int", None, min=1, max=100_000_000, nullable=True, group="Items",
        help="Use a seeded sample of this many of the items that pass the filters.",
    ),
    StudySetting(
        "sample_seed", "int", 0, min=0, max=2**31 - 1, group="Items",
        help="Seed of the sample: the same seed, the same items.",
    ),
    StudySetting(
        "stratify_by", "text", "", group="Items",
        help="An item metadata field whose values each get their share of the sample.",
    ),
    StudySetting(
        "allocation", "choice", "proportional", group="Items",
        help="Each value's share of a stratified sample: `proportional` to its items, or `equal`.",
    ),
    StudySetting(
        "include_blank_samples", "bool", False, group="Items",
        help="Build trials on blank or near-constant samples too (safety-filtered outputs).",
    ),
    StudySetting(
        "report_categories", "json", list, group="Items", changes_after_open=True,
        help="Item metadata fields the report gives results per value of (where parity comes first).",
    ),
    StudySetting(
        "head_to_head_share", "float", 0.0, min=0, max=1, group="Head-to-head and anchors",
        changes_after_open=True, rebuilds=True,
        help="Share of the judgments (after controls) given to head-to-head trials: two generators' "
        "samples of one prompt.",
    ),
    StudySetting(
        "head_to_head_pairs", "choice", "neighbours", group="Head-to-head and anchors", changes_after_open=True,
        rebuilds=True,
        help="Which generators meet head to head: `neighbours` along a scale axis within a series, or the "
        "`uncertain` pairs, whose order the judgments so far leave most in doubt.",
    ),
    StudySetting(
        "head_to_head_axis", "text", "", group="Head-to-head and anchors", changes_after_open=True,
        rebuilds=True,
        help="The scale axis that makes neighbours; blank takes each series' first axis that varies.",
    ),
    StudySetting(
        "anchor_generators", "json", list, group="Head-to-head and anchors", changes_after_open=True,
        help="Ids of the study's generators kept in rotation for its whole life, so drift over time shows.",
    ),
    StudySetting(
        "anchor_share", "float", 0.0, min=0, max=1, group="Head-to-head and anchors", changes_after_open=True,
        help="Share of the vs-real judgments given to the anchor generators.",
    ),
)

NAMES: tuple[str, ...] = tuple(setting.name for setting in SETTINGS)
BY_NAME: dict[str, StudySetting] = {setting.name: setting for setting in SETTINGS}
# Exclusion rule name -> the setting that switches it.
RULE_SETTINGS: dict[str, str] = {setting.rule: setting.name for setting in SETTINGS if setting.rule}


# Changing one of these on built trials builds what they now need.
REBUILDING: frozenset[str] = frozenset(setting.name for setting in SETTINGS if setting.rebuilds)


def defaults() -> dict[str, Any]:
    """Every setting's default, as JSON values."""
    return {setting.name: setting.default_value() for setting in SETTINGS}


def groups() -> list[tuple[str, list[str]]]:
    """The settings by group, groups in the order they first appear."""
    grouped: dict[str, list[str]] = {}
    for setting in SETTINGS:
        grouped.setdefault(setting.group, []).append(setting.name)
    return list(grouped.items())


def fixed_once_open(names: list[str] | tuple[str, ...]) -> list[str]:
    """Those of `names` that may not change once a study is open (any name that is no setting)."""
    return [name for name in names if not (name in BY_NAME and BY_NAME[name].changes_after_open)]
