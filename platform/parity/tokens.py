"""Writes and reads of personal API tokens: make one (its secret shown once), revoke one,
and find the live token behind a secret.

A secret is `pty_` followed by 43 URL-safe characters (32 random bytes). The prefix
makes a leaked token easy to recognise (and to scan for); the digest is a plain
sha256, enough for 256 bits of randomness, and indexed so a lookup is one query.
"""

import hashlib
import secrets
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from parity.models import PersonalToken

SECRET_PREFIX = "pty_"
PREFIX_LENGTH = 12
# last_used_at is written at most this often, so a busy script does not write a row per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_create(*, user, name: str) -> tuple[PersonalToken, str]:
    """A new token for `user`, and its secret: the only time the secret is known."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    token = PersonalToken.objects.create(
        user=user, name=name.strip(), prefix=secret[:PREFIX_LENGTH], digest=token_digest(secret)
    )
    return token, secret


def token_revoke(*, user, token_id: int, now: datetime | None = None) -> PersonalToken | None:
    """Revoke one of `user`'s tokens; None if `user` has no token of that id. Revoking twice is a no-op."""
    with transaction.atomic():
        token = PersonalToken.objects.select_for_update().filter(user=user, pk=token_id).first()
        if token is not None and token.revoked_at is None:
            token.revoked_at = now or timezone.now()
            token.save(update_fields=["revoked_at"])
    return token


def tokens_for_user(*, user):
    return PersonalToken.objects.filter(user=user).order_by("revoked_at", "-created_at")


def token_authenticate(*, secret: str, now: datetime | None = None) -> PersonalToken | None:
    """The live token with this secret (its user loaded), or None for an unknown or revoked one.

    Marks the token used, at most once per `LAST_USED_RESOLUTION`.
    """
    if not secret.startswith(SECRET_PREFIX):
        return None
    token = (
        PersonalToken.objects.select_related("user")
        .filter(digest=token_digest(secret), revoked_at__isnull=True)
        .first()
    )
    if token is None:
        return None
    now = now or timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        PersonalToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
