"""Judgments export: 1,000,000 judgments as CSV through gunicorn + PostgreSQL.

Starts a throwaway PostgreSQL (tests.services.Postgres), builds one study of
5 generators x 2,000 items with catch and calibration trials, then writes the
assignments and judgments server-side with INSERT ... SELECT (each annotator judges
every item once, on one of the item's trials), so a million rows take seconds, not
a million model instances. Then starts gunicorn with platform/gunicorn.conf.py and
one worker, signs a superuser in through /login/, and streams
GET /api/v1/studies/<slug>/judgments/?format=csv over a stdlib HTTP connection,
counting rows and bytes. Reports rows/s, MB/s, and the serving worker's peak
resident memory (VmHWM from /proc) before and after the export; also the same
export in-process (the row source and CSV writer alone, no HTTP) for comparison.
Prints figures; asserts nothing.

    .venv/bin/python bench/api_export.py [--rows 1000000] [--format csv|jsonl] [--repeat 2]
"""

import argparse
import http.client
import os
import re
import sys
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.servers import children, cpu_seconds, describe_machine, django_on, gunicorn_running, memory_mb  # noqa: E402

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
ITEMS = 2000
GENERATORS = 5
SLUG = "bench-export"
PASSWORD = "bench-export-password"


# ------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------
def build(rows: int) -> dict:
    from django.db import connection

    from annotate.models import Annotator, Assignment, Judgment, Study, Trial
    from generation.models import Corpus, Generator, Item, Sample
    from workspaces.models import Workspace

    timings = {}
    started = time.perf_counter()
    facts = {"image": "originals/x.png", "sha256": "0" * 64, "width": 24, "height": 24, "format": "PNG",
             "mode": "RGB", "byte_size": 10}
    workspace = Workspace.objects.create(name="bench", slug="bench")
    corpus = Corpus.objects.create(workspace=workspace, name="bench")
    items = Item.objects.bulk_create(
        (Item(corpus=corpus, key=f"{i:06d}", caption=f"caption {i}", **facts) for i in range(ITEMS)), batch_size=5000
    )
    study = Study.objects.create(workspace=workspace, name="bench", slug=SLUG, corpus=corpus, practice_trials=0)
    trials = []
    for g in range(GENERATORS):
        generator = Generator.objects.create(workspace=workspace, name=f"bench-g{g}")
        study.generators.add(generator)
        samples = Sample.objects.bulk_create(
            (Sample(generator=generator, item=item, seed=0, **facts) for item in items), batch_size=5000
        )
        trials += [Trial(study=study, item=s.item, sample=s, generator=generator) for s in samples]
    # Controls on every tenth item: alternately catch and calibration.
    trials += [
        Trial(study=study, item=item, kind=Trial.Kind.CATCH if i % 20 == 0 else Trial.Kind.CALIBRATION)
        for i, item in enumerate(items) if i % 10 == 0
    ]
    Trial.objects.bulk_create(trials, batch_size=5000)
    people = -(-rows // ITEMS)
    Annotator.objects.bulk_create((Annotator(source=Annotator.Source.SIMULATED) for _ in range(people)),
                                  batch_size=5000)
    timings["items, samples, trials, annotators (bulk_create)"] = time.perf_counter() - started

    started = time.perf_counter()
    with connection.cursor() as cursor:
        # Each annotator x item pair once (the study's uniqueness rules), on trial number
        # annotator id mod (trials of the item); times spread over 30 days.
        cursor.execute(
            f"""
            INSERT INTO {Assignment._meta.db_table}
                (token, trial_id, annotator_id, study_id, item_id, reference_side, issued_at, shown_at, expires_at)
            SELECT gen_random_uuid(), t.id, a.id, %(study)s, t.item_id,
                   CASE WHEN random() < 0.5 THEN 'left' ELSE 'right' END, at, at, at + interval '10 minutes'
            FROM (SELECT id, now() - interval '30 days' * random() AS at FROM {Annotator._meta.db_table}) a
            JOIN (SELECT id, item_id, row_number() OVER (PARTITION BY item_id ORDER BY id) - 1 AS r,
                         count(*) OVER (PARTITION BY item_id) AS n
                  FROM {Trial._meta.db_table} WHERE study_id = %(study)s) t
              ON t.r = a.id %% t.n
            ORDER BY a.id, t.item_id
            LIMIT %(rows)s
            """,
            {"study": study.pk, "rows": rows},
        )
        assignments = cursor.rowcount
        timings[f"assignments ({assignments} rows, INSERT ... SELECT)"] = time.perf_counter() - started
        started = time.perf_counter()
        cursor.execute(
            f"""
            INSERT INTO {Judgment._meta.db_table}
                (assignment_id, choice, client_response_ms, server_response_ms, created_at)
            SELECT id, CASE WHEN random() < 0.5 THEN 'left' ELSE 'right' END,
                   CASE WHEN random() < 0.02 THEN NULL ELSE (500 + random() * 4000)::int END,
                   (550 + random() * 4000)::int, issued_at + interval '1 second' * (1 + random() * 5)
            FROM {Assignment._meta.db_table} WHERE study_id = %s ORDER BY id
            """,
            [study.pk],
        )
        timings[f"judgments ({cursor.rowcount} rows, INSERT ... SELECT)"] = time.perf_counter() - started
        started = time.perf_counter()
        cursor.execute("ANALYZE")
        timings["ANALYZE"] = time.perf_counter() - started
    return timings


# ------------------------------------------------------------------------------
# Client
# ------------------------------------------------------------------------------
class Session:
    """A keep-alive connection with a tiny cookie jar."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.cookies: dict[str, str] = {}

    def send(self, method: str, path: str, body: dict | None = None) -> http.client.HTTPResponse:
        headers = {"Host": f"127.0.0.1:{self.port}"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data = None
        if body is not None:
            data = urllib.parse.urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Referer"] = f"http://127.0.0.1:{self.port}{path}"
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, val = value.split(";", 1)[0].partition("=")
                self.cookies[key.strip()] = val.strip()
        return response

    def login(self, username: str) -> None:
        html = self.send("GET", "/login/").read().decode()
        token = CSRF.search(html).group(1)
        response = self.send("POST", "/login/", {"csrfmiddlewaretoken": token, "username": username,
                                                       "password": PASSWORD, "next": "/admin/"})
        response.read()
        if response.status != 302 or "sessionid" not in self.cookies:
            raise RuntimeError(f"admin login answered {response.status}")

    def stream(self, path: str) -> dict:
        started = time.perf_counter()
        response = self.send("GET", path)
        first = None
        size = lines = 0
        while block := response.read1(1 << 20):
            if first is None:
                first = time.perf_counter() - started
            size += len(block)
            lines += block.count(b"\n")
        return {"status": response.status, "type": response.getheader("Content-Type"), "bytes": size,
                "lines": lines, "seconds": time.perf_counter() - started, "first_byte": first or 0.0}


# ------------------------------------------------------------------------------
# Servers and processes
# ------------------------------------------------------------------------------
def in_process(file_format: str) -> tuple[int, int, float]:
    from annotate.exports import ExportFilters, export_stream
    from annotate.models import Study

    study = Study.objects.get(slug=SLUG)
    started = time.perf_counter()
    size = lines = 0
    for chunk in export_stream(study=study, filters=ExportFilters(), file_format=file_format):
        size += len(chunk)
        lines += chunk.count(b"\n")
    return lines, size, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="judgments to build and export")
    parser.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    parser.add_argument("--repeat", type=int, default=2, help="exports over HTTP (the first warms caches)")
    parser.add_argument("--threads", type=int, default=None, help="GUNICORN_THREADS; default: the conf's 4")
    args = parser.parse_args()

    from tests.services import free_port

    started = time.perf_counter()
    with django_on("postgresql", prefix="parity-bench-export-", keep_var=True) as var:
        from django.contrib.auth import get_user_model
        from django.db import connection, connections

        print(describe_machine(connection, time.perf_counter() - started))
        started = time.perf_counter()
        for name, seconds in build(args.rows).items():
            print(f"  {name}: {seconds:.1f} s")
        print(f"  build total: {time.perf_counter() - started:.1f} s")
        get_user_model().objects.create_superuser(username="bench", email="bench@example.org", password=PASSWORD)

        lines, size, seconds = in_process(args.format)
        rows = lines - (args.format == "csv")
        print(f"\n== in-process (row source + {args.format} writer, no HTTP): {rows} rows, "
              f"{size / 1e6:.1f} MB in {seconds:.2f} s = {rows / seconds:,.0f} rows/s")
        connections.close_all()

        port = free_port()
        env = dict(os.environ, DJANGO_DEBUG="0", WEB_CONCURRENCY="1", GUNICORN_TIMEOUT="600")
        if args.threads is not None:
            env["GUNICORN_THREADS"] = str(args.threads)
        with gunicorn_running(var=var, port=port, env=env) as (gunicorn, _):
            (worker,) = children(gunicorn.pid)
            session = Session(port)
            session.login("bench")
            path = f"/api/v1/studies/{SLUG}/judgments/?format={args.format}"
            before = memory_mb(worker)
            print(f"\n== HTTP: gunicorn, 1 worker (pid {worker}) x {args.threads or 4} threads, DEBUG=0; GET {path}")
            print(f"  worker after login: RSS {before['VmRSS']:.0f} MB, peak (VmHWM) {before['VmHWM']:.0f} MB")
            for attempt in range(args.repeat):
                cpu = cpu_seconds(worker)
                got = session.stream(path)
                cpu = cpu_seconds(worker) - cpu
                after = memory_mb(worker)
                rows = got["lines"] - (args.format == "csv")
                print(f"  export {attempt + 1}: HTTP {got['status']} {got['type']}, {rows} rows, "
                      f"{got['bytes'] / 1e6:.1f} MB in {got['seconds']:.2f} s = {rows / got['seconds']:,.0f} rows/s "
                      f"({got['bytes'] / 1e6 / got['seconds']:.0f} MB/s), first byte after {got['first_byte']:.2f} s, "
                      f"worker CPU {cpu:.1f} s")
                print(f"    worker: RSS {after['VmRSS']:.0f} MB, peak (VmHWM) {after['VmHWM']:.0f} MB "
                      f"(+{after['VmHWM'] - before['VmHWM']:.0f} MB over its peak before the exports)")
            session.conn.close()
        print(f"\n(gunicorn log: {var / 'gunicorn.log'}; client, server and PostgreSQL share the machine's cores)")

if __name__ == "__main__":
    main()
