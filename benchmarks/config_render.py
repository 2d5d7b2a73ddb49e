#!/usr/bin/env python3
"""Boot configuration pipeline at fleet sizes: snapshot, render, validate, apply.

    .venv/bin/python benchmarks/config_render.py                 # 1k, 10k, 50k nodes
    .venv/bin/python benchmarks/config_render.py --sizes 200     # CI smoke size

Prints one JSON document. For every size and backend: the query count of the snapshot, the
time of each stage, and next to them the raw daemon's own check of the same configuration
(`dnsmasq --test` / `kea-dhcp4 -t` run directly) measured in the same run, so pinet's own
cost reads as a ratio. `scaling` is t(largest)/t(second largest) of pinet's own code
(snapshot + render + write). With --daemon-reload (root; needs `ip netns`), dnsmasq and Kea serve
the rendered site in a private namespace and the time for a change to reach clients is
measured (--daemon-reload N). Runs on a throw-away SQLite database in a temp dir (or on
--database-url, which it empties).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))


def _setup(data_dir: Path, database_url: str | None) -> None:
    # Never the configured database: the benchmark deletes every site and node it finds.
    os.environ["PINET_ENV"] = "embedded"
    os.environ["PINET_DATA_DIR"] = str(data_dir)
    os.environ.pop("DATABASE_URL", None)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pinet.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _fleet(size: int, backend: str):
    from nodes.models import Node, Site

    Node.objects.all().delete()
    Site.objects.all().delete()
    # A /16 holds 50k reservations outside a small dynamic range.
    site = Site.objects.create(
        name="bench",
        slug="bench",
        interface="pinet0",
        subnet="198.18.0.0/15",
        boot_server="198.18.0.1",
        range_start="198.18.0.100",
        range_end="198.18.0.199",
        dhcp_backend=backend,
    )
    base = int.from_bytes(bytes([198, 18, 1, 0]), "big")
    nodes = []
    for i in range(size):
        address = base + i
        nodes.append(
            Node(
                site=site,
                hostname=f"node-{i}",
                mac=f"dc:a6:{(i >> 24) & 255:02x}:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}",
                board_model="pi4b",
                ip=".".join(str((address >> s) & 255) for s in (24, 16, 8, 0)),
                boot_mode="local" if i % 3 else "install",
            )
        )
    Node.objects.bulk_create(nodes, batch_size=2000)
    return site


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, (time.perf_counter() - start) * 1000


def _raw_check(backend: str, snap, files) -> float:
    """The daemon's own checker on the same content, run directly: the baseline."""
    from provisioning.rendering import dnsmasq, kea

    with tempfile.NamedTemporaryFile("w", suffix=".conf") as fh:
        fh.write(dnsmasq.validation_text(files) if backend != "kea" else kea.validation_text(snap))
        fh.flush()
        argv = ["dnsmasq", "--test", f"--conf-file={fh.name}"] if backend != "kea" else ["kea-dhcp4", "-t", fh.name]
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        return (time.perf_counter() - start) * 1000


def measure(size: int, backend: str) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from provisioning import selectors
    from provisioning.dhcp import backend_for
    from provisioning.files import sync_tree

    site = _fleet(size, backend)
    with CaptureQueriesContext(connection) as queries:
        snap, t_snapshot = _timed(lambda: selectors.site_snapshot(site))
    module = backend_for(backend)
    files, t_render = _timed(lambda: module.render(snap))
    _, t_validate = _timed(lambda: module.validate(snap, files))
    target = Path(module.directory(snap.paths))
    shutil.rmtree(target, ignore_errors=True)
    _, t_write = _timed(lambda: sync_tree(target, files))
    # One node changes: what an everyday edit costs once the tree exists.
    changed = dict(files)
    key = next(k for k in sorted(changed) if k != "dnsmasq.conf") if backend != "kea" else "kea-dhcp4.json"
    changed[key] = changed[key].replace("node-1", "node-1x", 1)
    _, t_write_one = _timed(lambda: sync_tree(target, changed))
    t_raw = _raw_check(backend, snap, files)
    own = t_snapshot + t_render + t_write
    return {
        "nodes": size,
        "backend": backend,
        "snapshot_queries": len(queries),
        "snapshot_ms": round(t_snapshot, 1),
        "render_ms": round(t_render, 1),
        "validate_ms": round(t_validate, 1),
        "write_ms": round(t_write, 1),
        "write_one_change_ms": round(t_write_one, 1),
        "pipeline_ms": round(own + t_validate, 1),
        "pipeline_one_change_ms": round(t_snapshot + t_render + t_validate + t_write_one, 1),
        "pinet_own_ms": round(own, 1),
        "raw_daemon_check_ms": round(t_raw, 1),
        "pipeline_vs_raw_check": round((own + t_validate) / t_raw, 2) if t_raw else None,
    }


def daemon_reload(size: int) -> dict | None:
    """Real daemons in a private namespace serving ``size`` nodes: how long a change takes to
    reach clients. dnsmasq is restarted (SIGHUP is unsafe on 2.90, see provisioning/dhcp/
    dnsmasq.py): the gap from SIGTERM to its next answer. Kea: the config-reload command and
    the time to the next answer. Needs root and `ip netns`."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return {"skipped": "needs root and ip netns"}
    from nodes.models import Site
    from provisioning.dhcp.kea import command as kea_command
    from provisioning.services import site_config_render
    from provisioning.tests.netlab import NetLab

    mac = "dc:a6:00:00:00:00"
    results = {"nodes": size}
    for backend in ("dnsmasq", "kea"):
        _fleet(size, backend)
        with NetLab(server_cidr="198.18.0.1/15") as lab:
            Site.objects.filter(slug="bench").update(interface=lab.server_if)
            out = lab.path("site")
            site_config_render(site=Site.objects.get(slug="bench"), out_dir=out)

            def answered(timeout=1.0):
                return lab.probe_dhcp(mac=mac, profile="pi4", timeout=timeout)["offer"] is not None

            if backend == "dnsmasq":
                conf = out / "dnsmasq" / "dnsmasq.conf"
                loop = f"while :; do dnsmasq -k --log-facility=- -C {conf}; sleep 0.05; done"
                lab.start_daemon(lab.server_ns, ["sh", "-c", loop], lab.path("dnsmasq.log"))
            else:
                run = lab.path("kea-run")
                run.mkdir()
                env = {"KEA_PIDFILE_DIR": str(run), "KEA_LOCKFILE_DIR": str(run)}
                lab.start_daemon(
                    lab.server_ns, ["kea-dhcp4", "-c", out / "kea" / "kea-dhcp4.json"], lab.path("kea.log"), env=env
                )
            deadline = time.monotonic() + 120
            while not answered(3):
                if time.monotonic() > deadline:
                    results[backend] = {"error": "the daemon never answered"}
                    break
            else:
                start = time.perf_counter()
                if backend == "dnsmasq":
                    os.kill(int((out / "dnsmasq" / "dnsmasq.pid").read_text()), 15)
                    time.sleep(0.01)
                    command_ms = None
                else:
                    kea_command(str(out / "kea" / "kea4.sock"), "config-reload", timeout=120)
                    command_ms = round((time.perf_counter() - start) * 1000, 1)
                while not answered(0.5):
                    pass
                results[backend] = {
                    "change": "restart" if backend == "dnsmasq" else "config-reload",
                    "command_ms": command_ms,
                    "until_next_answer_ms": round((time.perf_counter() - start) * 1000, 1),
                }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--backends", default="dnsmasq,kea")
    parser.add_argument("--database-url", help="A scratch database to use instead of a temporary SQLite file.")
    parser.add_argument(
        "--daemon-reload", type=int, default=0, help="Also measure how a change reaches clients at N hosts (root)."
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="pinet-bench-") as tmp:
        _setup(Path(tmp), args.database_url)
        results = [measure(size, backend) for backend in args.backends.split(",") for size in sizes]
        scaling = {}
        for backend in args.backends.split(","):
            rows = [r for r in results if r["backend"] == backend]
            if len(rows) >= 2:
                a, b = rows[-2], rows[-1]
                scaling[backend] = {
                    "sizes": [a["nodes"], b["nodes"]],
                    "pinet_own_ratio": round(b["pinet_own_ms"] / a["pinet_own_ms"], 2),
                    "node_ratio": round(b["nodes"] / a["nodes"], 2),
                }
        reload = daemon_reload(args.daemon_reload) if args.daemon_reload else None
    print(
        json.dumps(
            {
                "benchmark": "config_render",
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "results": results,
                "scaling": scaling,
                "daemon_reload": reload,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
