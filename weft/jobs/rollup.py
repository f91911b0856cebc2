"""A job's status rolled up per step, rebuilt from the broker alone.

The job's own state is its task's; the steps come from its plan record, the
children from its progress records (:mod:`weft.jobs.progress`) and each
child's state from the log, read once for the whole job. A fan-out whose
items are known but not all submitted counts the rest as ``pending``.
"""

from __future__ import annotations

from typing import Any

from weft.broker import Broker
from weft.client.queries import list_tasks, task_status
from weft.client.tree import bucket
from weft.codec import loads_object
from weft.jobs import progress
from weft.names import SPAWN_REQUESTS

COUNTS = ("pending", "queued", "running", "completed", "failed")


def _count_key(status: str) -> str:
    word = bucket(status)
    return {"done": "completed", "queued": "queued", "running": "running"}.get(word, "failed")


def job_status(broker: Broker, tid: str) -> dict[str, Any]:
    """``{tid, name, status, reason, steps: [{name, items, pending, queued, running,
    completed, failed, children}], totals}``."""
    info = task_status(broker, tid)
    found = progress.records(broker, tid)
    plan = next((r for r in found if r.get("kind") == "plan"), None)
    names: list[str] = list(plan.get("steps", [])) if plan else []
    items = {str(r["step"]): int(r["count"]) for r in found if r.get("kind") == "items"}
    kids = progress.children(found)
    rows = {row["tid"]: row for row in list_tasks(broker)}
    steps: dict[str, dict[str, Any]] = {
        name: {"name": name, "items": items.get(name), "children": [],
               **{k: 0 for k in COUNTS}} for name in names}
    for (step, _index), child in sorted(kids.items()):
        entry = steps.setdefault(step, {"name": step, "items": None, "children": [],
                                        **{k: 0 for k in COUNTS}})
        status = rows.get(child, {}).get("status", "queued")
        entry[_count_key(status)] += 1
        entry["children"].append(child)
    for entry in steps.values():
        total = entry["items"] if entry["items"] is not None else None
        if total is not None:
            entry["pending"] = max(0, total - len(entry["children"]))
    totals = {k: sum(e[k] for e in steps.values()) for k in COUNTS}
    return {"tid": tid, "name": (plan or {}).get("name") or info.get("name"),
            "status": info["status"], "error": info.get("error"),
            "reason": info.get("reason"), "steps": list(steps.values()), "totals": totals}


def list_jobs(broker: Broker) -> list[dict[str, Any]]:
    """Every job, started or still queued, oldest first: ``{tid, name, status}``."""
    from weft.jobs.runner import RUNNER

    rows = {row["tid"]: row for row in list_tasks(broker)}
    jobs: dict[str, dict[str, Any]] = {}
    for plan in progress.plans(broker):
        tid = str(plan["job"])
        jobs[tid] = {"tid": tid, "name": plan.get("name"),
                     "status": rows.get(tid, {}).get("status", "queued")}
    for body, mid in broker.find_messages(SPAWN_REQUESTS, RUNNER):
        spec = (loads_object(body) or {}).get("taskspec") or {}
        if spec.get("function") == RUNNER:
            tid = str(spec.get("tid") or str(mid).zfill(19))
            jobs.setdefault(tid, {"tid": tid, "name": spec.get("name"), "status": "queued"})
    return sorted(jobs.values(), key=lambda j: j["tid"])


def job_tree(broker: Broker, tid: str) -> dict[str, Any]:
    """The task tree of ``tid`` with a job's children grouped under one node per step.

    Same shape as :func:`weft.client.tree.tree` (step nodes have no TID and
    the step's roll-up as their status), so any tree renderer shows it.
    """
    from weft.client.tree import tree

    node = tree(broker, tid)
    found = progress.records(broker, tid)
    plan = next((r for r in found if r.get("kind") == "plan"), None)
    if plan is None:
        return node
    by_tid = {kid["tid"]: kid for kid in node["children"]}
    step_of = {child: step for (step, _i), child in progress.children(found).items()}
    groups: dict[str, list[dict[str, Any]]] = {name: [] for name in plan.get("steps", [])}
    others: list[dict[str, Any]] = []
    for child_tid, kid in by_tid.items():
        step = step_of.get(child_tid)
        (groups.setdefault(step, []) if step else others).append(kid)
    steps = []
    for name, kids in groups.items():
        rollup = {"running": 0, "queued": 0, "done": 0, "failed": 0}
        for kid in kids:
            rollup[bucket(kid["status"])] += 1
        steps.append({"tid": None, "name": f"step {name}", "status": _step_word(rollup, kids),
                      "exit_code": None, "children": kids, "rollup": rollup})
    node["children"] = steps + others
    return node


def _step_word(rollup: dict[str, int], kids: list[dict[str, Any]]) -> str:
    if not kids:
        return "pending"
    if rollup["running"] or rollup["queued"]:
        return "running"
    return "failed" if rollup["failed"] else "completed"
