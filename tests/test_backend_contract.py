"""One contract, every broker backend: what weft relies on from the broker.

Each test runs on SQLite (always) and on PostgreSQL when ``WEFT_TEST_PG_DSN``
names a reachable database (``.ci/run`` starts one; see docs/backends.md).
A Postgres test gets its own schema, dropped at teardown, so tests stay
parallel-safe on one database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, Project, pid_alive, wait_for

from weft.broker import Broker, commit
from weft.broker.broker import PAGE, MessageTooLarge
from weft.settings import Settings

# Read at import: the `project` fixture clears WEFT_* from the environment.
PG_DSN = os.environ.get("WEFT_TEST_PG_DSN", "")
PG_SKIP = "PostgreSQL not reachable: set WEFT_TEST_PG_DSN (CI starts one)"


class Backend:
    def __init__(self, name: str, env: dict[str, str], project: Project) -> None:
        self.name = name
        self.env = env
        self.project = project

    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    def open(self) -> Broker:
        return Broker.open(self.project.root, self.settings())


def _track_processes(backend: Backend) -> None:
    """Hand the harness every PID the Postgres broker knows (it reaps from SQLite only)."""
    try:
        with backend.open() as broker:
            for queue, key in (("weft.workers.registry", ("pid", "launcher_pid")),
                               ("weft.tasks.log", ("pid",))):
                for body, _mid in broker.peek_all(queue):
                    record = json.loads(body)
                    if queue == "weft.tasks.log" and record.get("event") != "task_started":
                        continue
                    for name in key:
                        if record.get(name):
                            backend.project.track(int(record[name]))
    except Exception:  # noqa: BLE001 - best effort: the schema may be unreadable by now
        pass


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, project: Project,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", {}, project)
        return
    if not PG_DSN:
        pytest.skip(PG_SKIP)
    schema = f"weft_test_{uuid.uuid4().hex[:12]}"
    # Importing psycopg and bootstrapping a fresh schema make a manager's first start
    # slower than on SQLite; on a loaded CI box that can pass the 10 s default.
    env = {"WEFT_BROKER_BACKEND": "postgres", "WEFT_BROKER_TARGET": PG_DSN,
           "WEFT_BROKER_SCHEMA": schema, "WEFT_MANAGER_START_TIMEOUT": "30"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    project.env.update(env)
    (project.root / ".weft").mkdir(mode=0o700, exist_ok=True)
    chosen = Backend("postgres", env, project)
    try:
        yield chosen
    finally:
        _track_processes(chosen)
        project.reap()
        from weft.broker.postgres import drop_schema

        drop_schema(PG_DSN, schema)


@pytest.fixture
def broker(backend: Backend) -> Iterator[Broker]:
    (backend.project.root / ".weft").mkdir(mode=0o700, exist_ok=True)
    with backend.open() as opened:
        yield opened


# -- the Broker layer ---------------------------------------------------------
def test_write_returns_increasing_broker_ids(broker: Broker) -> None:
    ids = [broker.write("q", f"m{i}") for i in range(30)]
    assert ids == sorted(set(ids)) and all(len(str(i)) == 19 for i in ids)
    minted = broker.generate_id()
    assert minted > ids[-1]
    assert broker.write("q", "later") > minted
    assert [body for body, _ in broker.peek_many("q", 3)] == ["m0", "m1", "m2"]


def test_peek_never_claims_and_read_one_does(broker: Broker) -> None:
    first = broker.write("q", "a")
    second = broker.write("q", "b")
    assert broker.peek_one("q") == ("a", first)
    assert broker.peek_one("q") == ("a", first)
    assert broker.peek_one("q", message_id=second) == ("b", second)
    assert broker.count("q") == 2 and broker.has_pending("q")
    assert broker.read_one("q", message_id=second) == ("b", second)
    assert broker.read_one("q") == ("a", first)
    assert broker.read_one("q") is None and broker.peek_one("q") is None
    assert broker.count("q") == 0 and not broker.has_pending("q")


def test_move_one_keeps_the_id(broker: Broker) -> None:
    mid = broker.write("src", "payload")
    other = broker.write("src", "other")
    assert broker.move_one("src", "dst", message_id=mid) == ("payload", mid)
    assert broker.move_one("src", "dst", message_id=mid) is None
    assert broker.peek_all("dst").__next__() == ("payload", mid)
    assert list(broker.peek_all("src")) == [("other", other)]
    assert broker.move_all("src", "dst") == 1
    assert [m for _, m in broker.peek_all("dst")] == [mid, other]


RACER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from weft.broker import Broker
    from weft.settings import Settings
    root, dest, ids = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    with Broker.open(Path(root), Settings.from_env()) as broker:
        broker.peek_one("src")
        print("ready", flush=True)
        sys.stdin.readline()
        won = [mid for mid in ids if broker.move_one("src", dest, message_id=mid) is not None]
    print(json.dumps(won), flush=True)
""")


def test_insert_drawn_is_one_transaction_with_ids_drawn_inside(broker: Broker) -> None:
    before = broker.write("q", "before")
    rows = broker.insert_drawn(4, lambda ids: [("a", f"names {ids[1]}", ids[0]),
                                               ("b", "second", ids[1]),
                                               ("a", "third", ids[3])])
    assert [mid for _q, _b, mid in rows] == sorted(mid for _q, _b, mid in rows)
    assert rows[0][2] > before and rows[0][1] == f"names {rows[1][2]}"
    assert broker.write("q", "after") > rows[-1][2]  # the clock moved past every drawn id
    assert [m for _b, m in broker.peek_all("a")] == [rows[0][2], rows[2][2]]

    def broken(ids: list[int]) -> list[tuple[str, str, int]]:
        broker.check_size("fine")
        raise RuntimeError("the builder failed")

    with pytest.raises(RuntimeError):
        broker.insert_drawn(2, broken)
    with pytest.raises(MessageTooLarge):
        broker.insert_drawn(2, lambda ids: [("c", "ok", ids[0]),
                                            ("c", "x" * (broker.max_message_size + 1), ids[1])])
    with pytest.raises(ValueError):
        broker.insert_drawn(1, lambda ids: [("c", "not drawn", ids[0] - 1)])
    assert broker.peek_one("c") is None  # all or nothing: no row of a failed batch is kept
    assert broker.insert_drawn(1, lambda ids: [("c", "works", ids[0])])[0][1] == "works"


def _race(backend: Backend, script: str, names: list[str], ids: list[int]) -> list[list[int]]:
    """Run ``script`` in one process per name, released together; each one's winning ids.

    Every racer says "ready" once its broker is open and waits for "go", so
    they really contend; all are reaped, even when one fails.
    """
    env = {**backend.project.env, "PYTHONPATH": str(ROOT)}
    racers = [subprocess.Popen([sys.executable, "-c", script, str(backend.project.root),
                                name, json.dumps(ids)], env=env, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
              for name in names]
    try:
        for proc in racers:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in racers:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        return [json.loads(proc.communicate(timeout=60)[0]) for proc in racers]
    finally:
        for proc in racers:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_move_one_has_exactly_one_winner_across_processes(backend: Backend,
                                                          broker: Broker) -> None:
    ids = [broker.write("src", f"job{i}") for i in range(40)]
    wins = _race(backend, RACER, [f"dst{n}" for n in range(3)], ids)
    claimed = [mid for won in wins for mid in won]
    assert sorted(claimed) == ids, "every message moved exactly once"
    for n, won in enumerate(wins):
        assert [m for _, m in broker.peek_all(f"dst{n}")] == won
    assert broker.peek_one("src") is None


def test_settle_claim_is_one_fenced_transaction(broker: Broker) -> None:
    """The fenced op: act on the exact claim and write, or write nothing and say so."""
    claim = broker.write("req", "request")
    assert broker.move_one("req", "T1.reserved", message_id=claim) is not None
    work = broker.write("T2.reserved", "work item")
    assert broker.settle_claim("T1.reserved", claim, writes=[("T2.outbox", "result"),
                                                             ("log", "event")],
                               deletes=[("T2.reserved", work)])
    assert [b for b, _ in broker.peek_all("T2.outbox")] == ["result"]
    assert [b for b, _ in broker.peek_all("log")] == ["event"]
    assert broker.peek_one("T2.reserved") is None and broker.peek_one("T1.reserved") is None
    # The claim is gone: a second settle writes nothing.
    assert not broker.settle_claim("T1.reserved", claim, writes=[("T2.outbox", "again")])
    assert [b for b, _ in broker.peek_all("T2.outbox")] == ["result"]
    # Moving the claim keeps its id and may replace its body (a retry of the same TID).
    other = broker.write("T1.reserved", "attempt 1")
    assert broker.settle_claim("T1.reserved", other, move_to="req", body="attempt 2",
                               writes=[("log", "retrying")])
    assert broker.peek_one("req") == ("attempt 2", other)
    assert not broker.settle_claim("T1.reserved", other, move_to="req", body="attempt 3")
    assert broker.peek_one("req") == ("attempt 2", other)
    # keep: write only while the claim is there, and leave it there (an attempt's start).
    assert broker.settle_claim("req", other, writes=[("log", "started")], keep=True)
    assert broker.peek_one("req") == ("attempt 2", other)
    broker.delete("req", [other])
    assert not broker.settle_claim("req", other, writes=[("log", "started again")], keep=True)
    assert [b for b, _ in broker.peek_all("log")] == ["event", "retrying", "started"]
    other = broker.write("req", "attempt 2")
    # A body over the size limit is refused before anything happens.
    with pytest.raises(MessageTooLarge):
        broker.settle_claim("req", other, writes=[("T2.outbox", "x" * (broker.max_message_size + 1))])
    assert broker.peek_one("req") == ("attempt 2", other)


def test_a_step_commits_in_one_transaction(broker: Broker) -> None:
    """Writes, fences and deletes of one manager step: one transaction, ids above
    everything committed before it and in order, a missed fence writing nothing."""
    before = broker.write("log", "before")
    claim = broker.write("claims", "request")
    work = broker.write("work", "item")
    gone = broker.write("gone", "x")
    held, ids = broker.commit([
        commit.Writes([("log", "e1"), ("log", "e2")]),
        commit.Fence("claims", claim + 1, writes=[("out", "never")]),
        commit.Fence("claims", claim, writes=[("out", "result"), ("log", "done")],
                     deletes=[("work", work)]),
        commit.Deletes("gone", [gone]),
    ])
    assert held == [False, True]
    assert len(ids) == 4 and ids == sorted(set(ids)) and ids[0] > gone
    assert [b for b, _ in broker.peek_all("log")] == ["before", "e1", "e2", "done"]
    assert [b for b, _ in broker.peek_all("out")] == ["result"]
    assert broker.peek_one("claims") is None and broker.peek_one("work") is None
    assert broker.peek_one("gone") is None and before < ids[0]
    assert broker.write("log", "after") > ids[-1]  # last_ts moved past the step's ids


FOLLOWED = textwrap.dedent("""
    import sys
    from pathlib import Path
    from weft.broker import Broker, commit
    from weft.settings import Settings
    root, me = sys.argv[1], sys.argv[2]
    with Broker.open(Path(root), Settings.from_env()) as broker:
        for step in range(150):
            broker.commit([commit.Writes([("followed", f"{me}:{step}:{k}") for k in range(3)])])
""")


def test_a_follower_by_id_misses_no_step(backend: Backend, broker: Broker) -> None:
    """Ids are drawn inside the step's transaction: they rise in commit order, so a
    reader that follows a queue by id (``weft logs --follow``, the dependency
    cursor) never sees a lower id committed behind one it already passed."""
    env = {**backend.project.env, "PYTHONPATH": str(ROOT)}
    writers = [subprocess.Popen([sys.executable, "-c", FOLLOWED, str(backend.project.root),
                                 str(n)], env=env) for n in range(2)]
    seen: list[int] = []
    cursor = None
    try:
        while any(w.poll() is None for w in writers):
            page = broker.peek_many("followed", 500, after=cursor)
            seen.extend(mid for _, mid in page)
            cursor = seen[-1] if seen else None
        for w in writers:
            assert w.wait(timeout=60) == 0
        seen.extend(mid for _, mid in broker.peek_all("followed", after=cursor))
    finally:
        for w in writers:
            if w.poll() is None:
                w.kill()
                w.wait()
    assert sorted(seen) == sorted(mid for _, mid in broker.peek_all("followed"))
    assert len(seen) == 2 * 150 * 3


SETTLER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from weft.broker import Broker
    from weft.settings import Settings
    root, me, ids = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    with Broker.open(Path(root), Settings.from_env()) as broker:
        broker.peek_one("claims")
        print("ready", flush=True)
        sys.stdin.readline()
        won = [mid for mid in ids
               if broker.settle_claim("claims", mid, writes=[("results", f"{mid}:{me}")])]
    print(json.dumps(won), flush=True)
""")


def test_settle_claim_has_exactly_one_winner_across_processes(backend: Backend,
                                                              broker: Broker) -> None:
    ids = [broker.write("claims", f"job{i}") for i in range(30)]
    wins = _race(backend, SETTLER, [str(n) for n in range(3)], ids)
    assert sorted(mid for won in wins for mid in won) == ids, "every claim settled exactly once"
    results = [body for body, _ in broker.peek_all("results")]
    assert sorted(results) == sorted(f"{mid}:{n}" for n, won in enumerate(wins) for mid in won)


def test_delete_by_id_and_whole_queue(broker: Broker) -> None:
    a, b, c = (broker.write("q", x) for x in "abc")
    assert broker.delete("q", [b]) == 1
    assert broker.delete("q", [b]) == 0
    assert broker.delete("q", []) == 0
    assert [m for _, m in broker.peek_all("q")] == [a, c]
    assert broker.delete_queue("q") == 2
    assert broker.peek_one("q") is None


def test_peek_all_pages_in_id_order(broker: Broker) -> None:
    ids = broker.write_many([("big", str(i)) for i in range(PAGE + 7)])
    seen = list(broker.peek_all("big"))
    assert [m for _, m in seen] == ids and seen[-1][0] == str(PAGE + 6)
    assert [m for _, m in broker.peek_all("big", after=ids[PAGE])] == ids[PAGE + 1:]
    assert broker.peek_many("big", 2, after=ids[3]) == [("4", ids[4]), ("5", ids[5])]


def test_queue_stats_count_pending_and_total(broker: Broker) -> None:
    for body in ("x", "y", "z"):
        broker.write("stats.a", body)
    broker.write("stats.b", "only")
    broker.read_one("stats.a")
    stats = {name: (pending, total) for name, pending, total in broker.queue_stats()}
    assert stats["stats.b"] == (1, 1)
    assert stats["stats.a"][0] == 2 and stats["stats.a"][1] in (2, 3)  # claimed rows linger until vacuum
    broker.vacuum()
    after = {name: (pending, total) for name, pending, total in broker.queue_stats()}
    assert after["stats.a"] == (2, 2)


def test_find_ids_matches_body_substrings(broker: Broker) -> None:
    want = [broker.write("log", json.dumps({"tid": "123", "n": i})) for i in range(3)]
    broker.write("log", json.dumps({"tid": "456"}))
    broker.write("other", json.dumps({"tid": "123"}))
    assert broker.find_ids("log", '"tid": "123"') == want
    assert broker.find_ids("log", '"tid": "123"', limit=2) == want[:2]
    assert broker.find_ids("log", "nowhere") == []


WRITER = "import sys; from pathlib import Path; from weft.broker import Broker; " \
         "from weft.settings import Settings; " \
         "b = Broker.open(Path(sys.argv[1]), Settings.from_env()); b.write('q', 'x'); b.close()"


def test_data_version_moves_when_another_process_writes(backend: Backend, broker: Broker,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiters sleep until this changes; on Postgres it must come from NOTIFY, not the tick."""
    monkeypatch.setattr("weft.broker.postgres.TICK", 3600.0)
    broker.write("q", "warm up")
    before = broker.data_version()
    assert broker.data_version() == before, "nothing happened, nothing changed"
    subprocess.run([sys.executable, "-c", WRITER, str(backend.project.root)], check=True,
                   env={**backend.project.env, "PYTHONPATH": str(ROOT)}, timeout=60)
    wait_for(lambda: broker.data_version() != before, timeout=10, what="data_version to move")


# -- the blob store -------------------------------------------------------------
def test_blobs_round_trip_streamed_and_content_addressed(broker: Broker) -> None:
    import hashlib

    from weft.broker.blobs import blob_store

    store = blob_store(broker)
    data = os.urandom(1_300_000)  # more than one database chunk
    writer = store.writer()
    for start in range(0, len(data), 100_000):
        writer.write(data[start : start + 100_000])
    ref = writer.close()
    assert ref == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert b"".join(store.read(ref["sha256"])) == data
    assert store.put(data) == ref  # the same bytes, the same blob
    assert store.usage() == {"blobs": 1, "bytes": len(data)}
    assert store.put(b"") == {"sha256": hashlib.sha256(b"").hexdigest(), "size": 0}
    assert store.read_all(hashlib.sha256(b"").hexdigest()) == b""


def test_a_missing_or_bad_blob_is_a_blob_error(broker: Broker) -> None:
    from weft.broker.blobs import blob_store
    from weft.errors import BlobError

    store = blob_store(broker)
    with pytest.raises(BlobError, match="missing"):
        store.read_all("0" * 64)
    with pytest.raises(BlobError, match="not a blob reference"):
        store.read_all("../../etc/passwd")
    ref = store.put(b"x" * 1000)
    assert store.delete([ref["sha256"]]) == 1
    with pytest.raises(BlobError, match="missing"):
        store.read_all(ref["sha256"])


def test_sweep_keeps_referenced_blobs_and_drops_the_rest(broker: Broker) -> None:
    from weft.broker.blobs import blob_store, sweep

    store = blob_store(broker)
    kept, dropped = store.put(b"kept" * 1000), store.put(b"dropped" * 1000)
    broker.write("T1.outbox", json.dumps({"type": "stream", "blob": kept}))
    assert sweep(broker, older_than=3600) == {"blobs_dropped": 0, "blob_bytes_dropped": 0}
    report = sweep(broker, older_than=0)
    assert report == {"blobs_dropped": 1, "blob_bytes_dropped": 7000}
    assert store.read_all(kept["sha256"]) == b"kept" * 1000
    assert store.usage()["blobs"] == 1 and dropped["sha256"] not in {
        sha for sha, _, _ in store.entries()}


def test_a_half_written_blob_is_swept_and_a_whole_one_kept(broker: Broker) -> None:
    """A writer killed mid-blob (a task process writing its result) leaves a temporary
    file or queue: never visible as a blob, removed by the sweep once old."""
    from weft.broker.blobs import blob_store

    store = blob_store(broker)
    whole = store.put(b"w" * 2000)
    writer = store.writer()
    writer.write(b"half" * 200_000)  # never closed: its process "died" here
    assert store.usage() == {"blobs": 1, "bytes": 2000}
    assert store.exists(whole["sha256"], 2000) and not store.exists(whole["sha256"], 1999)
    assert store.sweep_partial(older_than=3600) == 0  # too young: may still be written
    assert store.sweep_partial(older_than=-60) == 1
    assert store.sweep_partial(older_than=-60) == 0
    assert store.read_all(whole["sha256"]) == b"w" * 2000


def test_large_output_result_and_stdin_cross_as_blobs(backend: Backend, project: Project,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the chunk size, output, results and stdin live in the blob store,
    byte-exact, on every backend."""
    from weft.broker.blobs import blob_store
    from weft.client.client import WeftClient
    from weft.models import values

    monkeypatch.setenv("WEFT_CHUNK_KB", "64")
    with WeftClient(project.root) as client:
        info = client.workers.start()
        project.track(info.pid)
        data = os.urandom(400_000) + b"\xff\xfe"
        result = client.run(command=["cat"], stdin=data, timeout=60)
        assert result.stdout_bytes == data
        bodies = [b for b, _ in client.broker.peek_all(f"T{result.tid}.outbox")]
        assert any('"blob"' in b for b in bodies)
        assert all(len(b) < 100_000 for b in bodies)  # no message carries more than a chunk
        big = client.run(function="builtins:str", args=["y" * 300_000], timeout=60)
        assert big.value == "y" * 300_000 and big.raw.get("value_blob")
        # A pickled value past the chunk size: stored by the task process itself (raw
        # pickle, no base64), only its reference in the result message.
        raw = client.run(function="os:urandom", args=[300_000], serializer="pickle", timeout=60)
        ref = raw.raw["value_blob"]
        assert ref["encoding"] == "pickle" and raw.raw["value"] is None
        assert type(raw.value) is bytes and len(raw.value) == 300_000
        stored = blob_store(client.broker).read_bytes(ref["sha256"])
        assert values.decode(values.RawPickle(stored)) == raw.value
        body = client.broker.peek_all(f"T{raw.tid}.outbox")
        assert all(len(b) < 10_000 for b, _ in body)


# -- end to end ---------------------------------------------------------------
def test_a_manager_runs_a_task_and_stops(backend: Backend, project: Project) -> None:
    from weft.client.client import WeftClient

    with WeftClient(project.root) as client:
        assert client.context.backend == backend.name
        info = client.workers.start()
        project.track(info.pid)
        result = client.run(command=["echo", "hi"], timeout=60)
        assert result.status == "completed" and result.stdout == "hi\n"
    stop = project.cli("worker", "stop", "--all")
    assert stop.returncode == 0, stop.stderr
    assert info.tid in stop.stdout
    wait_for(lambda: not pid_alive(info.pid), timeout=10, what="manager exit")
    listed = project.cli("worker", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


@pytest.mark.postgres
def test_init_records_the_postgres_backend_for_every_command(tmp_path: Path,
                                                            project: Project) -> None:
    """`weft init --backend postgres` is all a host needs: no WEFT_BROKER_* afterwards."""
    if not PG_DSN:
        pytest.skip(PG_SKIP)
    schema = f"weft_test_{uuid.uuid4().hex[:12]}"
    try:
        project.env["WEFT_MANAGER_START_TIMEOUT"] = "30"  # see the `backend` fixture
        init = project.cli("init", "--backend", "postgres", "--dsn", PG_DSN, "--schema", schema)
        assert init.returncode == 0, init.stderr
        config = json.loads((project.root / ".weft" / "config.json").read_text())
        assert config == {"broker_backend": "postgres", "broker_target": PG_DSN,
                          "broker_schema": schema}
        assert not (project.root / ".weft" / "broker.db").exists()
        run = project.cli("run", "echo", "hi")
        assert run.returncode == 0 and run.stdout == "hi\n", run.stderr
        status = project.cli("status")
        assert status.returncode == 0 and "1 completed" in status.stdout, status.stdout
        # another "host": a different directory, the same schema, found through WEFT_CONTEXT
        stop = project.cli("worker", "stop", "--all", cwd=tmp_path,
                           env={"WEFT_CONTEXT": str(project.root)})
        assert stop.returncode == 0 and stop.stdout.startswith("stopped"), stop.stderr
        assert not (project.root / ".weft" / "broker.db").exists()
    finally:
        _track_processes(Backend("postgres", {"WEFT_BROKER_BACKEND": "postgres",
                                             "WEFT_BROKER_TARGET": PG_DSN,
                                             "WEFT_BROKER_SCHEMA": schema}, project))
        project.reap()
        from weft.broker.postgres import drop_schema

        drop_schema(PG_DSN, schema)


# -- errors (no server needed) ------------------------------------------------
@pytest.mark.parametrize(("dsn", "code", "says"), [
    ("postgresql://weft@127.0.0.1:1/nodb", 3, "cannot reach Postgres"),
    ("not a dsn ===", 2, "bad Postgres DSN"),
    ("", 2, "needs a DSN"),
])
def test_a_wrong_dsn_is_one_line_and_an_exit_code(project: Project, dsn: str, code: int,
                                                  says: str) -> None:
    project.cli("init")
    proc = project.cli("status", env={"WEFT_BROKER_BACKEND": "postgres",
                                      "WEFT_BROKER_TARGET": dsn})
    assert proc.returncode == code
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in proc.stderr, proc.stderr


def test_a_password_never_reaches_the_message(project: Project) -> None:
    project.cli("init")
    proc = project.cli("status", env={"WEFT_BROKER_BACKEND": "postgres",
                                      "WEFT_BROKER_TARGET": "postgresql://u:s3cret@127.0.0.1:1/db"})
    assert proc.returncode == 3 and "s3cret" not in proc.stderr + proc.stdout


def test_missing_plugin_names_the_extra(project: Project) -> None:
    project.cli("init")
    code = ("import sys; sys.modules['simplebroker_pg'] = None; "
            "from weft.cli.main import main; main(['status'])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=project.root, capture_output=True,
                          text=True, timeout=60,
                          env={**project.env, "WEFT_BROKER_BACKEND": "postgres",
                               "WEFT_BROKER_TARGET": "postgresql://u@127.0.0.1:1/db"})
    assert proc.returncode == 3
    assert proc.stderr.strip() == "weft: error: the postgres backend needs simplebroker-pg: " \
                                  "pip install 'weft[postgres]'"


def test_environment_overrides_the_project_config(project: Project,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from weft import context

    project.cli("init")
    context.write_config(project.root, {"broker_backend": "postgres",
                                        "broker_target": "postgresql://u@db.example/weft",
                                        "broker_schema": "team_a"})
    ctx = context.resolve(project.root)
    assert ctx.backend == "postgres" and ctx.settings.broker_schema == "team_a"
    monkeypatch.setenv("WEFT_BROKER_SCHEMA", "team_b")
    assert context.resolve(project.root).settings.broker_schema == "team_b"
    sqlite = project.cli("status", env={"WEFT_BROKER_BACKEND": "sqlite"})
    assert sqlite.returncode == 0, sqlite.stderr


def test_a_bad_project_config_is_one_line(project: Project) -> None:
    project.cli("init")
    (project.root / ".weft" / "config.json").write_text('{"broker_backend": "oracle"}')
    proc = project.cli("status")
    assert proc.returncode == 2 and "broker_backend" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    (project.root / ".weft" / "config.json").write_text('{"brokr_backend": "sqlite"}')
    proc = project.cli("status")
    assert proc.returncode == 2 and "unknown setting(s) brokr_backend" in proc.stderr


# -- several hosts ------------------------------------------------------------
SECOND_HOST = "weft-host-b"


def _on_second_host(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``weft ARGS`` in its own UTS namespace: a process whose host name differs."""
    script = f'hostname {SECOND_HOST} && exec "$0" -m weft.cli.main "$@"'
    return subprocess.run(["unshare", "--uts", "sh", "-c", script, sys.executable, *args],
                          cwd=project.root, env=project.env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_managers_on_two_hosts_share_the_work_and_the_registry(backend: Backend,
                                                              project: Project) -> None:
    """ARCHITECTURE §8: two hosts, one schema; PIDs judged only on their own host."""
    probe = subprocess.run(["unshare", "--uts", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("a second host needs a UTS namespace (unshare --uts, as root)")
    from weft.client.client import WeftClient
    from weft.runtime.registry import HOST

    here = project.cli("worker", "start", "--max-concurrency", "1")
    there = _on_second_host(project, "worker", "start", "--max-concurrency", "1")
    assert here.returncode == 0 and there.returncode == 0, here.stderr + there.stderr
    tid_here, tid_there = here.stdout.strip(), there.stdout.strip()
    with WeftClient(project.root, auto_start=False) as client:
        hosts = {w.tid: w.host for w in client.workers.list()}
        assert hosts == {tid_here: HOST, tid_there: SECOND_HOST}
        # Each manager runs one task at a time, so two slow tasks need both hosts.
        tasks = [client.submit(command=["sh", "-c", "sleep 2; hostname"]) for _ in range(2)]
        ran_on = sorted(t.result(timeout=60).stdout for t in tasks)
        assert ran_on == sorted([HOST + "\n", SECOND_HOST + "\n"])
        # Kill the other host's manager outright: this host cannot judge its PID, so it
        # is declared dead by its heartbeat lease, and a peer here records that.
        record = {w.tid: w for w in client.workers.list()}[tid_there].record
        os.killpg(int(record["pid"]), signal.SIGKILL)  # its group holds the launcher too
        wait_for(lambda: not pid_alive(int(record["pid"])), what="the manager to die")
        wait_for(lambda: [w.tid for w in client.workers.list()] == [tid_here], timeout=30,
                 what="the lease to expire")
        wait_for(lambda: "recovered by a peer" in str(
            {w.tid: w for w in client.workers.list(all=True)}[tid_there].record.get("stop_reason")),
            timeout=30, what="the surviving manager to record the dead one")
    stop = project.cli("worker", "stop", "--all")
    assert stop.returncode == 0 and tid_here in stop.stdout, stop.stderr
