"""What the benchmarks share: Django set up in-process on a throwaway database, gunicorn
started and stopped as in production, and the figures of a process read from /proc
(CPU time, memory, children)."""

import contextlib
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def each_database(script: str, databases: list[str]) -> None:
    """Run `script` again with this command line and ``--child DATABASE``, once per database, in turn.

    Django is set up once per process: each database gets a process of its own.
    """
    for database in databases:
        subprocess.run([sys.executable, script, *sys.argv[1:], "--child", database], check=False, cwd=ROOT)


@contextlib.contextmanager
def django_on(vendor: str, *, prefix: str, debug: bool | None = None, keep_var: bool = False) -> Iterator[Path]:
    """Django set up in this process on a migrated, throwaway database, removed afterwards;
    yields the var folder, a temporary one (kept with `keep_var`, for the logs in it).

    `vendor` is "postgresql" (a server from tests.services.Postgres) or "sqlite" (a
    file). `debug` sets DEBUG (None: the settings' default), which keeps the text of
    every query. Django is set up once per process, so a bench measuring both runs
    each in a process of its own.
    """
    var = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["PARITY_VAR_DIR"] = str(var)
    if debug is not None:
        os.environ["DJANGO_DEBUG"] = "1" if debug else "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parity.settings")
    postgres = None
    try:
        if vendor == "postgresql":
            from tests.services import Postgres

            postgres = Postgres()
            os.environ["DATABASE_URL"] = postgres.url
        else:
            os.environ.pop("DATABASE_URL", None)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        yield var
    finally:
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        if postgres is not None:
            postgres.stop()
        if not keep_var:
            shutil.rmtree(var, ignore_errors=True)


def describe_machine(connection, setup_s: float) -> str:
    return (f"machine: {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), "
            f"python {sys.version.split()[0]}, {connection.vendor} "
            f"{connection.cursor().connection.info.server_version}; server, set-up and migrate {setup_s:.1f} s")


@contextlib.contextmanager
def gunicorn_running(*, var: Path, port: int, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen, float]]:
    """gunicorn with platform/gunicorn.conf.py on a loopback port, logs under `var`, stopped
    afterwards; yields the process and the seconds until it answered /healthz."""
    with open(var / "gunicorn.log", "w") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "parity.wsgi", "-c", "platform/gunicorn.conf.py",
             "--bind", f"127.0.0.1:{port}", "--access-logfile", str(var / "access.log")],
            cwd=ROOT, env=dict(env, PORT=str(port)), stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            yield process, _wait_healthy(port, process)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(port: int, process: subprocess.Popen, deadline_s: float = 60) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < deadline_s:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz", headers={"Host": f"127.0.0.1:{port}"})
            if conn.getresponse().status == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer /healthz")


def processes() -> dict[int, tuple[str, int]]:
    """Every running process: pid -> (name, parent pid)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, rest = stat.split("(", 1)[1].rsplit(")", 1)
        found[int(entry.name)] = (name, int(rest.split()[1]))
    return found


def children(pid: int) -> list[int]:
    return [child for child, (_, parent) in processes().items() if parent == pid]


def cpu_seconds(pid: int, *, reaped: bool = False) -> float | None:
    """utime + stime of a process, or None once it has exited; with `reaped`, plus the
    CPU of its children that have exited and been waited for (cutime + cstime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if reaped else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak resident set) of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            fields[name] = int(value.split()[0]) / 1024
    return fields
