"""Job definitions, in process: parsing, --set, substitution, paths, errors with lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from weft.errors import InvalidSpec
from weft.jobs.definition import check, load, substitute


def test_set_overrides_vars_steps_and_the_name(tmp_path: Path) -> None:
    path = tmp_path / "j.toml"
    path.write_text('name = "a"\n[vars]\nn = 1\n[[steps]]\nname = "s"\ncommand = "seq {n}"\n')
    job = load(path, ["vars.n=5", "steps.s.parallel=3", "name=b", "vars.new=x"])
    assert job.name == "b" and job.vars == {"n": 5, "new": "x"}
    assert job.steps[0].parallel == 3
    assert substitute(job.steps[0].command, job.vars) == "seq 5"
    with pytest.raises(InvalidSpec, match="expected KEY=VALUE"):
        load(path, ["novalue"])


def test_substitution_leaves_unknown_braces_alone() -> None:
    assert substitute(["awk", "{print $1}", "{item}", "{x}"], {"item": "7"}) == \
        ["awk", "{print $1}", "7", "{x}"]
    assert substitute({"k": ["{a}"]}, {"a": 1}) == {"k": ["1"]}


def test_a_relative_cwd_is_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "j.json"
    path.write_text(json.dumps({"cwd": ".", "steps": [
        {"name": "a", "command": ["true"], "cwd": "../other"}, {"name": "b", "command": ["true"]}]}))
    job = load(path)
    assert job.cwd == str((tmp_path / "sub").resolve())
    assert job.steps[0].cwd == str((tmp_path / "other").resolve())


def test_json_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "j.json"
    path.write_text('{\n  "steps": [\n    {"name": "a",\n     "command": ["true"],\n'
                    '     "timeout": -1}\n  ]\n}\n')
    with pytest.raises(InvalidSpec, match=r"j\.json:5: steps\[0\]\.timeout \(step 'a'\)"):
        load(path)
    path.write_text('{"steps": [}')
    with pytest.raises(InvalidSpec, match=r"j\.json:1: not valid JSON"):
        load(path)


@pytest.mark.parametrize("steps,message", [
    ([], "steps: List should have at least 1 item"),
    ([{"name": "a"}], "give exactly one of 'command' or 'function'"),
    ([{"name": "a", "function": "nocolon"}], "must look like 'package.module:callable'"),
    ([{"name": "a", "command": ["x"], "args": [1]}], "only for function steps"),
    ([{"name": "a", "command": ["x"], "map": "lines"}], "maps over the step it needs"),
    ([{"name": "a", "command": ["x"]}, {"name": "a", "command": ["y"]}], "two steps are named"),
    ([{"name": "a", "command": ["x"], "on_error": "retry"}], "'stop', 'continue' or 'retry N'"),
    ([{"name": "a b", "command": ["x"]}], "letters, digits"),
])
def test_bad_definitions_are_refused(steps: list[dict[str, object]], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message.replace("(", r"\(").replace(")", r"\)")):
        check({"steps": steps})


def test_order_follows_needs_and_file_order() -> None:
    job = check({"steps": [
        {"name": "d", "command": ["x"], "needs": ["b", "c"]},
        {"name": "b", "command": ["x"], "needs": ["a"]},
        {"name": "a", "command": ["x"], "needs": []},
        {"name": "c", "command": ["x"], "needs": ["a"]},
    ]})
    assert [s.name for s in job.order()] == ["a", "b", "c", "d"]
    plain = check({"steps": [{"name": n, "command": ["x"]} for n in "xyz"]})
    assert [plain.needs_of(s) for s in plain.steps] == [[], ["x"], ["y"]]
