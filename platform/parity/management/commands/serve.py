"""Serve the web process and a Celery worker side by side, for one machine.

Production runs gunicorn and workers as separate services (docker-compose.yml);
this is the embedded shape `make run` uses: runserver on loopback and one worker on
the broker from settings (by default kombu's filesystem transport, no server).

The worker never outlives this process: stopped in order when this process stops,
and sent SIGTERM by the kernel when it dies any other way (SIGKILL, a crash), on Linux.
"""

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable

from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.core.servers.basehttp import WSGIRequestHandler

from annotate.models import Study

# <linux/prctl.h>: the signal a process gets when the thread that started it ends.
PR_SET_PDEATHSIG = 1


class Command(BaseCommand):
    help = "Run the web server and a Celery worker (both queues) until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument("--no-worker", action="store_true")
        parser.add_argument(
            "--setup", action="store_true",
            help="migrate and build the demo first, in this process (one start-up instead of three)",
        )

    def handle(self, *args, addr, no_worker, setup, **options):
        if setup:
            call_command("migrate", interactive=False, verbosity=0)
            if apps.is_installed("demo"):
                call_command("demo")
            else:
                self.stdout.write("No demo content: the demo app is not installed (PARITY_DEMO=1 installs it).")
        # `kill` and a closed terminal as well as Ctrl-C must stop the worker too: turn
        # SIGTERM and SIGHUP into SystemExit, so that the `finally` below runs.
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, lambda *_: sys.exit(0))
        worker = None
        try:
            if not no_worker:
                # -B: the worker runs beat too (periodic tasks: settings.CELERY_BEAT_SCHEDULE).
                # In a session of its own, so that the terminal's Ctrl-C reaches this
                # process only and the worker is stopped in order below; a Ctrl-C that
                # reached it while still importing would end it with a traceback.
                worker = subprocess.Popen(
                    [sys.executable, "-m", "celery", "--quiet", "-A", "parity", "worker", "-B", "-Q",
                     "celery,gpu", "--pool", "threads", "--concurrency", "2", "--loglevel", "WARNING",
                     "--hostname", "embedded@%h"],
                    start_new_session=True, preexec_fn=_ended_with_this_process(),
                )
            self._print_links(addr)
            # runserver's handler writes a response's head and body separately; with
            # Nagle's algorithm a browser's kept-alive request then waits ~40 ms for a
            # delayed ACK (measured: 44 ms against 5.6 ms a page). This process serves
            # nothing else, and socketserver sets TCP_NODELAY for this flag.
            WSGIRequestHandler.disable_nagle_algorithm = True
            call_command("runserver", addr, use_reloader=False)
        except KeyboardInterrupt:
            pass
        finally:
            # Stopping is under way and bounded (below): a second Ctrl-C, or the SIGTERM
            # that `timeout` or a process manager sends after it, must not break it off
            # half-way, nor raise into the interpreter's exit handlers.
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, signal.SIG_IGN)
            if worker:
                worker.terminate()
                try:
                    worker.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    worker.kill()

    def _print_links(self, addr: str) -> None:
        base = f"http://{addr}"
        self.stdout.write(self.style.SUCCESS(f"\nParity is serving on {base}/"))
        self.stdout.write(f"  researcher home  {base}/")
        for study in Study.objects.filter(status=Study.Status.OPEN).order_by("-created_at")[:3]:
            self.stdout.write(f"  annotator link   {base}/s/{study.slug}/   ({study.name})")
            self.stdout.write(f"  study dashboard  {base}/studies/{study.slug}/   (live plots; researcher login)")
        self.stdout.write(f"  admin            {base}/admin/   (demo login: researcher / parity-demo)")
        report = settings.VAR_DIR / "demo" / "report.html"
        if report.exists():
            self.stdout.write(f"  demo report      {report}")
        self.stdout.write(f"  API docs         {base}/api/docs/")
        self.stdout.write(f"  database         {settings.DATABASES['default']['NAME']}")
        self.stdout.write("  Ctrl-C stops the web server and the worker.\n")


def _ended_with_this_process() -> Callable[[], None] | None:
    """A `preexec_fn` that has the kernel send the child SIGTERM when this process dies (Linux only).

    The signal comes when the thread that started the child ends: this command's main
    thread, which serves until the end. prctl is looked up here: the forked child only calls it.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # this process died before prctl took effect: no signal would come
            os._exit(1)

    return preexec
