"""How a service has a worker run a task: sent by the task's name once the transaction commits.

`generation.tasks` imports the services its tasks call, so a service that imported the
tasks' module, even inside a function, would close an import cycle. Celery sends a
task by its registered name as well as through the task's object, and
CELERY_TASK_ROUTES are keyed by that name, so the message and its queue are the same.
A test checks that these names are the tasks' own.
"""

from celery import current_app
from django.db import transaction

GENERATION_JOB_RUN_TASK = "generation.tasks.generation_job_run_task"
IMPORT_JOB_TASK = "generation.tasks.import_job_task"


def enqueue_on_commit(task: str, *ids: int) -> None:
    """Send `task` with `ids` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: current_app.send_task(task, args=ids))
