"""The steps of examples/wordcount_job.toml: fetch a list, process each item, merge.

    weft job run examples/wordcount_job.toml
    weft job run examples/wordcount_job.toml --set vars.limit=3

Each function runs as its own task; the job passes each step's output to
the next (a fan-out's items one per task, then the list of their values).
"""

from __future__ import annotations

from pathlib import Path
from urllib.request import urlopen

HERE = Path(__file__).resolve().parent


def fetch(limit: str) -> list[str]:
    """The list: one paragraph per item (read through a URL, as a real fetch would)."""
    with urlopen((HERE / "wordcount_corpus.txt").as_uri()) as response:  # noqa: S310 - a local file
        text = response.read().decode("utf-8")
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    return paragraphs[: int(limit)]


def count_words(paragraph: str) -> dict[str, int]:
    """One item: how often each word occurs in one paragraph."""
    counts: dict[str, int] = {}
    for raw in paragraph.lower().split():
        word = raw.strip(".,;:!?\"'()")
        if word:
            counts[word] = counts.get(word, 0) + 1
    return counts


def merge(per_paragraph: list[dict[str, int]]) -> dict[str, object]:
    """All items: the totals and the five most frequent words."""
    totals: dict[str, int] = {}
    for counts in per_paragraph:
        for word, n in counts.items():
            totals[word] = totals.get(word, 0) + n
    top = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    return {"paragraphs": len(per_paragraph), "words": sum(totals.values()),
            "top": [f"{w}={n}" for w, n in top]}
