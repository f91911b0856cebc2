"""The operator verbs' examples in docs/cli.md run (issue 14, "Done when"), and
every metric weft exposes is in docs/observability.md with its labels.

The examples are read from the generated reference itself (the commands'
help), the placeholder TIDs replaced by real tasks in the state each example
needs, and run through ``weft.cli.main.main`` in this process against a real
project (a process per example would add ten seconds; the verbs' own tests
run them as processes).
"""

from __future__ import annotations

import re
import shlex

import pytest
from conftest import ROOT

from weft.cli.main import main

SECTIONS = ("weft completion", "weft group", "weft task edit", "weft task hold",
            "weft task kill", "weft task list", "weft task release", "weft task restart",
            "weft task stop", "weft tidy")
PLACEHOLDERS = ("4412345678", "4412345999", "4412346123")


def examples(section: str) -> list[list[str]]:
    """The ``weft ...`` lines of one command's help in docs/cli.md, as argv
    (comments, ``eval "$(...)"`` and redirections stripped)."""
    text = (ROOT / "docs" / "cli.md").read_text()
    body = text.split(f"## `{section}`\n", 1)[1].split("\n## ", 1)[0]
    found = []
    for line in body.splitlines():
        line = line.strip()
        match = re.match(r'eval "\$\((weft [^)]*)\)"', line)
        if match:
            line = match.group(1)
        if not line.startswith("weft ") or line.startswith("weft [OPTIONS]"):
            continue
        argv = shlex.split(line.split(" #", 1)[0])
        if ">" in argv:
            argv = argv[:argv.index(">")]
        found.append(argv[1:])
    assert found, f"no example in the help of '{section}'"
    return found


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def tasks(client):
    """Real tasks standing in for the placeholders: delayed, so they wait."""
    client.auto_start = False

    def make(**options):
        return client.submit(command=["true"], delay=600, **options).tid

    return make


def _needs(section: str, client, make) -> dict[str, str]:
    """Per section, the tasks its examples act on, in the state they need."""
    if section == "weft task release":
        client.submit(command=["true"], hold=True, labels={"sweep": "lr"})
        return {PLACEHOLDERS[0]: client.submit(command=["true"], hold=True).tid}
    if section == "weft task restart":
        tid = make()
        client.cancel(tid)
        return {PLACEHOLDERS[0]: tid}
    make(labels={"sweep": "lr"}, request_id="nightly-42", group="gpu")
    return {p: make() for p in PLACEHOLDERS}


@pytest.mark.parametrize("section", SECTIONS)
def test_every_example_of_the_operator_verbs_runs(section, project, client, tasks, capsys,
                                                  monkeypatch):
    monkeypatch.setenv("WEFT_MANAGER_IDLE_TIMEOUT", "5")  # what 'weft run' starts goes soon
    for argv in examples(section):
        real = _needs(section, client, tasks)
        argv = [real.get(a, a) for a in argv]
        code, out, err = _run(argv, capsys)
        assert code == 0, (argv, err)
        assert "Traceback" not in err and out, argv


def test_every_metric_is_documented_with_its_labels(client):
    """Every family of a rich exposition (a task of each outcome, a manager
    with a card and broker counts, the storage gauges) has a row in
    docs/observability.md naming exactly its labels."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from weft.broker.opstats import STATS
    from weft.metrics.exposition import _Families, compute
    from weft.metrics.registry import manager_families

    client.auto_start = False
    client.submit(command=["true"])
    metrics = compute(client.broker)
    for i, outcome in enumerate(("completed", "failed", "timeout", "killed", "cancelled")):
        tid = str(1_700_000_000_000_000_000 + i)
        metrics.observe({"event": "task_admitted", "tid": tid, "task": "t"})
        metrics.observe({"event": "task_started", "tid": tid, "ts": 1.7e9})
        metrics.observe({"event": f"task_{outcome}", "tid": tid, "ts": 1.7e9 + 1,
                         "reason": "result_too_large", "peak_rss_mb": 1, "cpu_time_s": 1})
    metrics.observe({"event": "task_progress", "tid": "1" * 19, "details": {"fraction": 0.5}})
    metrics.observe({"event": "task_spawning", "tid": "2" * 19, "manager_tid": "M",
                     "resources": {"cpus": 1}})
    STATS.observe("write", 0.001, STATS.lock_retries)
    record = {"tid": "M", "heartbeat_at": 1.0, "broker": STATS.snapshot(),
              "capabilities": {"cpus": 1, "memory_mb": 1, "gpus": [{"index": 0, "memory_mb": 1}]},
              "load": {"gpus_live": [{"index": 0, "memory_used_mb": 1, "utilization_pct": 1}]}}
    metrics.registry.register(_Families(manager_families([record], {"M": (1.0, 1.0)})))
    exposed = {f.name: f for f in
               text_string_to_metric_families(generate_latest(metrics.registry).decode())}

    rows = {}
    doc = (ROOT / "docs" / "observability.md").read_text()
    for match in re.finditer(r"^\| `(weft_[a-z_]+)` \| (\w+) \|([^|]*)\|", doc, re.M):
        name, kind, labels = match.groups()
        rows[name.removesuffix("_total")] = (kind, set(re.findall(r"`(\w+)`", labels)))
    problems = []
    for name, family in sorted(exposed.items()):
        labels = {k for s in family.samples for k in s.labels} - {"le"}
        if name not in rows:
            problems.append(f"{name}: not documented")
        elif rows[name] != (family.type, labels):
            problems.append(f"{name}: documented {rows[name]}, exposed {(family.type, labels)}")
    problems += [f"{name}: documented, never exposed" for name in set(rows) - set(exposed)]
    assert problems == [], "\n".join(problems)
