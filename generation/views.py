"""The researcher's generator page, under /generators/<id>/: its fields, samples and jobs.

A running job's block polls its htmx partial every second for a live progress bar, and
has a cancel button; an interrupted one (its worker gone) has a resume button.
Visibility goes through `selectors.generators_for`: a generator the user may not see
is a 404, exactly like one that does not exist; starting, cancelling and resuming
jobs also need a role other than viewer. Domain errors become a message
on the page, never a traceback.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from generation import selectors, services
from generation.models import Corpus, GenerationJob, Generator
from workspaces.access import workspace_can_write
from workspaces.errors import ParityError

SHOWN_JOBS = 20


class JobForm(forms.Form):
    corpus = forms.ModelChoiceField(queryset=Corpus.objects.none(), empty_label=None)
    seeds_per_item = forms.IntegerField(min_value=1, max_value=1000, initial=1, label="Seeds per item")

    def __init__(self, *args, generator: Generator, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["corpus"].queryset = Corpus.objects.filter(workspace_id=generator.workspace_id).order_by("name")


def _visible_generator(request: HttpRequest, pk: int) -> Generator:
    generator = selectors.generators_for(user=request.user).filter(pk=pk).first()
    if generator is None:
        raise Http404("no such generator")
    return generator


def _job_of(generator: Generator, job_id: int) -> GenerationJob:
    job = generator.jobs.select_related("corpus").filter(pk=job_id).first()
    if job is None:
        raise Http404("no such job")
    return job


def _can_write(request: HttpRequest, generator: Generator) -> bool:
    return workspace_can_write(user=request.user, workspace_id=generator.workspace_id)


@login_required
@require_GET
def generator_detail(request: HttpRequest, pk: int) -> HttpResponse:
    generator = _visible_generator(request, pk)
    return _page(request, generator, JobForm(generator=generator))


def _page(request: HttpRequest, generator: Generator, form: JobForm, status: int = 200) -> HttpResponse:
    services.generation_jobs_interrupt_lost(jobs=generator.jobs.all())
    context = {
        "generator": generator,
        "sample_count": generator.samples.count(),
        "jobs": generator.jobs.select_related("corpus").order_by("-created_at", "-pk")[:SHOWN_JOBS],
        "can_write": _can_write(request, generator),
        "runs_backend": generator.backend != services.UPLOAD_BACKEND,
        "form": form,
    }
    return render(request, "generation/generator.html", context, status=status)


@login_required
@require_POST
def generation_job_start(request: HttpRequest, pk: int) -> HttpResponse:
    generator = _visible_generator(request, pk)
    if not _can_write(request, generator):
        raise PermissionDenied("viewers cannot start jobs")
    form = JobForm(request.POST, generator=generator)
    if form.is_valid():
        try:
            job = services.generation_job_create(
                generator=generator, corpus=form.cleaned_data["corpus"],
                seeds_per_item=form.cleaned_data["seeds_per_item"],
            )
        except ParityError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Job {job.pk} is queued: {job.total} samples for the GPU worker.")
            return redirect("generation:generator-detail", pk=generator.pk)
    return _page(request, generator, form, status=400)


@login_required
@require_GET
def generation_job_progress(request: HttpRequest, pk: int, job_id: int) -> HttpResponse:
    generator = _visible_generator(request, pk)
    services.generation_jobs_interrupt_lost(jobs=generator.jobs.filter(pk=job_id))
    context = {"generator": generator, "job": _job_of(generator, job_id), "can_write": _can_write(request, generator)}
    return render(request, "generation/partials/job.html", context)


@login_required
@require_POST
def generation_job_cancel(request: HttpRequest, pk: int, job_id: int) -> HttpResponse:
    return _job_action(
        request, pk, job_id, services.generation_job_cancel, refused="viewers cannot cancel jobs",
        done=lambda job: f"Job {job.pk}: {'cancelled' if job.status == 'cancelled' else 'stopping'}.",
    )


@login_required
@require_POST
def generation_job_resume(request: HttpRequest, pk: int, job_id: int) -> HttpResponse:
    return _job_action(
        request, pk, job_id, services.generation_job_resume, refused="viewers cannot resume jobs",
        done=lambda job: f"Job {job.pk} is queued again: the GPU worker makes the samples still missing.",
    )


def _job_action(request: HttpRequest, pk: int, job_id: int, action, *, refused: str, done) -> HttpResponse:
    """Cancel or resume a job of the generator: its block again for htmx, else the page with a message."""
    generator = _visible_generator(request, pk)
    if not _can_write(request, generator):
        raise PermissionDenied(refused)
    job = _job_of(generator, job_id)
    error = ""
    try:
        job = action(job=job)
    except ParityError as exc:
        error = str(exc)
        job.refresh_from_db()
    if request.htmx:
        context = {"generator": generator, "job": job, "can_write": True, "error": error}
        return render(request, "generation/partials/job.html", context)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, done(job))
    return redirect("generation:generator-detail", pk=generator.pk)
