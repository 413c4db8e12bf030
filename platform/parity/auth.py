"""Bearer-token authentication for the researcher API: `Authorization: Bearer pty_…`.

A request without that header falls through to the next class (the browser's
session); one with it either authenticates or is refused with 401, never quietly
treated as anonymous.
"""

from rest_framework import authentication, exceptions

from parity.tokens import token_authenticate


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Give one token after 'Bearer', with no spaces in it.")
        try:
            secret = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The token is not ASCII.") from None
        token = token_authenticate(secret=secret)
        if token is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("The token's account is disabled.")
        return token.user, token

    def authenticate_header(self, request) -> str:
        # Its presence makes DRF answer 401 (not 403) to a request with no credentials.
        return f'{self.keyword} realm="api"'
