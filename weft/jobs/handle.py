"""What ``WeftClient.job(definition)`` returns: a job's task plus its steps as data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from weft.client.task import Task
from weft.jobs import stopping
from weft.jobs.definition import JobDefinition, check, load

if TYPE_CHECKING:
    from weft.client.client import WeftClient

# A job's process dying with its manager is retried; the new attempt resumes.
RESUME_RETRIES = 10


def definition_of(definition: JobDefinition | dict[str, Any] | str | Path,
                  overrides: tuple[str, ...] = ()) -> JobDefinition:
    """A checked definition from a model, a dict, or a TOML/JSON file path."""
    if isinstance(definition, JobDefinition):
        return definition
    if isinstance(definition, (str, Path)):
        return load(definition, overrides)
    doc = dict(definition)
    if overrides:
        from weft.jobs.definition import apply_set

        for item in overrides:
            apply_set(doc, item)
    return check(doc)


def submit_job(client: WeftClient, job: JobDefinition, **options: Any) -> JobHandle:
    """Queue the job's own task (the runner) and return its handle."""
    from weft.jobs.runner import RUNNER

    retry = {"retries": RESUME_RETRIES, "retry_on": ["consumer_lost"]}
    task = client.submit(function=RUNNER, kwargs={"definition": job.model_dump(mode="json")},
                         name=f"job:{job.name}", retry=retry, **options)
    # Open now, not only when its process starts: a STOP from here on stops the children.
    stopping.open_fence(client.broker, task.tid)
    return JobHandle(client, task.tid, job)


class JobHandle:
    """A job: its TID, its steps rolled up, waiting and cancelling."""

    def __init__(self, client: WeftClient, tid: str, job: JobDefinition | None = None) -> None:
        self.client = client
        self.tid = tid
        self.task = Task(client, tid)
        self.definition = job

    def __repr__(self) -> str:
        return f"JobHandle({self.tid!r})"

    def status(self) -> dict[str, Any]:
        """The job's state and per-step counts (pending/queued/running/completed/failed)."""
        from weft.jobs.rollup import job_status

        return job_status(self.client.broker, self.tid)

    @property
    def steps(self) -> list[dict[str, Any]]:
        """One roll-up per step, in the order the job runs them."""
        return list(self.status()["steps"])

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until the job ends; return its status with each step's outcome."""
        result = self.task.wait(timeout)
        summary = self.status()
        summary["status"] = result.status
        summary["error"] = result.error
        if isinstance(result.value, dict):
            summary["result"] = result.value
            summary["output"] = result.value.get("output")
        return summary

    def cancel(self, timeout: float = 30.0) -> dict[str, Any]:
        """STOP the job and wait until it has ended. No further step or child starts
        once the STOP returns (as for any STOP of a job, weft.jobs.stopping); queued
        children were cancelled, running ones stopped."""
        reply = self.task.stop(timeout=min(timeout, 10.0))
        self.task.wait(timeout)
        return reply
