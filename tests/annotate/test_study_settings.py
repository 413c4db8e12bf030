"""A study's settings are declared once (`annotate.study_settings`): the model's fields and
constraints agree with the declaration, the API, the services, the admin, the report's
configuration and the API's examples take every setting from it, no other module keeps
a list of them, and each exclusion rule has one name everywhere.

Adding a setting takes its declaration, its model field and a migration; these tests
fail where anything else would still be needed.
"""

import ast
import dataclasses
import re
from pathlib import Path

import pytest
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.urls import reverse
from rest_framework.exceptions import ValidationError as APIValidationError

from analysis import report_html
from analysis.api import JSON_EXAMPLE
from analysis.selectors import study_configuration
from analysis.stats import EXCLUSION_RULES, ExclusionRules, analyse_study, simulate_study
from annotate import services, study_settings
from annotate.api import STUDY_REQUEST
from annotate.errors import StudyNotDraft
from annotate.models import Study
from annotate.serializers import StudySerializer
from annotate.study_settings import NUMERIC, SETTINGS
from generation.models import Corpus, Generator
from generation.presentation import PresentationPolicy
from workspaces.models import Workspace

ROOT = Path(__file__).resolve().parents[2]
# What a study has besides its settings: what names and compares, its state, what the analysis writes.
NOT_SETTINGS = {"id", "workspace", "name", "slug", "corpus", "generators", "status", "generators_done", "created_at",
                "generator_history", "trial_seed", "head_to_head_active", "item_selection"}
KIND_FIELDS = {
    "int": models.IntegerField, "float": models.FloatField, "bool": models.BooleanField, "choice": models.CharField,
    "text": (models.CharField, models.TextField), "json": models.JSONField,
}
by_name = pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
numeric = pytest.mark.parametrize("setting", [s for s in SETTINGS if s.kind in NUMERIC], ids=lambda s: s.name)


def field(setting) -> models.Field:
    return Study._meta.get_field(setting.name)


def other_value(setting):
    """A valid value of the setting other than its default."""
    default = setting.default_value()
    if setting.kind in NUMERIC:
        return setting.max if default != setting.max else setting.min
    if setting.kind == "bool":
        return not default
    if setting.kind == "choice":
        # The first other choice that needs no other setting (`custom` needs its text).
        return next(value for value, _ in field(setting).choices if value not in (default, "custom"))
    if setting.name == "anchor_generators":
        # Ids of the study's generators: the `study` fixture's one generator.
        return [Generator.objects.get(name="anchor").pk]
    if setting.name == "item_filters":
        return ["width>=512", "meta.aesthetic>=5"]
    if setting.name == "report_categories":
        return ["category"]
    if setting.kind == "json":
        return PresentationPolicy(size=256, format="PNG").to_dict()
    if setting.name == "head_to_head_axis":
        return "train_step"
    return "set by a test"


@pytest.fixture
def study(db):
    workspace = Workspace.objects.create(name="Lab", slug="lab")
    corpus = Corpus.objects.create(workspace=workspace, name="corpus")
    made = Study.objects.create(workspace=workspace, name="Study", slug="study", corpus=corpus)
    made.generators.add(Generator.objects.create(workspace=workspace, name="anchor"))
    return made


# ------------------------------------------------------------------------------
# The model agrees with the declaration
# ------------------------------------------------------------------------------
def test_every_field_of_a_study_is_a_setting_or_not_settable():
    fields = {f.name for f in Study._meta.get_fields() if f.concrete}
    assert set(study_settings.NAMES) <= fields
    assert fields - set(study_settings.NAMES) == NOT_SETTINGS, "declare the new field in annotate/study_settings.py"
    assert len(set(study_settings.NAMES)) == len(SETTINGS)


@by_name
def test_the_model_field_has_the_declared_kind_default_and_help(setting):
    model_field = field(setting)
    assert isinstance(model_field, KIND_FIELDS[setting.kind])
    assert bool(model_field.choices) == (setting.kind == "choice")
    assert model_field.get_default() == setting.default_value()
    assert model_field.null == setting.nullable
    # Help texts that the model had before the declaration stay (changing one is a
    # migration); the admin shows the declared one either way.
    assert model_field.help_text in ("", setting.help)
    assert setting.help and setting.group


@numeric
def test_the_model_field_validates_the_declared_range(setting):
    model_field = field(setting)
    assert setting.min is not None and setting.max is not None and setting.min < setting.max
    for value in (setting.min, setting.max, setting.default_value()):
        if value is not None:
            model_field.clean(value, None)
    if setting.nullable:
        model_field.clean(None, None)
    else:
        with pytest.raises(ValidationError):
            model_field.clean(None, None)


@numeric
def test_the_database_takes_the_declared_range_and_refuses_a_negative(study, setting):
    rows = Study.objects.filter(pk=study.pk)
    for value in (setting.min, setting.max, *([None] if setting.nullable else [])):
        with transaction.atomic():
            rows.update(**{setting.name: value})
        assert rows.values_list(setting.name, flat=True).get() == value
    with pytest.raises(IntegrityError), transaction.atomic():
        rows.update(**{setting.name: -1})


# ------------------------------------------------------------------------------
# Everything else derives from it
# ------------------------------------------------------------------------------
@by_name
def test_the_api_field_is_the_declared_one(setting):
    api_field = StudySerializer().fields[setting.name]
    assert not api_field.read_only and not api_field.required
    assert str(api_field.help_text).startswith(setting.describe(blank="null"))
    if setting.rule:
        assert f"`{setting.rule}`" in api_field.help_text
    if setting.kind in NUMERIC:
        assert (api_field.min_value, api_field.max_value, api_field.allow_null) == (
            setting.min, setting.max, setting.nullable)
        step = 1 if setting.kind == "int" else setting.min / 2 or 0.5
        api_field.run_validation(setting.min)
        api_field.run_validation(setting.max)
        for outside in (setting.min - step, setting.max + step):
            with pytest.raises(APIValidationError):
                api_field.run_validation(outside)


@by_name
def test_the_services_create_and_change_each_setting(study, setting):
    value = other_value(setting)
    extra = {"question_text": "Which one?"} if setting.name == "question" else {}
    made = services.study_create(workspace=study.workspace, name="New", slug="new", corpus=study.corpus,
                                 generators=study.generators.all(), **{setting.name: value}, **extra)
    assert getattr(Study.objects.get(pk=made.pk), setting.name) == value
    services.study_update(study=study, **{setting.name: value})
    assert getattr(Study.objects.get(pk=study.pk), setting.name) == value


def test_an_open_study_changes_only_what_is_declared_to_change_after_opening(study, monkeypatch):
    stale = Study.objects.get(pk=study.pk)
    Study.objects.filter(pk=study.pk).update(status=Study.Status.OPEN)
    name = "exclude_agreement_below"
    assert not study_settings.BY_NAME[name].changes_after_open
    with pytest.raises(StudyNotDraft):
        services.study_update(study=stale, **{name: 0.6})
    monkeypatch.setitem(study_settings.BY_NAME, name,
                        dataclasses.replace(study_settings.BY_NAME[name], changes_after_open=True))
    services.study_update(study=stale, **{name: 0.6})
    fresh = Study.objects.get(pk=study.pk)
    # The stale copy's status (draft) is not written back.
    assert (getattr(fresh, name), fresh.status) == (0.6, Study.Status.OPEN)
    for refused in ({"judgments_per_trial": 5}, {name: 0.7, "catch_rate": 0.2}, {}):
        with pytest.raises(StudyNotDraft):
            services.study_update(study=stale, **refused)
    assert Study.objects.get(pk=study.pk).exclude_agreement_below == 0.6


def test_the_admin_shows_every_field_and_each_setting_in_its_group_with_its_help(client, study, django_user_model):
    study_admin = admin.site._registry[Study]
    shown = [name for _, options in study_admin.fieldsets for name in options["fields"]]
    editable = {f.name for f in Study._meta.get_fields() if f.concrete and f.editable and not f.auto_created}
    assert sorted(shown) == sorted(editable)
    groups = {name: title for title, options in study_admin.fieldsets for name in options["fields"]}
    client.force_login(django_user_model.objects.create_superuser("root", password="pw-for-tests-only"))
    page = client.get(reverse("admin:annotate_study_change", args=[study.pk]))
    assert page.status_code == 200
    form = page.context["adminform"].form
    for setting in SETTINGS:
        assert groups[setting.name] == setting.group
        assert form.fields[setting.name].help_text == setting.describe(blank="blank")


def test_the_report_configuration_holds_the_settings_meant_for_it(study):
    configuration = study_configuration(study=study)
    for setting in SETTINGS:
        assert (setting.name in configuration) == setting.in_report, setting.name
        if setting.in_report:
            assert configuration[setting.name] == setting.default_value()
    assert "completion_code" not in configuration


def test_the_api_examples_show_every_setting():
    assert set(study_settings.NAMES) <= set(STUDY_REQUEST)
    assert {s.name for s in SETTINGS if s.in_report} <= set(JSON_EXAMPLE["study"])


def _listed_settings(tree: ast.AST) -> list[tuple[int, list[str]]]:
    """Literal tuples, lists and sets that name three settings or more, with their line (the
    admin's list columns, say, choose two)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            names = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in study_settings.BY_NAME]
            if len(names) >= 3:
                found.append((node.lineno, names))
    return found


def test_no_other_module_keeps_a_list_of_the_settings():
    declared = {ROOT / "annotate" / "study_settings.py", ROOT / "annotate" / "models.py"}
    listed = {}
    for package in ("annotate", "analysis", "generation", "workspaces", "demo", "platform"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path in declared or "migrations" in path.parts:
                continue
            for line, names in _listed_settings(ast.parse(path.read_text(), str(path))):
                listed[f"{path.relative_to(ROOT)}:{line}"] = names
    assert listed == {}, "derive these from annotate.study_settings"
    # The check finds a list where there is one.
    assert _listed_settings(ast.parse('FIELDS = ("name", "catch_rate", "break_every", "exposure_ms")'))


# ------------------------------------------------------------------------------
# One name per exclusion rule
# ------------------------------------------------------------------------------
def test_each_exclusion_rule_has_one_name_everywhere():
    rules = list(EXCLUSION_RULES)
    assert list(study_settings.RULE_SETTINGS) == rules == list(report_html.RULE_MEANINGS)
    for rule, name in study_settings.RULE_SETTINGS.items():
        setting = study_settings.BY_NAME[name]
        # A rule's setting is what switches it off: blank, or false.
        assert setting.nullable or setting.kind == "bool", rule
    on = ExclusionRules(side_bias_alpha=0.05, min_agreement=0.5)
    assert all(getattr(on, switch) is not None for switch in EXCLUSION_RULES.values())
    simulated = simulate_study([0.3], n_items=40, n_annotators=8, n_judgments=400, catch_share=0.1, seed=1)
    assert list(analyse_study(simulated.judgments, rules=on, n_boot=20).exclusions.by_rule) == rules


def test_the_readme_names_each_rule_with_its_setting():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Analysing a study"):]
    for rule, name in study_settings.RULE_SETTINGS.items():
        assert re.search(rf"`{rule}`, (set )?by `{name}`", section), rule
