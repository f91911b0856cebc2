"""Real payloads through ``weft run``: exact bytes, bounded memory, a broker that stays small.

    python benchmarks/payloads.py [--big-mb 100] [--huge-mb 1024]
    python benchmarks/payloads.py --api-only [--result-mb 50] [--array-len 1000000]
                                  [--huge-result-mb 200] [--repeats 3] [--postgres DSN]

In a fresh project with one manager, runs through the real CLI:

- 64 KiB and ``--big-mb`` MB of random bytes through ``weft run -- cat FILE``
  (output compared byte for byte with the input);
- ``--big-mb`` MB piped into ``weft run -- wc -c`` (stdin streamed);
- ``--huge-mb`` MB of output (``head -c`` of /dev/zero) streamed to /dev/null.

Through the Python API (``WeftClient.run(..., serializer="pickle")``): a
``--result-mb`` MB ``bytes`` result (``os.urandom``), a ``--array-len``
numpy float array, and a ``--huge-result-mb`` MB ``bytes`` result whose
point is the manager's and launcher's peak RSS (the value must not pass
through them whole). Each value is checked against a digest the task sends
beside it. Per case: wall time, the task's own time (start to result) and
CPU, and the CPU and peak RSS of the client, the manager and the launcher.
``--api-only`` runs just these; ``--no-api`` skips them. ``--postgres DSN``
runs everything on a fresh schema of that server instead of SQLite.

For each CLI case: wall time, peak RSS of the client (``/usr/bin/time``), of the
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
    size0 = broker.stat().st_size if broker.exists() else None  # None: PostgreSQL
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
            "broker_growth_mb": (None if size0 is None
                                 else round((broker.stat().st_size - size0) / 2**20, 2))}


API_MODULE = '''
import random


def big_bytes(n, seed=1):
    """n random bytes (seeded, so the caller can check them)."""
    return random.Random(seed).randbytes(n)


def float_array(n):
    import numpy
    return numpy.random.default_rng(0).random(n)
'''


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def api_case(client: Any, root: Path, procs: dict[str, psutil.Process], function: str,
             args: list[Any], check: Any) -> dict[str, Any]:
    """One value through ``client.run(serializer="pickle")``: times, CPU and peak RSS per process."""
    me = psutil.Process()
    cpu0 = {name: _cpu(proc) for name, proc in procs.items()}
    client_cpu0 = _cpu(me)
    with PeakSampler({**procs, "client": me}) as sampler:
        t0 = time.perf_counter()
        result = client.run(function=function, args=args, serializer="pickle", cwd=str(root))
        wall = time.perf_counter() - t0
    row = {"wall_s": round(wall, 3),
           "task_s": round((result.finished_at or 0) - (result.started_at or 0), 3),
           "task_cpu_s": result.cpu_time_s,
           "client_cpu_s": round(_cpu(me) - client_cpu0, 3),
           **{f"{k}_cpu_s": round(_cpu(p) - cpu0[k], 3) for k, p in procs.items()},
           **{f"{k}_mb": round(v, 1) for k, v in sampler.peaks.items()},
           "identical": bool(check(result.value))}
    del result
    return row


def api_cases(client: Any, root: Path, procs: dict[str, psutil.Process],
              args: argparse.Namespace) -> dict[str, Any]:
    """The Python API rows: each case ``--repeats`` times, the fastest kept (and all walls)."""
    import random

    (root / "bench_values.py").write_text(API_MODULE)
    n = args.result_mb * 1_000_000
    expected = hashlib.sha256(random.Random(1).randbytes(n)).hexdigest()
    cases: dict[str, tuple[str, list[Any], Any, int]] = {
        f"api_bytes_{args.result_mb}MB": (
            "bench_values:big_bytes", [n],
            lambda v: isinstance(v, bytes) and hashlib.sha256(v).hexdigest() == expected,
            args.repeats),
        f"api_array_{args.array_len}": (
            "bench_values:float_array", [args.array_len],
            lambda v: getattr(v, "shape", None) == (args.array_len,)
            and v.dtype.name == "float64", args.repeats),
    }
    if args.huge_result_mb:
        huge = args.huge_result_mb * 1_000_000
        cases[f"api_bytes_{args.huge_result_mb}MB"] = (
            "bench_values:big_bytes", [huge, 2],
            lambda v: isinstance(v, bytes) and len(v) == huge, 1)
    client.run(function="bench_values:float_array", args=[10], serializer="pickle",
               cwd=str(root))  # warm: the first function task imports the codec
    report: dict[str, Any] = {}
    for name, (function, call_args, check, repeats) in cases.items():
        rows = [api_case(client, root, procs, function, call_args, check)
                for _ in range(repeats)]
        best = min(rows, key=lambda r: r["wall_s"])
        report[name] = {**best, "walls_s": [r["wall_s"] for r in rows],
                        "identical": all(r["identical"] for r in rows)}
    return report


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
    parser.add_argument("--api-only", action="store_true",
                        help="run only the Python API value round trips")
    parser.add_argument("--no-api", action="store_true", help="skip the Python API cases")
    parser.add_argument("--result-mb", type=int, default=50)
    parser.add_argument("--array-len", type=int, default=1_000_000)
    parser.add_argument("--huge-result-mb", type=int, default=200,
                        help="a bytes result this large, for peak RSS (0: skip)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres", metavar="DSN",
                        help="use a fresh schema on this PostgreSQL server (dropped after)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="weft-payloads-"))
    backend = {} if not args.postgres else {
        "WEFT_BROKER_BACKEND": "postgres", "WEFT_BROKER_TARGET": args.postgres,
        "WEFT_BROKER_SCHEMA": f"weft_bench_{os.getpid()}"}
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WEFT_")}, **backend,
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    os.environ.update(backend)
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]  # the manager this client starts, too
    sys.path.insert(0, str(REPO))
    from weft import WeftClient

    client = WeftClient(root)
    report: dict[str, Any] = {}
    try:
        info = client.workers.start()
        procs = {"manager": psutil.Process(info.pid),
                 "launcher": psutil.Process(int(info.record["launcher_pid"]))}
        if not args.no_api:
            report.update(api_cases(client, root, procs, args))
        if not args.api_only:
            report.update(cli_cases(root, env, procs, args))
        report["blob_store_mb"] = round(client.overview()["blob_store"]["bytes"] / 2**20, 1)
    finally:
        client.workers.stop(all=True, timeout=60)
        client.close()
        shutil.rmtree(root, ignore_errors=True)
        if args.postgres:
            from weft.broker.postgres import drop_schema

            drop_schema(args.postgres, backend["WEFT_BROKER_SCHEMA"])
    _print_table(report)
    print(json.dumps(report))


def cli_cases(root: Path, env: dict[str, str], procs: dict[str, psutil.Process],
              args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {}
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
    big.unlink()
    return report


def _print_table(report: dict[str, Any]) -> None:
    groups = (
        ("wall_s", "client_mb", "manager_mb", "launcher_mb", "broker_growth_mb", "identical"),
        ("wall_s", "task_s", "task_cpu_s", "client_cpu_s", "manager_cpu_s", "launcher_cpu_s",
         "client_mb", "manager_mb", "launcher_mb", "identical"),
    )
    for cols, api in zip(groups, (False, True), strict=True):
        rows = {n: r for n, r in report.items()
                if isinstance(r, dict) and n.startswith("api_") == api}
        if not rows:
            continue
        widths = [max(15, len(c) + 2) for c in cols]
        print(f"{'case':<22}" + "".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True)))
        for name, row in rows.items():
            print(f"{name:<22}" + "".join(f"{row.get(c, '-')!s:>{w}}"
                                          for c, w in zip(cols, widths, strict=True)))


if __name__ == "__main__":
    main()
