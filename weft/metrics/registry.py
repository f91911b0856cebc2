"""The metric families weft exposes, and how a log event moves them.

One :class:`TaskMetrics` turns ``weft.tasks.log`` events into Prometheus
counters, histograms and gauges. A manager feeds it the events it writes, as
it writes them (a listener on its :class:`~weft.runtime.batch.Batch`);
``weft metrics`` feeds it every event in the broker's log. Both therefore
expose the same families with the same meaning, and the mapping from event
to metric is written once, here.

The per-event work is a few dictionary lookups and integer increments (the
families are built only when scraped): no broker access, no locks, nothing
that can raise on a malformed event.

Families (see docs/observability.md)::

    weft_tasks_{submitted,admitted,deferred,rejected,retried}_total      counters
    weft_tasks_{completed,failed,timeout,killed,cancelled}_total{group,task} counters
    weft_admission_decisions_total{decision,reason}                counter
    weft_task_queue_wait_seconds                                   histogram
    weft_task_run_seconds{outcome,group,task}                      histogram
    weft_tasks_finished_total{outcome,group,task}                  counter
    weft_task_duration_seconds{group,task}                         histogram
    weft_task_results_too_large_total{group,task}                  counter
    weft_task_{peak_memory_bytes,cpu_seconds}                      histograms
    weft_task_progress_ratio{tid,task}       (weft metrics only)   gauge
    weft_tasks_running                                             gauge
    weft_reserved_{cpus,memory_bytes,gpus,vram_bytes}{manager}     gauges
    weft_capacity_{cpus,memory_bytes,gpus}{manager}                gauges
    weft_manager_cpu_seconds_total{manager}                        counter
    weft_manager_resident_memory_bytes{manager}                    gauge
    weft_manager_{up,paused}{manager}                              gauges
    weft_manager_heartbeat_age_seconds{manager}                    gauge
    weft_build_info{version}                                       gauge
    weft_gpu_{memory_bytes,reserved_vram_bytes,tasks,exclusive,
              memory_used_bytes,utilization_ratio}{manager,gpu}    gauges (gpus.py)
    weft_broker_operation_seconds{manager,op}                      histogram (broker_stats.py)
    weft_broker_{lock_retries,lock_wait_seconds,oversize_messages}_total{manager} counters
    weft_broker_database_bytes, weft_blob_store_bytes (weft metrics only) gauges
    weft_queue_depth{queue}                                        gauge
    weft_queue_oldest_age_seconds{group}     (weft metrics only)   gauge

``task`` and ``group`` labels are bounded (:mod:`weft.metrics.labels`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from weft.metrics.broker_stats import broker_families
from weft.metrics.gpus import gpu_families
from weft.metrics.labels import TaskLabels

MIB = 1024 * 1024
OUTCOMES = ("completed", "failed", "timeout", "killed", "cancelled")
FINAL_EVENTS = {f"task_{outcome}": outcome for outcome in OUTCOMES}
QUEUE_WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
                      900, 3600)
def _geometric(low: float, high: float, ratio: float) -> tuple[float, ...]:
    """Bounds from ``low`` to past ``high``, each ``ratio`` times the last (4 digits)."""
    out, bound = [], low
    while bound < high * ratio:
        out.append(float(f"{bound:.4g}"))
        bound *= ratio
    return tuple(out)


# Run time: bounds 10 % apart from 0.01 s to past 1 h, so a p95 read with
# histogram_quantile (which interpolates inside one bucket) is within 10 %
# anywhere in that range, per task too. 135 buckets a series: the series are
# only the (outcome, group, task) that occurred, task names bounded by labels.py.
RUN_BUCKETS = _geometric(0.01, 3600, 1.1)
TASK_BUCKETS = RUN_BUCKETS
MEMORY_BUCKETS = tuple(float(MIB * 4 ** k) for k in range(10))  # 1 MiB .. 256 GiB
CPU_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400)
SEEN_LIMIT = 100_000
PROGRESS_LIMIT = 10_000  # running tasks with a reported fraction kept at once
RESERVED = (("cpus", "weft_reserved_cpus", "CPUs reserved by running tasks."),
            ("memory", "weft_reserved_memory_bytes", "Memory reserved by running tasks."),
            ("gpus", "weft_reserved_gpus", "GPUs assigned to running tasks."),
            ("vram", "weft_reserved_vram_bytes", "VRAM reserved by running tasks."))

_COUNTER_HELP = {
    "submitted": "Tasks first seen by an admission decision (attempt 1).",
    "admitted": "Task attempts admitted and launched.",
    "deferred": "Deferrals logged (once per task and distinct reason).",
    "rejected": "Tasks rejected: invalid, or can never fit.",
    "retried": "Failed attempts put back on the queue for a retry.",
    "completed": "Tasks that ended completed (exit 0 / function returned).",
    "failed": "Tasks that ended failed.",
    "timeout": "Tasks killed at their deadline.",
    "killed": "Tasks killed (KILL, limits, or a signal).",
    "cancelled": "Tasks stopped on request.",
}


def reason_kind(reason: Any) -> str:
    """A low-cardinality label for an admission reason.

    Reasons are stable text with numbers in them ("cpus: needs 4, 2 of 8
    unreserved"); the label keeps the part before the colon ("cpus"). A
    reason without one is a capacity rejection ("needs 4 CPUs, ...") or a
    code ("invalid_request").
    """
    text = str(reason or "").strip()
    if not text:
        return "unknown"
    head, sep, _rest = text.partition(":")
    if sep and len(head) <= 24:
        return head.strip().replace(" ", "_").lower()
    if text.startswith("needs "):
        return "capacity"
    if len(text) <= 32 and text.replace("_", "").isalnum():
        return text.lower()
    return "other"


def tid_time(tid: Any) -> float | None:
    """When a TID was minted (the broker's ids carry nanosecond time)."""
    text = str(tid or "")
    if not text.isdigit() or len(text) < 18:
        return None
    return int(text) / 1e9


class Hist:
    """A histogram as plain numbers: one list increment and one add per observation."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        counts = list(self.counts)  # one atomic copy: a scrape runs in another thread
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), counts, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        return out


class TaskMetrics:
    """The task families of one exposition, and the event → metric mapping.

    State is plain Python numbers, turned into metric families only when
    scraped (:meth:`collect`): an update is an integer increment, not a
    locked prometheus_client call. Updates happen on one thread (the
    manager's loop); a scrape reads atomic copies.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.counts = dict.fromkeys(_COUNTER_HELP, 0)
        self.decisions: dict[tuple[str, str], int] = {}
        self.queue_wait = Hist(QUEUE_WAIT_BUCKETS)
        self.run_time: dict[tuple[str, str, str], Hist] = {}  # (outcome, group, task)
        self.running = 0
        # per manager: cpus, memory bytes, gpus, vram bytes
        self.reserved: dict[str, list[float]] = {}
        self.queue_depth: dict[str, int] = {}
        self.oldest_queued: dict[str, float] = {}  # group -> age in seconds (weft metrics)
        self.labels = TaskLabels()
        self.finished: dict[tuple[str, str, str], int] = {}  # (outcome, group, task)
        self.too_large: dict[tuple[str, str], int] = {}  # (group, task): results refused
        self.by_task: dict[tuple[str, str], Hist] = {}  # (group, task) -> run seconds
        self.peak_memory = Hist(MEMORY_BUCKETS)
        self.cpu_time = Hist(CPU_BUCKETS)
        self._live: dict[str, tuple[str, tuple[float, float, float, float]]] = {}
        self._started: dict[str, float] = {}
        self._queued: dict[str, float] = {}
        self.seen: set[str] = set()
        self.progress: dict[str, float] = {}  # tid -> latest fraction, while the task runs
        self._handlers = {
            "task_spawning": self._spawning,
            "task_started": self._started_event,
            "task_deferred": self._deferred,
            "task_rejected": self._rejected,
            "task_retrying": self._retrying,
            "task_requeued": self._requeued,
            "task_submitted": self.labels.note,
            "task_admitted": self.labels.note,
            "task_progress": self._progress,
        }
        self.registry.register(self)

    def collect(self) -> Iterator[Any]:
        counts = dict(self.counts)
        finished = sorted(dict(self.finished).items())
        for name, help_text in _COUNTER_HELP.items():
            if name in OUTCOMES:  # by group and task, like weft_tasks_finished_total
                family = CounterMetricFamily(f"weft_tasks_{name}", help_text + " By group and task.",
                                             labels=["group", "task"])
                for (outcome, group, task), n in finished:
                    if outcome == name:
                        family.add_metric([group, task], n)
            else:
                family = CounterMetricFamily(f"weft_tasks_{name}", help_text)
                family.add_metric([], counts[name])
            yield family
        decisions = CounterMetricFamily("weft_admission_decisions",
                                        "Admission decisions logged, by decision and reason kind.",
                                        labels=["decision", "reason"])
        for (decision, reason), n in sorted(dict(self.decisions).items()):
            decisions.add_metric([decision, reason], n)
        yield decisions
        wait = HistogramMetricFamily("weft_task_queue_wait_seconds",
                                     "From submission (or retry) to the task's process start.")
        wait.add_metric([], self.queue_wait.buckets(), self.queue_wait.total)
        yield wait
        run = HistogramMetricFamily("weft_task_run_seconds", "From process start to the task's end.",
                                    labels=["outcome", "group", "task"])
        for (outcome, group, task), hist in sorted(dict(self.run_time).items()):
            run.add_metric([outcome, group, task], hist.buckets(), hist.total)
        yield run
        yield GaugeMetricFamily("weft_tasks_running", "Tasks launched and not yet ended.",
                                value=self.running)
        reserved = {mgr: list(v) for mgr, v in dict(self.reserved).items()}
        for i, (_key, name, help_text) in enumerate(RESERVED):
            gauge = GaugeMetricFamily(name, help_text, labels=["manager"])
            for mgr, amounts in sorted(reserved.items()):
                gauge.add_metric([mgr], max(0.0, amounts[i]))
            yield gauge
        yield from self._task_families()
        yield self._progress_family()
        if self.oldest_queued:
            oldest = GaugeMetricFamily("weft_queue_oldest_age_seconds",
                                       "Age of the oldest request waiting to be claimed, by group.",
                                       labels=["group"])
            for group, age in sorted(self.oldest_queued.items()):
                oldest.add_metric([group], age)
            yield oldest
        depth = GaugeMetricFamily("weft_queue_depth", "Messages waiting in a weft queue.",
                                  labels=["queue"])
        for queue, n in sorted(dict(self.queue_depth).items()):
            depth.add_metric([queue], n)
        yield depth

    def _task_families(self) -> Iterator[Any]:
        finished = CounterMetricFamily("weft_tasks_finished",
                                       "Tasks that ended, by outcome, group and task.",
                                       labels=["outcome", "group", "task"])
        for (outcome, group, task), n in sorted(dict(self.finished).items()):
            finished.add_metric([outcome, group, task], n)
        yield finished
        duration = HistogramMetricFamily("weft_task_duration_seconds",
                                         "From process start to the task's end, by group and task.",
                                         labels=["group", "task"])
        for (group, task), hist in sorted(dict(self.by_task).items()):
            duration.add_metric([group, task], hist.buckets(), hist.total)
        yield duration
        too_large = CounterMetricFamily("weft_task_results_too_large",
                                        "Tasks failed because their result was too large to "
                                        "store (reason result_too_large).",
                                        labels=["group", "task"])
        for (group, task), n in sorted(dict(self.too_large).items()):
            too_large.add_metric([group, task], n)
        yield too_large
        for name, help_text, hist in (
                ("weft_task_peak_memory_bytes", "Peak resident memory of a task's process tree.",
                 self.peak_memory),
                ("weft_task_cpu_seconds", "CPU time of a task's process tree.", self.cpu_time)):
            family = HistogramMetricFamily(name, help_text)
            family.add_metric([], hist.buckets(), hist.total)
            yield family

    def _progress_family(self) -> Any:
        """The latest fraction each running task reported (``current_task().progress``).

        One series per running task that reported a fraction, labelled by TID
        and task: bounded by what runs at once, and gone when the task ends.
        """
        gauge = GaugeMetricFamily("weft_task_progress_ratio",
                                  "Latest progress fraction (0..1) a running task reported.",
                                  labels=["tid", "task"])
        for tid, fraction in sorted(dict(self.progress).items()):
            gauge.add_metric([tid, self.labels.get(tid)[0]], fraction)
        return gauge

    # -- the mapping ----------------------------------------------------------
    def observe(self, event: dict[str, Any]) -> None:
        """Move the metrics one event moves; ignore anything else. Never raises."""
        name = event.get("event")
        try:
            handler = self._handlers.get(name)  # type: ignore[arg-type]
            if handler is not None:
                handler(event)
            elif name in FINAL_EVENTS:
                self._final(event, FINAL_EVENTS[name])
        except (TypeError, ValueError, AttributeError):
            pass  # a malformed event must not break a manager or an exposition

    def _decide(self, decision: str, reason: str) -> None:
        key = (decision, reason)
        self.decisions[key] = self.decisions.get(key, 0) + 1

    def _first_sight(self, tid: str, event: dict[str, Any]) -> None:
        if (event.get("attempt") or 1) != 1 or tid in self.seen:
            return
        if len(self.seen) >= SEEN_LIMIT:
            self.seen.clear()
        self.seen.add(tid)
        self.counts["submitted"] += 1

    def _spawning(self, event: dict[str, Any]) -> None:
        tid = str(event.get("tid"))
        self._first_sight(tid, event)
        self.counts["admitted"] += 1
        self._decide("admit", "fits")
        res = event.get("resources") or {}
        gpus = float(len(event.get("gpus") or ()) or res.get("gpus") or 0)
        usage = (float(res.get("cpus") or 0), float(res.get("memory_mb") or 0) * MIB, gpus,
                 float(res.get("vram_mb") or 0) * MIB * gpus)
        self._release(tid)  # a duplicate spawning event must not count twice
        manager = str(event.get("manager_tid") or "unknown")
        self._live[tid] = (manager, usage)
        self.running += 1
        if any(usage):
            held = self.reserved.get(manager, [0.0, 0.0, 0.0, 0.0])
            self.reserved[manager] = [r + u for r, u in zip(held, usage, strict=True)]

    def _release(self, tid: str) -> None:
        live = self._live.pop(tid, None)
        if live is None:
            return
        manager, usage = live
        self.running -= 1
        if any(usage):
            held = self.reserved.get(manager, [0.0, 0.0, 0.0, 0.0])
            self.reserved[manager] = [r - u for r, u in zip(held, usage, strict=True)]

    def _started_event(self, event: dict[str, Any]) -> None:
        tid = str(event.get("tid"))
        ts = float(event["ts"])
        since = self._queued.pop(tid, None) or tid_time(tid)
        if since is not None and ts >= since:
            self.queue_wait.observe(ts - since)
        self._started[tid] = ts

    def _deferred(self, event: dict[str, Any]) -> None:
        self._first_sight(str(event.get("tid")), event)
        self.counts["deferred"] += 1
        self._decide("defer", reason_kind(event.get("reason")))

    def _rejected(self, event: dict[str, Any]) -> None:
        tid = str(event.get("tid"))
        self._first_sight(tid, event)
        self.seen.discard(tid)
        self.counts["rejected"] += 1
        self._decide("reject", reason_kind(event.get("reason")))

    def _retrying(self, event: dict[str, Any]) -> None:
        tid = str(event.get("tid"))
        self.counts["retried"] += 1
        self._release(tid)
        self._started.pop(tid, None)
        self._queued[tid] = float(event["ts"])

    def _requeued(self, event: dict[str, Any]) -> None:
        self._release(str(event.get("tid")))

    def _progress(self, event: dict[str, Any]) -> None:
        fraction = (event.get("details") or {}).get("fraction")
        if fraction is None:
            return
        if len(self.progress) >= PROGRESS_LIMIT:
            self.progress.clear()
        self.progress[str(event.get("tid"))] = min(1.0, max(0.0, float(fraction)))

    def _final(self, event: dict[str, Any], outcome: str) -> None:
        tid = str(event.get("tid"))
        self.progress.pop(tid, None)
        self.counts[outcome] += 1
        started = self._started.pop(tid, None)
        task, group = self.labels.pop(tid)
        key = (outcome, group, task)
        self.finished[key] = self.finished.get(key, 0) + 1
        if event.get("reason") == "result_too_large":
            self.too_large[(group, task)] = self.too_large.get((group, task), 0) + 1
        if started is not None:
            seconds = max(0.0, float(event["ts"]) - started)
            hist = self.run_time.get(key)
            if hist is None:
                hist = self.run_time[key] = Hist(RUN_BUCKETS)
            hist.observe(seconds)
            hist = self.by_task.get((group, task))
            if hist is None:
                hist = self.by_task[(group, task)] = Hist(TASK_BUCKETS)
            hist.observe(seconds)
        if event.get("peak_rss_mb") is not None:
            self.peak_memory.observe(float(event["peak_rss_mb"]) * MIB)
        if event.get("cpu_time_s") is not None:
            self.cpu_time.observe(float(event["cpu_time_s"]))
        self._release(tid)
        self._queued.pop(tid, None)
        self.seen.discard(tid)


def manager_families(managers: list[dict[str, Any]],
                     usage: dict[str, tuple[float, float]], now: float | None = None) -> list[Any]:
    """Per-manager gauges from registry records (capacity, pause, heartbeat) and
    process readings, and ``weft_build_info``.

    ``usage`` maps a manager tid to ``(rss_bytes, cpu_seconds)`` for the
    managers whose process could be read. ``managers`` are the live ones.
    """
    import time

    from weft import __version__

    now = time.time() if now is None else now
    info = GaugeMetricFamily("weft_build_info", "The weft version, as a label.", labels=["version"])
    info.add_metric([__version__], 1.0)
    up = GaugeMetricFamily("weft_manager_up", "1 for each live manager.", labels=["manager"])
    paused = GaugeMetricFamily("weft_manager_paused", "1 while a manager is paused.",
                               labels=["manager"])
    beat_age = GaugeMetricFamily("weft_manager_heartbeat_age_seconds",
                                 "Seconds since the manager's last heartbeat.", labels=["manager"])
    cpus = GaugeMetricFamily("weft_capacity_cpus", "CPUs a manager offers.", labels=["manager"])
    memory = GaugeMetricFamily("weft_capacity_memory_bytes", "Memory a manager offers.",
                               labels=["manager"])
    gpus = GaugeMetricFamily("weft_capacity_gpus", "GPUs a manager offers.", labels=["manager"])
    cpu_time = CounterMetricFamily("weft_manager_cpu_seconds", "CPU time of the manager process.",
                                   labels=["manager"])
    rss = GaugeMetricFamily("weft_manager_resident_memory_bytes",
                            "Resident memory of the manager process.", labels=["manager"])
    for record in managers:
        tid = str(record.get("tid"))
        up.add_metric([tid], 1.0)
        paused.add_metric([tid], 1.0 if record.get("paused") else 0.0)
        if record.get("heartbeat_at"):
            beat_age.add_metric([tid], max(0.0, now - float(record["heartbeat_at"])))
        caps = record.get("capabilities") or {}
        if caps.get("cpus") is not None:
            cpus.add_metric([tid], float(caps["cpus"]))
        if caps.get("memory_mb") is not None:
            memory.add_metric([tid], float(caps["memory_mb"]) * MIB)
        devices = caps.get("gpus")
        gpus.add_metric([tid], float(len(devices) if isinstance(devices, list) else devices or 0))
        if tid in usage:
            rss_bytes, cpu_seconds = usage[tid]
            rss.add_metric([tid], rss_bytes)
            cpu_time.add_metric([tid], cpu_seconds)
    return [info, up, paused, beat_age, cpus, memory, gpus, cpu_time, rss,
            *gpu_families(managers), *broker_families(managers)]
