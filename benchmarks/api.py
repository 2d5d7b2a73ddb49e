#!/usr/bin/env python3
"""The node list API at fleet size, next to a bare Django view of the same rows.

    .venv/bin/python benchmarks/api.py                    # 10,000 nodes, pages of 100
    .venv/bin/python benchmarks/api.py --nodes 500        # CI smoke size

Prints JSON: p50/p99 of GET /api/v1/nodes/?limit=100&offset=… (an operator API key) and of a
bare JsonResponse built from .values() of the same page, in the same process and run, and
the number of SQL queries per request for several page and fleet sizes (it must not grow).
Runs on a throw-away SQLite database in a temp dir.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pinet-bench-api-") as tmp:
        os.environ.update(PINET_ENV="embedded", PINET_DATA_DIR=tmp, ALLOWED_HOSTS="testserver")
        os.environ.pop("DATABASE_URL", None)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pinet.settings")
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from django.db import connection
        from django.http import JsonResponse
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        from nodes.apikeys import api_key_create
        from nodes.models import Node, Site, Tenant

        site = Site.objects.create(
            name="bench", slug="bench", interface="pinet0", subnet="198.18.0.0/15", boot_server="198.18.0.1"
        )
        tenant = Tenant.objects.create(name="Acme", slug="acme")

        def fill(count: int) -> None:
            Node.objects.all().delete()
            Node.objects.bulk_create(
                [
                    Node(
                        site=site,
                        tenant=tenant if i % 2 else None,
                        hostname=f"node-{i}",
                        mac=f"dc:a6:{(i >> 24) & 255:02x}:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}",
                        board_model="pi4b",
                        serial=f"{i:08x}",
                    )
                    for i in range(count)
                ],
                batch_size=2000,
            )

        key, _ = api_key_create(name="bench", scope="operator")
        client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")

        def bare(request):
            # The baseline: the same page as plain rows through the same middleware, without DRF.
            offset = int(request.GET.get("offset", 0))
            rows = list(
                Node.objects.order_by("site", "hostname", "pk").values(
                    "id", "hostname", "mac", "serial", "board_model", "ip", "boot_mode", "state"
                )[offset : offset + 100]
            )
            return JsonResponse({"count": Node.objects.count(), "results": rows})

        import types

        from django.conf import settings
        from django.urls import clear_url_caches, path

        import pinet.urls

        urls = types.ModuleType("bench_urls")
        urls.urlpatterns = [path("bench/bare/", bare), *pinet.urls.urlpatterns]
        sys.modules["bench_urls"] = urls
        settings.ROOT_URLCONF = "bench_urls"
        clear_url_caches()

        queries = {}
        for fleet in sorted({min(1000, args.nodes), args.nodes}):
            fill(fleet)
            for limit in (10, 100, 1000):
                with CaptureQueriesContext(connection) as captured:
                    assert client.get(f"/api/v1/nodes/?limit={limit}").status_code == 200
                queries[f"{fleet}_nodes_limit_{limit}"] = len(captured)

        def timed(fn) -> list[float]:
            samples = []
            for i in range(args.requests):
                offset = (i * 97 * 100) % max(1, args.nodes - 100)
                start = time.perf_counter()
                fn(offset)
                samples.append((time.perf_counter() - start) * 1000)
            return samples

        api = timed(lambda offset: client.get(f"/api/v1/nodes/?limit=100&offset={offset}"))
        base = timed(lambda offset: client.get(f"/bench/bare/?offset={offset}"))

        def summary(samples):
            ordered = sorted(samples)
            return {
                "p50_ms": round(statistics.median(ordered), 2),
                "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1], 2),
            }

    print(
        json.dumps(
            {
                "benchmark": "api",
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "nodes": args.nodes,
                "page": 100,
                "requests": args.requests,
                "api_node_list": summary(api),
                "bare_django_view_same_rows": summary(base),
                "p50_ratio_api_vs_bare": round(statistics.median(api) / statistics.median(base), 2),
                "queries_per_request": queries,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
