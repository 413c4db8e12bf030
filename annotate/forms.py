"""Forms of the researcher's pages."""

import re

from django import forms

from annotate import study_settings
from annotate.models import Study
from generation.models import Generator

# One form is one transaction; a cohort larger than this is better invited in parts.
MAX_INVITE_NAMES = 500


class InviteForm(forms.Form):
    """Usernames or emails of existing accounts, one per line or separated by commas."""

    names = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 40, "placeholder": "alice\nbob@example.org"}),
        label="Usernames or emails",
        help_text="One per line, or separated by commas.",
    )

    def clean_names(self) -> list[str]:
        names = list(dict.fromkeys(part.strip() for part in re.split(r"[,\n]", self.cleaned_data["names"])))
        names = [name for name in names if name]
        if not names:
            raise forms.ValidationError("Name at least one account.")
        if len(names) > MAX_INVITE_NAMES:
            raise forms.ValidationError(f"At most {MAX_INVITE_NAMES} accounts at a time.")
        return names


class ReleaseForm(forms.Form):
    """The Prolific ID of a participant who must continue in another browser."""

    prolific_id = forms.CharField(max_length=200, label="Prolific ID", strip=True)


class GeneratorsForm(forms.Form):
    """Generators of the study's workspace to add to it (those not in it yet)."""

    generators = forms.ModelMultipleChoiceField(
        queryset=None, label="Add generators",
        help_text="Their trials are built now and served first until they catch up.",
    )

    def __init__(self, *args, study, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["generators"].queryset = (
            Generator.objects.filter(workspace_id=study.workspace_id).exclude(studies=study).order_by("name"))


class RemoveGeneratorForm(forms.Form):
    generator = forms.IntegerField(min_value=1)


class HeadToHeadForm(forms.Form):
    """A study's head-to-head and anchor settings, changeable while it runs (`study_settings`)."""

    head_to_head_share = forms.FloatField(min_value=0, max_value=1, label="Head-to-head share")
    head_to_head_pairs = forms.ChoiceField(choices=Study.Pairs.choices, label="Pairs")
    head_to_head_axis = forms.CharField(required=False, max_length=100, label="Axis")
    anchor_generators = forms.ModelMultipleChoiceField(queryset=None, required=False, label="Anchor generators")
    anchor_share = forms.FloatField(min_value=0, max_value=1, label="Anchor share")

    def __init__(self, *args, study, **kwargs):
        kwargs.setdefault("initial", {name: getattr(study, name) for name in self.base_fields})
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            field.help_text = study_settings.BY_NAME[name].describe(blank="blank")
        self.fields["anchor_generators"].queryset = study.generators.order_by("name")

    def clean_anchor_generators(self) -> list[int]:
        return [generator.pk for generator in self.cleaned_data["anchor_generators"]]
