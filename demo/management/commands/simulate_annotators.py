"""Simulated annotators for an open study, through its real pages (demo.simulation).

Each annotator enters by the study's Prolific link with PROLIFIC_PID
``sim-<seed>-<run>-<n>`` (``run``: six hex digits drawn per run, so that runs never
share an id), is marked simulated in the database as soon as it is in (the one thing
done outside HTTP: the pages and the flow are those of any participant), then
consents, practises, judges and finishes over HTTP. Without --url a temporary server
runs in this process, with the rate limits raised; with --url the command must use
the same database as that server, whose rate limits apply: a refused answer is
waited out and sent again (start it with higher PARITY_RATE_JOIN and
PARITY_RATE_SUBMIT to go faster).

The summary is read from what the annotators clicked; only which image of each
clicked trial was generated, and by which generator, is looked up afterwards.
"""

import json
import secrets
import threading
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.db.models import F, Sum

from annotate.models import CONTROL_KINDS, Annotator, Assignment, Study, Trial
from annotate.services import annotator_mark_simulated
from demo.simulation.population import PROFILES, population
from demo.simulation.server import local_server
from demo.simulation.session import Eyes, Visit, visit
from workspaces.cli import progress_bar

TOKENS_PER_QUERY = 500


class Command(BaseCommand):
    help = (
        "Run simulated annotators (good ones and a few bad ones) through an open study's real "
        "pages; they choose by how well each image shows its caption."
    )

    def add_arguments(self, parser):
        parser.add_argument("study", help="the open study's slug, as in its link /s/<slug>/")
        parser.add_argument("--annotators", type=int, default=30, help="how many (default 30)")
        parser.add_argument("--bad", type=int, default=4,
                            help="how many of them are bad: random clickers and left-pressers in turn (default 4)")
        parser.add_argument("--seed", type=int, default=0, help="of the population and its choices (default 0)")
        parser.add_argument("--url", help="a running Parity on this database, e.g. http://127.0.0.1:8000; "
                                          "default: a temporary server in this process")
        parser.add_argument("--concurrency", type=int, default=4, help="annotators at a time (default 4)")
        parser.add_argument("--report", type=Path, help="write a JSON report of each simulated annotator here")

    def handle(self, *args, study, annotators, bad, seed, url, concurrency, report, **options):
        target = Study.objects.filter(slug=study).first()
        if target is None:
            raise CommandError(f"no study with slug {study!r}")
        if target.status != Study.Status.OPEN:
            raise CommandError(f"study {study!r} is {target.status}, not open: open it first (manage.py open_study)")
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1")
        if url and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname):
            raise CommandError(f"--url {url!r}: give the server's address, such as http://127.0.0.1:8000")
        try:
            personas = population(count=annotators, bad=bad, seed=seed)
        except ValueError as exc:
            raise CommandError(f"--annotators/--bad: {exc}") from None
        run = secrets.token_hex(3)
        pids = {p.number: f"sim-{seed}-{run}-{p.number}" for p in personas}
        with (nullcontext(url.rstrip("/")) if url else local_server()) as base:
            visits = self._run(target, personas, pids, base, concurrency, verbose=options["verbosity"] > 0)
        failed = [v for v in visits if v.ended.startswith("error")]
        if failed and len(failed) == len(visits):
            raise CommandError(f"no simulated annotator got through: {failed[0].ended}")
        facts = _trial_facts([c.token for v in visits for c in v.clicks if c.recorded and not c.practice])
        pseudonyms = dict(
            Annotator.objects.filter(source=Annotator.Source.SIMULATED, external_id__in=pids.values())
            .values_list("external_id", "pseudonym")
        )
        self._summary(target, visits, facts, base=url or "a temporary server in this process")
        if report is not None:
            report.write_text(json.dumps(_report(target, run, seed, visits, facts, pseudonyms), indent=2) + "\n")
            self.stdout.write(f"Report: {report}")

    def _run(self, study: Study, personas, pids, base: str, concurrency: int, *, verbose: bool) -> list[Visit]:
        eyes = Eyes()
        lock = threading.Lock()
        judged = 0
        total = min(len(personas) * study.quota_per_annotator, _open_judgments(study))
        with progress_bar("Simulated judgments", total=total, unit=" judgments", disable=not verbose) as on_progress:

            def on_judged(click) -> None:
                nonlocal judged
                with lock:
                    judged += 1
                    on_progress(judged)

            def one(persona) -> Visit:
                pid = pids[persona.number]
                try:
                    return visit(
                        base_url=base, slug=study.slug, pid=pid, persona=persona, eyes=eyes,
                        on_entered=lambda pid: annotator_mark_simulated(study=study, external_id=pid),
                        on_judged=on_judged,
                    )
                except Annotator.DoesNotExist:
                    return Visit(persona=persona, pid=pid, ended=f"error: {pid} entered {base}, but not this "
                                                                   "database: --url must use the same database")
                except (OSError, RuntimeError) as exc:
                    return Visit(persona=persona, pid=pid, ended=f"error: {type(exc).__name__}: {exc}")
                finally:
                    connections.close_all()  # this thread's own connection

            with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="annotator") as pool:
                return list(pool.map(one, personas))

    def _summary(self, study: Study, visits: list[Visit], facts: dict, *, base: str) -> None:
        out = self.stdout.write
        profiles = Counter(v.persona.profile for v in visits)
        out(f"Simulated {len(visits)} annotators on study {study.slug!r} through {base}:")
        out("  profiles: " + ", ".join(f"{name} {profiles[name]}" for name in PROFILES))
        practice = sum(1 for v in visits for c in v.clicks if c.practice and c.recorded)
        refused = sum(1 for v in visits for c in v.clicks if not c.recorded)
        out(f"  judgments: {sum(v.judgments for v in visits)} recorded "
            f"(plus {practice} practice answers; {refused} answers refused, {sum(v.waits for v in visits)} "
            f"waits for the rate limits; {sum(v.requests for v in visits)} HTTP requests)")
        codes = Counter(v.code for v in visits if v.finished)
        shown = ", ".join(f"{code or '(none shown)'} x {n}" for code, n in codes.items()) or "none"
        out(f"  finished: {sum(v.finished for v in visits)} of {len(visits)}; completion codes seen: {shown}")
        for reason, n in Counter(v.ended for v in visits if not v.finished).items():
            out(f"  stopped early ({n}): {reason}")
        out("  generated image chosen, by generator (from the simulated clicks):")
        generators = _by_generator(visits, facts)
        for name, (chosen, seen) in sorted(generators.items()):
            out(f"    {name:<30} {chosen / seen:5.2f}  ({chosen} of {seen})")
        if not generators:
            out("    (no generated trial judged)")
        if pairs := _head_to_head(visits, facts):
            out("  head to head: the first generator chosen over the second")
            for (name, opponent), (won, seen) in sorted(pairs.items()):
                out(f"    {name} vs {opponent}: {won / seen:5.2f}  ({won} of {seen})")
        out("  by profile: catch trials passed, left image chosen")
        for name in PROFILES:
            mine = [v for v in visits if v.persona.profile == name]
            if mine:
                passed, catches, lefts, judged = _profile_counts(mine, facts)
                out(f"    {name:<8} catch {_share(passed, catches)} ({passed} of {catches}), "
                    f"left {_share(lefts, judged)} ({lefts} of {judged})")
        out("Every one of these annotators is marked simulated (Annotator.source), and so are its judgments "
            "in exports, on the study page and in reports.")


# ------------------------------------------------------------------------------
# Tallies
# ------------------------------------------------------------------------------
def _open_judgments(study: Study) -> int:
    """Judgments the study still needs: k per trial, less those made."""
    judged = [Trial.Kind.GENERATED, Trial.Kind.HEAD_TO_HEAD, *CONTROL_KINDS]
    left = Trial.objects.filter(study=study, kind__in=judged).aggregate(
        n=Sum(study.judgments_per_trial - F("judgment_count"))
    )["n"]
    return max(0, left or 0)


def _trial_facts(tokens: list[str]) -> dict[str, tuple[str, str | None, str, str | None]]:
    """(trial kind, generator name, reference side, opponent name) of each assignment token."""
    facts = {}
    for start in range(0, len(tokens), TOKENS_PER_QUERY):
        rows = Assignment.objects.filter(token__in=tokens[start:start + TOKENS_PER_QUERY]).values_list(
            "token", "trial__kind", "trial__generator__name", "reference_side", "trial__opponent__name"
        )
        facts.update({str(token): (kind, name, side, opponent) for token, kind, name, side, opponent in rows})
    return facts


def _study_clicks(visits: list[Visit], facts: dict):
    for v in visits:
        for click in v.clicks:
            if click.recorded and not click.practice and click.token in facts:
                yield v, click, facts[click.token]


def _by_generator(visits: list[Visit], facts: dict) -> dict[str, tuple[int, int]]:
    counts = defaultdict(lambda: [0, 0])
    for _, click, (kind, name, reference, _) in _study_clicks(visits, facts):
        if kind == Trial.Kind.GENERATED:
            counts[name][0] += click.choice != reference
            counts[name][1] += 1
    return {name: tuple(pair) for name, pair in counts.items()}


def _head_to_head(visits: list[Visit], facts: dict) -> dict[tuple[str, str], tuple[int, int]]:
    """(generator, opponent) -> (judgments the generator won, judgments) on head-to-head trials."""
    counts = defaultdict(lambda: [0, 0])
    for _, click, (kind, name, reference, opponent) in _study_clicks(visits, facts):
        if kind == Trial.Kind.HEAD_TO_HEAD:
            counts[name, opponent][0] += click.choice != reference
            counts[name, opponent][1] += 1
    return {pair: tuple(won) for pair, won in counts.items()}


def _profile_counts(visits: list[Visit], facts: dict) -> tuple[int, int, int, int]:
    """(catch passed, catch judged, left chosen, judged) over the visits."""
    passed = catches = lefts = judged = 0
    for _, click, (kind, _, reference, _) in _study_clicks(visits, facts):
        judged += 1
        lefts += click.choice == "left"
        if kind == Trial.Kind.CATCH:
            catches += 1
            passed += click.choice == reference
    return passed, catches, lefts, judged


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.2f}" if whole else "-"


def _report(study: Study, run: str, seed: int, visits: list[Visit], facts: dict, pseudonyms: dict) -> dict:
    annotators = []
    for v in visits:
        passed, catches, lefts, _ = _profile_counts([v], facts)
        pseudonym = pseudonyms.get(v.pid)
        annotators.append({
            "pseudonym": str(pseudonym) if pseudonym else None,
            "external_id": v.pid,
            "profile": v.persona.profile,
            "judgments": v.judgments,
            "practice": sum(1 for c in v.clicks if c.practice and c.recorded),
            "refused": [c.refusal for c in v.clicks if not c.recorded][:5],
            "catch_passed": passed,
            "catch_judged": catches,
            "left_chosen": lefts,
            "finished": v.finished,
            "completion_code": v.code,
            "ended": v.ended,
        })
    generators = {
        name: {"chosen": chosen, "judged": seen, "share": chosen / seen}
        for name, (chosen, seen) in sorted(_by_generator(visits, facts).items())
    }
    head_to_head = [
        {"generator": name, "opponent": opponent, "won": won, "judged": seen}
        for (name, opponent), (won, seen) in sorted(_head_to_head(visits, facts).items())
    ]
    return {"study": study.slug, "seed": seed, "run": run, "simulated": True,
            "annotators": annotators, "generators": generators, "head_to_head": head_to_head}
