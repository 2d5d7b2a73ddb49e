"""Writes for power control. Settings are validated per driver and their secrets encrypted;
every request is rate-limited and audited in the transaction that records it, and a worker on
the site's queue runs it after commit (drivers talk to switches and plugs on the boot network,
and no web request waits on them)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from nodes.choices import (
    POWER_ACTION_TRANSITIONS,
    POWER_CHANGING,
    NodeState,
    PowerActionKind,
    PowerActionStatus,
    PowerDriver,
)
from nodes.models import Node, PowerAction, Site
from nodes.services import actor_label, audit_log_write, user_or_none
from pinet.lifecycle import InvalidTransition, transition

from . import driver_class
from .base import ManualPowerRequired, PowerError, Target
from .crypto import PowerKeyMissing, power_secrets_decrypt, power_secrets_encrypt

log = logging.getLogger(__name__)

# How long a reboot waits for its site to apply the configuration it is for, and after how
# long a "running" action is taken for the work of a worker that died.
CONFIG_WAIT = timedelta(minutes=5)
CONFIG_POLL_SECONDS = 5.0
STALE_RUN = timedelta(minutes=15)

_S = PowerActionStatus


class PowerRateLimited(Exception):  # noqa: N818 (a refusal, named like Django's Throttled)
    """Refused: the board's power changed too recently or too often. ``retry_after`` is in seconds."""

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


# --- Settings


def power_settings_clean(
    *, node: Node | None, driver: str, params: dict[str, Any], secrets: dict[str, Any] | None
) -> tuple[dict, dict, dict]:
    """Validate power settings as node_power_set would store them: (params, secrets, the
    secrets stored before). Raises ValidationError keyed by parameter. The admin form calls
    it too, so a mistake is shown on the form, not found on save."""
    if driver not in PowerDriver.values:
        choices = ", ".join(PowerDriver.values)
        raise ValidationError({"driver": f"{driver!r} is not a power driver: use one of {choices}."})
    cls = driver_class(driver)
    stored: dict[str, Any] = {}
    unreadable = ""
    if node is not None and node.pk and node.power_secrets:
        try:
            stored = power_secrets_decrypt(node_id=node.pk, token=node.power_secrets)
        except PowerError as exc:
            unreadable = str(exc)  # only matters if the new settings still need them
    # Another driver's secrets mean nothing to this one: they are dropped, not carried over.
    merged = {key: value for key, value in stored.items() if key in cls.secret_fields}
    for key, value in (secrets or {}).items():
        if value is None or value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    try:
        clean_params, clean_secrets = cls.clean(params=params, secrets=merged)
    except ValidationError as exc:
        if unreadable and hasattr(exc, "error_dict"):
            exc.error_dict.setdefault("secrets", []).append(ValidationError(unreadable))
        raise
    # A stored secret the new parameters do not use is dropped; one sent now is a mistake to name.
    unused = {
        key: [f"Not used with these parameters (only with {cls.secret_uses.get(key, 'other parameters')})."]
        for key, value in (secrets or {}).items()
        if value not in (None, "") and key not in clean_secrets
    }
    if unused:
        raise ValidationError(unused)
    if clean_secrets and not (settings.PINET_POWER_KEYS or settings.EMBEDDED):
        raise ValidationError({"secrets": str(PowerKeyMissing())})
    return clean_params, clean_secrets, stored


@transaction.atomic
def node_power_set(
    *,
    node: Node,
    driver: str,
    params: dict[str, Any],
    secrets: dict[str, Any] | None = None,
    by: AbstractBaseUser | None,
) -> Node:
    """Set how the board's power is switched (operators only). ``secrets`` is write-only: a
    key with a value sets it, a key with null (or "") removes it, a key left out keeps what is
    stored. Secrets are encrypted; the audit entry names them but never holds a value."""
    node = Node.objects.select_for_update().get(pk=node.pk)
    clean_params, clean_secrets, stored = power_settings_clean(node=node, driver=driver, params=params, secrets=secrets)
    token = power_secrets_encrypt(node_id=node.pk, secrets=clean_secrets)
    secret_changes = {
        name: "set" if name not in stored else ("changed" if stored[name] != clean_secrets[name] else "unchanged")
        for name in clean_secrets
    } | {name: "removed" for name in stored if name not in clean_secrets}
    before = {"driver": node.power_driver, "params": node.power_params}
    Node.objects.filter(pk=node.pk).update(
        power_driver=driver, power_params=clean_params, power_secrets=token, updated=timezone.now()
    )
    node.power_driver, node.power_params, node.power_secrets = driver, clean_params, token
    audit_log_write(
        actor=by,
        action="node.power_settings",
        obj=node,
        data={
            "driver": [before["driver"], driver],
            "params": [before["params"], clean_params],
            "secrets": secret_changes,
        },
    )
    return node


# --- Requests


def _rate_check(node: Node, now) -> None:
    """No flapping: changes at least PINET_POWER_MIN_INTERVAL apart, at most
    PINET_POWER_MAX_PER_HOUR in any hour. The rows are the memory, so every process agrees."""
    recent = PowerAction.objects.filter(
        node=node, action__in=POWER_CHANGING, created__gt=now - timedelta(hours=1)
    ).exclude(status=_S.MANUAL)
    interval = settings.PINET_POWER_MIN_INTERVAL
    last = recent.order_by("-created", "-pk").first()
    if last is not None and interval and last.created > now - timedelta(seconds=interval):
        allowed = last.created + timedelta(seconds=interval)
        ago = max(0, int((now - last.created).total_seconds()))
        raise PowerRateLimited(
            f"{node.hostname} had a power {last.action} {ago} s ago; power changes to one board are at least "
            f"{interval} s apart (PINET_POWER_MIN_INTERVAL). Try again after {allowed:%H:%M:%S} UTC.",
            retry_after=max(1, math.ceil((allowed - now).total_seconds())),
        )
    most = settings.PINET_POWER_MAX_PER_HOUR
    count = recent.count()
    if count >= most:
        # The change whose leaving the hour frees a place.
        freeing = recent.order_by("created", "pk")[count - most]
        allowed = freeing.created + timedelta(hours=1)
        raise PowerRateLimited(
            f"{node.hostname} had {count} power changes in the last hour, the most allowed "
            f"(PINET_POWER_MAX_PER_HOUR={most}). Try again after {allowed:%H:%M:%S} UTC.",
            retry_after=max(1, math.ceil((allowed - now).total_seconds())),
        )


def _target(node: Node) -> Target:
    return Target(node_id=node.pk, hostname=node.hostname, mac=node.mac)


@transaction.atomic
def node_power(*, node: Node, action: str, by: AbstractBaseUser | None, reason: str = "", job=None) -> PowerAction:
    """Ask for a power action (on, off, cycle, status) on the board; returns its PowerAction.

    With the manual driver nothing is queued: the action is recorded as ``manual`` and its
    ``detail`` tells the person what to do. Otherwise the action is queued for a worker on the
    site's queue after commit. Changes (on, off, cycle) are rate-limited: PowerRateLimited
    says when they are allowed again. An on or cycle waits for the site's pending DHCP change."""
    if action not in PowerActionKind.values:
        choices = ", ".join(PowerActionKind.values)
        raise ValidationError({"action": f"{action!r} is not a power action: use one of {choices}."})
    # The row lock serialises requests for one board across processes: the rate check and
    # the insert it guards cannot interleave.
    node = Node.objects.select_for_update().select_related("site").get(pk=node.pk)
    if node.state == NodeState.SUSPENDED and action in (PowerActionKind.ON, PowerActionKind.CYCLE):
        raise ValidationError({"action": f"{node.hostname} is suspended: it can be switched off, not on."})
    driver = driver_class(node.power_driver)
    now = timezone.now()
    if driver.remote and action == PowerActionKind.STATUS:
        pending = PowerAction.objects.filter(node=node, action=action, status__in=[_S.QUEUED, _S.RUNNING]).first()
        if pending is not None:
            return pending  # one read in flight is enough
    if driver.remote and action in POWER_CHANGING:
        _rate_check(node, now)
    row = PowerAction(
        node=node,
        tenant_id=node.tenant_id,
        action=action,
        driver=node.power_driver,
        requested_by=user_or_none(by),
        requested_by_label=actor_label(by),
        reason=reason[:200],
        job=job,
    )
    if not driver.remote:
        row.status, row.finished_at = _S.MANUAL, now
        try:
            result = driver(params=node.power_params, target=_target(node)).run(action)
            row.power_state, row.detail = result.state, result.detail
        except ManualPowerRequired as exc:
            row.detail = str(exc)
    elif action in (PowerActionKind.ON, PowerActionKind.CYCLE):
        row.wait_for_config = Site.objects.values_list("config_requested", flat=True).get(pk=node.site_id)
    row.save()
    audit_log_write(
        actor=by,
        action=f"node.power_{action}",
        obj=node,
        data={"power_action": row.pk, "status": row.status, "driver": row.driver, "reason": row.reason},
    )
    if row.status == _S.QUEUED:
        from nodes.tasks import run_power_action_task

        action_id, queue = row.pk, node.site.queue
        transaction.on_commit(lambda: run_power_action_task.apply_async((action_id,), queue=queue))
    return row


def node_power_reboot(*, node: Node, by: AbstractBaseUser | None, reason: str, job=None) -> PowerAction | None:
    """Reboot the board so a change takes effect (a reinstall, a boot-mode switch): a cycle
    through its driver when it has one. When it cannot (manual driver, rate limit) nothing
    fails: the job's timeline says a person has to power-cycle the board."""
    from provisioning.choices import EventSource
    from provisioning.models import JobEvent

    if not driver_class(node.power_driver).remote:
        if job is not None:
            JobEvent.objects.create(
                job=job,
                source=EventSource.PINET,
                stage="power",
                message=f"{node.hostname} has no power driver: power-cycle the board by hand.",
            )
        return None
    try:
        action = node_power(node=node, action=PowerActionKind.CYCLE, by=by, reason=reason, job=job)
    except PowerRateLimited as exc:
        if job is not None:
            JobEvent.objects.create(
                job=job,
                source=EventSource.PINET,
                stage="power",
                message=f"Not power-cycled: {exc} Power-cycle the board by hand, or ask for a power-cycle then.",
            )
        return None
    if job is not None:
        JobEvent.objects.create(
            job=job,
            source=EventSource.PINET,
            stage="power",
            message=f"Power-cycle {action.pk} queued through the {action.driver} driver.",
        )
    return action


# --- Running (the worker)


def _finish(row: PowerAction, *, to: str, error: str = "", state: str = "", detail: str = "") -> None:
    from provisioning.choices import ACTIVE, EventSource
    from provisioning.models import JobEvent

    with transaction.atomic():
        transition(
            obj=row,
            table=POWER_ACTION_TRANSITIONS,
            to=to,
            error=error[:4000],
            power_state=state,
            detail=detail[:4000],
            finished_at=timezone.now(),
        )
        audit_log_write(
            actor=None,
            action=f"power_action.{to}",
            obj=row,
            data={"node": row.node.hostname, "action": row.action, "error": error[:500]},
        )
        if row.job_id is not None and row.job.status in ACTIVE:
            if to == _S.FAILED:
                # The job keeps waiting: the board may still be rebooted by hand, and the
                # installer's first call moves the job on whatever switched it.
                # The reason names switches, plugs and addresses: the customer's timeline
                # says what to do, operators read why in the power action.
                message = (
                    f"Power-{row.action} through the {row.driver} driver failed. Power-cycle the board by hand "
                    f"(operators: the reason is in power action {row.pk} on the board's page)."
                )
            else:
                done = {"cycle": "Power-cycled", "on": "Switched on", "off": "Switched off"}.get(row.action, "Read")
                message = f"{done} through the {row.driver} driver; waiting for the board to boot."
            JobEvent.objects.create(job=row.job, source=EventSource.PINET, stage="power", message=message[:2000])


def power_action_run(*, action_id: int, sleep: Callable[[float], None] = time.sleep) -> float | None:
    """Run one queued action (the task's body) and record what came of it. Returns the seconds
    to wait before trying again (its site has not applied the configuration the reboot is for),
    or None when there is nothing more to do. Idempotent: an action no longer queued is left
    alone, so a task delivered twice switches nothing twice."""
    row = PowerAction.objects.select_related("node", "node__site", "job").filter(pk=action_id).first()
    if row is None:
        return None
    now = timezone.now()
    if row.status == _S.RUNNING and row.started_at and row.started_at < now - STALE_RUN:
        _finish(row, to=_S.FAILED, error="The worker running this action stopped before it finished.")
        return None
    if row.status != _S.QUEUED:
        return None
    node, site = row.node, row.node.site
    if row.wait_for_config and site.config_applied < row.wait_for_config:
        if now - row.created < CONFIG_WAIT:
            return CONFIG_POLL_SECONDS
        _finish(
            row,
            to=_S.FAILED,
            error=f"Site {site.slug} did not apply its new boot configuration within "
            f"{int(CONFIG_WAIT.total_seconds() // 60)} minutes (is a worker consuming queue {site.queue}?); "
            f"{node.hostname} was not rebooted into the old one.",
        )
        return None
    if node.power_driver != row.driver:
        _finish(row, to=_S.FAILED, error=f"The power driver changed to {node.power_driver} since this was asked.")
        return None
    try:
        transition(obj=row, table=POWER_ACTION_TRANSITIONS, to=_S.RUNNING, started_at=now)
    except InvalidTransition:
        return None  # another worker took it
    try:
        secrets = power_secrets_decrypt(node_id=node.pk, token=node.power_secrets)
        driver = driver_class(row.driver)(params=node.power_params, secrets=secrets, target=_target(node))
        result = driver.run(row.action, sleep=sleep)
    except (PowerError, ManualPowerRequired) as exc:
        _finish(row, to=_S.FAILED, error=str(exc))
        return None
    except Exception as exc:
        # A driver bug must not leave the action running and the job without word.
        log.exception("power action %s: the %s driver failed", row.pk, row.driver)
        error = f"The {row.driver} driver failed unexpectedly ({exc.__class__.__name__}); see the worker log."
        _finish(row, to=_S.FAILED, error=error)
        return None
    _finish(row, to=_S.SUCCEEDED, state=result.state, detail=result.detail)
    return None
