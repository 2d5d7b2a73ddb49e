"""The Celery app. Queues: ``default``, ``images`` and one ``site.<slug>`` per boot server."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pinet.settings")

app = Celery("pinet")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
