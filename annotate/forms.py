"""Forms of the researcher's pages."""

import re

from django import forms

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
