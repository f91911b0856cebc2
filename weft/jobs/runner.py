"""The job's own task: run the steps of a job definition as child tasks.

``weft job run`` submits :func:`run_job` as a function task. It walks the
steps in dependency order, submitting each step's children (one task, or
one per item of a fan-out, at most ``parallel`` at once) with the job as
their ``parent_tid``, and feeds each step's output to the steps that need
it. Every child is queued atomically with its progress record
(:mod:`weft.jobs.progress`), so when the job's process dies and weft retries
the job (its spec retries ``consumer_lost``), the new attempt knows every
child already submitted and submits only the rest.

Control is the task's own: STOP (SIGTERM here) stops submitting, cancels
the children still queued and stops the running ones before returning;
PAUSE (SIGSTOP of this process) holds further steps while running children
go on. Children are queued fenced on the job's open record, so a STOP that
this process has not yet seen still stops the queueing at once
(:mod:`weft.jobs.stopping`). The return value lists each step's outcome; a
failed step whose ``on_error`` is not ``continue`` cancels what remains and
fails the job.
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

from weft.client.client import WeftClient
from weft.client.current import current_task
from weft.client.result import Result
from weft.client.task import Task
from weft.errors import JobFailed, WeftError
from weft.jobs import progress, stopping
from weft.jobs.definition import JobDefinition, Step, check, substitute

RUNNER = "weft.jobs.runner:run_job"
POLL = 0.1
STOP_WAIT = 30.0  # how long a job stopped through its fence waits for the STOP itself


def run_job(definition: dict[str, Any]) -> dict[str, Any]:
    """The job task's target (see the module docstring)."""
    me = current_task()
    if me is None:
        raise WeftError("run_job runs as a weft task: use 'weft job run FILE'")
    job = check(definition)
    with WeftClient(auto_start=False) as client:
        run = JobRun(client, me.tid, job)
        summary = run.run()
    if summary["status"] == "cancelled":
        run.await_stop()
    if summary["status"] == "failed":
        raise JobFailed(summary["error"])
    return summary


class JobRun:
    def __init__(self, client: WeftClient, tid: str, job: JobDefinition) -> None:
        self.client = client
        self.broker = client.broker
        self.tid = tid
        self.job = job
        found = progress.records(self.broker, tid)
        self.submitted = progress.children(found)  # (step, item) -> child TID
        self.counted = {str(r["step"]) for r in found if r.get("kind") == "items"}
        if not any(r.get("kind") == "plan" for r in found):
            progress.record(self.broker, tid, "plan", name=job.name,
                            steps=[s.name for s in job.order()])
        self.items: dict[str, list[Any]] = {}
        self.results: dict[str, Result] = {}  # child TID -> its final result
        self.state: dict[str, str] = {}  # step -> completed | failed | cancelled
        self.error: str | None = None
        self.fence = stopping.open_fence(self.broker, tid)  # None: stopped already
        self.stopping = self.fence is None
        self.signalled = False

    # -- the loop ---------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        signal.signal(signal.SIGTERM, self._on_term)
        marker = self.client.change_marker()
        while len(self.state) < len(self.job.steps):
            if self.stopping or self.error is not None:
                self._cancel_rest("stopped" if self.stopping else "an earlier step failed")
                break
            if not self._advance():
                marker = self.client.wait_for_change(marker, timeout=POLL)
        if not self.stopping:  # a stopped job keeps its stopped record: a retry must see it
            stopping.forget(self.broker, self.tid)
        return self._summary()

    def _on_term(self, _signum: int, _frame: Any) -> None:
        self.stopping = self.signalled = True

    def await_stop(self) -> None:
        """Stopped through the fence before the STOP reached this process: wait for
        it, so the job ends ``cancelled`` by it rather than as if it had finished."""
        deadline = time.monotonic() + STOP_WAIT
        while not self.signalled and time.monotonic() < deadline:
            time.sleep(POLL)
        if not self.signalled:
            raise JobFailed("the job was stopped (its STOP did not arrive)")

    def _advance(self) -> bool:
        """Move every step on as far as it goes now; True if anything changed."""
        moved = False
        for step in self.job.order():
            if step.name in self.state or self.stopping or self.error is not None:
                continue
            needs = self.job.needs_of(step)
            if any(n not in self.state for n in needs):
                continue
            if any(self.state[n] != "completed" and not self.job.step(n).tolerant for n in needs):
                self.state[step.name] = "cancelled"
                moved = True
                continue
            moved |= self._run_step(step)
        return moved

    def _run_step(self, step: Step) -> bool:
        items = self._items(step)
        moved = False
        running = 0
        for index in range(len(items)):
            child = self.submitted.get((step.name, index))
            if child is None:
                if running >= step.parallel or self.stopping:
                    break
                tid = self._submit(step, index, items[index])
                if tid is None:  # the job was stopped: nothing more is queued
                    self.stopping = True
                    break
                self.submitted[(step.name, index)] = tid
                running += 1
                moved = True
            elif child not in self.results:
                result = _final(Task(self.client, child))
                if result is None:
                    running += 1
                else:
                    self.results[child] = result
                    moved = True
        tids = [self.submitted.get((step.name, i)) for i in range(len(items))]
        if all(t is not None and t in self.results for t in tids):
            bad = [t for t in tids if t is not None and not self.results[t].ok]
            self.state[step.name] = "failed" if bad else "completed"
            if bad and not step.tolerant:
                self.error = (f"step {step.name!r} failed: {len(bad)} of {len(tids)} "
                              f"task(s) did not complete (first: {bad[0]})")
            moved = True
        return moved

    # -- inputs and children -----------------------------------------------------------
    def _items(self, step: Step) -> list[Any]:
        if step.name not in self.items:
            text, value = self._input(step)
            if isinstance(step.map, list):
                items = list(step.map)
            elif step.map == "lines":
                items = [line for line in text.splitlines() if line.strip()]
            elif step.map == "json":
                items = value if isinstance(value, list) else _json_or_none(text)
                if not isinstance(items, list):
                    raise JobFailed(f"step {step.name!r}: map = 'json' needs a JSON list")
            else:
                items = [(text, value)]
            self.items[step.name] = items
            if step.fan_out and step.name not in self.counted:
                progress.record(self.broker, self.tid, "items", step=step.name, count=len(items))
                self.counted.add(step.name)
        return self.items[step.name]

    def _input(self, step: Step) -> tuple[str, Any]:
        """(text, value) of what the step needs: one need's output, or all joined."""
        outputs = [self._output(self.job.step(n)) for n in self.job.needs_of(step)]
        if not outputs:
            return "", None
        if len(outputs) == 1:
            return outputs[0]
        text = "".join(t for t, _ in outputs)
        return text, {n: v for n, (_, v) in zip(self.job.needs_of(step), outputs, strict=True)}

    def _output(self, step: Step) -> tuple[str, Any]:
        results = [self.results[t] for (name, _i), t in sorted(self.submitted.items())
                   if name == step.name and t in self.results and self.results[t].ok]
        texts = [_text(r) for r in results]
        values = [_value(r) for r in results]
        if step.fan_out:
            return "".join(t if t.endswith("\n") or not t else t + "\n" for t in texts), values
        return (texts[0], values[0]) if results else ("", None)

    def _submit(self, step: Step, index: int, item: Any) -> str | None:
        """Queue one child, fenced on the job's open record; None once the job is stopped."""
        if self.fence is None:  # stopped before it started: nothing is queued
            return None
        names = {**self.job.vars}
        text, value = item if not step.fan_out else (_item_text(item), item)
        if step.fan_out:
            names["item"] = text
        fields: dict[str, Any] = {
            "name": f"{self.job.name}.{step.name}" + (f"[{index}]" if step.fan_out else ""),
            "labels": {"weft.job": self.tid, "weft.step": step.name, "weft.item": str(index)},
            "env": step.env, "timeout": step.timeout, "resources": step.resources or None,
            "priority": step.priority, "cwd": step.cwd or self.job.cwd,
        }
        if step.attempts_retried:
            fields["retries"] = step.attempts_retried
        inbox = None
        if step.command is not None:
            shell = isinstance(step.command, str)
            command = substitute([step.command] if shell else list(step.command), names)
            spec = self.client.build_spec(command=command, shell=shell or None, **fields)
            if step.input and (step.fan_out or self.job.needs_of(step)):
                inbox = text
        else:
            args = substitute(list(step.args), names)
            if step.input and (step.fan_out or self.job.needs_of(step)):
                args = [value, *args]
            spec = self.client.build_spec(function=step.function, args=args,
                                          kwargs=substitute(dict(step.kwargs), names), **fields)
        from weft.models import SpawnRequest

        request = SpawnRequest(taskspec=spec, inbox_message=inbox, request_id=spec.request_id)
        return progress.submit_child(self.broker, self.tid, step.name, index,
                                     request.model_dump_json(exclude_none=True), fence=self.fence)

    # -- ending ----------------------------------------------------------------------------
    def _cancel_rest(self, why: str) -> None:
        """Stop every unfinished child; mark the steps that will not finish."""
        for child in [t for t in self.submitted.values() if t not in self.results]:
            task = Task(self.client, child)
            try:
                task.stop(timeout=1.0)
            except WeftError:
                pass  # it ended meanwhile, or its manager is gone: nothing to stop
            result = _final(task)
            if result is not None:
                self.results[child] = result
        for step in self.job.steps:
            self.state.setdefault(step.name, "cancelled")
        if self.error is None:
            self.error = why

    def _summary(self) -> dict[str, Any]:
        steps = []
        for step in self.job.order():
            tids = [t for (name, _i), t in sorted(self.submitted.items()) if name == step.name]
            counts: dict[str, int] = {}
            for tid in tids:
                status = self.results[tid].status if tid in self.results else "unfinished"
                counts[status] = counts.get(status, 0) + 1
            steps.append({"name": step.name, "status": self.state.get(step.name, "cancelled"),
                          "items": len(self.items.get(step.name, [])), "counts": counts,
                          "children": tids})
        failed = self.error is not None and not self.stopping
        status = "cancelled" if self.stopping else "failed" if failed else "completed"
        last = self.job.order()[-1]
        output = self._output(last)[1] if self.state.get(last.name) == "completed" else None
        return {"job": self.job.name, "tid": self.tid, "status": status, "error": self.error,
                "steps": steps, "output": output}


def _final(task: Task) -> Result | None:
    if not task.done():
        return None
    return task.wait(timeout=5.0)


def _text(result: Result) -> str:
    if result.value is not None:
        return result.value if isinstance(result.value, str) else json.dumps(result.value)
    return result.stdout


def _value(result: Result) -> Any:
    if result.value is not None:
        return result.value
    return result.stdout.rstrip("\n")


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text or "[]")
    except ValueError:
        return None


def _item_text(item: Any) -> str:
    return item if isinstance(item, str) else json.dumps(item)

