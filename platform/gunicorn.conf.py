"""gunicorn's settings for the web process, read from the environment.

    gunicorn -c platform/gunicorn.conf.py parity.wsgi

The image's entrypoint (`entrypoint.sh web`) runs exactly this. gunicorn executes
this file as Python and reads its module-level names as settings.
"""

import os


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"{name}={value!r} is not an integer") from None


def _cores() -> int:
    # The CPUs this process may run on (a container's cpuset), not the host's count.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


bind = f"0.0.0.0:{_env_int('PORT', 8000)}"

# The usual rule of thumb, 2 × cores + 1; WEB_CONCURRENCY is the name platforms
# such as Heroku and Render set, so it overrides.
workers = _env_int("WEB_CONCURRENCY", 2 * _cores() + 1)
# Threads let a worker wait on PostgreSQL or storage for one request while serving
# another; Django is thread-safe and each thread gets its own database connection.
worker_class = "gthread"
threads = _env_int("GUNICORN_THREADS", 4)

# Uploads of sample bundles are the slowest requests; anything longer belongs in a
# Celery task.
timeout = _env_int("GUNICORN_TIMEOUT", 60)
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then, so a slow leak cannot grow without bound; the
# jitter keeps them from restarting all at once. A worker that starts imports all of
# Django (about a second of CPU), so not too often: at the annotation benchmark's
# rate a worker served 2,000 requests in under a minute.
max_requests = 20000
max_requests_jitter = 2000

# The heartbeat file on a RAM disk: on a container's overlay filesystem a slow
# write can make gunicorn kill a healthy worker.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")

# Addresses whose X-Forwarded-* headers gunicorn trusts (the TLS proxy in front).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
