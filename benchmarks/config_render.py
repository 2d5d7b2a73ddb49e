#!/usr/bin/env python3
"""Boot configuration pipeline at fleet sizes: snapshot, render, validate, apply.

    .venv/bin/python benchmarks/config_render.py                 # 1k, 10k, 50k nodes
    .venv/bin/python benchmarks/config_render.py --sizes 200     # CI smoke size

Prints one JSON document. For every size and backend: the query count of the snapshot, the
time of each stage, and next to them the raw daemon's own check of the same configuration
(`dnsmasq --test` / `kea-dhcp4 -t` run directly) measured in the same run, so pinet's own
cost reads as a ratio. `scaling` is t(largest)/t(second largest) of pinet's own code
(snapshot + render + write). With --reload-pause (root; needs `ip netns`), dnsmasq serves
the rendered site in a private namespace and the time from SIGHUP to its next DHCP answer
is measured. Runs on a throw-away SQLite database (or DATABASE_URL if set) in a temp dir.
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


def _setup(data_dir: Path) -> None:
    os.environ["PINET_DATA_DIR"] = str(data_dir)
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


def reload_pause(size: int) -> dict | None:
    """dnsmasq in a private namespace: ms from SIGHUP to the next DHCP answer."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return None
    from nodes.models import Site
    from provisioning import selectors
    from provisioning.services import site_config_render
    from provisioning.tests.netlab import NetLab

    site = Site.objects.get(slug="bench")
    site.interface = "placeholder"
    with NetLab() as lab:
        Site.objects.filter(pk=site.pk).update(interface=lab.server_if, subnet="198.18.0.0/15")
        out = Path(tempfile.mkdtemp(prefix="pinet-bench-"))
        snap, _ = site_config_render(site=Site.objects.get(pk=site.pk), out_dir=out)
        del snap, selectors
        lab.start_daemon(lab.server_ns, ["dnsmasq", "-k", "-C", str(out / "dnsmasq" / "dnsmasq.conf")], out / "log")
        mac = "dc:a6:00:00:00:02"
        deadline = time.monotonic() + 60
        while not (lab.probe_dhcp(mac=mac, profile="pi4", timeout=2) or {}).get("offer"):
            if time.monotonic() > deadline:
                return {"error": "dnsmasq did not answer"}
        proc = lab.processes[-1]
        start = time.perf_counter()
        lab.signal(proc, 1)
        while not (lab.probe_dhcp(mac=mac, profile="pi4", timeout=1) or {}).get("offer"):
            pass
        return {"nodes": size, "sighup_to_answer_ms": round((time.perf_counter() - start) * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--backends", default="dnsmasq,kea")
    parser.add_argument("--reload-pause", type=int, default=0, help="Also measure dnsmasq's SIGHUP pause at N hosts.")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="pinet-bench-") as tmp:
        _setup(Path(tmp))
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
        pause = None
        if args.reload_pause:
            _fleet(args.reload_pause, "dnsmasq")
            pause = reload_pause(args.reload_pause)
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
                "dnsmasq_reload_pause": pause,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
