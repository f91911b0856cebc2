"""Raw queue access (``client.queues``): the operator's tools, for ``weft queue``.

For inspection and repair by hand. Every move keeps the message id, so a
request moved back from ``weft.spawn.rejected`` keeps its TID. Messages are
``(body, message_id)`` pairs, oldest first.
"""

from __future__ import annotations

from itertools import islice
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from weft.client.client import WeftClient

Message = tuple[str, int]


class Queues:
    def __init__(self, client: WeftClient) -> None:
        self.client = client

    def stats(self) -> list[tuple[str, int, int]]:
        """``(queue, pending, total)`` for every queue that holds messages."""
        return self.client.broker.queue_stats()

    def peek(self, queue: str, *, limit: int | None = 1) -> list[Message]:
        """Look without removing; ``limit=None`` for every pending message."""
        if limit == 1:
            one = self.client.broker.peek_one(queue)
            return [one] if one is not None else []
        return list(islice(self.client.broker.peek_all(queue), limit))

    def read(self, queue: str, *, message_id: int | None = None) -> Message | None:
        """Remove and return the oldest message (or the one with ``message_id``)."""
        return self.client.broker.read_one(queue, message_id=message_id)

    def write(self, queue: str, body: str) -> int:
        """Append ``body``; return its message id."""
        return self.client.broker.write(queue, body)

    def move(self, source: str, dest: str, *, message_id: int | None = None) -> Message | None:
        """Move one message atomically (keeping its id); None when there is none."""
        return self.client.broker.move_one(source, dest, message_id=message_id)

    def move_all(self, source: str, dest: str) -> int:
        return self.client.broker.move_all(source, dest)

    def delete(self, queue: str, message_ids: list[int]) -> int:
        return self.client.broker.delete(queue, message_ids)

    def clear(self, queue: str) -> int:
        """Delete every message in ``queue``; return how many pending messages went.

        (Rows already read but not yet vacuumed go too, uncounted.)
        """
        broker = self.client.broker
        pending = broker.count(queue)
        broker.delete_queue(queue)
        return pending
