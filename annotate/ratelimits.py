"""Rate limits on the pages open to anyone: joining a study, submitting judgments, signing in.

The annotator's pages are open to anyone with a link, so a script could create
annotators or post judgments far faster than a person; the sign-in form could be
used to guess passwords. django-ratelimit counts requests in the cache; these
decorators choose what is counted and answer a request over the limit with a short
message (status 429) before the view runs, so nothing of it is recorded. The rates
come from settings (`PARITY_RATE_JOIN`, `PARITY_RATE_SUBMIT`, `PARITY_RATE_LOGIN`),
read on each request; None turns a limit off.
"""

import ipaddress
import logging
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.core import checks
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django_ratelimit.core import get_usage
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

JOIN_MESSAGE = (
    "This study has been opened many times from your network just now. "
    "Please wait a minute, then try again."
)
SUBMIT_MESSAGE = (
    "Answers are arriving faster than a person can look at the images, so that one was not "
    "recorded. Please take a moment, then continue."
)
LOGIN_MESSAGE = "Too many sign-in attempts from your network just now. Please wait a minute, then try again."
# Cache backends whose counts every web process shares, with an atomic increment.
SHARED_CACHES = {
    "django.core.cache.backends.redis.RedisCache",
    "django_redis.cache.RedisCache",
    "django.core.cache.backends.memcached.PyMemcacheCache",
    "django.core.cache.backends.memcached.PyLibMCCache",
}
UNKNOWN_ADDRESS = "0.0.0.0"


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or the one the trusted proxies put in X-Forwarded-For.

    Each of `PARITY_NUM_PROXIES` proxies appends the address it saw, so the client is
    that many entries from the right; entries further left are whatever the client
    sent and prove nothing. django-ratelimit calls this (RATELIMIT_IP_META_KEY) and
    counts an IPv6 client by its /64, which one household gets whole.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    hops = settings.PARITY_NUM_PROXIES
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    for candidate in (forwarded[-min(hops, len(forwarded))] if hops and forwarded else remote, remote):
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    # No usable address at all: such requests share one count rather than fail.
    return UNKNOWN_ADDRESS


def _by_session(group: str, request: HttpRequest) -> str:
    """The session, which holds the annotator; the address when there is none.

    A request without a live session has no annotator, so it records nothing; it is
    still counted, by address, so that dropping the cookie does not escape the limit.
    """
    session = request.session
    # keys() loads the session: an unknown or expired cookie comes back empty.
    if not session.keys() or session.session_key is None:
        return f"ip:{client_ip(request)}"
    return f"session:{session.session_key}"


def _limited(
    *, group: str, rate_setting: str, key: str | Callable, method: str | None, message: str, retry_view: str
) -> Callable:
    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            rate = getattr(settings, rate_setting)
            if rate and (method is None or request.method == method):
                usage = _count(request, group=group, rate=rate, key=key)
                if usage is not None and usage["should_limit"]:
                    retry_url = (
                        request.get_full_path() if request.method == "GET" else reverse(retry_view, kwargs=kwargs)
                    )
                    return _refused(request, message=message, retry_url=retry_url, seconds=usage["time_left"])
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def _count(request: HttpRequest, *, group: str, rate: str, key: str | Callable) -> dict | None:
    try:
        return get_usage(request, group=group, key=key, rate=rate, increment=True)
    except RedisError:
        logger.warning("rate limit %s not counted: the cache is unreachable", group, exc_info=True)
        return None


def _refused(request: HttpRequest, *, message: str, retry_url: str, seconds: int) -> HttpResponse:
    """429 with the message: the trial's own fragment for htmx, a short page otherwise."""
    template = "annotate/partials/rate_limited.html" if request.htmx else "annotate/rate_limited.html"
    response = render(request, template, {"message": message, "retry_url": retry_url}, status=429)
    if seconds > 0:
        response["Retry-After"] = str(seconds)
    return response


def join_limit(name: str, *, retry_view: str = "annotate:entry") -> Callable:
    """Count requests to the view per client address against PARITY_RATE_JOIN."""
    return _limited(
        group=f"annotate.join.{name}", rate_setting="PARITY_RATE_JOIN", key="ip", method=None,
        message=JOIN_MESSAGE, retry_view=retry_view,
    )


def submit_limit(name: str, *, retry_view: str = "annotate:trial") -> Callable:
    """Count the view's POSTs per annotator's session against PARITY_RATE_SUBMIT."""
    return _limited(
        group=f"annotate.submit.{name}", rate_setting="PARITY_RATE_SUBMIT", key=_by_session, method="POST",
        message=SUBMIT_MESSAGE, retry_view=retry_view,
    )


def login_limit(retry_view: str) -> Callable:
    """Count sign-in attempts (POSTs) per client address against PARITY_RATE_LOGIN."""
    return _limited(
        group="parity.login", rate_setting="PARITY_RATE_LOGIN", key="ip", method="POST",
        message=LOGIN_MESSAGE, retry_view=retry_view,
    )


@checks.register(checks.Tags.caches, deploy=True)
def check_shared_cache(app_configs, **kwargs) -> list[checks.CheckMessage]:
    backend = settings.CACHES[getattr(settings, "RATELIMIT_USE_CACHE", "default")]["BACKEND"]
    if backend in SHARED_CACHES:
        return []
    return [
        checks.Warning(
            f"rate limits are counted by each process on its own ({backend}): with several web "
            "processes an annotator gets that many times the limit",
            hint="set CACHE_URL=redis://HOST:6379/1 so that every web process shares one count",
            id="annotate.W001",
        )
    ]
