"""Job definitions: read a TOML or JSON job file, apply ``--set``, check it all.

A job is a list of steps. Each step is a task (``command`` or ``function``
with the TaskSpec's options) or a fan-out: ``map`` over the output of the
step it needs (``"lines"`` or ``"json"``) or over a literal list, with at
most ``parallel`` children at once. ``needs`` names the steps a step waits
for; left out, it is the step before (so a plain list runs in order); ``[]``
makes a root. A cycle, an unknown name or a bad field is refused before
anything runs, naming the file, the line and the field (exit 2).

Nothing here touches the broker: ``weft job validate`` and the runner both
use it, and the runner trusts what it was given only after checking it again.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from weft.errors import InvalidSpec

NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
ON_ERROR_RE = re.compile(r"^(stop|continue|retry\s+(\d{1,2}))$")
_SUBST = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _valid_name(value: str) -> str:
    """A job's or a step's name (both become parts of task names and log tags)."""
    if not NAME_RE.match(value):
        raise ValueError("letters, digits, '_', '-' and '.' only (at most 64)")
    return value


class Step(BaseModel):
    """One step: a task, or a fan-out of tasks (``map``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    command: list[str] | str | None = None
    function: str | None = None
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    timeout: float | None = Field(default=None, gt=0)
    resources: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(default=0, ge=-1000, le=1000)
    needs: list[str] | None = None
    map: Literal["lines", "json"] | list[Any] | None = None
    parallel: int = Field(default=8, ge=1, le=1000)
    on_error: str = "stop"
    retries: int = Field(default=0, ge=0, le=100)  # same as on_error = "retry N"
    input: bool = True

    _name = field_validator("name")(_valid_name)

    @field_validator("on_error")
    @classmethod
    def _on_error(cls, value: str) -> str:
        if not ON_ERROR_RE.match(value.strip()):
            raise ValueError("must be 'stop', 'continue' or 'retry N'")
        return value.strip()

    @property
    def attempts_retried(self) -> int:
        """How often a failed item is retried: ``retries`` or ``on_error = "retry N"``."""
        found = ON_ERROR_RE.match(self.on_error)
        return max(self.retries, int(found.group(2)) if found and found.group(2) else 0)

    @property
    def tolerant(self) -> bool:
        """Does the job go on when this step has failures?"""
        return self.on_error == "continue"

    @property
    def fan_out(self) -> bool:
        return self.map is not None


class JobDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "job"
    description: str | None = None
    cwd: str | None = None  # every step's working directory unless it sets its own
    vars: dict[str, Any] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)

    _name = field_validator("name")(_valid_name)

    def needs_of(self, step: Step) -> list[str]:
        if step.needs is not None:
            return list(step.needs)
        index = self.steps.index(step)
        return [self.steps[index - 1].name] if index else []

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def order(self) -> list[Step]:
        """The steps in an order where every step comes after what it needs."""
        return [self.step(name) for name in _topological(self)]


def substitute(value: Any, names: dict[str, Any]) -> Any:
    """``{name}`` → its value in strings (lists and dicts walked); other braces kept."""
    if isinstance(value, str):
        return _SUBST.sub(lambda m: str(names[m.group(1)]) if m.group(1) in names
                          else m.group(0), value)
    if isinstance(value, list):
        return [substitute(v, names) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, names) for k, v in value.items()}
    return value


# -- reading ------------------------------------------------------------------------------
def load(path: str | Path, overrides: Iterable[str] = ()) -> JobDefinition:
    """Read, override and check a job file; InvalidSpec naming file, line and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidSpec(f"cannot read job file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidSpec(f"{path}: not UTF-8 text") from None
    doc = parse_text(text, path)
    for item in overrides:
        apply_set(doc, item)
    _anchor_paths(doc, path.resolve().parent)
    return check(doc, text=text, where=str(path))


def _anchor_paths(doc: dict[str, Any], base: Path) -> None:
    """A relative ``cwd`` in a job file means relative to the file, wherever it is run from."""
    holders = [doc, *[s for s in doc.get("steps") or [] if isinstance(s, dict)]]
    for holder in holders:
        cwd = holder.get("cwd")
        if isinstance(cwd, str) and not Path(cwd).expanduser().is_absolute():
            holder["cwd"] = str((base / cwd).resolve())


def parse_text(text: str, path: Path) -> dict[str, Any]:
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidSpec(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    else:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            found = re.search(r"line (\d+)", str(exc))
            line = found.group(1) if found else "?"
            raise InvalidSpec(f"{path}:{line}: not valid TOML: {str(exc).split(' (at')[0]}") from None
    if not isinstance(doc, dict):
        raise InvalidSpec(f"{path}: a job file holds a table (TOML) or an object (JSON)")
    return doc


def apply_set(doc: dict[str, Any], item: str) -> None:
    """``--set key=value``: a dotted path (``vars.url``, ``steps.NAME.parallel``)."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise InvalidSpec(f"--set: expected KEY=VALUE, got {item!r}")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    parts = key.split(".")
    target: Any = doc
    for i, part in enumerate(parts[:-1]):
        if isinstance(target, list):  # steps.NAME
            match = [s for s in target if isinstance(s, dict) and s.get("name") == part]
            if not match:
                raise InvalidSpec(f"--set {key}: no step named {part!r}")
            target = match[0]
        elif isinstance(target, dict):
            target = target.setdefault(part, {} if parts[i + 1] != "steps" else [])
        else:
            raise InvalidSpec(f"--set {key}: {'.'.join(parts[:i])} is not a table")
    if not isinstance(target, dict):
        raise InvalidSpec(f"--set {key}: cannot set a field there")
    target[parts[-1]] = value


def check(doc: dict[str, Any], *, text: str | None = None, where: str = "job") -> JobDefinition:
    """Validate a job document; every problem names its line (when known) and field."""
    try:
        job = JobDefinition.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err.get("loc", ()))
        msg = "unknown field" if err.get("type") == "extra_forbidden" else err.get("msg", "invalid")
        raise InvalidSpec(f"{_at(where, text, doc, loc)}: {_dotted(doc, loc)}: {msg}") from None
    for index, step in enumerate(job.steps):
        problem = _step_problem(job, step)
        if problem is not None:
            field, msg = problem
            loc = ("steps", index, field)
            raise InvalidSpec(f"{_at(where, text, doc, loc)}: {_dotted(doc, loc)}: {msg}")
    order = _kahn(job)
    if len(order) < len(job.steps):
        cycle = [s.name for s in job.steps if s.name not in order]
        loc = ("steps", [s.name for s in job.steps].index(cycle[0]), "needs")
        raise InvalidSpec(f"{_at(where, text, doc, loc)}: {_dotted(doc, loc)}: "
                          f"a dependency cycle between {', '.join(cycle)}")
    return job


def _step_problem(job: JobDefinition, step: Step) -> tuple[str, str] | None:
    from weft.models import rules

    names = [s.name for s in job.steps]
    if names.count(step.name) > 1:
        return "name", f"two steps are named {step.name!r}"
    if (step.command is None) == (step.function is None):
        return "command", "give exactly one of 'command' or 'function'"
    if step.function is not None:
        try:
            rules.function_shape(step.function)
        except ValueError as exc:
            return "function", str(exc)
    elif step.args or step.kwargs:
        return "args", "args/kwargs are only for function steps"
    for need in job.needs_of(step):
        if need not in names:
            return "needs", f"no step named {need!r}"
        if need == step.name:
            return "needs", "a step cannot need itself"
    if step.map in ("lines", "json") and not job.needs_of(step):
        return "map", f"map = {step.map!r} maps over the step it needs; this one needs none"
    return None


def _topological(job: JobDefinition) -> list[str]:
    """The step names in dependency order; ValueError naming the steps of a cycle."""
    order = _kahn(job)
    if len(order) != len(job.steps):
        cycle = [s.name for s in job.steps if s.name not in order]
        raise ValueError(f"a dependency cycle between {', '.join(cycle)}")
    return order


def _kahn(job: JobDefinition) -> list[str]:
    """Kahn's order of the steps; those on (or behind) a cycle are left out."""
    needs = {s.name: set(job.needs_of(s)) for s in job.steps}
    order: list[str] = []
    ready = [name for name, deps in needs.items() if not deps]
    while ready:
        name = ready.pop(0)
        order.append(name)
        for other, deps in needs.items():
            if name in deps:
                deps.discard(name)
                if not deps and other not in order and other not in ready:
                    ready.append(other)
    return order


def _dotted(doc: dict[str, Any], loc: tuple[Any, ...]) -> str:
    """``steps[2].parallel`` for the pydantic location ``("steps", 2, "parallel")``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        steps = doc.get("steps") or []
        if loc[1] < len(steps) and isinstance(steps[loc[1]], dict) and steps[loc[1]].get("name"):
            out += f" (step {steps[loc[1]]['name']!r})"
    return out or "(root)"


def _at(where: str, text: str | None, doc: dict[str, Any], loc: tuple[Any, ...]) -> str:
    line = _line_of(text, doc, loc) if text else None
    return f"{where}:{line}" if line else where


def _line_of(text: str, doc: dict[str, Any], loc: tuple[Any, ...]) -> int | None:
    """Best effort: the line holding the field at ``loc`` (TOML or JSON)."""
    lines = text.splitlines()
    start = 0
    if loc and loc[0] == "steps" and len(loc) > 1 and isinstance(loc[1], int):
        found = _step_start(lines, doc, loc[1])
        if found is None:
            return None
        start = found
    field = next((str(p) for p in reversed(loc) if isinstance(p, str) and p != "steps"), None)
    if field is None:
        return start + 1 if start else None
    pattern = re.compile(rf'^\s*"?{re.escape(field)}"?\s*[=:]')
    for number in range(start, len(lines)):
        if number > start and lines[number].lstrip().startswith("[[") and "steps" in lines[number]:
            break
        if pattern.match(lines[number]):
            return number + 1
    return start + 1 if start else None


def _step_start(lines: list[str], doc: dict[str, Any], index: int) -> int | None:
    headers = [n for n, line in enumerate(lines) if line.strip() == "[[steps]]"]
    if headers:
        return headers[index] if index < len(headers) else None
    steps = doc.get("steps") or []
    name = steps[index].get("name") if index < len(steps) and isinstance(steps[index], dict) else None
    if isinstance(name, str):
        needle = re.compile(rf'"name"\s*:\s*{re.escape(json.dumps(name))}')
        for number, line in enumerate(lines):
            if needle.search(line):
                return number
    return None
