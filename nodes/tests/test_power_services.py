"""Power services: settings encrypted at rest, requests rate-limited and audited, actions run
once, and a failing driver leaves an install job waiting with word of what to do."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import F
from django.utils import timezone

from nodes.choices import NodeState, PowerActionStatus, PowerState
from nodes.models import AuditLog, Node, PowerAction, Site
from nodes.power.base import PowerError
from nodes.power.crypto import power_secrets_decrypt, power_secrets_rotate
from nodes.power.selectors import node_power_settings, node_power_state
from nodes.power.services import (
    CONFIG_WAIT,
    PowerRateLimited,
    node_power,
    node_power_set,
    power_action_run,
)
from provisioning.choices import InstallJobStatus
from tests.factories import make_node, make_ready_image

from .plug import TOKEN, Plug

pytestmark = pytest.mark.django_db

COMMUNITY = "rw-community-8f3a"


@pytest.fixture
def plug(settings):
    settings.PINET_WEBHOOK_ALLOW_PRIVATE = True  # the test plug listens on 127.0.0.1
    plug = Plug()
    yield plug
    plug.close()


def _webhook_node(site, plug, **fields) -> Node:
    node = make_node(site=site, n=1, **fields)
    return node_power_set(node=node, driver="webhook", params=plug.shelly_params(), secrets={"token": TOKEN}, by=None)


def _site_applied(site) -> None:
    """What a boot server's worker does after a change: the site's configuration is live."""
    Site.objects.filter(pk=site.pk).update(config_applied=F("config_requested"))


def _raw_node_row(node) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT power_params, power_secrets FROM nodes_node WHERE id = %s", [node.pk])
        return " ".join(str(value) for value in cursor.fetchone())


def test_secrets_are_encrypted_at_rest_and_never_shown(site, operator):
    node = make_node(site=site, n=1)
    node_power_set(
        node=node,
        driver="snmp-poe",
        params={"host": "192.0.2.2", "pse_port": 4},
        secrets={"community": COMMUNITY},
        by=operator,
    )
    raw = _raw_node_row(node)
    assert COMMUNITY not in raw and "192.0.2.2" in raw
    assert node_power_settings(node=Node.objects.get(pk=node.pk))["secrets"] == {
        "community": "set",
        "auth_key": "not set",
        "priv_key": "not set",
    }
    entry = AuditLog.objects.get(action="node.power_settings")
    assert COMMUNITY not in str(entry.data) and entry.data["secrets"] == {"community": "set"}
    assert power_secrets_decrypt(node_id=node.pk, token=Node.objects.get(pk=node.pk).power_secrets) == {
        "community": COMMUNITY
    }


def test_secrets_are_write_only(site):
    node = make_node(site=site, n=1)
    params = {"host": "192.0.2.2", "pse_port": 4}
    node_power_set(node=node, driver="snmp-poe", params=params, secrets={"community": COMMUNITY}, by=None)
    # Left out: kept. Changing other parameters does not need the secret again.
    node_power_set(node=node, driver="snmp-poe", params={**params, "pse_port": 5}, by=None)
    node.refresh_from_db()
    assert node.power_params["pse_port"] == 5
    assert power_secrets_decrypt(node_id=node.pk, token=node.power_secrets) == {"community": COMMUNITY}
    # null removes it, and v2c without a community is refused, saying so.
    with pytest.raises(ValidationError) as error:
        node_power_set(node=node, driver="snmp-poe", params=params, secrets={"community": None}, by=None)
    assert "community" in error.value.message_dict
    # Another driver drops the old driver's secrets.
    node_power_set(node=node, driver="manual", params={}, by=None)
    node.refresh_from_db()
    assert (node.power_driver, node.power_params, node.power_secrets) == ("manual", {}, "")


def test_a_secret_the_parameters_do_not_use_is_named(site):
    node = make_node(site=site, n=1)
    with pytest.raises(ValidationError) as error:
        node_power_set(
            node=node, driver="webhook", params={"cycle": "http://192.0.2.50/c"}, secrets={"token": "t"}, by=None
        )
    assert error.value.message_dict == {"token": ["Not used with these parameters (only with auth bearer)."]}


def test_a_ciphertext_copied_to_another_node_is_refused(site):
    first, second = make_node(site=site, n=1), make_node(site=site, n=2)
    node_power_set(
        node=first, driver="snmp-poe", params={"host": "192.0.2.2", "pse_port": 1}, secrets={"community": "c1"}, by=None
    )
    first.refresh_from_db()
    with pytest.raises(PowerError, match="belong to another node"):
        power_secrets_decrypt(node_id=second.pk, token=first.power_secrets)


def test_production_without_a_key_stores_no_secrets(site, settings):
    settings.EMBEDDED, settings.PINET_POWER_KEYS = False, []
    node = make_node(site=site, n=1)
    params = {"host": "192.0.2.2", "pse_port": 1}
    with pytest.raises(ValidationError, match="PINET_POWER_KEY, which is not set"):
        node_power_set(node=node, driver="snmp-poe", params=params, secrets={"community": "c"}, by=None)


def test_key_rotation(site, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.EMBEDDED, settings.PINET_POWER_KEYS = False, [old]
    node = make_node(site=site, n=1)
    node_power_set(
        node=node, driver="snmp-poe", params={"host": "192.0.2.2", "pse_port": 1}, secrets={"community": "c"}, by=None
    )
    token = Node.objects.get(pk=node.pk).power_secrets
    settings.PINET_POWER_KEYS = [new, old]  # the new key in front; the old one still reads
    assert power_secrets_decrypt(node_id=node.pk, token=token) == {"community": "c"}
    rotated = power_secrets_rotate(token=token)
    settings.PINET_POWER_KEYS = [new]
    assert power_secrets_decrypt(node_id=node.pk, token=rotated) == {"community": "c"}
    with pytest.raises(PowerError, match="cannot be decrypted with PINET_POWER_KEY"):
        power_secrets_decrypt(node_id=node.pk, token=token)


def test_request_is_audited_and_queued_on_the_sites_queue_after_commit(
    site, plug, operator, monkeypatch, django_capture_on_commit_callbacks
):
    from nodes import tasks
    from provisioning import tasks as provisioning_tasks

    queued = []
    monkeypatch.setattr(tasks.run_power_action_task, "apply_async", lambda args, queue: queued.append((args, queue)))
    monkeypatch.setattr(provisioning_tasks.apply_site_config_task, "apply_async", lambda *a, **k: None)
    node = _webhook_node(site, plug)
    with django_capture_on_commit_callbacks(execute=True):
        action = node_power(node=node, action="cycle", by=operator, reason="stuck at boot")
        assert queued == []  # nothing leaves before the transaction commits
    assert queued == [((action.pk,), "site.lab")]
    assert action.status == PowerActionStatus.QUEUED and action.requested_by_label == "alice"
    entry = AuditLog.objects.get(action="node.power_cycle")
    assert entry.data["power_action"] == action.pk and entry.data["reason"] == "stuck at boot"


def test_action_runs_once(site, plug):
    node = _webhook_node(site, plug)
    action = node_power(node=node, action="off", by=None)
    assert power_action_run(action_id=action.pk) is None
    action.refresh_from_db()
    assert (action.status, action.power_state) == (PowerActionStatus.SUCCEEDED, PowerState.OFF)
    assert "HTTP 200" in action.detail and action.started_at and action.finished_at
    sent = len(plug.requests)
    assert power_action_run(action_id=action.pk) is None  # a task delivered twice switches nothing twice
    assert len(plug.requests) == sent and plug.on is False
    assert node_power_state(node=node) == action
    assert AuditLog.objects.filter(action="power_action.succeeded", object_id=str(action.pk)).exists()


def test_cycle_waits_for_the_site_to_apply_its_configuration(site, plug):
    node = _webhook_node(site, plug)
    Site.objects.filter(pk=site.pk).update(config_requested=F("config_requested") + 1)
    action = node_power(node=node, action="cycle", by=None)
    assert action.wait_for_config > Site.objects.get(pk=site.pk).config_applied
    assert power_action_run(action_id=action.pk, sleep=lambda s: None) == 5.0
    assert plug.requests == [] and PowerAction.objects.get(pk=action.pk).status == PowerActionStatus.QUEUED
    PowerAction.objects.filter(pk=action.pk).update(created=timezone.now() - CONFIG_WAIT - timedelta(seconds=1))
    assert power_action_run(action_id=action.pk) is None
    action.refresh_from_db()
    assert action.status == PowerActionStatus.FAILED and "did not apply its new boot configuration" in action.error
    assert plug.requests == []


def test_second_cycle_within_the_interval_is_refused(site, plug, settings):
    settings.PINET_POWER_MIN_INTERVAL = 30
    node = _webhook_node(site, plug)
    first = node_power(node=node, action="cycle", by=None)
    with pytest.raises(PowerRateLimited, match=r"had a power cycle 0 s ago; .* at least 30 s apart") as refused:
        node_power(node=node, action="cycle", by=None)
    assert 0 < refused.value.retry_after <= 30
    assert node_power(node=node, action="status", by=None).status == PowerActionStatus.QUEUED  # reads are not limited
    PowerAction.objects.filter(pk=first.pk).update(created=timezone.now() - timedelta(seconds=31))
    assert node_power(node=node, action="cycle", by=None).status == PowerActionStatus.QUEUED


def test_at_most_n_changes_an_hour(site, plug, settings):
    settings.PINET_POWER_MIN_INTERVAL, settings.PINET_POWER_MAX_PER_HOUR = 0, 2
    node = _webhook_node(site, plug)
    node_power(node=node, action="off", by=None)
    node_power(node=node, action="on", by=None)
    with pytest.raises(PowerRateLimited, match=r"had 2 power changes in the last hour") as refused:
        node_power(node=node, action="cycle", by=None)
    assert 3500 < refused.value.retry_after <= 3600


def test_status_reads_are_not_duplicated(site, plug):
    node = _webhook_node(site, plug)
    first = node_power(node=node, action="status", by=None)
    assert node_power(node=node, action="status", by=None) == first


def test_manual_driver_is_recorded_not_queued(site, django_capture_on_commit_callbacks):
    node = make_node(site=site, n=1)
    with django_capture_on_commit_callbacks() as callbacks:
        action = node_power(node=node, action="cycle", by=None)
    assert callbacks == []
    assert action.status == PowerActionStatus.MANUAL and "pi-1 has no remote power control" in action.detail
    # A person can be told as often as needed: manual requests are not rate-limited.
    assert node_power(node=node, action="cycle", by=None).status == PowerActionStatus.MANUAL


def test_suspended_board_can_be_switched_off_not_on(site, plug):
    node = _webhook_node(site, plug, state=NodeState.SUSPENDED)
    with pytest.raises(ValidationError, match="suspended: it can be switched off, not on"):
        node_power(node=node, action="cycle", by=None)
    assert node_power(node=node, action="off", by=None).status == PowerActionStatus.QUEUED


def test_unreadable_credentials_fail_the_action_clearly(site, plug, settings):
    node = _webhook_node(site, plug)
    action = node_power(node=node, action="off", by=None)
    settings.PINET_POWER_KEYS, settings.SECRET_KEY = [], "another-secret-key-than-the-one-that-encrypted-them"
    power_action_run(action_id=action.pk)
    action.refresh_from_db()
    assert action.status == PowerActionStatus.FAILED and "cannot be decrypted with PINET_POWER_KEY" in action.error


def test_a_running_action_whose_worker_died_fails(site, plug):
    node = _webhook_node(site, plug)
    action = node_power(node=node, action="off", by=None)
    PowerAction.objects.filter(pk=action.pk).update(status="running", started_at=timezone.now() - timedelta(hours=1))
    power_action_run(action_id=action.pk)
    assert "stopped before it finished" in PowerAction.objects.get(pk=action.pk).error


# --- The hooks: reinstalls and boot-mode switches


@pytest.fixture
def image(tmp_path):
    return make_ready_image(tmp_path, b"image" * 1000)


def test_reinstall_with_a_failing_driver_leaves_the_job_waiting(site, plug, image, operator):
    from provisioning.services import node_request_reinstall

    node = _webhook_node(site, plug, state=NodeState.DEPLOYED)
    node = node_power_set(node=node, driver="webhook", params={"cycle": f"{plug.base}/fail"}, secrets={}, by=operator)
    job = node_request_reinstall(node=node, image=image, by=operator)
    action = PowerAction.objects.get(job=job)
    assert (action.action, action.reason) == ("cycle", f"install job {job.pk}")
    _site_applied(site)
    power_action_run(action_id=action.pk)
    action.refresh_from_db()
    job.refresh_from_db()
    assert action.status == PowerActionStatus.FAILED and "HTTP 500" in action.error
    assert job.status == InstallJobStatus.PENDING  # waiting, not failed: the board can be rebooted by hand
    last = job.events.order_by("-pk").first()
    assert last.stage == "power" and last.message.startswith("Power-cycle through the webhook driver failed.")
    assert "Power-cycle the board by hand" in last.message and "HTTP 500" not in last.message  # no infra for customers


def test_reinstall_cycles_through_the_driver(site, plug, image):
    from provisioning.services import node_request_reinstall

    node = _webhook_node(site, plug, state=NodeState.DEPLOYED)
    job = node_request_reinstall(node=node, image=image, by=None)
    _site_applied(site)
    power_action_run(action_id=PowerAction.objects.get(job=job).pk, sleep=lambda s: None)
    assert [r["method"] for r in plug.requests] == ["POST", "POST"] and plug.on
    assert "Power-cycled through the webhook driver" in job.events.order_by("-pk").first().message


def test_reinstall_with_the_manual_driver_says_by_hand(site, image):
    from provisioning.services import node_request_reinstall

    node = make_node(site=site, n=1, state=NodeState.DEPLOYED)
    job = node_request_reinstall(node=node, image=image, by=None)
    assert not PowerAction.objects.exists()
    assert job.events.filter(message__contains="power-cycle the board by hand").exists()


def test_reinstall_right_after_a_cycle_is_not_refused(site, plug, image):
    from provisioning.services import node_request_reinstall

    node = _webhook_node(site, plug, state=NodeState.DEPLOYED)
    node_power(node=node, action="cycle", by=None)
    job = node_request_reinstall(node=node, image=image, by=None)  # the reinstall itself goes ahead
    assert job.status == InstallJobStatus.PENDING
    assert job.events.filter(message__startswith="Not power-cycled: ").exists()


def test_boot_mode_switch_reboots_through_the_driver(site, plug):
    from nodes.services import node_set_boot_mode

    node = _webhook_node(site, plug)
    node_set_boot_mode(node=node, mode="netboot", by=None)
    action = PowerAction.objects.get(node=node)
    assert (action.action, action.reason) == ("cycle", "boot mode local -> netboot")
    assert action.wait_for_config == Site.objects.get(pk=site.pk).config_requested


def test_boot_mode_switch_with_the_manual_driver_queues_nothing(site):
    from nodes.services import node_set_boot_mode

    node = make_node(site=site, n=1)
    node_set_boot_mode(node=node, mode="netboot", by=None)
    assert not PowerAction.objects.exists()


def test_rekey_command(site, settings):
    from io import StringIO

    from django.core.management import CommandError, call_command

    from nodes.checks import check_power_key

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.EMBEDDED, settings.PINET_POWER_KEYS = False, [old]
    node = make_node(site=site, n=1)
    node_power_set(
        node=node, driver="snmp-poe", params={"host": "192.0.2.2", "pse_port": 1}, secrets={"community": "c"}, by=None
    )
    settings.PINET_POWER_KEYS = [new, old]
    out = StringIO()
    call_command("pinet_power_rekey", stdout=out)
    assert "of 1 nodes" in out.getvalue()
    settings.PINET_POWER_KEYS = [new]
    call_command("pinet_power_rekey", "--check", stdout=StringIO())
    settings.PINET_POWER_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="1 nodes' power credentials cannot be decrypted"):
        call_command("pinet_power_rekey", "--check", stdout=StringIO(), stderr=StringIO())
    assert check_power_key() == []
    settings.PINET_POWER_KEYS = []
    assert [m.id for m in check_power_key()] == ["pinet.nodes.W001"]


def test_the_task_runs_the_action(site, plug):
    from nodes.tasks import run_power_action_task

    node = _webhook_node(site, plug)
    action = node_power(node=node, action="off", by=None)
    run_power_action_task.apply(args=(action.pk,))  # in this process, as a worker would
    assert PowerAction.objects.get(pk=action.pk).status == PowerActionStatus.SUCCEEDED and plug.on is False
