"""Tasks that submit tasks: a parent fans out children from inside weft.

    python examples/nested_tasks.py

Inside a task ``WeftClient()`` finds the same project (the manager sets
``WEFT_CONTEXT``), ``weft.current_task()`` says who we are, and every task
submitted from here records this one as its ``parent_tid`` and carries the
same request id, so the whole tree can be found again from the log.
"""

from __future__ import annotations

import sys
from pathlib import Path

import weft
from weft import WeftClient

HERE = Path(__file__).resolve().parent


def word_length(word: str) -> dict[str, object]:
    me = weft.current_task()
    assert me is not None
    return {"word": word, "length": len(word), "tid": me.tid, "parent": me.parent_tid}


def count_letters(sentence: str) -> dict[str, object]:
    """Runs as a task; submits one child task per word and adds up their answers."""
    me = weft.current_task()
    assert me is not None
    with WeftClient() as client:
        children = [client.submit(function=word_length, args=[w], cwd=HERE)
                    for w in sentence.split()]
        answers = [child.result(timeout=60).value for child in children]
    return {"tid": me.tid, "request_id": me.request_id, "children": answers,
            "total": sum(a["length"] for a in answers)}


def main() -> int:
    with WeftClient() as client:
        started = client.workers.ensure_running()
        try:
            parent = client.submit(function=count_letters, args=["weft runs tasks in tasks"],
                                   cwd=HERE, request_id="example-nested")
            value = parent.result(timeout=120).value
            print(f"parent {parent.tid[-10:]} counted {value['total']} letters "
                  f"in {len(value['children'])} words")
            for child in value["children"]:
                mark = "ok" if child["parent"] == parent.tid else "WRONG PARENT"
                print(f"  child {child['tid'][-10:]}: {child['word']!r} has {child['length']} ({mark})")
            tree = client.tasks(request_id="example-nested")
            print(f"tasks with request id example-nested: {len(tree)}")
        finally:
            if started is not None:
                client.workers.stop(started.tid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
