"""The researcher API's write rate limit on token requests, named in settings.REST_FRAMEWORK.

The rest of what every endpoint shares (who may call it, the error body, pagination)
is in `workspaces.drf`.
"""

from django.conf import settings
from rest_framework import permissions, throttling

from parity.auth import BearerTokenAuthentication
from parity.rates import rate_split


class TokenWriteThrottle(throttling.SimpleRateThrottle):
    """Writes (POST, PUT, PATCH, DELETE) made with a personal token, counted per user.

    A script with a bug should not hammer the database; a person in the browser is
    not limited here. The rate is `settings.PARITY_API_WRITE_RATE` ("600/m", "10/5m";
    None turns it off), counted in the default cache.
    """

    scope = "token_write"

    def get_rate(self) -> str | None:
        return settings.PARITY_API_WRITE_RATE

    def parse_rate(self, rate: str | None) -> tuple[int | None, int | None]:
        if rate is None:
            return None, None
        return rate_split(rate)

    def get_cache_key(self, request, view) -> str | None:
        if request.method in permissions.SAFE_METHODS:
            return None
        if not isinstance(request.successful_authenticator, BearerTokenAuthentication):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}
