"""The study page's analysis panel (htmx, polled), its download links, and the Celery tasks."""

import io
import json
import os
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from analysis import services, tasks
from analysis.models import ReportSnapshot
from annotate.models import Study
from tests.analysis.builders import add_annotators, planted_study
from workspaces.models import Membership

pytestmark = pytest.mark.usefixtures("cheap_reports")
PANEL = "/studies/{}/analysis/panel/"


def build_sent(planted):
    """The task a worker is sent to build the study's report."""
    return ("analysis.tasks.report_snapshot_task", (planted.study.pk,))


@pytest.fixture
def planted(workspace):
    return planted_study(workspace=workspace, annotators=12)


@pytest.fixture
def client(workspace):
    user = get_user_model().objects.create_user(username="alice", password="x")
    Membership.objects.create(workspace=workspace, user=user, role=Membership.Role.VIEWER)
    client = Client()
    client.force_login(user)
    return client


def test_the_study_page_has_the_panel_and_download_links(planted, client):
    html = client.get("/studies/ladder/").content.decode()
    assert 'id="study-analysis"' in html and 'hx-get="/studies/ladder/analysis/panel/"' in html
    for file_format in ("html", "json", "csv"):
        assert f'href="/api/v1/studies/ladder/report/?format={file_format}"' in html


def test_the_panel_shows_plots_and_tables_and_polls(planted, client):
    response = client.get(PANEL.format("ladder"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'hx-trigger="every 10s"' in html
    assert "<svg" in html and "Preference rate per generator" in html and 'id="analysis-built"' in html
    for generator in planted.generators:
        assert f'data-generator="{generator.name}"' in html
    assert "simulated-badge" in html
    # The series' verdict and what its extrapolation assumes, as in the report.
    assert 'class="verdict" data-verdict="' in html and "(conditional on reaching parity)" in html
    # The next poll, with nothing new, leaves the page as it is.
    shown = html.split("?shown=", 1)[1].split('"', 1)[0]
    assert client.get(PANEL.format("ladder"), {"shown": shown}).status_code == 204


def test_new_judgments_rebuild_a_small_study_at_most_every_refresh_period(planted, client, settings):
    client.get(PANEL.format("ladder"))
    first = ReportSnapshot.objects.get(study=planted.study).built_at
    add_annotators(planted, 1, seed=9)
    settings.PARITY_REPORT_REFRESH_SECONDS = 3600
    client.get(PANEL.format("ladder"))
    assert ReportSnapshot.objects.get(study=planted.study).built_at == first
    settings.PARITY_REPORT_REFRESH_SECONDS = 0
    client.get(PANEL.format("ladder"))
    snapshot = ReportSnapshot.objects.get(study=planted.study)
    assert snapshot.built_at > first and snapshot.judgments == 13 * len(planted.items)


def test_a_large_study_is_built_by_the_worker_while_the_page_says_so(planted, client, settings, sent_tasks,
                                                                    django_capture_on_commit_callbacks):
    settings.PARITY_REPORT_INLINE_MAX = 10
    with django_capture_on_commit_callbacks(execute=True):
        html = client.get(PANEL.format("ladder")).content.decode()
        again = client.get(PANEL.format("ladder")).content.decode()
    assert sent_tasks == [build_sent(planted)]  # once, however often the page polls
    assert 'id="analysis-building"' in html and "<svg" not in html and 'id="analysis-building"' in again
    assert tasks.report_snapshot_task(planted.study.pk) == "built"
    html = client.get(PANEL.format("ladder")).content.decode()
    assert "<svg" in html and 'id="analysis-building"' not in html
    # More judgments: once the report is older than the refresh period, the last one
    # stays on the page, marked as being rebuilt.
    add_annotators(planted, 1, seed=9)
    settings.PARITY_REPORT_REFRESH_SECONDS = 0
    with django_capture_on_commit_callbacks(execute=True):
        html = client.get(PANEL.format("ladder")).content.decode()
    assert "<svg" in html and 'id="analysis-building"' in html and sent_tasks == [build_sent(planted)] * 2


def test_inline_builds_are_bounded_by_fifty_thousand_judgments_by_default(tmp_path):
    # Settings are read once per process: a fresh one, without the caller's PARITY_ variables.
    env = {name: value for name, value in os.environ.items() if not name.startswith(("PARITY_", "DATABASE_"))}
    env |= {"DJANGO_SETTINGS_MODULE": "parity.settings", "PARITY_VAR_DIR": str(tmp_path)}
    code = "from django.conf import settings; print(settings.PARITY_REPORT_INLINE_MAX)"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == 50_000


def test_a_study_of_inline_max_judgments_is_built_in_the_request_and_one_more_by_the_worker(
        planted, client, settings, sent_tasks, django_capture_on_commit_callbacks):
    settings.PARITY_REPORT_INLINE_MAX = 12 * len(planted.items)
    with django_capture_on_commit_callbacks(execute=True):
        html = client.get(PANEL.format("ladder")).content.decode()
    assert "<svg" in html and 'id="analysis-building"' not in html and sent_tasks == []
    add_annotators(planted, 1, seed=9)
    settings.PARITY_REPORT_REFRESH_SECONDS = 0
    settings.PARITY_REPORT_INLINE_MAX = 13 * len(planted.items) - 1
    with django_capture_on_commit_callbacks(execute=True):
        html = client.get(PANEL.format("ladder")).content.decode()
    assert 'id="analysis-building"' in html and sent_tasks == [build_sent(planted)]
    assert ReportSnapshot.objects.get(study=planted.study).judgments == 12 * len(planted.items)


def test_a_failed_build_is_a_message_not_a_traceback_and_is_not_retried_on_the_same_data(
        planted, client, monkeypatch):
    calls = []

    def broken(**kwargs):
        calls.append(1)
        raise ValueError("no starting point")

    monkeypatch.setattr(services, "study_report", broken)
    for _ in range(2):
        response = client.get(PANEL.format("ladder"))
        assert response.status_code == 200
        assert "could not be built: ValueError: no starting point" in response.content.decode()
    assert len(calls) == 1
    add_annotators(planted, 1, seed=9)
    client.get(PANEL.format("ladder"))
    assert len(calls) == 2


def test_a_failed_worker_build_is_shown_and_not_requested_again(planted, client, monkeypatch, settings, sent_tasks,
                                                                 django_capture_on_commit_callbacks):
    settings.PARITY_REPORT_INLINE_MAX = 0
    monkeypatch.setattr(services, "study_report", lambda **kwargs: (_ for _ in ()).throw(ValueError("bad data")))
    with django_capture_on_commit_callbacks(execute=True):
        client.get(PANEL.format("ladder"))
    assert tasks.report_snapshot_task(planted.study.pk) == "failed"
    snapshot = ReportSnapshot.objects.get(study=planted.study)
    assert snapshot.error == "ValueError: bad data" and snapshot.building_since is None
    with django_capture_on_commit_callbacks(execute=True):
        html = client.get(PANEL.format("ladder")).content.decode()
    assert "could not be built: ValueError: bad data" in html and 'id="analysis-building"' not in html
    assert sent_tasks == [build_sent(planted)]


def test_the_panel_is_for_members_only(planted, db):
    outsider = Client()
    outsider.force_login(get_user_model().objects.create_user(username="mallory", password="x"))
    assert outsider.get(PANEL.format("ladder")).status_code == 404
    anonymous = Client().get(PANEL.format("ladder"))
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


def test_beat_updates_the_plan_of_open_studies_with_a_target(planted, workspace, sent_tasks,
                                                            django_capture_on_commit_callbacks):
    Study.objects.filter(pk=planted.study.pk).update(status=Study.Status.OPEN, target_half_width=0.5)
    draft = planted_study(slug="draft", annotators=4, workspace=workspace)
    Study.objects.filter(pk=draft.study.pk).update(target_half_width=0.5)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.plan_update_open_studies_task() == 1
    assert sent_tasks == [("analysis.tasks.study_plan_update_task", (planted.study.pk,))]
    done = tasks.study_plan_update_task(planted.study.pk)
    assert done == sorted(g.pk for g in planted.generators)  # a half-width of 0.5 is met at 100 judgments
    assert Study.objects.get(pk=planted.study.pk).generators_done == done


def test_the_command_writes_each_format(planted, tmp_path):
    out = tmp_path / "ladder.html"
    stdout = io.StringIO()
    call_command("report", "ladder", "--format", "html", "--out", str(out), "--boot", "100", "--fit-boot", "5",
                 stdout=stdout, stderr=io.StringIO())
    assert out.read_text().startswith("<!doctype html>") and "<svg" in out.read_text()
    assert f"Wrote {out} (html" in stdout.getvalue()
    stdout = io.StringIO()
    call_command("report", "ladder", "--format", "json", "--boot", "100", "--fit-boot", "5", stdout=stdout,
                 stderr=io.StringIO())
    body = json.loads(stdout.getvalue())
    assert body["options"]["n_boot"] == 100 and len(body["generators"]) == 4
    stdout = io.StringIO()
    call_command("report", "ladder", "--format", "csv", "--boot", "100", "--fit-boot", "0", stdout=stdout,
                 stderr=io.StringIO(), verbosity=0)
    assert len(stdout.getvalue().splitlines()) == 9
    with pytest.raises(CommandError, match="no study"):
        call_command("report", "nope", stdout=io.StringIO(), stderr=io.StringIO())


def test_the_panel_lists_kept_reports_and_a_member_freezes_one(planted, client, workspace):
    from analysis.models import ReportRecord

    html = client.get(PANEL.format("ladder")).content.decode()
    (record,) = ReportRecord.objects.filter(study=planted.study)
    assert f'data-record="{record.pk}"' in html and record.content_hash[:12] in html
    # The viewer of `client` sees no freeze form, and may not post one.
    assert "Freeze</button>" not in html
    freeze = f"/studies/ladder/analysis/reports/{record.pk}/freeze/"
    assert client.post(freeze, {"note": "final"}).status_code == 403
    member = get_user_model().objects.create_user(username="bob", password="x")
    Membership.objects.create(workspace=workspace, user=member, role=Membership.Role.MEMBER)
    writer = Client()
    writer.force_login(member)
    assert "Freeze</button>" in writer.get(PANEL.format("ladder")).content.decode()
    response = writer.post(freeze, {"note": "the paper's table 2"})
    assert response.status_code == 302 and response["Location"] == "/studies/ladder/"
    record.refresh_from_db()
    assert record.frozen and record.frozen_by == member and record.note == "the paper's table 2"
    assert "the paper&#x27;s table 2" in writer.get(PANEL.format("ladder")).content.decode()
    assert writer.post(f"/studies/ladder/analysis/reports/{record.pk + 999}/freeze/").status_code == 404
