"""Writes for install jobs, boot tokens and worker checks."""

from __future__ import annotations

import base64
import difflib
import fcntl
import hashlib
import hmac
import os
import secrets
import socket
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from images.choices import ImageKind, ImageState
from nodes.choices import RASPBERRY_PI_MODELS, BootMode, DhcpBackend, NodeState
from nodes.models import Node, Site
from nodes.power.services import node_power_reboot
from nodes.services import audit_log_write, node_transition, reconfigure_sites, user_or_none, validated_save
from pinet.lifecycle import InvalidTransition, transition

from . import selectors
from .choices import ACTIVE, FINISHED, INSTALL_JOB_TRANSITIONS, EventSource, InstallJobStatus, RevisionStatus
from .dhcp import ConfigInvalid, DaemonError, backend_for
from .dhcp import dnsmasq as rendering_dnsmasq_daemon
from .dhcp import kea as kea_daemon
from .files import LOADED, TreeChange, TreeConflict, read_boot_dir, replace_symlink, sync_tftp, sync_tree
from .models import BootToken, ConfigRevision, InstallJob, JobEvent, WorkerCheck
from .rendering import ConfigRenderError, nfs, tftp
from .rendering import dnsmasq as rendering_dnsmasq
from .rendering.snapshot import IPXE_BIOS, IPXE_EFI_X64, SiteSnapshot, bundle_text, content_hash


@transaction.atomic
def install_job_create(*, node: Node, image, by: AbstractBaseUser | None) -> InstallJob:
    """Open a pending install job; at most one active job per node (a database rule)."""
    if image.state != ImageState.READY:
        raise ValidationError({"image": f"{image} is not ready to install (it is {image.state})."})
    job = InstallJob(node=node, image=image, requested_by=user_or_none(by), tenant_id=node.tenant_id)
    validated_save(job)
    audit_log_write(actor=by, action="install_job.create", obj=job, data={"node": node.hostname, "image": str(image)})
    return job


@transaction.atomic
def install_job_transition(
    *, job: InstallJob, to: str, by: AbstractBaseUser | None = None, error: str = ""
) -> InstallJob:
    """Move a job through INSTALL_JOB_TRANSITIONS, compare-and-swap; ending it revokes its tokens."""
    before = job.status
    now = timezone.now()
    changes: dict = {"error": error} if error else {}
    if to == InstallJobStatus.RUNNING:
        changes["started_at"] = now
    if to in FINISHED:
        changes["finished_at"] = now
    transition(obj=job, table=INSTALL_JOB_TRANSITIONS, to=to, **changes)
    if to in FINISHED:
        job.boot_tokens.filter(revoked_at__isnull=True).update(revoked_at=now)
    audit_log_write(actor=by, action="install_job.status", obj=job, data={"from": before, "to": to, "error": error})
    return job


def boot_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def boot_token_value(*, row: BootToken) -> str:
    """The token itself, derived from SECRET_KEY and the row's random nonce (256 bits): pinet can
    put it into DHCP option 224 on every re-render while the database holds only its hash."""
    mac = hmac.new(settings.SECRET_KEY.encode(), f"pinet-boot-token:{row.job_id}:{row.nonce}".encode(), "sha256")
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def boot_url(token: str, *, base: str) -> str:
    """The boot URL of a token, under ``base`` (the site's ``effective_boot_url_base``)."""
    # Already carries a query, so a client appending "&key=value" (iPXE does) keeps it valid.
    return f"{base}/boot/{token}/?v=1"


@transaction.atomic
def boot_token_issue(*, job: InstallJob, lifetime: timedelta | None = None) -> tuple[str, BootToken]:
    """Mint the job's boot token, revoking any earlier one; returns (token, row)."""
    now = timezone.now()
    lifetime = lifetime or timedelta(hours=settings.PINET_BOOT_TOKEN_HOURS)
    job.boot_tokens.filter(revoked_at__isnull=True).update(revoked_at=now)
    row = BootToken(job=job, nonce=secrets.token_hex(32), expires_at=now + lifetime)
    token = boot_token_value(row=row)
    row.token_hash = boot_token_hash(token)
    row.save()
    return token, row


class BootTokenUnknown(Exception):
    """No such token: answered 404, telling the caller nothing."""


class BootTokenGone(Exception):
    """The token existed but is expired or revoked: answered 410."""


def boot_token_resolve(*, token: str) -> BootToken:
    """The live token row for a presented token, compared in constant time."""
    digest = boot_token_hash(token or "")
    # The token and its job only: every boot call needs them fresh (revoked? job still
    # running?), while node, site, tenant and image load when a view needs them. A six-table
    # join here cost 2.5 ms a call, most of an installer request (benchmarks/boot_storm.py).
    row = next(iter(BootToken.objects.select_related("job").filter(token_hash=digest).order_by()[:1]), None)
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        raise BootTokenUnknown
    if row.revoked_at is not None or row.expires_at <= timezone.now() or row.job.status not in ACTIVE:
        raise BootTokenGone
    if row.used_at is None:
        BootToken.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=timezone.now())
    return row


# --- Reinstalls ---------------------------------------------------------------------------------


def arch_fits(node: Node, image) -> bool:
    wanted = {"x86-bios": {"amd64"}, "x86-uefi": {"amd64"}, "arm64-uefi": {"arm64"}}.get(
        node.board_model, {"arm64", "armhf"} if node.board_model in RASPBERRY_PI_MODELS else {"arm64", "armhf", "amd64"}
    )
    return image.arch in wanted


@transaction.atomic
def node_request_reinstall(*, node: Node, image, by: AbstractBaseUser | None) -> InstallJob:
    """Install ``image`` onto the node's SD card or disk: open the job, mint its boot token,
    put the node into install mode, reconfigure the site and power-cycle the board through its
    driver (with the manual driver the job's timeline says to do it by hand)."""
    node = Node.objects.select_for_update().get(pk=node.pk)
    if node.state == NodeState.SUSPENDED:
        raise ValidationError({"node": f"{node.hostname} is suspended; it cannot be reinstalled."})
    if image.state != ImageState.READY or image.kind != ImageKind.OS or not image.artefact_path:
        raise ValidationError({"image": f"{image} is not a ready OS image with an install artefact."})
    if not arch_fits(node, image):
        raise ValidationError({"image": f"{image} is for {image.arch}; {node.hostname} is a {node.board_model}."})
    job = install_job_create(node=node, image=image, by=by)
    job.previous_boot_mode = node.boot_mode if node.boot_mode != BootMode.INSTALL else BootMode.LOCAL
    job.deadline = timezone.now() + timedelta(hours=settings.PINET_BOOT_TOKEN_HOURS)
    job.stage = "waiting for the board to reboot"
    job.save(update_fields=["previous_boot_mode", "deadline", "stage", "updated"])
    boot_token_issue(job=job)
    Node.objects.filter(pk=node.pk).update(boot_mode=BootMode.INSTALL, updated=timezone.now())
    if node.state != NodeState.INSTALLING:
        node_transition(node=node, to=NodeState.INSTALLING, by=by, reason=f"install job {job.pk}")
    JobEvent.objects.create(
        job=job,
        source=EventSource.PINET,
        stage="requested",
        message=f"{image} requested by {by.get_username() if by else 'system'}; "
        "waiting for the board to reboot into the installer",
    )
    reconfigure_sites(node.site)
    # After the reconfigure: the cycle waits for the site to apply the installer's answer.
    node_power_reboot(node=node, by=by, reason=f"install job {job.pk}", job=job)
    return job


@transaction.atomic
def install_job_event(*, job: InstallJob, stage: str, percent: int | None, message: str = "") -> JobEvent:
    """A progress report from the installer: the job runs, its deadline moves on."""
    job = InstallJob.objects.select_for_update().get(pk=job.pk)
    if job.status == InstallJobStatus.PENDING:
        install_job_transition(job=job, to=InstallJobStatus.RUNNING)
    if job.status != InstallJobStatus.RUNNING:
        raise ValidationError(f"Job {job.pk} is {job.status}; it takes no more events.")
    percent = None if percent is None else max(0, min(100, int(percent)))
    event = JobEvent.objects.create(
        job=job, source=EventSource.NODE, stage=stage[:64], percent=percent, message=message[:2000]
    )
    deadline = timezone.now() + timedelta(minutes=settings.PINET_INSTALL_TIMEOUT_MINUTES)
    # A board that keeps reporting keeps its token too: it must still be able to say "done".
    job.boot_tokens.filter(revoked_at__isnull=True, expires_at__lt=deadline).update(expires_at=deadline)
    InstallJob.objects.filter(pk=job.pk).update(
        stage=stage[:64],
        percent=percent if percent is not None else job.percent,
        updated=timezone.now(),
        deadline=deadline,
    )
    return event


@transaction.atomic
def install_job_finish(
    *, job: InstallJob, ok: bool, error: str = "", by: AbstractBaseUser | None = None, cancelled: bool = False
) -> InstallJob:
    """End a job in one transaction. Success: the node boots from its own storage from now on
    (so a reboot right after "done" never installs again), its token is revoked, the site is
    reconfigured. Failure or cancel: the node goes back to how it booted before."""
    job = InstallJob.objects.select_for_update().select_related("node").get(pk=job.pk)
    node = job.node
    if ok:
        if job.status == InstallJobStatus.PENDING:
            install_job_transition(job=job, to=InstallJobStatus.RUNNING)
        install_job_transition(job=job, to=InstallJobStatus.SUCCEEDED, by=by)
        InstallJob.objects.filter(pk=job.pk).update(percent=100, stage="done")
        Node.objects.filter(pk=node.pk).update(boot_mode=BootMode.LOCAL, image=job.image, updated=timezone.now())
        if node.state == NodeState.INSTALLING:
            node_transition(node=node, to=NodeState.DEPLOYED, by=by, reason=f"install job {job.pk} succeeded")
    else:
        status = InstallJobStatus.CANCELLED if cancelled else InstallJobStatus.FAILED
        install_job_transition(job=job, to=status, by=by, error=error)
        Node.objects.filter(pk=node.pk).update(
            boot_mode=job.previous_boot_mode or BootMode.LOCAL, updated=timezone.now()
        )
        if node.state == NodeState.INSTALLING:
            to = NodeState.READY if status == InstallJobStatus.CANCELLED else NodeState.FAILED
            node_transition(node=node, to=to, by=by, reason=error or "cancelled")
    if job.status in (InstallJobStatus.SUCCEEDED, InstallJobStatus.FAILED):
        from nodes.webhooks import webhook_emit

        tenant = Node.objects.filter(pk=node.pk).values_list("tenant__slug", flat=True).first()
        webhook_emit(
            event=f"install_job.{job.status}",
            data={
                "job": {"id": job.pk, "status": job.status, "error": job.error, "image": job.image_id},
                "node": {"id": node.pk, "hostname": node.hostname, "tenant": tenant},
            },
        )
    JobEvent.objects.create(
        job=job,
        source=EventSource.PINET,
        stage=job.status,
        percent=100 if ok else None,
        message=error or ("installed; the board now boots from its own storage" if ok else ""),
    )
    reconfigure_sites(node.site)
    return job


def install_job_cancel(*, job: InstallJob, by: AbstractBaseUser | None) -> InstallJob:
    """Stop a pending or running install; the node returns to its previous boot mode."""
    if job.status not in ACTIVE:
        raise ValidationError(f"Job {job.pk} is already {job.status}.")
    return install_job_finish(job=job, ok=False, by=by, cancelled=True)


def install_jobs_expire() -> list[int]:
    """The watchdog: active jobs past their deadline fail, and their nodes go back."""
    expired = []
    for job in InstallJob.objects.filter(status__in=ACTIVE, deadline__lt=timezone.now()):
        try:
            install_job_finish(
                job=job,
                ok=False,
                error=f"No progress from the board by {job.deadline:%Y-%m-%d %H:%M} "
                "UTC (stage: " + (job.stage or "none") + ").",
            )
            expired.append(job.pk)
        except (InvalidTransition, ValidationError):
            continue  # it ended meanwhile
    return expired


def worker_check_request(*, queue: str, by: AbstractBaseUser | None) -> WorkerCheck:
    """Send a round trip through ``queue``; a worker consuming it answers (see WorkerCheck)."""
    from .tasks import answer_worker_check_task

    with transaction.atomic():
        check = WorkerCheck.objects.create(queue=queue, requested_by=by)
        transaction.on_commit(lambda: answer_worker_check_task.apply_async((check.pk,), queue=queue))
    return check


def worker_check_answer(*, check_id: int) -> bool:
    """Record that this worker process received the check; False if it was already answered."""
    answered = WorkerCheck.objects.filter(pk=check_id, answered_at__isnull=True).update(
        answered_at=timezone.now(), answered_by=f"{socket.gethostname()}:{os.getpid()}"
    )
    return answered == 1


# --- Site configuration: render -> validate with the real daemon -> write atomically ->
# reload only what changed -> record a ConfigRevision (ARCHITECTURE.md "Config application").


@dataclass
class ApplyResult:
    site: str
    backend: str
    status: str  # applied | unchanged | rejected | skipped
    changed: list[str] = field(default_factory=list)
    reload: str = ""
    revision: ConfigRevision | None = None
    notes: list[str] = field(default_factory=list)
    error: str = ""

    def summary(self) -> str:
        lines = [f"site {self.site} ({self.backend}): {self.status}"]
        if self.revision is not None:
            lines.append(f"revision {self.revision.pk} sha256 {self.revision.sha256[:12]}")
        if self.changed:
            shown = ", ".join(sorted(self.changed)[:20])
            more = f" (+{len(self.changed) - 20} more)" if len(self.changed) > 20 else ""
            lines.append(f"changed: {shown}{more}")
        if self.reload:
            lines.append(f"daemon: {self.reload}")
        lines += [f"note: {n}" for n in self.notes]
        if self.error:
            lines.append(f"error: {self.error}")
        return "\n".join(lines)


def site_config_request(*, site: Site) -> None:
    """Ask for the site's configuration to be re-applied (once, however many ask) after commit."""
    from .tasks import apply_site_config_task

    Site.objects.filter(pk=site.pk).update(config_requested=F("config_requested") + 1)
    site_id, queue = site.pk, site.queue
    transaction.on_commit(lambda: apply_site_config_task.apply_async((site_id,), queue=queue))


@contextmanager
def _site_lock(site: Site):
    """One apply at a time per site on this boot server (the daemons and files are here)."""
    path = Path(settings.PINET_CONFIG_ROOT) / f".{site.slug}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def site_config_render(*, site: Site, out_dir: Path, backend: str | None = None) -> tuple[SiteSnapshot, dict[str, str]]:
    """Write a self-contained tree for the site into ``out_dir`` (manage.py pinet_render):
    validated, with every path pointing inside it. Returns what was written, by path."""
    snap = selectors.site_snapshot(site, out_dir=out_dir, backend=backend)
    backend = backend_for(snap.backend)
    files = backend.render(snap)
    backend.validate(snap, files)
    written = {}
    out = Path(out_dir)
    _ensure_dirs(snap)
    sync_tree(Path(backend.directory(snap.paths)), files)
    written.update({f"{Path(backend.directory(snap.paths)).name}/{k}": v for k, v in files.items()})
    if _write_tftp_companion(snap):
        written["dnsmasq/dnsmasq.conf"] = (Path(snap.paths.dnsmasq_dir) / "dnsmasq.conf").read_text()
    exports = nfs.render(snap)
    sync_tree(Path(snap.paths.exports_dir), exports)
    written.update({f"exports/{k}": v for k, v in exports.items()})
    _apply_tftp(snap)
    for directory in ("dnsmasq", "kea", "tftp", "exports"):
        (out / directory).mkdir(parents=True, exist_ok=True)
    return snap, written


def _ensure_dirs(snap: SiteSnapshot) -> None:
    # dnsmasq refuses to start on a missing dhcp-hostsdir/optsdir, even an empty one.
    for folder in (snap.paths.hostsdir, snap.paths.optsdir):
        Path(folder).mkdir(parents=True, exist_ok=True)


def _apply_tftp(snap: SiteSnapshot) -> set[str]:
    root = Path(snap.paths.tftp_root)
    root.mkdir(parents=True, exist_ok=True)
    boot_dirs = {h.boot_dir: read_boot_dir(h.boot_dir) for h in snap.hosts if h.boot_dir}
    changed = sync_tftp(root, tftp.plan(snap, boot_dirs))
    # x86/arm64 PXE ROMs fetch iPXE from the top of the tree (Debian's ipxe package).
    for name in (IPXE_BIOS, IPXE_EFI_X64):
        source = Path("/usr/lib/ipxe") / name
        link = root / name
        if source.exists() and (link.is_symlink() or not link.exists()):
            replace_symlink(link, str(source))
    for host in snap.hosts:
        if host.data_path:
            Path(host.data_path).mkdir(parents=True, exist_ok=True)
    return changed


def _write_tftp_companion(snap: SiteSnapshot) -> set[str] | None:
    """A Kea site's TFTP server is a dnsmasq serving only TFTP: write its file (None: not Kea)."""
    if snap.backend != DhcpBackend.KEA:
        return None
    return sync_tree(Path(snap.paths.dnsmasq_dir), {"dnsmasq.conf": rendering_dnsmasq.tftp_only(snap)})


def _apply_companions(snap: SiteSnapshot) -> set[str]:
    """The daemons beside the DHCP backend: for a Kea site, dnsmasq serving only TFTP; for a
    site that left Kea, the Kea it left, which must stop answering."""
    if snap.backend == DhcpBackend.KEA:
        return _write_tftp_companion(snap)
    socket_path = Path(snap.paths.kea_dir) / "kea4.sock"
    if socket_path.exists():
        try:
            kea_daemon.command(str(socket_path), "shutdown", timeout=10)
        except OSError:
            pass  # not running: nothing to stop
    return set()


def _reject(
    result: ApplyResult, *, site: Site, by, error: str, output: str, sha256: str = "", content: str = ""
) -> ApplyResult:
    """Record a configuration that was refused (by pinet or by the daemon); the live one stays."""
    result.status, result.error = "rejected", error
    result.revision = ConfigRevision.objects.create(
        site=site,
        backend=result.backend,
        sha256=sha256,
        content=content,
        status=RevisionStatus.REJECTED,
        validator_output=output,
    )
    audit_log_write(actor=by, action="site.config_rejected", obj=site, data={"error": error[:2000]})
    return result


def site_config_apply(*, site: Site, by: AbstractBaseUser | None = None) -> ApplyResult:
    """Render, validate with the real daemon, apply atomically and reload if anything changed.
    A configuration the daemon refuses is recorded as rejected and the live one stays."""
    with _site_lock(site):
        requested = Site.objects.values_list("config_requested", flat=True).get(pk=site.pk)
        snap = selectors.site_snapshot(site)
        backend = backend_for(snap.backend)
        result = ApplyResult(site=snap.slug, backend=snap.backend, status="applied", notes=list(snap.notes))
        try:
            files = backend.render(snap)
            exports = nfs.render(snap)
        except ConfigRenderError as exc:
            # Data that cannot be written safely: refuse like the daemon would, keep the live one.
            return _reject(result, site=site, by=by, error=str(exc), output=f"pinet: {exc}")
        bundle = {
            **{f"{snap.backend}/{k}": v for k, v in files.items()},
            **{f"exports/{k}": v for k, v in exports.items()},
        }
        digest = content_hash(bundle)
        try:
            backend.validate(snap, files)
        except ConfigInvalid as exc:
            return _reject(
                result,
                site=site,
                by=by,
                error=exc.output,
                output=exc.output,
                sha256=digest,
                content=bundle_text(bundle),
            )
        # The TFTP tree and the exports first: if either fails, the daemon is not told yet.
        try:
            tftp_changed = _apply_tftp(snap)
        except (OSError, TreeConflict) as exc:
            raise DaemonError(f"TFTP tree for {snap.slug}: {exc}") from exc
        exports_changed = sync_tree(Path(snap.paths.exports_dir), exports)
        _ensure_dirs(snap)
        directory = Path(backend.directory(snap.paths))
        daemon_change = sync_tree(directory, files)
        extra_change = _apply_companions(snap)
        changed = {f"{snap.backend}/{n}" for n in daemon_change} | {f"exports/{n}" for n in exports_changed}
        changed |= {f"tftp/{n}" for n in tftp_changed} | {f"dnsmasq/{n}" for n in extra_change}
        result.changed = sorted(changed)
        # A reload that failed last time (the files were written, the daemon never took them)
        # is owed now even though nothing changed since: the loaded marker says so.
        loaded = directory / LOADED
        daemon_digest = content_hash(files)
        owed = not daemon_change and (loaded.read_text().strip() if loaded.exists() else "") != daemon_digest
        if owed:
            daemon_change = TreeChange(modified=set(files))
        result.reload = backend.reload(snap, daemon_change)
        if extra_change:
            result.reload += "; TFTP " + rendering_dnsmasq_daemon.reload(snap, extra_change)
        loaded.write_text(daemon_digest + "\n")
        if exports_changed and settings.PINET_EXPORTFS_RELOAD:
            done = subprocess.run(  # noqa: S602
                settings.PINET_EXPORTFS_RELOAD, shell=True, capture_output=True, text=True, timeout=120
            )
            if done.returncode != 0:
                result.notes.append(f"NFS reload failed: {(done.stderr or done.stdout).strip()[:500]}")
        last = ConfigRevision.objects.filter(site=site, status=RevisionStatus.APPLIED).first()
        if last is None or last.sha256 != digest:
            previous = last.content.splitlines(keepends=True) if last else []
            diff = "".join(
                difflib.unified_diff(previous, bundle_text(bundle).splitlines(keepends=True), "previous", "new", n=1)
            )
            result.revision = ConfigRevision.objects.create(
                site=site,
                backend=snap.backend,
                sha256=digest,
                content=bundle_text(bundle),
                status=RevisionStatus.APPLIED,
                diff=diff,
            )
        elif not changed and not owed:
            result.status = "unchanged"
        Site.objects.filter(pk=site.pk, config_applied__lt=requested).update(config_applied=requested)
        return result


def site_config_apply_pending(*, site_id: int) -> ApplyResult:
    """The worker's entry point: apply unless an earlier apply already covered every request."""
    site = Site.objects.filter(pk=site_id).first()
    if site is None:
        return ApplyResult(site=str(site_id), backend="", status="skipped", notes=["the site no longer exists"])
    if site.config_applied >= site.config_requested:
        return ApplyResult(site=site.slug, backend=site.dhcp_backend, status="skipped")
    return site_config_apply(site=site)
