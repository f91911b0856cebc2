"""Real payloads through ``weft run``: exact bytes, bounded memory, a broker that stays small.

    python benchmarks/payloads.py [--big-mb 100] [--huge-mb 1024]

In a fresh project with one manager, runs through the real CLI:

- 64 KiB and ``--big-mb`` MB of random bytes through ``weft run -- cat FILE``
  (output compared byte for byte with the input);
- ``--big-mb`` MB piped into ``weft run -- wc -c`` (stdin streamed);
- ``--huge-mb`` MB of output (``head -c`` of /dev/zero) streamed to /dev/null.

For each: wall time, peak RSS of the client (``/usr/bin/time``), of the
manager and of its launcher (sampled every 20 ms with psutil, so a peak
between samples can be missed by a few MB), the growth of the broker file,
and the blob store's size after. Prints a table, then JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent


class PeakSampler:
    """Highest RSS (MB) of some processes while a case runs."""

    def __init__(self, procs: dict[str, psutil.Process]) -> None:
        self.procs = procs
        self.peaks = dict.fromkeys(procs, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, proc in self.procs.items():
                try:
                    self.peaks[name] = max(self.peaks[name], proc.memory_info().rss / 2**20)
                except psutil.Error:
                    pass
            time.sleep(0.02)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_case(root: Path, env: dict[str, str], procs: dict[str, psutil.Process], argv: list[str],
             *, stdin: Path | None, stdout: Path | None) -> dict[str, Any]:
    broker = root / ".weft" / "broker.db"
    size0 = broker.stat().st_size
    with PeakSampler(procs) as sampler:
        t0 = time.perf_counter()
        with open(stdin or os.devnull, "rb") as fin, open(stdout or os.devnull, "wb") as fout:
            proc = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m",
                                   "weft.cli.main", "run", "--", *argv],
                                  cwd=root, env=env, stdin=fin, stdout=fout,
                                  stderr=subprocess.PIPE, check=False)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{argv}: exit {proc.returncode}: {proc.stderr.decode()[-500:]}")
    client_mb = int(proc.stderr.decode().strip().splitlines()[-1]) / 1024
    return {"wall_s": round(wall, 2), "client_mb": round(client_mb, 1),
            **{f"{k}_mb": round(v, 1) for k, v in sampler.peaks.items()},
            "broker_growth_mb": round((broker.stat().st_size - size0) / 2**20, 2)}


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while piece := fh.read(1 << 20):
            digest.update(piece)
    return digest.hexdigest()


def _random_file(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        for start in range(0, size, 1 << 20):
            fh.write(os.urandom(min(1 << 20, size - start)))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--big-mb", type=int, default=100)
    parser.add_argument("--huge-mb", type=int, default=1024)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="weft-payloads-"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WEFT_")},
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]  # the manager this client starts, too
    sys.path.insert(0, str(REPO))
    from weft import WeftClient

    client = WeftClient(root)
    report: dict[str, Any] = {}
    try:
        info = client.workers.start()
        procs = {"manager": psutil.Process(info.pid),
                 "launcher": psutil.Process(int(info.record["launcher_pid"]))}
        small = _random_file(root / "small.bin", 64 * 1024)
        big = _random_file(root / "big.bin", args.big_mb << 20)
        for name, source in (("cat_64KiB", small), (f"cat_{args.big_mb}MB", big)):
            out = root / "out.bin"
            report[name] = run_case(root, env, procs, ["cat", str(source)], stdin=None, stdout=out)
            report[name]["identical"] = _sha(out) == _sha(source)
            out.unlink()
        out = root / "wc.txt"
        report[f"stdin_{args.big_mb}MB_wc"] = run_case(root, env, procs, ["wc", "-c"],
                                                      stdin=big, stdout=out)
        report[f"stdin_{args.big_mb}MB_wc"]["identical"] = (
            out.read_text().strip() == str(args.big_mb << 20))
        report[f"output_{args.huge_mb}MB"] = run_case(
            root, env, procs, ["head", "-c", str(args.huge_mb << 20), "/dev/zero"],
            stdin=None, stdout=None)
        report["blob_store_mb"] = round(client.overview()["blob_store"]["bytes"] / 2**20, 1)
    finally:
        client.workers.stop(all=True, timeout=60)
        client.close()
        shutil.rmtree(root, ignore_errors=True)
    cols = ("wall_s", "client_mb", "manager_mb", "launcher_mb", "broker_growth_mb", "identical")
    print(f"{'case':<22}" + "".join(f"{c:>17}" for c in cols))
    for name, row in report.items():
        if isinstance(row, dict):
            print(f"{name:<22}" + "".join(f"{row.get(c, '-')!s:>17}" for c in cols))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
