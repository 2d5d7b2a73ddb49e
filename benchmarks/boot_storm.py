#!/usr/bin/env python3
"""A boot storm: N Raspberry Pi 4 boards power on within a few seconds against one pinet.

    sudo .venv/bin/python benchmarks/boot_storm.py                                       # 1,000 boards within 10 s
    sudo .venv/bin/python benchmarks/boot_storm.py --boards 30 --window 2 --duration 3   # CI smoke size

Needs root on Linux (network namespaces), dnsmasq, redis-server, gunicorn in this virtualenv
and a PostgreSQL server on which it may create and drop a database (--pg-url).

Everything runs on this machine, the network parts inside private network namespaces:
- PostgreSQL: a throw-away database ``bench_storm_<pid>``, migrated, dropped at the end.
  Processes inside namespaces reach it over its Unix socket.
- One pinet: gunicorn (--workers sync workers, PINET_ENV=production) in a "web" namespace with
  a private redis-server on that namespace's own loopback as its Celery broker (no request of
  the storm queues a task, so Redis is configured but idle).
- Sites of at most --boards-per-site (250) boards. A documentation /24 holds 253 reserved
  addresses, so 1,000 boards are four sites, each an isolated layer-2 network in its own
  namespace with pinet's rendered dnsmasq (DHCP and TFTP) on it, as a rack with its own boot
  server. Subnets cycle through 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24; the fourth
  site reuses the first range on its own isolated link. All sites share the database and the
  web server.
- Every board is a Pi 4 in install mode: provisioning.services.node_request_reinstall() opened
  its job and minted its boot token, site_config_apply() wrote its host and option files and its
  TFTP directory (the installer's files) and checked the configuration with dnsmasq --test.
- The boards (benchmarks/storm_boards.py, in a client namespace) power on at random times within
  --window: the bootloader's DHCP DISCOVER/OFFER/REQUEST/ACK, the Pi 4 TFTP file sequence from
  <mac>/, the installer's DHCP asking for option 224, then GET of its plan at that URL. Every
  step is checked: the reserved address, "Raspberry Pi Boot", the installer's files, the
  board's own config.txt and cmdline.txt, its boot URL, its plan.
- Then closed-loop HTTP load, --clients connections at a time for --duration seconds each: the
  boot-token endpoint (GET /boot/<token>/ over every board's token) and a bare Django view served
  by the same gunicorn through the same middleware, returning a JsonResponse of the plan's size,
  interleaved in two rounds.

TFTP files are --tftp-kib stand-ins (a real start4.elf is 2.2 MB): the storm measures the boot
path through pinet's configuration, not TFTP bandwidth. Prints JSON; the targets are reported,
never asserted. Everything it started is stopped by pid and the namespaces, temp files and the
database are removed, also on Ctrl-C or failure.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import random
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))

RANGES = ("192.0.2", "198.51.100", "203.0.113")
FIRST_BOARD_HOST = 2  # .1 is the site's boot server
WEB_IP, CLIENT_IP, WEB_PORT = "198.51.100.253", "198.51.100.254", 8000
BOOT_FILES = ("start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb", "kernel8.img", "initramfs8")
# What a Pi 4 asks for, in order (netboot.md §1.4), all under its MAC prefix (TFTP_PREFIX=2).
TFTP_SEQUENCE = (
    "config.txt", "start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb", "cmdline.txt", "kernel8.img", "initramfs8",
)  # fmt: skip
PHASES = ("dhcp", "tftp", "installer_dhcp", "http")
BARE_PATH = "/bench/bare/"
SBIN = "/usr/sbin:/sbin:/usr/bin:/bin"


def log(message: str) -> None:
    print(f"[boot_storm {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the web application gunicorn serves ----------------------------------------------------------


def bench_application():
    """pinet's WSGI application plus /bench/bare/: a JsonResponse of the plan's size
    (PINET_BENCH_BARE_BYTES) behind the same middleware, the baseline. Only this benchmark
    mounts it: gunicorn 'boot_storm:bench_application()'."""
    import types

    import django

    django.setup()
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application
    from django.http import JsonResponse
    from django.urls import clear_url_caches, path

    import pinet.urls

    size = int(os.environ.get("PINET_BENCH_BARE_BYTES", "600"))
    body = {"padding": ""}
    body["padding"] = "x" * max(0, size - len(json.dumps(body)))

    def bare(request):
        return JsonResponse(body)

    urls = types.ModuleType("boot_storm_urls")
    urls.urlpatterns = [path(BARE_PATH.strip("/") + "/", bare), *pinet.urls.urlpatterns]
    urls.handler404, urls.handler500 = pinet.urls.handler404, pinet.urls.handler500
    sys.modules[urls.__name__] = urls
    settings.ROOT_URLCONF = urls.__name__
    clear_url_caches()
    return get_wsgi_application()


# --- namespaces --------------------------------------------------------------------------------------


def _storm_lab(sites: int):
    from provisioning.tests.netlab import NetLab

    class StormLab(NetLab):
        """NetLab's web<->client pair plus one namespace per site, each joined to the client
        namespace by its own veth pair; closing it stops every process and deletes them all."""

        def __init__(self):
            super().__init__(server_cidr=f"{WEB_IP}/24", client_cidr=f"{CLIENT_IP}/24")
            self.web_ns = self.server_ns
            self.site_ns = [f"pinet-{self.tag}-s{i}" for i in range(sites)]
            # (server side, client side); IFNAMSIZ allows 15 characters.
            self.site_ifs = [(f"pn{self.tag}a{i}", f"pn{self.tag}b{i}") for i in range(sites)]

        def setup(self) -> None:
            super().setup()
            for i, ns in enumerate(self.site_ns):
                server_if, client_if = self.site_ifs[i]
                self._add_netns(ns)
                self._run_ip(
                    "link", "add", server_if, "netns", ns,
                    "type", "veth", "peer", "name", client_if, "netns", self.client_ns,
                )  # fmt: skip
                self._run_ip("-n", ns, "link", "set", "lo", "up")
                self._run_ip("-n", ns, "addr", "add", f"{RANGES[i % 3]}.1/24", "dev", server_if)
                self._run_ip("-n", ns, "link", "set", server_if, "up")
                # The client side has no address: the boards speak raw frames on it.
                self._run_ip("-n", self.client_ns, "link", "set", client_if, "up")

    return StormLab()


# --- set-up ------------------------------------------------------------------------------------------


def _db_url(admin_url: str, name: str, socket_dir: str | None = None) -> str:
    parts = urlsplit(admin_url)
    if socket_dir is None:
        return urlunsplit(parts._replace(path=f"/{name}"))
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return f"postgres://{auth}{quote(socket_dir, safe='')}:{parts.port or 5432}/{name}"


def _fleet(args, lab, data: Path) -> dict:
    """Sites, nodes, images, jobs and tokens through pinet's services; returns the boards' spec."""
    from django.core.serializers.json import DjangoJSONEncoder
    from django.db import transaction

    from images.models import OSImage
    from nodes.choices import BoardModel, NodeState
    from nodes.models import Node, Site
    from provisioning import selectors
    from provisioning.models import InstallJob
    from provisioning.services import node_request_reinstall, site_config_apply
    from provisioning.tests.labsite import installable_image

    rng = random.Random(args.seed)
    installer = data / "installer"
    installer.mkdir(parents=True)
    digests = {}
    for name in BOOT_FILES:
        blob = rng.randbytes(args.tftp_kib * 1024)
        (installer / name).write_bytes(blob)
        digests[name] = hashlib.sha256(blob).hexdigest()
    (installer / "config.txt").write_text("arm_64bit=1\nkernel=kernel8.img\ninitramfs initramfs8 followkernel\n")
    (installer / "cmdline.txt").write_text("console=serial0,115200 console=tty1 quiet\n")
    OSImage.objects.create(
        name="pinet-installer", arch="arm64", kind="installer", source="/x", state="ready", boot_path=str(installer)
    )
    image = installable_image(data, rng.randbytes(1 << 20), name="raspios-lite", arch="arm64")

    links, applies = [], []
    for i in range(len(lab.site_ns)):
        count = min(args.boards_per_site, args.boards - i * args.boards_per_site)
        prefix = RANGES[i % 3]
        site = Site.objects.create(
            name=f"Storm {i}",
            slug=f"storm-{i}",
            interface=lab.site_ifs[i][0],
            subnet=f"{prefix}.0/24",
            boot_server=f"{prefix}.1",
        )
        Node.objects.bulk_create(
            Node(
                site=site,
                hostname=f"s{i}-pi{j:03d}",
                mac=f"dc:a6:32:{i:02x}:{j >> 8:02x}:{j & 255:02x}",
                serial=f"b0{i:02x}{j:04x}",
                board_model=BoardModel.PI4B,
                ip=f"{prefix}.{FIRST_BOARD_HOST + j}",
                state=NodeState.DEPLOYED,
            )
            for j in range(count)
        )
        nodes = list(Node.objects.filter(site=site).order_by("pk"))
        with transaction.atomic():
            jobs = {node.pk: node_request_reinstall(node=node, image=image, by=None).pk for node in nodes}
        urls = selectors.live_boot_urls(site)
        started = time.perf_counter()
        result = site_config_apply(site=site)
        applies.append(round((time.perf_counter() - started) * 1000))
        if result.status != "applied":
            raise RuntimeError(f"site {site.slug} was not applied:\n{result.summary()}")
        boards = [
            {
                "id": node.pk,
                "site": site.slug,
                "hostname": node.hostname,
                "mac": node.mac,
                "serial": node.serial,
                "ip": node.ip,
                "job": jobs[node.pk],
                "url": urls[node.pk],
            }
            for node in nodes
        ]
        links.append({"iface": lab.site_ifs[i][1], "server_ip": f"{prefix}.1", "boards": boards})
        log(f"site {site.slug}: {count} boards on {prefix}.0/24 in install mode, applied in {applies[-1]} ms")

    # The bare view answers with as many bytes as a plan.
    sample = links[0]["boards"][0]
    job = InstallJob.objects.select_related("node", "node__tenant", "node__site", "image").get(pk=sample["job"])
    plan = selectors.install_plan(job=job, base=sample["url"].split("?")[0]) | {"hostname": job.node.hostname}
    return {
        "links": links,
        "digests": digests,
        "plan_bytes": len(json.dumps(plan, cls=DjangoJSONEncoder).encode()),
        "site_apply_ms": applies,
    }


def _lookup_costs(links: list[dict], rounds: int = 300) -> dict:
    """Where a boot-token request's time goes, in this process (PostgreSQL over TCP): the
    service the endpoint calls next to a lookup of the token row alone, over the same tokens."""
    from provisioning.models import BootToken
    from provisioning.services import boot_token_hash, boot_token_resolve

    tokens = [b["url"].split("/boot/", 1)[1].split("/", 1)[0] for link in links for b in link["boards"]]
    tokens = [tokens[i % len(tokens)] for i in range(rounds)]

    def per_call(fn) -> float:
        fn(tokens[0])  # warm
        samples = []
        for token in tokens:
            start = time.perf_counter()
            fn(token)
            samples.append((time.perf_counter() - start) * 1000)
        return _pct(samples, 0.5)

    resolve = per_call(lambda token: boot_token_resolve(token=token))
    row = per_call(lambda token: BootToken.objects.filter(token_hash=boot_token_hash(token)).first())
    return {"boot_token_resolve_p50_ms": resolve, "token_row_only_p50_ms": row}


# --- daemons -----------------------------------------------------------------------------------------


def _wait(check, what: str, proc, log_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
            raise RuntimeError(f"{what} did not come up:\n{tail}")
        time.sleep(0.2)


def _start_web(args, lab, env: dict[str, str]) -> None:
    redis_log = lab.path("redis.log")
    redis = lab.start_daemon(
        lab.web_ns,
        ["redis-server", "--bind", "127.0.0.1", "--port", "6379", "--save", "", "--appendonly", "no"]
        + ["--dir", str(lab.workdir)],
        redis_log,
    )

    def redis_up() -> bool:
        pong = lab.run_in(lab.web_ns, ["redis-cli", "-h", "127.0.0.1", "ping"], capture_output=True, text=True)
        return pong.stdout.strip() == "PONG"

    _wait(redis_up, "redis-server", redis, redis_log)
    web_log = lab.path("gunicorn.log")
    argv = [
        Path(sys.executable).with_name("gunicorn"),
        "boot_storm:bench_application()",
        "--chdir", BASE / "benchmarks",
        "--pythonpath", BASE,
        "--bind", f"{WEB_IP}:{WEB_PORT}",
        "--workers", str(args.workers),
    ]  # fmt: skip
    web = lab.start_daemon(lab.web_ns, argv, web_log, env=env)
    probe = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)"
    url = f"http://{WEB_IP}:{WEB_PORT}/healthz"

    def web_up() -> bool:
        return lab.run_in(lab.client_ns, [sys.executable, "-c", probe, url], capture_output=True).returncode == 0

    _wait(web_up, "gunicorn", web, web_log)


def _start_dnsmasq(lab, data: Path) -> None:
    dnsmasq = shutil.which("dnsmasq", path=SBIN) or "dnsmasq"
    for i, ns in enumerate(lab.site_ns):
        conf = data / "config" / f"storm-{i}" / "dnsmasq" / "dnsmasq.conf"
        out = lab.path(f"dnsmasq-{i}.log")
        proc = lab.start_daemon(ns, [dnsmasq, "-k", "--log-facility=-", "-C", conf], out)
        lab.wait_for_text(out, "sockets bound exclusively", proc=proc)


# --- figures -----------------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 2)


def _dist(values: list[float]) -> dict:
    return {"p50_ms": _pct(values, 0.5), "p99_ms": _pct(values, 0.99), "max_ms": _pct(values, 1.0), "n": len(values)}


def _storm_summary(rows: list[dict], send_failures: int) -> dict:
    ok = [r for r in rows if r["ok"]]
    failed = [r for r in rows if not r["ok"]]
    by_phase = Counter(r["failed_phase"] for r in failed)
    power_on = [r["power_on_s"] for r in rows]

    def col(key: str) -> list[float]:
        return [r[key] for r in rows if key in r]

    return {
        "boards": len(rows),
        "succeeded": len(ok),
        "success_rate": round(len(ok) / len(rows), 4) if rows else 0.0,
        "failures_by_phase": {phase: by_phase.get(phase, 0) for phase in PHASES},
        "failure_examples": [f"{r['site']} node {r['id']}: {r['failed_phase']}: {r['error']}" for r in failed[:5]],
        "power_on_spread_s": round(max(power_on) - min(power_on), 2),
        "duration_s": round(max(r["end_s"] for r in rows) - min(power_on), 2),
        "dhcp_dora_ms": _dist(col("dhcp_ms")),
        "tftp_all_files_ms": _dist(col("tftp_ms")),
        "installer_dhcp_dora_ms": _dist(col("installer_dhcp_ms")),
        "http_plan_ms": _dist(col("http_ms")),
        "board_total_ms": _dist(col("total_ms")),
        "retransmissions": sum(r["retransmits"] for r in rows),
        "boards_that_retransmitted": sum(1 for r in rows if r["retransmits"]),
        "raw_send_failures": send_failures,
    }


def _load_summary(entry: dict) -> dict:
    statuses = entry["statuses"]
    total = sum(statuses.values())
    ok = statuses.get("200", 0)
    return {
        "requests": total,
        "errors": total - ok,
        "statuses": statuses,
        "req_per_s": round(ok / entry["elapsed_s"], 1) if entry["elapsed_s"] else None,
        "p50_ms": _pct(entry["latencies_ms"], 0.5),
        "p99_ms": _pct(entry["latencies_ms"], 0.99),
        "load_client_cpu_share": round(entry["client_cpu_s"] / entry["elapsed_s"], 2) if entry["elapsed_s"] else None,
    }


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr).strip() else "unknown"


def _machine(start_load: float) -> dict:
    import gunicorn
    from django.db import connection

    info: dict = {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        # A shared machine: other work running during the measurement shows up here.
        "load_average_1min_at_start": start_load,
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }
    cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    info["cpu_model"] = models[0] if models else ""
    meminfo = Path("/proc/meminfo").read_text()
    kib = int(next(line.split()[1] for line in meminfo.splitlines() if line.startswith("MemTotal")))
    info["memory_gib"] = round(kib / 2**20, 1)
    info["dnsmasq"] = _first_line([shutil.which("dnsmasq", path=SBIN) or "dnsmasq", "--version"])
    info["redis"] = _first_line(["redis-server", "--version"])
    info["gunicorn"] = gunicorn.__version__
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        info["postgresql"] = cursor.fetchone()[0]
    return info


# --- the run -----------------------------------------------------------------------------------------


def run(args) -> dict:
    import psycopg
    from psycopg import sql

    sites = math.ceil(args.boards / args.boards_per_site)
    name = f"bench_storm_{os.getpid()}"
    secret = secrets.token_urlsafe(50)
    base_url = f"http://{WEB_IP}:{WEB_PORT}"
    start_load = round(os.getloadavg()[0], 2)
    with psycopg.connect(args.pg_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    django_ready = False
    try:
        # kombu's file-system transport (the set-up's broker) writes exchange files to
        # ./control: work in the temp dir, not in the checkout.
        with _storm_lab(sites) as lab, contextlib.chdir(lab.workdir):
            data = lab.path("data")
            data.mkdir()
            started = time.perf_counter()
            # The set-up runs here, outside the namespaces, with the embedded file-system broker:
            # the apply tasks node_request_reinstall() queues are never run (site_config_apply()
            # is called directly) and go away with the temp dir.
            os.environ.update(
                DJANGO_SETTINGS_MODULE="pinet.settings",
                PINET_ENV="embedded",
                PINET_DATA_DIR=str(data),
                DATABASE_URL=_db_url(args.pg_url, name),
                SECRET_KEY=secret,
                ALLOWED_HOSTS=WEB_IP,
                PINET_BOOT_URL_BASE=base_url,
            )
            import django

            django.setup()
            django_ready = True
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
            log(f"database {name} migrated; creating {args.boards} boards in {sites} site(s)")
            fleet = _fleet(args, lab, data)
            setup_s = round(time.perf_counter() - started, 1)

            env = {
                "DJANGO_SETTINGS_MODULE": "pinet.settings",
                "PINET_ENV": "production",
                "SECRET_KEY": secret,
                "DATABASE_URL": _db_url(args.pg_url, name, args.pg_socket_dir),
                "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",  # the web namespace's own Redis
                "ALLOWED_HOSTS": WEB_IP,
                "PINET_DATA_DIR": str(data),
                "PINET_BOOT_URL_BASE": base_url,
                # The per-token limit still runs on every request; raised so the load phase may
                # send a small smoke-size fleet's tokens more than 600 requests a minute.
                "PINET_BOOT_RATE_PER_MINUTE": "1000000",
                "PINET_BENCH_BARE_BYTES": str(fleet["plan_bytes"]),
            }
            _start_web(args, lab, env)
            _start_dnsmasq(lab, data)
            # Many short connections from one address: give the client every ephemeral port.
            lab.run_in(
                lab.client_ns, ["sh", "-c", "echo 1024 65000 > /proc/sys/net/ipv4/ip_local_port_range"], check=True
            )
            log(f"set up in {setup_s} s; {args.boards} boards power on within {args.window} s")

            spec = {
                "links": fleet["links"],
                "files": TFTP_SEQUENCE,
                "digests": fleet["digests"],
                "window": args.window,
                "seed": args.seed,
            }
            spec_path = lab.path("boards.json")
            spec_path.write_text(json.dumps(spec))
            client = BASE / "benchmarks" / "storm_boards.py"
            done = lab.run_in(
                lab.client_ns,
                [sys.executable, client, "boards", spec_path],
                capture_output=True,
                text=True,
                timeout=args.window + 300,
            )
            if done.returncode != 0:
                raise RuntimeError(f"the boards' client failed:\n{done.stderr[-4000:]}")
            boards = json.loads(done.stdout)
            storm = _storm_summary(boards["boards"], boards["send_failures"])
            storm["boards_client_cpu_share"] = boards["client_cpu_share"]
            log(
                f"storm: {storm['succeeded']}/{storm['boards']} boards booted in {storm['duration_s']} s; "
                f"load: {args.clients} clients, {args.duration} s per endpoint"
            )

            token_urls = [b["url"] for link in fleet["links"] for b in link["boards"]]
            load = {
                "urls": {"boot_token_endpoint": token_urls, "bare_django_view": [base_url + BARE_PATH]},
                "order": ["bare_django_view", "boot_token_endpoint"],
                "clients": args.clients,
                "duration": args.duration,
                "warmup": min(2.0, max(0.5, args.duration / 5)),
                "rounds": 2,
            }
            load_path = lab.path("load.json")
            load_path.write_text(json.dumps(load))
            done = lab.run_in(
                lab.client_ns,
                [sys.executable, client, "load", load_path],
                capture_output=True,
                text=True,
                timeout=3 * args.duration + 120,
            )
            if done.returncode != 0:
                raise RuntimeError(f"the load client failed:\n{done.stderr[-4000:]}")
            measured = json.loads(done.stdout)
            token = _load_summary(measured["boot_token_endpoint"])
            bare = _load_summary(measured["bare_django_view"])
            # After the storm: every token has been used once, as in the load phase.
            lookup = _lookup_costs(fleet["links"])
            machine = _machine(start_load)
    finally:
        if django_ready:
            from django.db import connections

            connections.close_all()
        with psycopg.connect(args.pg_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    ratio = round(token["req_per_s"] / bare["req_per_s"], 2) if token["req_per_s"] and bare["req_per_s"] else None
    return {
        "benchmark": "boot_storm",
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": machine,
        "layout": {
            "sites": sites,
            "boards_per_site": args.boards_per_site,
            "subnets": [f"{RANGES[i % 3]}.0/24" for i in range(sites)],
            "dhcp_tftp": "pinet's rendered dnsmasq, one per site, each in its own namespace",
            "web": f"gunicorn, {args.workers} sync workers, PINET_ENV=production, PostgreSQL over its Unix socket",
            "tftp_files": list(TFTP_SEQUENCE),
            "tftp_stand_in_kib": args.tftp_kib,
            "site_apply_ms": fleet["site_apply_ms"],
            "setup_s": setup_s,
        },
        "boards": args.boards,
        "window_s": args.window,
        "storm": storm,
        "load": {
            "clients": args.clients,
            "duration_s_per_endpoint": args.duration,
            "boot_token_endpoint": token,
            "bare_django_view": bare,
            "bare_view_bytes": fleet["plan_bytes"],
            "throughput_ratio_token_vs_bare": ratio,
            "in_process_lookup": lookup,
        },
        "targets": {
            "all_boards_booted": {"target": "success rate 100 %", "met": storm["success_rate"] == 1.0},
            "token_endpoint_p99_le_50_ms_at_50_clients": {
                "target": "p99 <= 50 ms at 50 concurrent clients",
                "value_ms": token["p99_ms"],
                # Measured at another concurrency it says nothing about the target.
                "met": (token["p99_ms"] is not None and token["p99_ms"] <= 50) if args.clients == 50 else None,
            },
            "token_endpoint_throughput_ge_half_of_bare_view": {"target": "ratio >= 0.5", "met": (ratio or 0) >= 0.5},
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", type=int, default=1000)
    parser.add_argument("--window", type=float, default=10.0, help="seconds over which the boards power on")
    parser.add_argument("--clients", type=int, default=50, help="concurrent connections in the load phase")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per endpoint")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers (README's production unit)")
    parser.add_argument("--boards-per-site", type=int, default=250)
    parser.add_argument("--tftp-kib", type=int, default=8, help="size of each stand-in boot file")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--pg-url",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL database to connect to for creating and dropping bench_storm_<pid>",
    )
    parser.add_argument(
        "--pg-socket-dir",
        default=os.environ.get("PINET_TEST_PG_SOCKET_DIR", "/var/run/postgresql"),
        help="PostgreSQL's Unix socket directory (namespaces hide 127.0.0.1, not files)",
    )
    args = parser.parse_args()
    if not 1 <= args.boards_per_site <= 250:
        parser.error("--boards-per-site must be 1..250: each site's boards need addresses .2-.251 of a /24")
    if args.boards < 1 or args.clients < 1 or args.window <= 0 or args.duration <= 0:
        parser.error("--boards, --clients, --window and --duration must be positive")

    problems = []
    if sys.platform != "linux":
        problems.append("it needs Linux network namespaces")
    elif os.geteuid() != 0:
        problems.append("run it as root: it creates network namespaces and starts dnsmasq inside them")
    for program, package in (("ip", "iproute2"), ("dnsmasq", "dnsmasq-base"), ("redis-server", "redis-server")):
        if shutil.which(program, path=SBIN) is None and shutil.which(program) is None:
            problems.append(f"{program} is not installed (apt-get install {package})")
    if shutil.which("zstd") is None:
        problems.append("zstd is not installed (apt-get install zstd)")
    if not Path(sys.executable).with_name("gunicorn").exists():
        problems.append("gunicorn is not installed in this virtualenv (pip install -r requirements.txt)")
    port = urlsplit(args.pg_url).port or 5432
    if not os.path.exists(f"{args.pg_socket_dir}/.s.PGSQL.{port}"):
        problems.append(f"PostgreSQL's Unix socket is not in {args.pg_socket_dir} (--pg-socket-dir)")
    if problems:
        print("boot_storm: " + "; ".join(problems), file=sys.stderr)
        return 2

    # Only what this run sets: never the caller's database, broker or data directory.
    for key in list(os.environ):
        if (key.startswith("PINET_") and key != "PINET_KEEP_NETLAB") or key in (
            "DATABASE_URL",
            "CELERY_BROKER_URL",
            "SECRET_KEY",
            "SECRET_KEY_FILE",
            "ALLOWED_HOSTS",
            "CSRF_TRUSTED_ORIGINS",
        ):
            del os.environ[key]

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
