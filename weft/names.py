"""Queue names: the fixed vocabulary of ARCHITECTURE.md §2."""

from __future__ import annotations

SPAWN_REQUESTS = "weft.spawn.requests"
SPAWN_REJECTED = "weft.spawn.rejected"
SPAWN_HELD = "weft.spawn.held"  # requests no manager may claim until released
GROUPS = "weft.groups"  # one record per task group: parallel limit, paused
# Requests with dependencies wait here until weft/runtime/dependencies.py
# releases them into SPAWN_REQUESTS (or cancels them through SPAWN_CANCELLING).
SPAWN_WAITING = "weft.spawn.waiting"
SPAWN_CANCELLING = "weft.spawn.cancelling"
# What each job has submitted, one record per step item (weft/jobs/progress.py).
JOBS_PROGRESS = "weft.jobs.progress"
# Each running job's open record (its children are queued fenced on it) and, once
# stopped, its stop record (weft/jobs/stopping.py).
JOBS_CONTROL = "weft.jobs.control"
TASKS_LOG = "weft.tasks.log"
WORKERS_REGISTRY = "weft.workers.registry"

TASK_QUEUE_SUFFIXES = ("inbox", "reserved", "outbox", "ctrl_in", "ctrl_out", "stdin")


def task_queue(tid: str, suffix: str) -> str:
    return f"T{tid}.{suffix}"


def task_queues(tid: str) -> dict[str, str]:
    return {suffix: task_queue(tid, suffix) for suffix in TASK_QUEUE_SUFFIXES}


def short_tid(tid: str) -> str:
    return tid[-10:]
