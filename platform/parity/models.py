"""Personal API tokens: how a researcher's scripts reach /api/v1/ without a session.

Only the sha256 of a token's secret is stored; the secret itself is shown once, when
the token is made (`parity.tokens.token_create`), and cannot be read back.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class PersonalToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'training cluster'.")
    prefix = models.CharField(max_length=12, help_text="The secret's first characters, to recognise it.")
    digest = models.CharField(max_length=64, unique=True, help_text="sha256 hex of the secret.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=~Q(name=""), name="personaltoken_name_not_empty")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None
