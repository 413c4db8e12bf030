#!/bin/sh
# The image's entrypoint: one image, one process per container, chosen by the first
# argument. Arguments after it are passed on to that process.
#
#   web          gunicorn serving parity.wsgi, settings in gunicorn.conf.py beside this file
#   worker       Celery worker on the CPU queue `celery` (imports, reports)
#   gpu-worker   Celery worker on the `gpu` queue (generation jobs), one job at a time
#   beat         Celery beat: the periodic tasks of settings.CELERY_BEAT_SCHEDULE (run one only)
#   migrate      apply database migrations, then exit
#   healthcheck  exit 0 when the web process on $PORT answers /healthz
#   anything else is run as is: `docker compose run web django-admin createsuperuser`
#
# Management commands go through django-admin (DJANGO_SETTINGS_MODULE set below): the
# project is installed as a package, so the image has no manage.py.
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-parity.settings}"

command="${1:-web}"
if [ "$#" -gt 0 ]; then
    shift
fi

case "$command" in
    web)
        exec gunicorn -c "$here/gunicorn.conf.py" parity.wsgi "$@"
        ;;
    worker)
        # Default concurrency: one process per CPU this container may use.
        exec celery -A parity worker -Q celery --hostname "cpu@%h" \
            --concurrency "${CELERY_WORKER_CONCURRENCY:-$(nproc)}" \
            --loglevel "${CELERY_LOG_LEVEL:-INFO}" "$@"
        ;;
    gpu-worker)
        # One job at a time owns the GPU's memory; a second process would fight it.
        # The threads pool runs the job in the worker's own (non-daemonic) process,
        # which may start the PNG encoder processes a prefork child may not.
        exec celery -A parity worker -Q gpu --hostname "gpu@%h" \
            --pool threads --concurrency 1 \
            --loglevel "${CELERY_LOG_LEVEL:-INFO}" "$@"
        ;;
    beat)
        # The schedule's state file is scratch: the schedules are intervals, and a
        # restarted beat simply starts counting again.
        exec celery -A parity beat --schedule /tmp/celerybeat-schedule \
            --loglevel "${CELERY_LOG_LEVEL:-INFO}" "$@"
        ;;
    migrate)
        exec django-admin migrate --noinput "$@"
        ;;
    healthcheck)
        # Ask as the proxy would: a host Django allows, over HTTPS as far as Django can
        # tell, so that neither ALLOWED_HOSTS nor SECURE_SSL_REDIRECT turns it away.
        exec python -c '
import os, sys, urllib.request
hosts = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",")]
host = next((h.lstrip(".") for h in hosts if h and h != "*"), "localhost")
request = urllib.request.Request(
    "http://127.0.0.1:%s/healthz" % (os.environ.get("PORT") or "8000"),
    headers={"Host": host, "X-Forwarded-Proto": "https"},
)
try:
    with urllib.request.urlopen(request, timeout=5) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as exc:
    sys.exit("healthcheck failed: %s" % exc)
'
        ;;
    *)
        exec "$command" "$@"
        ;;
esac
