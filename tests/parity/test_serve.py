"""`manage.py serve` (what `make run` ends in): Ctrl-C or SIGTERM stops the web server
and the worker cleanly, and a serve killed outright leaves no worker behind.

Each serve starts with the signals of a terminal's foreground job, whatever this test
inherited: run as a shell's background job, it ignores SIGINT, and so would serve.
A worker runs in a session of its own, with its beat in a child process: it is looked
for, and stopped, by its process group.
"""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.services import free_port

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return found


def _group(pgid: int) -> list[int]:
    """The live processes of a process group: a worker and its beat."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state, _, group = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
            except (OSError, ValueError):
                continue
            if int(group) == pgid and state != "Z":
                found.append(int(entry.name))
    return found


def _as_in_a_terminal() -> None:
    """In the child before it runs serve: the signal dispositions of a terminal's foreground job."""
    for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def _start(tmp_path) -> tuple[subprocess.Popen, int]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "DJANGO_"))}
    env.update(PARITY_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="parity.settings", PYTHONUNBUFFERED="1")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--addr", f"127.0.0.1:{port}"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group, as a terminal gives `make run`
        preexec_fn=_as_in_a_terminal,
    )
    return process, port


def _stop_all(process, workers) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    for pid in workers:  # in a session of its own, with its beat
        for member in _group(pid):
            os.kill(member, signal.SIGKILL)


@pytest.fixture
def serving(tmp_path):
    process, port = _start(tmp_path)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                assert response.status == 200
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"serve did not answer: {process.communicate()[0][-2000:]}")
            time.sleep(0.3)
    workers = _children(process.pid)
    assert workers, "no worker process was started"
    yield process, workers
    _stop_all(process, workers)


def _stopped_cleanly(process, workers) -> None:
    output = process.communicate(timeout=40)[0]
    assert process.returncode == 0, output[-2000:]
    assert "Traceback" not in output, output[-3000:]
    assert not any(_group(pid) for pid in workers)


def test_ctrl_c_stops_web_and_worker(serving):
    process, workers = serving
    os.killpg(process.pid, signal.SIGINT)  # what the terminal sends the foreground group
    _stopped_cleanly(process, workers)


def test_a_closed_terminal_stops_web_and_worker(serving):
    process, workers = serving
    os.killpg(process.pid, signal.SIGHUP)
    _stopped_cleanly(process, workers)


def test_sigterm_stops_web_and_worker_even_when_it_follows_a_ctrl_c(serving):
    process, workers = serving
    os.kill(process.pid, signal.SIGINT)
    time.sleep(0.2)
    os.kill(process.pid, signal.SIGTERM)  # e.g. `timeout`, or a process manager giving up waiting
    _stopped_cleanly(process, workers)


def test_sigterm_alone_stops_web_and_worker(serving):
    process, workers = serving
    os.kill(process.pid, signal.SIGTERM)
    _stopped_cleanly(process, workers)


def test_a_killed_serve_leaves_no_worker_behind(serving):
    process, workers = serving
    os.kill(process.pid, signal.SIGKILL)  # no `finally` runs: the kernel tells the worker
    process.wait()
    deadline = time.monotonic() + 30
    while left := [pid for worker in workers for pid in _group(worker)]:
        assert time.monotonic() < deadline, f"the worker outlived serve: {left}"
        time.sleep(0.2)


@pytest.mark.parametrize("after_s", [0.3, 0.6, 0.9])
def test_ctrl_c_while_the_worker_starts_stops_everything(tmp_path, after_s):
    process, _ = _start(tmp_path)
    deadline = time.monotonic() + 60
    while not (workers := _children(process.pid)):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    try:
        # Somewhere in the second or so the worker spends importing Celery and Django.
        time.sleep(after_s)
        os.killpg(process.pid, signal.SIGINT)
        _stopped_cleanly(process, workers)
    finally:
        _stop_all(process, workers)
