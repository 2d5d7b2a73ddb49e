import hashlib
import re
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet
from django.utils import timezone

from images.choices import ImageKind, ImageState
from images.models import OSImage
from nodes.choices import RASPBERRY_PI_MODELS, BoardModel, BootMode, NodeState
from nodes.models import Node, Site

from .choices import ACTIVE
from .models import BootToken, ConfigRevision, InstallJob, WorkerCheck
from .rendering.snapshot import ANSWER_INSTALL, ANSWER_LOCAL, ANSWER_NETBOOT, HostSnapshot, Paths, SiteSnapshot


def install_job_list(*, user) -> QuerySet[InstallJob]:
    return InstallJob.objects.visible_to(user).select_related("node", "image", "requested_by")


def config_revision_list(*, user) -> QuerySet[ConfigRevision]:
    """Operators only: a revision holds the whole site's configuration, every tenant's boards."""
    if not (user and user.is_authenticated and user.is_active and user.is_staff):
        return ConfigRevision.objects.none()
    return ConfigRevision.objects.select_related("site")


_TOKEN_IN_URL = re.compile(r"/boot/[A-Za-z0-9_-]{20,}/")


def mask_boot_tokens(text: str) -> str:
    """Boot URLs with their token replaced: pages show configurations, not credentials."""
    return _TOKEN_IN_URL.sub("/boot/<token>/", text)


def diff_lines(diff: str, limit: int = 4000) -> list[tuple[str, str]]:
    """A unified diff as (kind, line) for the page: add, del, hunk or same; tokens masked."""
    rows = []
    for line in mask_boot_tokens(diff).splitlines()[:limit]:
        if line.startswith(("+++", "---", "@@")):
            rows.append(("hunk", line))
        elif line.startswith("+"):
            rows.append(("add", line))
        elif line.startswith("-"):
            rows.append(("del", line))
        else:
            rows.append(("same", line))
    return rows


def worker_check_get(*, user, pk: int) -> WorkerCheck:
    if not (user and user.is_authenticated and user.is_staff):
        raise WorkerCheck.DoesNotExist
    return WorkerCheck.objects.get(pk=pk)


def site_paths(site, out_dir: Path | None = None) -> Paths:
    """Where the site's files go: the data dir in service, or all inside ``out_dir``."""
    if out_dir is not None:
        out = Path(out_dir).resolve()
        return Paths(
            dnsmasq_dir=str(out / "dnsmasq"),
            kea_dir=str(out / "kea"),
            tftp_root=str(out / "tftp"),
            exports_dir=str(out / "exports"),
            nfs_root=str(out / "nfs"),
        )
    root = Path(settings.PINET_CONFIG_ROOT) / site.slug
    return Paths(
        dnsmasq_dir=str(root / "dnsmasq"),
        kea_dir=str(root / "kea"),
        tftp_root=str(Path(settings.PINET_TFTP_ROOT) / site.slug),
        exports_dir=str(root / "exports"),
        nfs_root=str(settings.PINET_NFS_ROOT),
    )


def _hex_id(value: str) -> str:
    """Option 82 values as colon hex, whatever the operator typed (text or hex)."""
    text = value.strip()
    if not text:
        return ""
    if text.lower().startswith("hex:"):
        digits = text[4:].replace(":", "").replace("-", "").lower()
        return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))
    return ":".join(f"{b:02x}" for b in text.encode())


def live_boot_urls(site) -> dict[int, str]:
    """Option 224 for every node of the site with an active install job: node id -> URL."""
    from .services import boot_token_value, boot_url

    rows = (
        BootToken.objects.filter(
            job__node__site=site, job__status__in=sorted(ACTIVE), revoked_at__isnull=True, expires_at__gt=timezone.now()
        )
        .only("job_id", "nonce")
        .select_related("job")
    )
    base = site.effective_boot_url_base
    return {row.job.node_id: boot_url(boot_token_value(row=row), base=base) for row in rows}


def site_snapshot(
    site, *, out_dir: Path | None = None, backend: str | None = None, node_ids: list[int] | None = None
) -> SiteSnapshot:
    """Everything the renderers need, read in a fixed number of queries whatever the fleet size.
    ``node_ids`` narrows the hosts (a board's page shows its own part of the configuration)."""
    site = Site.objects.get(pk=site.pk)
    paths = site_paths(site, out_dir)
    # Plain rows, not model instances: at 10k nodes building objects costs more than the query.
    nodes = Node.objects.filter(site=site)
    if node_ids is not None:
        nodes = nodes.filter(pk__in=node_ids)
    nodes = nodes.order_by("mac").values_list(
        "pk",
        "hostname",
        "mac",
        "ip",
        "board_model",
        "serial",
        "client_id",
        "relay_circuit_id",
        "relay_remote_id",
        "boot_mode",
        "state",
        "image__state",
        "image__boot_path",
        "image__root_path",
    )
    installers = {
        image.arch: image
        for image in OSImage.objects.filter(kind=ImageKind.INSTALLER, state=ImageState.READY).order_by("version")
    }
    installer = installers.get("arm64") or installers.get("armhf")
    boot_urls = live_boot_urls(site)
    hosts, notes = [], []
    for (
        pk,
        hostname,
        mac,
        ip,
        board,
        serial,
        client_id,
        circuit,
        remote,
        mode,
        state,
        image_state,
        image_boot,
        image_root,
    ) in nodes:
        is_pi = board in RASPBERRY_PI_MODELS
        answer, boot_dir, root_path, data_path, boot_url = ANSWER_LOCAL, "", "", "", ""
        if state == NodeState.SUSPENDED:
            if mode != BootMode.LOCAL:
                notes.append(f"{hostname}: suspended, so it gets no boot service")
        elif mode == BootMode.NETBOOT:
            if image_state != ImageState.READY or not image_root:
                notes.append(f"{hostname}: netboot needs a ready image with an NFS root; answering as local")
            elif not ip:
                # Its writable directory is exported to its address alone, never to the subnet.
                notes.append(f"{hostname}: netboot needs a reserved address; answering as local")
            else:
                answer, boot_dir, root_path = ANSWER_NETBOOT, image_boot, image_root
                # Keyed by node id: a host name reused by the next tenant must not inherit data.
                data_path = f"{paths.nfs_root}/nodes/{site.slug}/n{pk}"
        elif mode == BootMode.INSTALL:
            if pk not in boot_urls:
                notes.append(f"{hostname}: install mode without an install job in progress; answering as local")
            elif is_pi and installer is None:
                notes.append(f"{hostname}: install needs a ready Raspberry Pi installer image; answering as local")
            else:
                answer, boot_url = ANSWER_INSTALL, boot_urls[pk]
                boot_dir = installer.boot_path if is_pi else ""
        hosts.append(
            HostSnapshot(
                node_id=pk,
                hostname=hostname,
                mac=mac,
                ip=IPv4Address(ip) if ip else None,
                board_model=board,
                is_pi=is_pi,
                pi3_rom=board == BoardModel.PI3B,
                serial8=serial[-8:] if serial else None,
                client_id=client_id,
                circuit_id=_hex_id(circuit),
                remote_id=_hex_id(remote),
                answer=answer,
                boot_dir=boot_dir,
                root_path=root_path,
                data_path=data_path,
                boot_url=boot_url,
            )
        )
    return SiteSnapshot(
        slug=site.slug,
        name=site.name,
        backend=backend or site.dhcp_backend,
        interface=site.interface,
        subnet=IPv4Network(site.subnet),
        boot_server=IPv4Address(site.boot_server),
        gateway=IPv4Address(site.gateway) if site.gateway else None,
        dns_servers=tuple(IPv4Address(a) for a in site.dns_server_list),
        range_start=IPv4Address(site.range_start) if site.range_start else None,
        range_end=IPv4Address(site.range_end) if site.range_end else None,
        nfs_server=IPv4Address(site.nfs_server_address),
        relay_addresses=tuple(IPv4Address(a) for a in site.relay_address_list),
        dns_domain=site.dns_domain,
        lease_time=site.lease_time,
        pi3_reply_delay=site.pi3_reply_delay,
        boot_url_base=site.effective_boot_url_base,
        paths=paths,
        hosts=tuple(hosts),
        notes=tuple(notes),
    )


def node_boot_config(*, node) -> dict:
    """What the boot server answers this board, rendered by the same pure functions as the
    site apply (operators' board page). The boot token in option 224 is masked."""
    import json
    from dataclasses import replace

    from .files import read_boot_dir
    from .rendering import ConfigRenderError, dnsmasq, kea, tftp

    snap = site_snapshot(node.site, node_ids=[node.pk])
    host = next((h for h in snap.hosts if h.node_id == node.pk), None)
    if host is None:
        return {"backend": snap.backend, "answer": "", "notes": list(snap.notes), "dhcp": [], "tftp": []}
    host = replace(host, boot_url=mask_boot_tokens(host.boot_url))
    dhcp: list[tuple[str, str]] = []
    try:
        if snap.backend == "kea":
            dhcp.append(("Kea reservation", json.dumps(kea.reservation(host, snap), indent=2, sort_keys=True)))
        elif not (snap.backend == dnsmasq.PROXY and host.answer == ANSWER_LOCAL):
            dhcp.append((f"{snap.paths.hostsdir}/{host.mac_dashed}", dnsmasq.host_line(host, snap)))
            options = dnsmasq.option_lines(host, snap)
            if options:
                dhcp.append((f"{snap.paths.optsdir}/{host.mac_dashed}", "\n".join(options)))
        entry = tftp.node_dir(host, snap, *read_boot_dir(host.boot_dir)) if host.boot_dir else None
    except ConfigRenderError as exc:
        return {"backend": snap.backend, "answer": host.answer, "notes": [str(exc)], "dhcp": dhcp, "tftp": []}
    files = []
    if entry is not None:
        files = [(name, content) for name, content in entry.files]
        files.append(("boot files", ", ".join(name for name, target in entry.links if target != ".")))
        files.append(("reached as", ", ".join(f"{alias}/" for alias in entry.aliases)))
    notes = [n for n in snap.notes if n.startswith(f"{host.hostname}:")]
    return {"backend": snap.backend, "answer": host.answer, "notes": notes, "dhcp": dhcp, "tftp": files}


# --- What installers are told ------------------------------------------------------------------

# Where the installer writes: the SD card / eMMC on a Pi, the first disk elsewhere. A hint:
# the agent takes the first of these that exists.
TARGET_HINTS = {"pi": ["/dev/mmcblk0", "/dev/sda", "/dev/nvme0n1"], "other": ["/dev/vda", "/dev/sda", "/dev/nvme0n1"]}


def installer_for(*, node) -> OSImage | None:
    arch = "amd64" if node.board_model in ("x86-bios", "x86-uefi") else "arm64"
    return (
        OSImage.objects.filter(kind=ImageKind.INSTALLER, state=ImageState.READY, arch=arch).order_by("-version").first()
    )


def _network(node) -> dict:
    site = node.site
    if not node.ip:
        return {"method": "dhcp", "hostname": node.hostname}
    return {
        "method": "static",
        "hostname": node.hostname,
        "address": f"{node.ip}/{site.network.prefixlen}",
        "gateway": site.gateway or "",
        "dns": site.dns_server_list,
        "domain": site.dns_domain,
    }


# A plan is asked for once or twice per install, but a rack powering on asks for hundreds at
# once: each process keeps a plan for a few seconds (an edit of the board reaches the next
# plan at most this late). The key holds the token's URL, so a new job never meets an old plan.
PLAN_CACHE_SECONDS = 10


def install_plan(*, job, base: str) -> dict:
    """Everything the installer needs, as JSON; ``base`` is the token's URL prefix."""
    key = "pinet-plan:" + hashlib.sha256(f"{job.pk}:{base}".encode()).hexdigest()
    plan = cache.get(key)
    if plan is None:
        plan = _install_plan(job=job, base=base)
        cache.set(key, plan, PLAN_CACHE_SECONDS)
    return plan


def _install_plan(*, job, base: str) -> dict:
    node = Node.objects.select_related("site", "tenant").get(pk=job.node_id)
    image = job.image
    return {
        "job": job.pk,
        "node": {"hostname": node.hostname, "mac": node.mac, "board_model": node.board_model},
        "image": {
            "name": image.name,
            "version": image.version,
            "url": f"{base}image",
            "compression": "zstd",
            "size": image.artefact_size,
            "sha256": image.artefact_sha256,
            "image_size": image.image_size,
        },
        "target": TARGET_HINTS["pi" if node.board_model in RASPBERRY_PI_MODELS else "other"],
        "network": _network(node),
        "ssh_keys": [
            line.strip()
            for line in (node.tenant.ssh_keys if node.tenant else "").splitlines()
            if line.strip() and not line.startswith("#")
        ],
        "urls": {
            "events": f"{base}events",
            "done": f"{base}done",
            "failed": f"{base}failed",
            "netplan": f"{base}netplan",
        },
    }


def netplan_yaml(*, node) -> str:
    """The node's network configuration as netplan, for the installed OS."""
    net = _network(node)
    if net["method"] == "dhcp":
        body = "      dhcp4: true\n"
    else:
        body = f"      dhcp4: false\n      addresses: [{net['address']}]\n"
        if net["gateway"]:
            body += f"      routes:\n        - to: default\n          via: {net['gateway']}\n"
        if net["dns"]:
            body += f"      nameservers:\n        addresses: [{', '.join(net['dns'])}]\n"
    return (
        "# Generated by pinet for " + node.hostname + "\n"
        "network:\n  version: 2\n  ethernets:\n    pinet0:\n"
        f'      match:\n        macaddress: "{node.mac}"\n      set-name: eth0\n' + body
    )


def ipxe_install_script(*, job, base: str) -> str:
    node = job.node
    installer = installer_for(node=node)
    if installer is None:
        return "#!ipxe\necho pinet: no ready installer image for this machine; booting locally\nexit\n"
    kernel = "vmlinuz"  # pinet_build_installer names it so for every architecture
    return (
        "#!ipxe\n"
        f"echo pinet: installing {job.image} on {node.hostname}\n"
        f"kernel {base}installer/{kernel} initrd=initrd.img console=ttyS0 console=tty0 "
        f"pinet.url={base}?v=1 pinet.host={node.hostname}\n"
        f"initrd {base}installer/initrd.img\n"
        "boot || goto failed\n"
        ":failed\necho pinet: boot failed; retrying in 10 s\nsleep 10\nreboot\n"
    )


def _from_the_board(node, client_ip: str) -> bool:
    try:
        address = IPv4Address(client_ip)
    except ValueError:
        return False
    if node.ip:
        return str(address) == str(node.ip)
    return address in IPv4Network(node.site.subnet)


def ipxe_entry_script(*, mac: str, site_slug: str, client_ip: str = "") -> str:
    node = Node.objects.filter(mac=mac).select_related("site").first() if mac else None
    wanted = node is not None and node.boot_mode == BootMode.INSTALL and _from_the_board(node, client_ip)
    urls = live_boot_urls(node.site) if wanted else {}
    if node is None or node.pk not in urls:
        # Nothing to install: hand the machine back to its own disk.
        return "#!ipxe\necho pinet: nothing to install; booting from disk\nexit\n"
    url = urls[node.pk]
    return f"#!ipxe\nchain --autofree {url}&format=ipxe || exit\n"


def _sh(value) -> str:
    return "'" + str(value).replace("'", "'\\''") + "'"


def install_plan_env(*, job, base: str) -> str:
    """The plan as shell assignments, for the busybox agent (it has no JSON parser)."""
    plan = install_plan(job=job, base=base)
    values = {
        "PINET_JOB": plan["job"],
        "PINET_HOSTNAME": plan["node"]["hostname"],
        "PINET_IMAGE_URL": plan["image"]["url"],
        "PINET_IMAGE_SHA256": plan["image"]["sha256"],
        "PINET_IMAGE_SIZE": plan["image"]["size"] or 0,
        "PINET_TARGETS": " ".join(plan["target"]),
        "PINET_NETPLAN_URL": plan["urls"]["netplan"],
        "PINET_SSH_KEYS": "\n".join(plan["ssh_keys"]),
    }
    return "".join(f"{key}={_sh(value)}\n" for key, value in values.items())
