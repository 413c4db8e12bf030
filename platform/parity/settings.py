"""Settings for every process of Parity, read from the environment.

`PARITY_ENV=production` turns on the production checks: no default secret key,
secure cookies, HSTS. Anything else is development, with safe local defaults:
SQLite and media under `var/`, and a Celery broker that needs no server.
"""

import os
import re
import tempfile
from pathlib import Path

import dj_database_url
from csp import constants as csp
from django.core.exceptions import ImproperlyConfigured

from parity.rates import rate_split


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false)")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [part.strip() for part in value.split(",") if part.strip()]


def env_named_paths(name: str, default: str, *, bare: tuple[str, ...] = ()) -> dict[str, str]:
    """`name=dotted.path,name2=...` as {name: path}; a name of `bare` may stand alone, for itself.

    Only the shape is checked here: what a path points at is imported where it is used.
    """
    value = os.environ.get(name)
    value = default if value is None else value
    named: dict[str, str] = {}
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        key, sep, path = (part.strip() for part in entry.partition("="))
        if not sep and key in bare:
            path = key
        if not re.fullmatch(r"[A-Za-z0-9][\w.-]{0,99}", key) or not re.fullmatch(r"[A-Za-z_][\w.:]*", path):
            raise ImproperlyConfigured(
                f"{name}: {entry!r} is not name=package.module.attribute"
                + (f" (nor one of {', '.join(bare)})" if bare else "")
            )
        if key in named:
            raise ImproperlyConfigured(f"{name}: {key!r} is named twice")
        named[key] = path
    return named


# ------------------------------------------------------------------------------
# Paths
# ------------------------------------------------------------------------------
# The repository root for an editable install; containers set PARITY_VAR_DIR.
BASE_DIR = Path(__file__).resolve().parents[2]
VAR_DIR = Path(os.environ.get("PARITY_VAR_DIR", BASE_DIR / "var"))

# ------------------------------------------------------------------------------
# Core
# ------------------------------------------------------------------------------
PARITY_ENV = os.environ.get("PARITY_ENV", "development")
if PARITY_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"PARITY_ENV={PARITY_ENV!r}: use 'development' or 'production'")
PRODUCTION = PARITY_ENV == "production"

DEBUG = env_bool("DJANGO_DEBUG", default=not PRODUCTION)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set: production refuses to start without a secret key "
            "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )
    SECRET_KEY = "development-only-key-never-used-in-production-" + "x" * 20

ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI's files, served from here: the API docs must not need a CDN.
    "drf_spectacular_sidecar",
    "django_htmx",
    # The Content-Security-Policy header (see Security below); the app checks its settings.
    "csp",
    # Only for its system checks of the cache; annotate/ratelimits.py does the counting.
    "django_ratelimit",
    "parity",
    "workspaces",
    "generation",
    "annotate",
    "analysis",
]
# The demo app (procedural scenes, simulated annotators, the `demo`, `screenshots` and
# `simulate_annotators` commands) is for `make run` and the tests: a production process
# never loads it unless PARITY_DEMO=1 asks for it.
PARITY_DEMO = env_bool("PARITY_DEMO", default=not PRODUCTION)
if PARITY_DEMO:
    INSTALLED_APPS.append("demo")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Above whitenoise, so that static files (SVG among them) carry the policy too.
    "csp.middleware.CSPMiddleware",
    # Serves collected static files (admin, htmx) from gunicorn, with no proxy rule needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before anything reads a parameter: a NUL or a lone surrogate is a 400 here, never a 500 later.
    "parity.middleware.UntrustedInputMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "parity.urls"
WSGI_APPLICATION = "parity.wsgi.application"
ASGI_APPLICATION = "parity.asgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# ------------------------------------------------------------------------------
# Database
# ------------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'parity.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # psycopg prepares a statement that a connection has run this many times; only the
    # assignment engine's bind their parameters on the server, which that needs
    # (annotate/db.py). "off" for a pooler in transaction mode.
    _prepare = os.environ.get("DATABASE_PREPARE_THRESHOLD", "5")
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
        None if _prepare == "off" else env_int("DATABASE_PREPARE_THRESHOLD", 5)
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the worker share the file: WAL lets readers proceed while
    # one writes, and IMMEDIATE takes the write lock up front instead of failing
    # half-way through a transaction with "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not memory, so that a worker process started by a test sees the test
    # data; one per process, so that two test runs never share it.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"parity-test-{os.getpid()}.sqlite3")
    }

# ------------------------------------------------------------------------------
# Cache and rate limits (annotate/ratelimits.py)
# ------------------------------------------------------------------------------
# The rate limits count in the default cache. Each process's memory is enough for
# `make run`; several web processes need a shared one to share the counts.
CACHE_URL = os.environ.get("CACHE_URL", "")
if not CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
elif CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}
else:
    raise ImproperlyConfigured(f"CACHE_URL={CACHE_URL!r}: use redis://HOST:PORT/DB (or leave it unset)")
# The images of a trial, made per assignment, kept for the request for the other one
# (annotate/services/images.py: image_present). In memory, a few trials' worth per process.
CACHES["presented"] = (
    {**CACHES["default"], "KEY_PREFIX": "presented"} if CACHE_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "presented",
          "OPTIONS": {"MAX_ENTRIES": 64}}
)

def env_rate(name: str, default: str) -> str | None:
    """A rate like "30/m" or "10/5m"; None (no limit) for "0", "0/m" or an explicitly empty value."""
    value = os.environ.get(name)
    value = default if value is None else value.strip()
    if value in {"", "0"}:
        return None
    split = rate_split(value)
    if split is None:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a rate: use requests/period, e.g. 30/m, 500/h or 10/5m (0 turns it off)"
        )
    return None if split[0] == 0 else value


PARITY_RATE_JOIN = env_rate("PARITY_RATE_JOIN", "30/m")
PARITY_RATE_SUBMIT = env_rate("PARITY_RATE_SUBMIT", "120/m")
PARITY_RATE_LOGIN = env_rate("PARITY_RATE_LOGIN", "10/m")
# Proxies in front that append the client's address to X-Forwarded-For.
PARITY_NUM_PROXIES = env_int("PARITY_NUM_PROXIES", 0)
if PARITY_NUM_PROXIES < 0:
    raise ImproperlyConfigured(f"PARITY_NUM_PROXIES={PARITY_NUM_PROXIES!r} is negative")
RATELIMIT_USE_CACHE = "default"
RATELIMIT_IP_META_KEY = "annotate.ratelimits.client_ip"
SILENCED_SYSTEM_CHECKS = [
    # "Per-process cache" is an error to django-ratelimit, which would stop `make run`;
    # annotate.W001 warns under `check --deploy` instead.
    "django_ratelimit.E003",
    # Django's own Redis cache is not on its list, but increments atomically.
    "django_ratelimit.W001",
]

# ------------------------------------------------------------------------------
# Auth
# ------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Everyone signs in here: researchers, and invited accounts that judge as themselves.
# (The admin's own form admits staff only.)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# ------------------------------------------------------------------------------
# Internationalisation
# ------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# ------------------------------------------------------------------------------
# Static and media files
# ------------------------------------------------------------------------------
STATIC_URL = "static/"
# Production collects static files into STATIC_ROOT (the image does it at build
# time); elsewhere whitenoise serves them straight from the apps' folders.
_static_root = os.environ.get("DJANGO_STATIC_ROOT")
STATIC_ROOT = Path(_static_root) if _static_root else (VAR_DIR / "static" if PRODUCTION else None)
WHITENOISE_USE_FINDERS = not PRODUCTION
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
# Any Django storage backend works: django-storages' S3 backend is one setting away,
# e.g. PARITY_STORAGE_BACKEND=storages.backends.s3.S3Storage.
STORAGES = {
    "default": {
        "BACKEND": os.environ.get(
            "PARITY_STORAGE_BACKEND", "parity.storage.AtomicFileSystemStorage"
        ),
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# ------------------------------------------------------------------------------
# Import limits (every corpus and sample import; see generation/ingest)
# ------------------------------------------------------------------------------
PARITY_MAX_IMAGE_BYTES = env_int("PARITY_MAX_IMAGE_BYTES", 32 * 1024 * 1024)
PARITY_MAX_IMAGE_PIXELS = env_int("PARITY_MAX_IMAGE_PIXELS", 40_000_000)
PARITY_MAX_CAPTION_CHARS = env_int("PARITY_MAX_CAPTION_CHARS", 2000)
# Uploads to the API (generation/api_uploads.py) are streamed to a temporary file, never
# held in memory, and refused with 413 past this size (one image: PARITY_MAX_IMAGE_BYTES).
PARITY_MAX_UPLOAD_BYTES = env_int("PARITY_MAX_UPLOAD_BYTES", 2 * 1024 * 1024 * 1024)
# A tar or zip with more members is refused while they are counted, by any import:
# each member listed costs memory and time before a single image is read.
PARITY_MAX_ARCHIVE_MEMBERS = env_int("PARITY_MAX_ARCHIVE_MEMBERS", 100_000)
# An uploaded bundle with at most this many images is imported during the request;
# a larger one by a worker, and the response points at its import job.
PARITY_API_INLINE_IMPORT_MAX = env_int("PARITY_API_INLINE_IMPORT_MAX", 200)
# Django's own limits: form fields past this size are refused, and an uploaded file
# past it goes to a temporary file in FILE_UPLOAD_TEMP_DIR (None: the system's).
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_TEMP_DIR = os.environ.get("DJANGO_FILE_UPLOAD_TEMP_DIR") or None

# ------------------------------------------------------------------------------
# Generation (generation/backends, generation/services/generation_run.py)
# ------------------------------------------------------------------------------
# `train_ladder` writes checkpoints here, and a built-in generator's relative
# checkpoint path is read from here: every GPU worker must see the same folder.
# Not under MEDIA_ROOT, which development serves to anyone who asks.
PARITY_CHECKPOINT_DIR = Path(os.environ.get("PARITY_CHECKPOINT_DIR", VAR_DIR / "checkpoints"))
# A `diffusers` generator's pipeline folder is read from here, never from elsewhere.
PARITY_DIFFUSERS_DIR = Path(os.environ.get("PARITY_DIFFUSERS_DIR", VAR_DIR / "diffusers"))
# What a generator may run: the worker imports and calls these, with its own access
# to the database and storage, so the operator chooses them and members pick by name.
# Backends: builtin, callable and diffusers stand for the project's own; another
# backend is name=package.module.Class. Callables: name=package.module:function.
PARITY_GENERATION_BACKENDS = env_named_paths(
    "PARITY_GENERATION_BACKENDS", "builtin,diffusers", bare=("builtin", "callable", "diffusers")
)
if "upload" in PARITY_GENERATION_BACKENDS:
    raise ImproperlyConfigured("PARITY_GENERATION_BACKENDS: 'upload' is not a backend (it is always allowed)")
PARITY_CALLABLES = env_named_paths("PARITY_CALLABLES", "")
# A running generation job's worker writes its heartbeat every sixth of this; a job
# whose heartbeat is older is taken for lost (its worker killed or gone) and marked
# `interrupted`, to be resumed, or ended by its cancel.
PARITY_JOB_HEARTBEAT_TIMEOUT = env_int("PARITY_JOB_HEARTBEAT_TIMEOUT", 30)
if PARITY_JOB_HEARTBEAT_TIMEOUT < 1:
    raise ImproperlyConfigured("PARITY_JOB_HEARTBEAT_TIMEOUT is in seconds, at least 1")

# ------------------------------------------------------------------------------
# Celery
# ------------------------------------------------------------------------------
# The default broker needs no server: kombu's filesystem transport passes messages
# through files under var/, so `make run` works on a bare machine. Production uses
# Redis (CELERY_BROKER_URL=redis://...).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(VAR_DIR / "broker"),
        "data_folder_out": str(VAR_DIR / "broker"),
        "processed_folder": str(VAR_DIR / "broker" / "processed"),
        "store_processed": False,
        # Where broadcast exchanges live (the worker's control channel); kombu's default
        # is ./control, under whatever folder the worker started in.
        "control_folder": str(VAR_DIR / "broker" / "control"),
    }
    if CELERY_BROKER_URL.startswith("filesystem://")
    # Tasks ack late; Redis hands an unacknowledged task to another worker after the
    # visibility timeout, so it must outlast the longest generation job.
    else {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 12 * 3600)}
)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {"generation.tasks.generation_job_run_task": {"queue": "gpu"}}
# Beat (`make run`'s embedded worker runs it with -B; compose has a `beat` service):
# the analysis writes the generators done of open studies with a target half-width.
CELERY_BEAT_SCHEDULE = {
    "analysis-plan-update": {
        "task": "analysis.tasks.plan_update_open_studies_task",
        "schedule": float(env_int("PARITY_PLAN_UPDATE_SECONDS", 300)),
    },
    # Generation jobs whose worker stopped writing its heartbeat become `interrupted`.
    "generation-jobs-interrupt-lost": {
        "task": "generation.tasks.generation_jobs_interrupt_lost_task",
        "schedule": float(PARITY_JOB_HEARTBEAT_TIMEOUT),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# ------------------------------------------------------------------------------
# Analysis (analysis/views.py, analysis/services.py)
# ------------------------------------------------------------------------------
# The study page and the report API build a study's report during the request up to
# this many judgments (`analysis.services.report_delivery`); a larger study's is built
# by a worker while the page shows the last one and the API answers 202.
PARITY_REPORT_INLINE_MAX = env_int("PARITY_REPORT_INLINE_MAX", 50_000)
# While judgments keep arriving, a small study's panel is rebuilt at most this often.
PARITY_REPORT_REFRESH_SECONDS = env_int("PARITY_REPORT_REFRESH_SECONDS", 30)
# Every report built is kept as a `ReportRecord` (the history, cited by id). The content
# (JSON, CSV, HTML) of the newest this many per study and of every frozen one is kept;
# older unfrozen records keep only their metadata and content hash.
PARITY_REPORT_HISTORY_KEEP = env_int("PARITY_REPORT_HISTORY_KEEP", 20)

# ------------------------------------------------------------------------------
# Django REST framework
# ------------------------------------------------------------------------------
# What every endpoint shares (auth, who may call, errors, the write limit) is in
# workspaces/drf.py and platform/parity/api.py; who sees which object is in
# workspaces/access.py.
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # A personal token (scripts) first, then the browser's session.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "parity.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["workspaces.drf.IsResearcher"],
    "DEFAULT_THROTTLE_CLASSES": ["parity.api.TokenWriteThrottle"],
    "DEFAULT_PAGINATION_CLASS": "workspaces.drf.PageNumberPagination",
    "EXCEPTION_HANDLER": "workspaces.drf.exception_handler",
    # DRF's, with every string, key and nesting level of a body checked (generation/untrusted.py).
    "DEFAULT_PARSER_CLASSES": [
        "generation.untrusted.JSONParser",
        "generation.untrusted.FormParser",
        "generation.untrusted.MultiPartParser",
    ],
}
# Writes made with a personal token, per user; same syntax as the rates above.
PARITY_API_WRITE_RATE = env_rate("PARITY_API_WRITE_RATE", "600/m")
SPECTACULAR_SETTINGS = {
    "TITLE": "Parity API",
    "DESCRIPTION": (
        "Corpora, generators, samples, studies, judgments and reports. Authenticate with a "
        "personal token from /tokens/ (`Authorization: Bearer pty_…`) or a signed-in session. "
        'Every error has the body {"error": {"code", "message", "field"}}.'
    ),
    "VERSION": "1",
    # The schema and its pages are for researchers only, like the API itself.
    "SERVE_PERMISSIONS": ["workspaces.drf.IsResearcher"],
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "parity.api_schema.schema_error_responses",
    ],
}

# ------------------------------------------------------------------------------
# Security
# ------------------------------------------------------------------------------
# Database sessions as Django's, with a cheaper read (annotate/sessions.py).
SESSION_ENGINE = "annotate.sessions"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy, the same in development and production (django-csp): scripts
# and styles only from this site's static files, or inline with the response's nonce
# (`request.csp_nonce`); no inline event handler, style attribute or eval (htmx is
# configured without eval: parity/partials/htmx.html). data: images are Swagger UI's
# icons. PARITY_CSP_IMG_SRC adds image origins, e.g. an object store's for the
# admin's thumbnails. The downloaded HTML report has its own policy (analysis/api.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp.SELF],
        "script-src": [csp.SELF, csp.NONCE],
        "style-src": [csp.SELF, csp.NONCE],
        "img-src": [csp.SELF, "data:", *env_list("PARITY_CSP_IMG_SRC", [])],
        "object-src": [csp.NONE],
        "base-uri": [csp.NONE],
        "frame-ancestors": [csp.NONE],
        "form-action": [csp.SELF],
    }
}
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
    # TLS ends at the proxy in front of gunicorn, which says so in this header.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# ------------------------------------------------------------------------------
# Logging
# ------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("PARITY_LOG_LEVEL", "INFO")},
}
