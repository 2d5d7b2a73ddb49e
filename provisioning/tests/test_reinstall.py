"""Reinstall services, boot tokens and the boot endpoints an installer talks to."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from images.models import OSImage
from nodes.choices import BootMode, NodeState
from nodes.models import Node
from provisioning.choices import InstallJobStatus
from provisioning.models import BootToken, InstallJob, JobEvent
from provisioning.selectors import live_boot_urls, site_snapshot
from provisioning.services import (
    boot_token_hash,
    install_job_cancel,
    install_jobs_expire,
    node_request_reinstall,
)
from tests.factories import make_node, make_ready_image

pytestmark = pytest.mark.django_db

ARTEFACT = bytes(range(256)) * 4000  # 1 MB


@pytest.fixture
def image(tmp_path):
    return make_ready_image(tmp_path, ARTEFACT)


@pytest.fixture
def node(site, tenant):
    tenant.ssh_keys = "ssh-ed25519 AAAAC3Nza bob@laptop\n# old key\n"
    tenant.save()
    return make_node(site=site, n=1, tenant=tenant, state=NodeState.DEPLOYED)


def _download(client, token) -> None:
    response = client.get(f"/boot/{token}/image")
    assert response.status_code == 200
    b"".join(response.streaming_content)  # the board writes it all


def _token(node) -> str:
    url = live_boot_urls(node.site)[node.pk]
    return url.split("/boot/")[1].split("/")[0]


def test_reinstall_opens_a_job_and_switches_to_install(node, image, operator):
    job = node_request_reinstall(node=node, image=image, by=operator)
    node.refresh_from_db()
    assert (node.boot_mode, node.state) == (BootMode.INSTALL, NodeState.INSTALLING)
    assert job.status == InstallJobStatus.PENDING and job.previous_boot_mode == BootMode.LOCAL
    token = _token(node)
    assert len(token) >= 43 and BootToken.objects.get(job=job).token_hash == boot_token_hash(token)
    assert not BootToken.objects.filter(token_hash=token).exists()  # only the hash is stored
    host = next(h for h in site_snapshot(node.site).hosts if h.node_id == node.pk)
    assert host.answer == "local"  # no installer image for Pis yet: say so rather than boot into nothing
    OSImage.objects.create(
        name="pinet-installer",
        arch="arm64",
        kind="installer",
        source="/x",
        state="ready",
        boot_path="/srv/installer/boot",
    )
    host = next(h for h in site_snapshot(node.site).hosts if h.node_id == node.pk)
    assert host.answer == "install" and host.boot_url.endswith(f"/boot/{token}/?v=1")


def test_reinstall_refusals(node, image, site):
    suspended = make_node(site=site, n=2, state=NodeState.SUSPENDED)
    with pytest.raises(ValidationError, match="suspended"):
        node_request_reinstall(node=suspended, image=image, by=None)
    amd64 = OSImage.objects.create(name="debian", arch="amd64", source="/x", state="ready", artefact_path="/x")
    with pytest.raises(ValidationError, match="is for amd64"):
        node_request_reinstall(node=node, image=amd64, by=None)
    pending = OSImage.objects.create(name="later", arch="arm64", source="/x")
    with pytest.raises(ValidationError, match="not a ready OS image"):
        node_request_reinstall(node=node, image=pending, by=None)
    node_request_reinstall(node=node, image=image, by=None)
    with pytest.raises(ValidationError, match="already has an install job in progress"):
        node_request_reinstall(node=Node.objects.get(pk=node.pk), image=image, by=None)
    assert InstallJob.objects.count() == 1


def test_plan_describes_the_install(client, node, image):
    node_request_reinstall(node=node, image=image, by=None)
    token = _token(node)
    # A client appending &key=value (iPXE does) still gets the plan.
    plan = client.get(f"/boot/{token}/?v=1&uefi=1").json()
    assert plan["image"]["sha256"] == image.artefact_sha256 and plan["image"]["size"] == len(ARTEFACT)
    assert plan["image"]["url"].endswith(f"/boot/{token}/image")
    assert plan["target"][0] == "/dev/mmcblk0" and plan["hostname"] == node.hostname
    assert plan["network"]["address"] == f"{node.ip}/24"
    assert plan["ssh_keys"] == ["ssh-ed25519 AAAAC3Nza bob@laptop"]
    assert "eth0" in client.get(f"/boot/{token}/netplan").content.decode()


def test_image_streams_with_range_and_resume(client, node, image):
    node_request_reinstall(node=node, image=image, by=None)
    token = _token(node)
    full = client.get(f"/boot/{token}/image")
    assert full.status_code == 200 and int(full["Content-Length"]) == len(ARTEFACT)
    assert hashlib.sha256(b"".join(full.streaming_content)).hexdigest() == image.artefact_sha256
    part = client.get(f"/boot/{token}/image", HTTP_RANGE="bytes=1000-")
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 1000-{len(ARTEFACT) - 1}/{len(ARTEFACT)}"
    assert b"".join(part.streaming_content) == ARTEFACT[1000:]
    assert client.get(f"/boot/{token}/image", HTTP_RANGE="bytes=99999999-").status_code == 416
    assert b"".join(client.get(f"/boot/{token}/image", HTTP_RANGE="bytes=-10").streaming_content) == ARTEFACT[-10:]


def test_events_done_and_the_reboot_after(client, node, image):
    job = node_request_reinstall(node=node, image=image, by=None)
    token = _token(node)
    response = client.post(
        f"/boot/{token}/events", {"stage": "writing", "percent": 45}, content_type="application/json"
    )
    assert response.status_code == 201
    job.refresh_from_db()
    assert (job.status, job.stage, job.percent) == (InstallJobStatus.RUNNING, "writing", 45)
    assert JobEvent.objects.filter(job=job, stage="writing", percent=45).exists()
    assert client.post(f"/boot/{token}/events", "not json", content_type="application/json").status_code == 400
    nan = client.post(f"/boot/{token}/events", '{"stage": "x", "percent": NaN}', content_type="application/json")
    assert nan.status_code == 400
    # "done" before the whole image went out is refused: a token alone cannot fake an install.
    assert client.post(f"/boot/{token}/done").status_code == 409
    _download(client, token)
    assert client.post(f"/boot/{token}/done").json()["status"] == "succeeded"
    node.refresh_from_db()
    job.refresh_from_db()
    assert (node.boot_mode, node.state, node.image_id) == (BootMode.LOCAL, NodeState.DEPLOYED, image.pk)
    assert job.status == InstallJobStatus.SUCCEEDED and job.boot_tokens.get().revoked_at is not None
    # The board reboots right after "done": it is answered as local and its token is dead.
    host = next(h for h in site_snapshot(node.site).hosts if h.node_id == node.pk)
    assert host.answer == "local"
    assert client.get(f"/boot/{token}/").status_code == 410
    assert client.post(f"/boot/{token}/done").status_code == 410


def test_failure_returns_the_node_to_how_it_booted(client, site, image):
    node = make_node(site=site, n=3, boot_mode=BootMode.NETBOOT, image=image)
    node_request_reinstall(node=node, image=image, by=None)
    token = _token(node)
    client.post(f"/boot/{token}/failed", {"error": "no SD card"}, content_type="application/json")
    node.refresh_from_db()
    assert (node.boot_mode, node.state) == (BootMode.NETBOOT, NodeState.FAILED)
    assert "no SD card" in InstallJob.objects.get().error


def test_token_misuse(client, node, site, image):
    node_request_reinstall(node=node, image=image, by=None)
    other = make_node(site=site, n=2)
    node_request_reinstall(node=other, image=image, by=None)
    token, other_token = _token(node), _token(other)
    assert client.get("/boot/not-a-token/").status_code == 404
    assert client.get(f"/boot/{token[:-1]}x/").status_code == 404
    # Each token is bound to its own job: finishing one leaves the other alive.
    _download(client, other_token)
    client.post(f"/boot/{other_token}/done")
    assert client.get(f"/boot/{token}/").status_code == 200
    assert client.get(f"/boot/{other_token}/").status_code == 410  # done revoked it
    BootToken.objects.filter(job__node=node).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.post(f"/boot/{token}/events", {"stage": "x"}, "application/json").status_code == 410
    assert client.get(f"/boot/{token}/").status_code == 410


def test_rate_limit_per_token(client, node, image, settings):
    settings.PINET_BOOT_RATE_PER_MINUTE = 3
    node_request_reinstall(node=node, image=image, by=None)
    token = _token(node)
    codes = [client.get(f"/boot/{token}/").status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]


def test_cancel_and_watchdog(node, site, image, operator):
    job = node_request_reinstall(node=node, image=image, by=operator)
    install_job_cancel(job=job, by=operator)
    node.refresh_from_db()
    assert (node.boot_mode, node.state) == (BootMode.LOCAL, NodeState.READY)
    assert InstallJob.objects.get(pk=job.pk).status == InstallJobStatus.CANCELLED
    job = node_request_reinstall(node=node, image=image, by=operator)
    InstallJob.objects.filter(pk=job.pk).update(deadline=timezone.now() - timedelta(minutes=1))
    assert install_jobs_expire() == [job.pk]
    job.refresh_from_db()
    node.refresh_from_db()
    assert job.status == InstallJobStatus.FAILED and "No progress from the board" in job.error
    assert node.boot_mode == BootMode.LOCAL and node.state == NodeState.FAILED


def test_ipxe_clients_get_scripts(client, site, image):
    pc = make_node(site=site, n=5, board_model="x86-uefi", mac="52:54:00:00:00:05")
    amd64 = OSImage.objects.create(name="debian", arch="amd64", source="/x", state="ready", artefact_path="/x")
    board = {"REMOTE_ADDR": pc.ip}
    assert client.get("/boot/ipxe/?mac=52-54-00-00-00-05&site=lab", **board).content.decode().rstrip().endswith("exit")
    node_request_reinstall(node=pc, image=amd64, by=None)
    # Only the board itself (its reserved address) is handed the script with its token.
    stranger = client.get("/boot/ipxe/?mac=52-54-00-00-00-05&site=lab", REMOTE_ADDR="192.0.2.77").content.decode()
    assert "/boot/" not in stranger and stranger.rstrip().endswith("exit")
    script = client.get("/boot/ipxe/?mac=52-54-00-00-00-05&site=lab", **board).content.decode()
    assert script.startswith("#!ipxe") and f"/boot/{_token(pc)}/?v=1&format=ipxe" in script
    installer_script = client.get(f"/boot/{_token(pc)}/", HTTP_USER_AGENT="iPXE/1.0.0+").content.decode()
    assert installer_script.startswith("#!ipxe")  # no installer image yet: it says so and exits
    assert "no ready installer image" in installer_script


@pytest.mark.django_db(transaction=True)
def test_concurrent_reinstall_requests_make_one_job(site, image):
    node = make_node(site=site, n=1)
    errors, jobs = [], []

    def request():
        try:
            jobs.append(node_request_reinstall(node=Node.objects.get(pk=node.pk), image=image, by=None).pk)
        except ValidationError as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(jobs) == 1 and len(errors) == 3
    assert InstallJob.objects.filter(node=node).count() == 1


def test_plan_for_the_busybox_agent_is_shell_assignments(client, node, image):
    import subprocess

    node_request_reinstall(node=node, image=image, by=None)
    Node.objects.filter(pk=node.pk).update(hostname="it-s")
    text = client.get(f"/boot/{_token(node)}/?format=env").content.decode()
    shell = subprocess.run(
        ["sh", "-c", text + 'printf "%s|%s" "$PINET_IMAGE_SHA256" "$PINET_TARGETS"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout == f"{image.artefact_sha256}|/dev/mmcblk0 /dev/sda /dev/nvme0n1"
    assert client.get("/boot/agent.sh").content.startswith(b"#!/bin/sh")


def test_boot_mode_cannot_change_under_a_running_install(node, image):
    from nodes.services import node_set_boot_mode

    node_request_reinstall(node=node, image=image, by=None)
    with pytest.raises(ValidationError, match="cancel that job first"):
        node_set_boot_mode(node=Node.objects.get(pk=node.pk), mode="netboot", by=None)


def test_done_after_cancel_is_gone_not_an_error(client, node, image):
    job = node_request_reinstall(node=node, image=image, by=None)
    token = _token(node)
    _download(client, token)
    install_job_cancel(job=job, by=None)
    assert client.post(f"/boot/{token}/done").status_code == 410


def test_job_history_stays_with_the_tenant_it_was_for(node, image, other_customer, customer, other_tenant):
    job = node_request_reinstall(node=node, image=image, by=None)
    install_job_cancel(job=job, by=None)
    Node.objects.filter(pk=node.pk).update(tenant=other_tenant)
    assert list(InstallJob.objects.visible_to(customer)) == [job]
    assert not InstallJob.objects.visible_to(other_customer).exists()


def test_a_site_boot_url_base_reaches_option_224_the_plan_and_ipxe(client, node, image, settings):
    from nodes.services import site_update

    settings.PINET_BOOT_URL_BASE = "https://pinet.example"
    site_update(site=node.site, by=None, boot_url_base="http://203.0.113.1:8080")
    node_request_reinstall(node=node, image=image, by=None)
    url = live_boot_urls(node.site)[node.pk]
    assert url.startswith("http://203.0.113.1:8080/boot/")
    plan = client.get(f"/boot/{_token(node)}/?v=1").json()
    assert plan["image"]["url"].startswith("http://203.0.113.1:8080/boot/")
    assert site_snapshot(node.site).ipxe_script_url.startswith("http://203.0.113.1:8080/boot/ipxe/")
