"""`manage.py configure_study STUDY SETTING=VALUE...`: change a study's settings from the shell."""

import json

from django.core.management.base import BaseCommand, CommandError

from annotate import study_settings
from annotate.models import Study
from annotate.selectors import generators_named
from annotate.services import study_update
from workspaces.errors import ParityError

TRUE, FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def parse(setting: study_settings.StudySetting, text: str, study: Study):
    """The value of `setting` written as `text`; ValueError says what is wrong with it."""
    if setting.nullable and text.lower() in ("", "none", "null"):
        return None
    if setting.kind == "int":
        return int(text)
    if setting.kind == "float":
        return float(text)
    if setting.kind == "bool":
        if text.lower() not in TRUE | FALSE:
            raise ValueError(f"{text!r} is not true or false")
        return text.lower() in TRUE
    if setting.name == "item_filters":
        # Filters, semicolon-separated (a filter may hold a comma), or a JSON list.
        return json.loads(text) if text.startswith("[") else [v.strip() for v in text.split(";") if v.strip()]
    if setting.name == "report_categories":
        return json.loads(text) if text.startswith("[") else [v.strip() for v in text.split(",") if v.strip()]
    if setting.kind == "json" and setting.default_value() == []:
        # A list of generators (the anchors): names or ids, comma-separated, or a JSON list.
        values = json.loads(text) if text.startswith("[") else [v for v in text.split(",") if v.strip()]
        found, unknown = generators_named(study=study, values=values)
        if unknown is not None:
            raise ValueError(f"no generator {unknown!r} in workspace {study.workspace.slug!r}")
        return [generator.pk for generator in found]
    if setting.kind == "json":
        return json.loads(text)
    return text


class Command(BaseCommand):
    help = (
        "Change settings of a study: SETTING=VALUE for any setting the API takes (see `PATCH "
        "/api/v1/studies/{slug}/`). An open study changes only those marked changeable while it "
        "runs: the head-to-head share, pairs and axis, the anchor generators (names or ids, "
        "comma-separated) and their share; changing the head-to-head settings builds the trials "
        "they now need."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the study's slug, as in its link /s/<slug>/")
        parser.add_argument("settings", nargs="+", metavar="SETTING=VALUE",
                            help=f"one of: {', '.join(study_settings.NAMES)}")

    def handle(self, *args, slug, settings, **options):
        study = Study.objects.select_related("workspace").filter(slug=slug).first()
        if study is None:
            raise CommandError(f"no study with slug {slug!r}")
        fields = {}
        for pair in settings:
            name, equals, text = pair.partition("=")
            if not equals:
                raise CommandError(f"{pair!r}: write SETTING=VALUE")
            setting = study_settings.BY_NAME.get(name.strip())
            if setting is None:
                raise CommandError(f"{name!r} is no study setting: one of {', '.join(study_settings.NAMES)}")
            try:
                value = parse(setting, text.strip(), study)
            except ValueError as exc:
                raise CommandError(f"{name}: {exc}") from None
            if setting.kind in study_settings.NUMERIC and value is not None and not (
                    setting.min <= value <= setting.max):
                raise CommandError(f"{name}: {value} is outside {setting.min} to {setting.max}")
            fields[setting.name] = value
        try:
            study = study_update(study=study, **fields)
        except ParityError as exc:
            raise CommandError(str(exc)) from None
        trials = study.trials.count()
        shown = ", ".join(f"{name}={getattr(study, name)!r}" for name in fields)
        self.stdout.write(self.style.SUCCESS(f"Study {study.slug!r} ({study.status}): {shown}; {trials} trials."))
