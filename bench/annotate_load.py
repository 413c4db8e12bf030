"""Annotator load: 20 simulated annotators against gunicorn + PostgreSQL on a 100,000-trial study.

Starts a throwaway PostgreSQL (tests.services.Postgres), builds a study of 5 generators
x 20,000 items (placeholder rows: the engine never opens a sample; one tiny real PNG
serves as every reference so catch trials can be rendered), opens it, starts gunicorn
with platform/gunicorn.conf.py on a loopback port, and runs annotators over keep-alive
stdlib HTTP connections, one thread each. Two phases of --seconds each:

  split  GET /s/<slug>/trial/ ("fetch": assignment_next + full page), then a plain
         POST of the choice ("submit": judgment_record, answered with a 302).
  htmx   POST of the choice with HX-Request: true ("cycle": judgment_record +
         assignments_next + partial, one request per cycle), as fast as answers come.
  paced  the htmx cycle, each annotator starting one every annotators/--rate
         seconds: the latency at a given load rather than at saturation (where, with
         20 annotators in a closed loop, it is only 20 / throughput).

Each phase also reports the CPU time per cycle of the load client, gunicorn (master
and workers) and PostgreSQL (all its processes), read from /proc.

Then checks the database (k-overflows, repeats, acknowledged submits missing) and,
with --explain, profiles one htmx cycle in-process: queries, their times, and
EXPLAIN ANALYZE of the slowest. Prints figures; asserts nothing.

    .venv/bin/python bench/annotate_load.py [--seconds 20] [--annotators 20]
        [--workers N] [--threads N] [--phases split,htmx,paced] [--rate 200] [--explain]
        [--head-to-head 0.3]
"""

import argparse
import contextlib
import http.client
import os
import re
import sys
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.servers import cpu_seconds, describe_machine, django_on, gunicorn_running, processes  # noqa: E402

TOKEN = re.compile(r'name="token" value="([0-9a-f-]{36})"')
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
MESSAGE = re.compile(r'class="message"')

ITEMS = 20_000
GENERATORS = 5
K = 3
QUOTA = 10_000
TIMEOUT_S = 600


# ------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------
def build_study(*, control_rate: float, head_to_head: float = 0.0, analyze: bool = True) -> tuple[str, dict]:
    import io

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from PIL import Image

    from annotate.models import Study, Trial
    from annotate.services import study_build_trials, study_open
    from generation.models import Corpus, Generator, Item, Sample
    from workspaces.models import Workspace

    timings = {}
    started = time.perf_counter()
    out = io.BytesIO()
    Image.new("RGB", (24, 24), (120, 60, 200)).save(out, "PNG")
    ref = default_storage.save("originals/bench-ref.png", ContentFile(out.getvalue()))
    facts = {"sha256": "0" * 64, "width": 24, "height": 24, "format": "PNG", "mode": "RGB", "byte_size": 10}
    workspace = Workspace.objects.create(name="bench", slug="bench")
    corpus = Corpus.objects.create(workspace=workspace, name="bench")
    Item.objects.bulk_create(
        (Item(corpus=corpus, key=f"k{i}", caption=f"caption {i}", image=ref, **facts) for i in range(ITEMS)),
        batch_size=5000,
    )
    items = list(Item.objects.filter(corpus=corpus).values_list("id", flat=True))
    study = Study.objects.create(
        workspace=workspace, name="bench", slug="bench", corpus=corpus, judgments_per_trial=K,
        quota_per_annotator=QUOTA, catch_rate=control_rate, calibration_rate=control_rate,
        assignment_timeout_seconds=TIMEOUT_S, consent_text="Bench.", practice_trials=0,
        head_to_head_share=head_to_head,
    )
    for g in range(GENERATORS):
        # A ladder along params: with a head-to-head share, neighbours meet.
        generator = Generator.objects.create(workspace=workspace, name=f"bench-g{g}", params=10 ** (6 + g))
        study.generators.add(generator)
        Sample.objects.bulk_create(
            (Sample(generator=generator, item_id=i, seed=0, image="samples/x.png", **facts) for i in items),
            batch_size=5000,
        )
    timings["items+samples (bulk_create)"] = time.perf_counter() - started
    started = time.perf_counter()
    created = study_build_trials(study=study, rng_seed=1)
    timings[f"study_build_trials ({created} trials)"] = time.perf_counter() - started
    study_open(study=study)
    started = time.perf_counter()
    from django.db import connection

    if analyze and connection.vendor == "postgresql":
        # Fresh bulk loads have no planner statistics until autovacuum gets to them, and
        # autovacuum then vacuums the new rows in the middle of the first phase (several
        # ms of PostgreSQL CPU per cycle while it runs); a study in production has both
        # behind it. VACUUM cannot run inside Django's test transaction, nor in one at all.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM (ANALYZE)")
    timings["VACUUM (ANALYZE)"] = time.perf_counter() - started
    kinds = dict(
        Trial.objects.filter(study=study).values_list("kind").annotate(n=__import__("django").db.models.Count("id"))
    )
    timings["kinds"] = kinds
    return study.slug, timings


# ------------------------------------------------------------------------------
# Client
# ------------------------------------------------------------------------------
class Annotator:
    """One simulated annotator: a keep-alive connection and a tiny cookie jar."""

    def __init__(self, port: int, slug: str, n: int) -> None:
        self.port, self.slug, self.n = port, slug, n
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies: dict[str, str] = {}
        self.csrf = ""
        self.token = ""
        self.lat = defaultdict(list)  # kind -> [seconds]
        self.errors = defaultdict(int)  # description -> count
        self.soft = 0  # 200 with a message (expired, unknown...)
        self.acked: list[str] = []
        self.cycles = 0
        self.requests = 0
        self.finished = False

    def request(self, method: str, path: str, *, body: dict | None = None, htmx: bool = False):
        headers = {"Host": f"127.0.0.1:{self.port}"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if htmx:
            headers["HX-Request"] = "true"
        data = None
        if body is not None:
            data = urllib.parse.urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                payload = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A keep-alive connection the server closed (max_requests, keepalive): reconnect once.
                self.conn.close()
                if attempt:
                    raise
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                pair = value.split(";", 1)[0]
                key, _, val = pair.partition("=")
                self.cookies[key.strip()] = val.strip()
        return response.status, dict((k.lower(), v) for k, v in response.getheaders()), payload.decode()

    def timed(self, kind: str, record: bool, *args, **kwargs):
        started = time.perf_counter()
        try:
            result = self.request(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a bench counts every failure
            self.errors[f"{kind}: {type(exc).__name__}"] += 1
            self.conn.close()
            return None
        if record:
            self.lat[kind].append(time.perf_counter() - started)
            self.requests += 1
        status = result[0]
        if not (200 <= status < 400):
            self.errors[f"{kind}: HTTP {status}"] += 1
            return None
        return result

    def enter(self) -> None:
        base = f"/s/{self.slug}/"
        status, _, html = self.request("GET", f"{base}?PROLIFIC_PID=bench-{self.n}")
        self.csrf = CSRF.search(html).group(1)
        status, headers, _ = self.request("POST", f"{base}consent/", body={"csrfmiddlewaretoken": self.csrf})
        if status != 302:
            raise RuntimeError(f"consent answered {status}")

    def fetch(self, record: bool) -> bool:
        result = self.timed("fetch (GET trial)", record, "GET", f"/s/{self.slug}/trial/")
        if result is None:
            return False
        status, headers, html = result
        match = TOKEN.search(html)
        if status != 200 or not match:
            self.finished = True
            return False
        self.token = match.group(1)
        return True

    def choice(self) -> str:
        return "left" if (self.cycles + self.n) % 3 else "right"

    def submit_plain(self, record: bool) -> bool:
        token = self.token
        body = {"token": token, "choice": self.choice(), "client_ms": "800", "csrfmiddlewaretoken": self.csrf}
        result = self.timed("submit (POST, 302)", record, "POST", f"/s/{self.slug}/trial/", body=body)
        if result is None:
            return False
        status, _, html = result
        if status == 302:
            self.acked.append(token)
            return True
        self.soft += 1  # a 200 page with a message: the judgment was refused
        return False

    def submit_htmx(self, record: bool) -> bool:
        token = self.token
        body = {"token": token, "choice": self.choice(), "client_ms": "800", "csrfmiddlewaretoken": self.csrf}
        result = self.timed("cycle (htmx POST)", record, "POST", f"/s/{self.slug}/trial/", body=body, htmx=True)
        if result is None:
            return False
        status, headers, html = result
        if "hx-redirect" in headers:
            self.finished = True
            self.acked.append(token)
            return False
        if MESSAGE.search(html):
            self.soft += 1
        else:
            self.acked.append(token)
        match = TOKEN.search(html)
        if not match:
            self.errors["cycle: no token in partial"] += 1
            return False
        self.token = match.group(1)
        return True


def run_phase(port: int, slug: str, annotators: list[Annotator], phase: str, seconds: float, warmup: float,
              rate: float = 0.0):
    start_at = time.perf_counter() + 0.2
    record_at = start_at + warmup
    stop_at = record_at + seconds
    period = len(annotators) / rate if phase == "paced" else 0.0

    def loop(a: Annotator) -> None:
        while time.perf_counter() < start_at:
            time.sleep(0.01)
        if phase != "split" and not a.fetch(False):
            return
        # Paced annotators start evenly spread over one period, then keep to it.
        due = start_at + period * a.n / len(annotators)
        while not a.finished:
            if period:
                time.sleep(max(0.0, due - time.perf_counter()))
                due += period
            now = time.perf_counter()
            if now >= stop_at:
                break
            record = now >= record_at
            if phase == "split":
                ok = a.fetch(record) and a.submit_plain(record)
            else:
                ok = a.submit_htmx(record)
            if ok and record:
                a.cycles += 1
            if not ok and not a.finished and phase != "split":
                a.fetch(False)  # recover a token after an error

    threads = [threading.Thread(target=loop, args=(a,), daemon=True) for a in annotators]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - record_at


def cpu_snapshot(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each process still running, with those of its children that have
    exited: PostgreSQL's backends end when Django closes a connection (CONN_MAX_AGE),
    an autovacuum worker when it is done, and the postmaster waits for each."""
    return {pid: seconds for pid in pids if (seconds := cpu_seconds(pid, reaped=True)) is not None}


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two snapshots of a group whose processes' parents are in it
    too: one that started in between counts whole, one that exited in between through
    its parent's exited children, less what it had used before."""
    return sum(after.values()) - sum(before.values())


def process_groups(gunicorn_pid: int) -> dict[str, list[int]]:
    """The bench's own process, gunicorn's master and workers, and every postgres process."""
    groups = {"client": [os.getpid()], "gunicorn": [gunicorn_pid], "postgres": []}
    for pid, (name, parent) in processes().items():
        if parent == gunicorn_pid:
            groups["gunicorn"].append(pid)
        elif name.startswith("postgres"):
            groups["postgres"].append(pid)
    return groups


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] * 1000


def report_phase(phase: str, annotators: list[Annotator], elapsed: float, cpu: dict[str, float]) -> None:
    cycles = sum(a.cycles for a in annotators)
    requests = sum(a.requests for a in annotators)
    lat = defaultdict(list)
    errors = defaultdict(int)
    for a in annotators:
        for kind, values in a.lat.items():
            lat[kind] += values
        for kind, n in a.errors.items():
            errors[kind] += n
    print(f"\n== phase {phase}: {len(annotators)} annotators, {elapsed:.1f} s measured")
    print(f"  complete cycles/s: {cycles / elapsed:8.1f}   ({cycles} cycles)")
    print(f"  requests/s:        {requests / elapsed:8.1f}   ({requests} requests)")
    for kind, values in sorted(lat.items()):
        print(f"  {kind:<20} n={len(values):6d}  p50 {pct(values, 50):7.1f} ms  p95 {pct(values, 95):7.1f} ms"
              f"  p99 {pct(values, 99):7.1f} ms  max {max(values) * 1000:7.1f} ms")
    print(f"  errors (non-2xx/3xx or exceptions): {sum(errors.values())} {dict(errors) or ''}")
    print(f"  refused with a message (200, not recorded): {sum(a.soft for a in annotators)}")
    print(f"  annotators finished (no trial left / quota): {sum(a.finished for a in annotators)}")
    if cycles:
        shares = "  ".join(f"{name} {seconds / cycles * 1000:.2f}" for name, seconds in cpu.items())
        print(f"  CPU ms per cycle (whole phase incl. warm-up, over measured cycles): {shares}; "
              f"machine busy {sum(cpu.values()) / (elapsed * len(os.sched_getaffinity(0))):.0%}")


def reset_counters(annotators: list[Annotator]) -> None:
    for a in annotators:
        a.lat.clear()
        a.errors.clear()
        a.soft = a.cycles = a.requests = 0


# ------------------------------------------------------------------------------
# Database checks and profile
# ------------------------------------------------------------------------------
def db_checks(slug: str, acked: list[str]) -> None:
    from django.db.models import Count, F, Q

    from annotate.models import Assignment, Judgment, Study, Trial

    study = Study.objects.get(slug=slug)
    k = study.judgments_per_trial
    judged = (
        Judgment.objects.filter(assignment__study=study).values("assignment__trial").annotate(n=Count("id"))
    )
    max_judged = max((row["n"] for row in judged), default=0)
    over_judged = sum(1 for row in judged if row["n"] > k)
    active = (
        Assignment.objects.filter(study=study, released_at__isnull=True).values("trial").annotate(n=Count("id"))
    )
    over_active = sum(1 for row in active if row["n"] > k)
    counter_over = Trial.objects.filter(study=study, active_count__gt=k).count()
    counter_drift = Trial.objects.filter(study=study).annotate(
        real=Count("assignments__judgment")
    ).exclude(judgment_count=F("real")).count()
    trial_repeats = (
        Assignment.objects.filter(study=study).values("trial", "annotator").annotate(n=Count("id")).filter(n__gt=1).count()
    )
    item_repeats = (
        Assignment.objects.filter(study=study).values("item", "annotator").annotate(n=Count("id")).filter(n__gt=1).count()
    )
    judged_tokens = {str(t) for t in Judgment.objects.filter(assignment__study=study).values_list("assignment__token", flat=True)}
    missing = [t for t in acked if t not in judged_tokens]
    kinds = dict(Judgment.objects.filter(assignment__study=study).values_list("assignment__trial__kind")
                 .annotate(n=Count("id")).order_by())
    print("\n== database checks")
    print(f"  judgments by trial kind: {kinds}")
    print(f"  assignments {Assignment.objects.filter(study=study).count()}, judgments {len(judged_tokens)}, "
          f"acknowledged submits {len(acked)} ({len(set(acked))} distinct)")
    print(f"  max judgments per trial: {max_judged} (k={k}); k-overflows: {over_judged} by judgments, "
          f"{over_active} by active assignments, {counter_over} by active_count")
    print(f"  trials whose judgment_count differs from their judgments: {counter_drift}")
    print(f"  repeats: {trial_repeats} (annotator twice on a trial), {item_repeats} (annotator twice on an item)")
    print(f"  acknowledged submits missing from the database: {len(missing)}")
    print(f"  trials with >=1 judgment: {sum(1 for _ in judged)}; control judgments: "
          f"{Judgment.objects.filter(assignment__study=study, assignment__trial__sample__isnull=True).count()}")
    _ = Q


@contextlib.contextmanager
def round_trips():
    """Count what this process sends to the database, by the statement's first word:
    Django's and the engine's statements, and psycopg's own BEGIN, COMMIT and ROLLBACK."""
    from psycopg import Cursor
    from psycopg._connection_base import BaseConnection

    sent = Counter()
    execute, command = Cursor.execute, BaseConnection._exec_command

    def counted_execute(self, query, *args, **kwargs):
        sent[str(query).split(None, 1)[0].upper()] += 1
        return execute(self, query, *args, **kwargs)

    def counted_command(self, command_, *args, **kwargs):
        text = command_.decode() if isinstance(command_, bytes) else str(command_)
        sent[text.split(None, 1)[0].upper()] += 1
        return command(self, command_, *args, **kwargs)

    Cursor.execute, BaseConnection._exec_command = counted_execute, counted_command
    try:
        yield sent
    finally:
        Cursor.execute, BaseConnection._exec_command = execute, command


def profile(slug: str, cycles: int) -> None:
    """cProfile of `cycles` htmx cycles of one annotator through the WSGI handler, in-process:
    where a cycle's server CPU goes. It counts this process's CPU time, not the wall clock,
    so that waiting for PostgreSQL does not show as the cost of the calls that wait."""
    import cProfile
    import pstats

    from django.test import Client

    client = Client()
    client.get(f"/s/{slug}/", {"PROLIFIC_PID": "bench-profile"})
    client.post(f"/s/{slug}/consent/")
    token = TOKEN.search(client.get(f"/s/{slug}/trial/").content.decode()).group(1)
    profiler = cProfile.Profile(time.process_time)
    started = time.perf_counter()
    with round_trips() as sent:
        profiler.enable()
        for _ in range(cycles):
            html = client.post(f"/s/{slug}/trial/", {"token": token, "choice": "left", "client_ms": "800"},
                               headers={"HX-Request": "true"}).content.decode()
            token = TOKEN.search(html).group(1)
        profiler.disable()
    wall = (time.perf_counter() - started) / cycles * 1000
    print(f"\n== --profile: {cycles} htmx cycles in-process, {wall:.2f} ms wall per cycle (profiler on; "
          "times below are CPU seconds of this process)")
    print("  round trips to the database per cycle: " + ", ".join(
        f"{word} {n / cycles:.2f}" for word, n in sent.most_common()))
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(25)


def explain(slug: str) -> None:
    """One htmx cycle of an annotator who has already judged a lot, in-process: its queries."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from annotate.models import Annotator, Assignment

    busiest = (
        Assignment.objects.filter(study__slug=slug).values("annotator").annotate(
            n=__import__("django").db.models.Count("id")).order_by("-n").first()
    )
    annotator = Annotator.objects.get(pk=busiest["annotator"])
    print(f"\n== --explain: one htmx cycle for {annotator.external_id} ({busiest['n']} assignments so far)")
    client = Client()
    client.get(f"/s/{slug}/", {"PROLIFIC_PID": annotator.external_id})
    client.post(f"/s/{slug}/consent/")
    for round_ in range(3):
        with CaptureQueriesContext(connection) as got:
            started = time.perf_counter()
            html = client.get(f"/s/{slug}/trial/").content.decode()
            wall = (time.perf_counter() - started) * 1000
        print(f"  GET trial {round_} (resumes the open assignment): {len(got)} queries, {wall:.1f} ms wall")
        token = TOKEN.search(html).group(1)
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.post(f"/s/{slug}/trial/", {"token": token, "choice": "left", "client_ms": "800"},
                                   headers={"HX-Request": "true"})
            wall = (time.perf_counter() - started) * 1000
        sql_ms = sum(float(q["time"]) for q in captured.captured_queries) * 1000
        print(f"  cycle {round_}: HTTP {response.status_code}, {len(captured)} queries, "
              f"{sql_ms:.1f} ms in SQL (client-side timing), {wall:.1f} ms wall in-process")
    print("  queries of the last cycle (ms, statement):")
    queries = captured.captured_queries
    for q in queries:
        print(f"    {float(q['time']) * 1000:6.2f}  {q['sql'][:220]}")
    slowest = sorted((q for q in queries if q["sql"].lstrip().upper().startswith("SELECT")),
                     key=lambda q: -float(q["time"]))[:2]
    for q in slowest:
        print(f"\n  EXPLAIN ANALYZE of a slowest SELECT ({float(q['time']) * 1000:.2f} ms):\n    {q['sql'][:2000]}")
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + q["sql"])
            for (line,) in cursor.fetchall():
                print(f"    | {line}")
            cursor.execute("ROLLBACK")


# ------------------------------------------------------------------------------
# Servers
# ------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--workers", type=int, default=None, help="WEB_CONCURRENCY; default: the conf's 2*cores+1")
    parser.add_argument("--threads", type=int, default=None, help="GUNICORN_THREADS; default: the conf's 4")
    parser.add_argument("--control-rate", type=float, default=0.05, help="catch and calibration rate each")
    parser.add_argument("--head-to-head", type=float, default=0.0,
                        help="share of head-to-head trials among the judged ones (neighbours along params)")
    parser.add_argument("--phases", default="split,htmx,paced")
    parser.add_argument("--rate", type=float, default=200, help="cycles/s offered in the paced phase")
    parser.add_argument("--debug", action="store_true", help="run gunicorn with DJANGO_DEBUG=1 (dev default)")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--profile", type=int, default=0, metavar="CYCLES",
                        help="also cProfile this many htmx cycles in-process")
    parser.add_argument("--no-analyze", action="store_true", help="skip VACUUM (ANALYZE) after the bulk load")
    args = parser.parse_args()

    from tests.services import free_port

    # Simulated annotators judge far faster than people and all share one address:
    # the limits stay on (their counting is part of every request) but high.
    os.environ.update(PARITY_RATE_SUBMIT="100000/m", PARITY_RATE_JOIN="100000/m")
    started = time.perf_counter()
    with django_on("postgresql", prefix="parity-bench-load-", keep_var=True) as var:
        from django.db import connection, connections

        print(describe_machine(connection, time.perf_counter() - started))
        slug, timings = build_study(control_rate=args.control_rate, head_to_head=args.head_to_head,
                                    analyze=not args.no_analyze)
        for name, value in timings.items():
            print(f"  {name}: {value:.1f} s" if isinstance(value, float) else f"  {name}: {value}")
        connections.close_all()

        port = free_port()
        env = dict(os.environ, DJANGO_DEBUG="1" if args.debug else "0")
        if args.workers is not None:
            env["WEB_CONCURRENCY"] = str(args.workers)
        if args.threads is not None:
            env["GUNICORN_THREADS"] = str(args.threads)
        with gunicorn_running(var=var, port=port, env=env) as (gunicorn, ready):
            workers = args.workers if args.workers is not None else 2 * len(os.sched_getaffinity(0)) + 1
            print(f"gunicorn on 127.0.0.1:{port}: {workers} workers x {args.threads or 4} threads (gthread), "
                  f"DEBUG={'1' if args.debug else '0'}, healthy after {ready:.1f} s")

            annotators = [Annotator(port, slug, n) for n in range(args.annotators)]
            for a in annotators:
                a.enter()
            for phase in [p.strip() for p in args.phases.split(",") if p.strip()]:
                reset_counters(annotators)
                before = {name: cpu_snapshot(pids) for name, pids in process_groups(gunicorn.pid).items()}
                elapsed = run_phase(port, slug, annotators, phase, args.seconds, args.warmup, args.rate)
                after = {name: cpu_snapshot(pids) for name, pids in process_groups(gunicorn.pid).items()}
                cpu = {name: cpu_used(before[name], after[name]) for name in after}
                if phase == "paced":
                    print(f"\n(paced: {args.rate:.0f} cycles/s offered, one every "
                          f"{len(annotators) / args.rate * 1000:.0f} ms per annotator)")
                report_phase(phase, annotators, elapsed, cpu)
            for a in annotators:
                a.conn.close()
        acked = [t for a in annotators for t in a.acked]
        db_checks(slug, acked)
        if args.explain:
            explain(slug)
        if args.profile:
            profile(slug, args.profile)
        print(f"\n(gunicorn log: {var / 'gunicorn.log'}; client and server share the machine's cores)")

if __name__ == "__main__":
    main()
