"""A task queued from a request runs in a real worker process, over the embedded file-system
broker and over real Redis, while the request itself returns at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from pinet.celery import app as celery_app
from provisioning.models import WorkerCheck
from tests.tools import database_url, need, need_program, tcp_open

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(settings.BASE_DIR)


def _reset_producer(app) -> None:
    # Celery caches the connection pool of the first broker it used, and kombu keeps its
    # pools in a process-wide registry keyed by broker URL: drop both, closed pools included.
    from kombu import pools

    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None
    pools.reset()


@contextmanager
def broker(url: str, transport_options: dict):
    """Point this process's Celery producer at ``url`` for the duration."""
    saved = (celery_app.conf.broker_url, celery_app.conf.broker_transport_options)
    saved_env = os.environ.get("CELERY_BROKER_URL")
    _reset_producer(celery_app)
    # Celery prefers the CELERY_BROKER_URL environment variable over its configuration.
    os.environ["CELERY_BROKER_URL"] = url
    celery_app.conf.broker_url, celery_app.conf.broker_transport_options = url, transport_options
    try:
        yield
    finally:
        _reset_producer(celery_app)
        celery_app.conf.broker_url, celery_app.conf.broker_transport_options = saved
        if saved_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = saved_env


@contextmanager
def worker_process(tmp_path: Path, env: dict[str, str], queue: str):
    """A real `celery worker` (solo pool: tasks run in this very pid) on the test database."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "worker.log"
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pinet.settings",
        "PINET_ENV": "embedded",
        "DATABASE_URL": database_url(),
        "PINET_DATA_DIR": str(tmp_path / "data"),
        **env,
    }
    if "CELERY_BROKER_URL" not in env:
        environment.pop("CELERY_BROKER_URL", None)  # embedded: the file-system broker
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "pinet",
                "worker",
                "-Q",
                queue,
                "--pool",
                "solo",
                "-l",
                "info",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=BASE_DIR,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_answered(check_id: int, proc, log: Path, limit: float = 60.0) -> WorkerCheck:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        check = WorkerCheck.objects.get(pk=check_id)
        if check.answered_at:
            return check
        assert proc.poll() is None, f"worker exited early:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)
    raise AssertionError(f"no worker answered within {limit} s:\n{log.read_text()[-3000:]}")


def _request_check(client, queue: str) -> dict:
    response = client.post(reverse("worker-check-create"), {"queue": queue}, HTTP_ACCEPT="application/json")
    assert response.status_code == 202, response.content
    return response.json()


def _round_trip(client, operator, tmp_path, *, url: str, options: dict, env: dict) -> None:
    client.force_login(operator)
    with broker(url, options), worker_process(tmp_path, env, queue="default") as (proc, log):
        # Freeze the worker: the request must still return at once, with the work undone.
        proc.send_signal(signal.SIGSTOP)
        body = _request_check(client, "default")
        assert body["answered"] is False
        assert WorkerCheck.objects.get(pk=body["id"]).answered_at is None
        proc.send_signal(signal.SIGCONT)
        check = _wait_answered(body["id"], proc, log)
        # The task ran in the worker process, not in this one.
        assert check.answered_by.endswith(f":{proc.pid}")
        assert client.get(body["url"]).json()["answered"] is True


def _filesystem_broker(tmp_path: Path) -> dict:
    folder = tmp_path / "data" / "broker"
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }


def test_task_from_request_runs_in_worker_over_embedded_broker(client, operator, tmp_path):
    options = _filesystem_broker(tmp_path)
    _round_trip(client, operator, tmp_path, url="filesystem://localhost/", options=options, env={})


def test_site_worker_applies_the_config_after_a_node_change(tmp_path):
    need_program("dnsmasq", "dnsmasq-base")
    from nodes.services import node_create, site_create
    from provisioning.models import ConfigRevision

    options = _filesystem_broker(tmp_path)
    with broker("filesystem://localhost/", options), worker_process(tmp_path, {}, queue="site.lab") as (proc, log):
        site = site_create(
            by=None, name="Lab", slug="lab", interface="pinet0", subnet="192.0.2.0/24", boot_server="192.0.2.1"
        )
        for n in range(3):  # a burst: each queues an apply, together they cost one or two
            node_create(by=None, site=site, hostname=f"pi-{n}", mac=f"dc:a6:32:00:00:{n:02x}", ip=f"192.0.2.{20 + n}")
        deadline = time.monotonic() + 60
        while True:
            site.refresh_from_db()
            if site.config_applied == site.config_requested == 4:
                break
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
    revisions = ConfigRevision.objects.filter(site=site, status="applied")
    assert 1 <= revisions.count() <= 4
    hosts = tmp_path / "data" / "config" / "lab" / "dnsmasq" / "hosts.d"
    assert sorted(p.name for p in hosts.iterdir()) == [f"dc-a6-32-00-00-0{n}" for n in range(3)]


def test_task_from_request_runs_in_worker_over_redis(client, operator, tmp_path):
    need(tcp_open("127.0.0.1", 6379), "Redis is not running on 127.0.0.1:6379")
    # A Redis database per pytest-xdist worker, so parallel test workers never share queues.
    index = 10 + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    url = f"redis://127.0.0.1:6379/{index}"
    _round_trip(client, operator, tmp_path, url=url, options={}, env={"CELERY_BROKER_URL": url})


def test_unknown_queue_is_refused(client, operator):
    client.force_login(operator)
    response = client.post(reverse("worker-check-create"), {"queue": "nope"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400 and "no queue called" in response.json()["queue"][0]
    assert not WorkerCheck.objects.exists()


def test_customers_cannot_send_checks(client, customer):
    client.force_login(customer)
    response = client.post(reverse("worker-check-create"), {"queue": "default"})
    assert response.status_code == 302 and not WorkerCheck.objects.exists()


def test_status_page_lists_problems_and_checks(client, operator, settings, tmp_path):
    settings.PINET_DIRECTORIES = {"PINET_TFTP_ROOT": tmp_path / "missing"}
    client.force_login(operator)
    body = client.get(reverse("status")).content.decode()
    assert "pinet.E001" in body and "Check worker" in body
