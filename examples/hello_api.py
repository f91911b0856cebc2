"""Hello, weft: run a command and a function, follow a task, handle a failure.

Run it from any directory; the weft project there is used (or created):

    python examples/hello_api.py

Functions are imported by the task process from its working directory, the
way ``python -c`` would there. The functions below live in this script, so
the tasks run with ``cwd=HERE`` and import it as the module ``hello_api``
(which is why its top level does nothing but define things).
"""

from __future__ import annotations

import sys
from pathlib import Path

from weft import TaskFailed, WeftClient

HERE = Path(__file__).resolve().parent


def greet(name: str) -> str:
    print(f"greeting {name}")  # captured: it comes back as the task's stdout
    return f"hello, {name}"


def divide(a: float, b: float) -> float:
    return a / b


def main() -> int:
    with WeftClient() as client:
        started = client.workers.ensure_running()  # None if a manager was already live
        try:
            # A command: its output and exit code come back in the Result.
            res = client.run(command=["echo", "hello from a command"])
            print(f"command: {res.stdout.strip()} (exit {res.exit_code})")

            # A function: the value comes back, and so does what it printed.
            res = client.run(function=greet, args=["weft"], cwd=HERE)
            print(f"function: {res.value} (stdout: {res.stdout.strip()})")

            # Submit without waiting, then follow the output as it arrives.
            task = client.submit(command=["sh", "-c", "for i in 1 2 3; do echo line $i; done"],
                                 name="lines")
            for chunk in task.output(timeout=30):
                for line in chunk["data"].decode().splitlines():  # bytes, as written
                    print(f"streamed: {line}")
            print("events:", " -> ".join(event["event"] for event in task.events()))

            # A failure raises TaskFailed carrying the remote error and traceback.
            try:
                client.run(function=divide, args=[1, 0], cwd=HERE)
            except TaskFailed as exc:
                print(f"failed: {exc.error}")
                print(f"remote traceback ends with: {exc.traceback.strip().splitlines()[-1]}")

            # Managers are tasks too: ping one.
            manager = client.workers.list()[0]
            reply = client.task(manager.tid).ping(timeout=10)
            print(f"manager {manager.tid[-10:]}: {reply['reply']} in {reply['rtt_ms']:.1f} ms")
        finally:
            if started is not None:
                client.workers.stop(started.tid)  # leave no manager behind
    return 0


if __name__ == "__main__":
    sys.exit(main())
