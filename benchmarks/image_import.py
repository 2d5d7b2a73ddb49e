#!/usr/bin/env python3
"""Image import stages next to the raw tools on the same files, in the same run.

    sudo .venv/bin/python benchmarks/image_import.py                 # ≈1.2 GB image
    sudo .venv/bin/python benchmarks/image_import.py --size-mib 64   # CI smoke size

Builds a Raspberry Pi OS-shaped image (FAT boot + ext4 root holding many files of mixed
sizes), compresses it with xz (multi-block) and zstd, then times:
- pinet's decompression of each against `xz -dc -T0` / `zstd -dc -T0` writing to disk;
- pinet's root extraction (debugfs rdump + restoring special files) against `rsync -a` of the
  same tree;
- the whole pipeline (image_import_run) on the .img.xz.
Prints JSON with MB/s and pinet/raw ratios. Needs root (device nodes) and the Debian tools.
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


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def _best(fn, cleanup, rounds: int = 2) -> float:
    """Best of a few runs, each after a sync, so one run's dirty pages do not slow the next."""
    times = []
    for _ in range(rounds):
        os.sync()
        _, elapsed = _timed(fn)
        times.append(elapsed)
        cleanup()
    return min(times)


def _fill_tree(root: Path, total: int) -> int:
    """Many files of mixed sizes, like an OS: mostly small, some large."""
    sizes = [512, 4096, 16384, 65536, 1 << 20, 8 << 20]
    written, i = 0, 0
    while written < total:
        size = sizes[i % len(sizes)] if i % 50 else sizes[-1]
        folder = root / "usr" / "lib" / f"pkg{i // 200}"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"f{i}", "wb") as fh:
            # Half random, half zeros: compresses like real binaries do, roughly 2:1.
            fh.write(os.urandom(size // 2) + bytes(size - size // 2))
        written += size
        i += 1
    return i


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1200, help="Approximate image size.")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print(json.dumps({"benchmark": "image_import", "skipped": "needs root for device nodes"}))
        return
    with tempfile.TemporaryDirectory(prefix="pinet-bench-img-") as tmp:
        work = Path(tmp)
        os.environ.update(PINET_ENV="embedded", PINET_DATA_DIR=str(work / "data"), PINET_IMPORT_RESERVE_BYTES="0")
        os.environ.pop("DATABASE_URL", None)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pinet.settings")
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from images import importer
        from images.models import OSImage
        from images.services import image_create, image_import_run
        from images.tests import imagebuilder

        src = work / "src"
        src.mkdir()
        tree_bytes = int(args.size_mib * 0.8) << 20
        boot_tree, root_tree = imagebuilder.make_trees(src, payload=1 << 20)
        files = _fill_tree(root_tree, tree_bytes)
        shutil.rmtree(src / "src-boot")
        shutil.rmtree(src / "src-root")
        root_mib = int(args.size_mib * 0.95)
        # build_image makes the trees again; add the payload to that tree before mkfs.
        original = imagebuilder.make_trees

        def with_payload(base, payload):
            boot, root = original(base, payload=payload)
            _fill_tree(root, tree_bytes)
            return boot, root

        imagebuilder.make_trees = with_payload
        disk, t_build = _timed(lambda: imagebuilder.build_image(src, root_mib=root_mib, payload=1 << 20))
        size = disk.stat().st_size
        xz = src / "disk.img.xz"
        subprocess.run(["xz", "-k", "-f", "-1", "-T0", "--block-size=64MiB", str(disk)], check=True)
        zst = src / "disk.img.zst"
        subprocess.run(["zstd", "-q", "-f", "-3", "-T0", str(disk), "-o", str(zst)], check=True)

        def raw(cmd):
            out = work / "raw.img"

            def once():
                with open(out, "wb") as fh:
                    subprocess.run(cmd, stdout=fh, check=True)

            return _best(once, out.unlink)

        image = OSImage(pk=0, name="bench", version=1, arch="arm64", source="", state="importing")
        progress = importer.Progress(image)
        progress.write = lambda force=False: None  # no row to report to here
        results = {}
        for fmt, path, cmd in (
            ("img.xz", xz, ["xz", "-dc", "-T0", str(xz)]),
            ("img.zst", zst, ["zstd", "-dc", "-T0", "-q", str(zst)]),
        ):
            stage = work / f"stage-{fmt}"
            stage.mkdir()
            t_raw = raw(cmd)
            t_pinet = _best(
                lambda p=path, f=fmt, s=stage: importer.decompress(p, f, s, progress),
                lambda s=stage: (s / "disk.img").unlink(),
            )
            shutil.rmtree(stage)
            results[f"decompress_{fmt}"] = {
                "pinet_mb_s": round(size / t_pinet / 1e6, 1),
                "raw_tool_mb_s": round(size / t_raw / 1e6, 1),
                "ratio": round(t_raw / t_pinet, 2),
            }
        parts = importer.partitions(disk)
        _boot, root_part = importer.pick(parts)
        target = work / "tree" / "root"
        target.parent.mkdir()
        rebuilt = src / "src-root"
        t_rsync = _best(
            lambda: subprocess.run(["rsync", "-a", "-H", f"{rebuilt}/", str(work / "rsync")], check=True),
            lambda: shutil.rmtree(work / "rsync"),
        )
        t_extract = _best(
            lambda: importer.extract_root(disk, root_part, target, progress), lambda: shutil.rmtree(target)
        )
        importer.extract_root(disk, root_part, target, progress)
        tree = importer._tree_bytes(target)
        results["extract_root"] = {
            "files": files,
            "tree_mb": round(tree / 1e6, 1),
            "pinet_mb_s": round(tree / t_extract / 1e6, 1),
            "rsync_mb_s": round(tree / t_rsync / 1e6, 1),
            "ratio": round(t_rsync / t_extract, 2),
        }
        shutil.rmtree(work / "tree")
        imported = image_create(by=None, name="bench", arch="arm64", source=str(xz))
        done, t_all = _timed(lambda: image_import_run(image_id=imported.pk))
        results["pipeline_img_xz"] = {
            "state": done.state,
            "error": done.error,
            "seconds": round(t_all, 1),
            "mb_s": round(size / t_all / 1e6, 1),
        }
    print(
        json.dumps(
            {
                "benchmark": "image_import",
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "image_bytes": size,
                "build_seconds": round(t_build, 1),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
