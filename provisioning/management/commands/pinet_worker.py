"""Run a Celery worker for pinet's queues: by default all of them (the embedded quickstart)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from nodes.selectors import site_queue_names
from pinet.celery import app


class Command(BaseCommand):
    help = (
        "Run a worker. With no --queues it consumes default, images and every site's queue, as the "
        "single-host quickstart needs; a boot server runs one with --queues site.<slug>."
    )

    def add_arguments(self, parser):
        parser.add_argument("--queues", help="Comma-separated queues, e.g. site.demo or default,images.")
        parser.add_argument("--concurrency", type=int, default=2)
        parser.add_argument("--loglevel", default="info")
        parser.add_argument(
            "--beat", action="store_true", help="Also run the periodic tasks (one worker per installation does)."
        )

    def handle(self, *args, queues: str | None, concurrency: int, loglevel: str, beat: bool, **options):
        names = queues or ",".join(["default", "images", *site_queue_names()])
        argv = ["worker", "-Q", names, "-c", str(concurrency), "-l", loglevel]
        if beat:
            argv += ["-B", "-s", str(settings.PINET_DATA_DIR / "celerybeat-schedule")]
        if settings.CELERY_BROKER_URL.startswith("filesystem"):
            # The file-system broker has no fanout exchanges for worker-to-worker chatter.
            argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        self.stdout.write(f"pinet worker on queues: {names}")
        app.worker_main(argv)
