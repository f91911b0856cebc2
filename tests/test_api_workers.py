"""client.workers: list, status, start, stop; a manager's TID is a task handle."""

from __future__ import annotations

import pytest
from conftest import pid_alive

from weft import NotFound, WorkerInfo


def test_start_list_status_stop(project, client):
    assert client.workers.list() == []
    with pytest.raises(NotFound):
        client.workers.status()
    first = client.workers.start(name="w1", idle_timeout=0, max_concurrency=2)
    project.track(first.pid)
    assert isinstance(first, WorkerInfo)
    assert first.status == "active" and pid_alive(first.pid)
    assert first.record["name"] == "w1"
    assert first.record["capabilities"]["max_concurrency"] == 2
    second = client.workers.start(name="w2")
    project.track(second.pid)
    assert [w.tid for w in client.workers.list()] == sorted([first.tid, second.tid])
    assert client.workers.status(first.tid[-10:]).tid == first.tid
    assert client.workers.status().tid == min(first.tid, second.tid)
    assert client.workers.status(second.tid).to_dict()["name"] == "w2"

    stopped = client.workers.stop(first.tid)
    assert [w.tid for w in stopped] == [first.tid]
    assert stopped[0].status == "stopped" and stopped[0].record["status"] == "stopped"
    assert not pid_alive(first.pid)
    assert [w.tid for w in client.workers.list()] == [second.tid]

    assert [w.tid for w in client.workers.stop(all=True)] == [second.tid]
    assert not pid_alive(second.pid)
    assert client.workers.list() == []
    everything = client.workers.list(all=True)
    assert {w.tid: w.status for w in everything} == {first.tid: "stopped", second.tid: "stopped"}
    assert client.workers.stop(all=True) == []


def test_unknown_manager(project, client, manager):
    with pytest.raises(NotFound):
        client.workers.status("9999999999")


def test_a_manager_is_a_task(project, client, manager):
    handle = client.task(client.workers.list()[0].tid)
    reply = handle.ping(timeout=10)
    assert reply["reply"] == "PONG" and reply["tid"] == manager.tid and reply["pid"] == manager.pid
    status = handle.control("STATUS")
    assert status["details"]["role"] == "manager"
    assert handle.pause()["ok"] is True
    assert client.task(manager.tid).resume()["ok"] is True


def test_force_stop(project, client, manager):
    stopped = client.workers.stop(manager.tid, force=True, timeout=20)
    assert stopped[0].status == "stopped"
    assert not pid_alive(manager.pid)
    launcher = manager.record.get("launcher_pid")
    if launcher:
        assert not pid_alive(int(launcher))
