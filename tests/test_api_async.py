"""The asyncio API against a real manager: awaiting results, streaming output,
many concurrent waits on one loop, and WeftExecutor futures through
``asyncio.wrap_future``."""

from __future__ import annotations

import asyncio
import time

import pytest
from jobs_module import write_jobs

from weft import AsyncWeftClient, TaskFailed, WaitTimeout, WeftExecutor


@pytest.fixture
def jobs(project):
    return write_jobs(project.root)


def test_await_run_wait_and_failures(client, jobs):
    async def main() -> None:
        aclient = AsyncWeftClient(client=client)
        assert (await aclient.run(function="pkg.jobs:square", args=[6], wait_timeout=60)).value == 36
        task = await aclient.submit(function="pkg.jobs:boom")
        res = await task.wait(timeout=60)
        assert res.status == "failed" and "kaboom-42" in res.error
        with pytest.raises(TaskFailed, match="kaboom-42"):
            await task.result(timeout=5)
        slow = await aclient.submit(function="pkg.jobs:slow_inverse", args=[0, 200])
        with pytest.raises(WaitTimeout):
            await slow.wait(timeout=0.2)
        await slow.kill()
        assert (await slow.wait(timeout=60)).status == "killed"

    asyncio.run(main())


def test_many_waits_share_one_loop_without_blocking_it(client, jobs):
    async def main() -> list[int]:
        aclient = AsyncWeftClient(client=client)
        tasks = [await aclient.submit(function="pkg.jobs:slow_inverse", args=[i, 4])
                 for i in range(4)]
        ticks = 0

        async def heartbeat() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        beat = asyncio.create_task(heartbeat())
        started = time.monotonic()
        results = await asyncio.gather(*(t.result(timeout=60) for t in tasks))
        elapsed = time.monotonic() - started
        beat.cancel()
        # The loop kept running while we waited (no blocking waits on it).
        assert ticks >= elapsed / 0.01 * 0.3
        return [r.value for r in results]

    assert asyncio.run(main()) == [0, 1, 2, 3]


def test_async_for_output_streams_chunks(client, jobs):
    async def main() -> list[str]:
        aclient = AsyncWeftClient(client=client)
        task = await aclient.submit(command=["sh", "-c", "echo one; sleep 0.2; echo two"])
        return [chunk["data"] async for chunk in task.output(timeout=60)]

    assert "".join(asyncio.run(main())) == "one\ntwo\n"


def test_executor_futures_work_with_wrap_future(client, jobs):
    import sys

    sys.path.insert(0, str(jobs.parent.parent))
    try:
        from pkg.jobs import square

        async def main() -> list[int]:
            with WeftExecutor(client=client) as ex:
                futures = [asyncio.wrap_future(ex.submit(square, i)) for i in range(3)]
                futures.append(asyncio.get_running_loop().run_in_executor(ex, square, 3))
                return list(await asyncio.gather(*futures))

        assert asyncio.run(main()) == [0, 1, 4, 9]
    finally:
        sys.path.remove(str(jobs.parent.parent))
        for name in ("pkg.jobs", "pkg"):
            sys.modules.pop(name, None)


def test_async_run_results_as_completed_and_cancel(project, client, jobs, monkeypatch):
    monkeypatch.setenv("WEFT_MAX_CONCURRENCY", "1")
    never = str(project.root / "never")

    async def main() -> None:
        aclient = AsyncWeftClient(client=client)
        run = await aclient.submit_many([{"args": [i]} for i in range(3)],
                                        function="pkg.jobs:square")
        assert await run.results(timeout=60) == [0, 1, 4]
        seen = [t.tid async for t in run.as_completed(timeout=60)]
        assert sorted(seen) == sorted(t.tid for t in run.tasks)
        blocked = await aclient.submit_many([{"args": [never]} for _ in range(3)],
                                            function="pkg.jobs:wait_for_file")
        stopped = await blocked.cancel()
        assert len(stopped) == 3
        values = await blocked.results(timeout=60, return_exceptions=True)
        assert all(isinstance(v, TaskFailed) and v.status == "cancelled" for v in values)

    asyncio.run(main())
