"""eomatch-download vs curl fetching the same files from the same local HTTP server.

Writes ``--files`` files of ``--size-mb`` MB, serves them with the tests'
threaded Range-capable HTTP server, then times ``eomatch.download.download``
(which also verifies file:size / file:checksum and registers each file on its
product item) against ``curl --parallel`` with the same parallelism. Best of
``--repeat`` runs each.

    python benchmarks/download_throughput.py --files 8 --size-mb 32 --parallel 4

Prints ``ratio=<eomatch MB/s ÷ curl MB/s>`` last (target ≥ 0.8).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def _serve(root: str, port_file: str) -> None:
    """The HTTP server in its own process, so it never competes with the client for the GIL."""
    from helpers_http import RangeServer

    server = RangeServer(Path(root), chunk_bytes=1024 * 1024).start()
    Path(port_file).write_text(str(server.port))
    while True:
        time.sleep(3600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--size-mb", type=int, default=32)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import multiprocessing

    from helpers_http import sha256_multihash
    from shapely.geometry import box

    from eomatch.catalogue import MatchupCatalogue
    from eomatch.download import download
    from eomatch.model import Product
    from eomatch.settings import load_settings

    work = Path(tempfile.mkdtemp(prefix="eomatch-dlbench-"))
    try:
        data = work / "data"
        data.mkdir()
        block = os.urandom(1024 * 1024)
        names = []
        for i in range(args.files):
            name = f"f{i:03d}.tif"
            with open(data / name, "wb") as fh:
                for _ in range(args.size_mb):
                    fh.write(block)
            names.append(name)
        total = args.files * args.size_mb * 1024 * 1024
        settings = load_settings(overrides={"download": {"parallel": args.parallel}}, environ={})
        port_file = work / "port"
        proc = multiprocessing.get_context("spawn").Process(target=_serve, args=(str(data), str(port_file)), daemon=True)
        proc.start()
        deadline = time.monotonic() + 30
        while not port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port_file.read_text().strip()}"

        class _Http:
            @staticmethod
            def url(name: str) -> str:
                return f"{base}/{name}"

        http = _Http()
        try:
            best_e = best_c = float("inf")
            for r in range(args.repeat):
                cat_dir = work / f"cat-{r}"
                with MatchupCatalogue.create(cat_dir) as cat:
                    for i, name in enumerate(names):
                        cat.add_product(Product.create(
                            id=f"p{i:03d}", collection="P", platform="Landsat-9", geometry=box(0, 0, 1, 1),
                            start="2022-05-21T10:00:00Z",
                            assets={"red": {"href": http.url(name), "roles": ["data"], "file:size": args.size_mb << 20,
                                            "file:checksum": sha256_multihash(data / name)}}))  # fmt: skip
                t = time.perf_counter()
                summary = download(settings, path=cat_dir, quiet=True)
                s_e = time.perf_counter() - t
                if summary.failures or summary.bytes_transferred != total:
                    print(f"error: eomatch-download failed: {summary.line()}", file=sys.stderr)
                    return 1
                out = work / f"curl-{r}"
                out.mkdir()
                cmd = ["curl", "-s", "--no-progress-meter", "--fail", "--parallel", "--parallel-max", str(args.parallel)]
                for name in names:
                    cmd += ["-o", str(out / name), http.url(name)]
                t = time.perf_counter()
                subprocess.run(cmd, check=True)
                s_c = time.perf_counter() - t
                got = sum((out / n).stat().st_size for n in names)
                if got != total:
                    print(f"error: curl fetched {got} of {total} bytes", file=sys.stderr)
                    return 1
                print(f"run {r}: eomatch-download {total / s_e / 1e6:,.1f} MB/s ({s_e:.2f}s); "
                      f"curl {total / s_c / 1e6:,.1f} MB/s ({s_c:.2f}s)", flush=True)  # fmt: skip
                best_e, best_c = min(best_e, s_e), min(best_c, s_c)
                shutil.rmtree(cat_dir)
                shutil.rmtree(out)
        finally:
            proc.terminate()
            proc.join(5)
        print(f"{args.files} files × {args.size_mb} MB, parallel {args.parallel}, best of {args.repeat}")
        print(f"eomatch-download: {total / best_e / 1e6:,.1f} MB/s (with sha256 verify + registration)")
        print(f"curl:             {total / best_c / 1e6:,.1f} MB/s")
        print(f"ratio={best_c / best_e:.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
