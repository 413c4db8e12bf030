from pathlib import Path

from django.apps import AppConfig
from django.conf import settings


class ParityConfig(AppConfig):
    name = "parity"
    verbose_name = "Parity"

    def ready(self) -> None:
        # kombu's filesystem transport expects its folders to exist, in the web
        # process (which enqueues) as much as in the worker.
        for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
            folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get(key)
            if folder:
                Path(folder).mkdir(parents=True, exist_ok=True)
        # Registers the bearer scheme with drf-spectacular.
        from parity import api_schema  # noqa: F401
