"""What runs inside a task's own process (the Consumer process).

The launcher forks this process from a pre-loaded interpreter that never
opened a broker connection (:mod:`weft.runtime.forking` sets up the fork and
the task's environment). It becomes the leader of a new process group
(so a signal to the group reaches the whole task tree), runs the target and
writes exactly one JSON line, its outcome, to the result pipe. Output goes
to stdout/stderr pipes that the launcher streams. Everything else (queues,
events, control) is done for it by the process that hosts its Consumer
object; this module imports nothing heavy so the fork stays cheap.

Outcome lines::

    {"exit_code": N}                      command exited
    {"signal": N}                         command killed by signal N
    {"value": <json>}                     function returned (serializer "pickle":
                                          encoded by weft.models.values)
    {"value_blob": {"sha256", "size",     function returned a value larger than a
                    "encoding"}}          chunk: it is in the blob store already
                                          (weft.runtime.result_blob)
    {"error": "...", "traceback": "..."}  function raised (or bad target)
                                          (+ "exception": pickled, with serializer "pickle")
    {"spawn_error": "...", "exit_code": 126|127}
"""

from __future__ import annotations

# The C functions behind ``signal.signal``: the wrapper converts every answer to an
# enum, Python code whose first run in a fresh fork copies a few dozen pages.
import _signal
import json
import os
import signal
import sys
import traceback
from typing import Any, NoReturn

# ``calls`` (pickle, base64, weft.models.values) is imported here, in the launcher,
# once: the Python API marks every function task "pickle", and importing it in each
# forked child cost 7 ms of CPU per task (docs/performance.md).
# ``result_blob`` likewise: every function task's result goes through it.
from weft.runtime import allowlist, calls, containment, result_blob

_DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGPIPE, signal.SIGHUP)


def run(launch: dict[str, Any], result_fd: int, env: Any = None) -> NoReturn:
    """Run the target described by ``launch`` and ``os._exit``. Never returns.

    ``env``: the command's environment, when the caller built it (see
    :func:`weft.runtime.forking.command_env`); else ``os.environ``.
    """
    outcome: dict[str, Any]
    containment.enter(launch)  # own cgroup if delegated; adopt detached descendants
    try:
        outcome = _prepare_and_run(launch, env)
    except BaseException as exc:  # noqa: BLE001 - the child must always report
        outcome = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    containment.end_descendants()  # the task has ended: so does everything it started
    _report(result_fd, outcome)
    code = outcome.get("exit_code")
    os._exit(code if isinstance(code, int) and 0 <= code < 256 else 0)


def _report(result_fd: int, outcome: dict[str, Any]) -> None:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    data = _fast_line(outcome)
    if data is None:
        try:
            line = json.dumps(outcome, default=str)
        except (TypeError, ValueError) as exc:
            line = json.dumps({"error": f"cannot encode outcome: {exc}"})
        data = (line + "\n").encode()
    while data:
        try:
            written = os.write(result_fd, data)
        except InterruptedError:
            continue
        except OSError:
            return
        data = data[written:]


def _fast_line(outcome: dict[str, Any]) -> bytes | None:
    """A command's outcome (``{"exit_code": N}`` or ``{"signal": N}``) without the json
    module: in a fresh fork every first-run line of Python costs page copies."""
    if len(outcome) == 1:
        for key in ("exit_code", "signal"):
            value = outcome.get(key)
            if type(value) is int:
                return b'{"%s": %d}\n' % (key.encode(), value)
    return None


def _ignore(_signum: int, _frame: Any) -> None:
    """A handler, not SIG_IGN: ``exec`` resets it to the default for the command."""


def _prepare_and_run(launch: dict[str, Any], env: Any = None) -> dict[str, Any]:
    if launch.get("refused"):  # the manager could not supply what the task needs
        return {"spawn_error": launch["refused"], "exit_code": 126}
    cwd = launch.get("cwd")
    if cwd:
        try:
            os.chdir(cwd)
        except OSError as exc:
            return {"spawn_error": f"cannot enter working directory {cwd!r}: {exc.strerror}",
                    "exit_code": 126}
    if launch.get("argv") is not None:
        return _run_command(launch["argv"], os.environ if env is None else env)
    return _run_function(launch, cwd or os.getcwd())


def _run_command(argv: list[str], env: Any) -> dict[str, Any]:
    # A handler (not SIG_IGN) so the command gets default dispositions after
    # exec while this process survives a group SIGTERM long enough to report.
    _signal.signal(signal.SIGTERM, _ignore)
    _signal.signal(signal.SIGINT, _ignore)
    try:
        pid = os.posix_spawnp(argv[0], argv, env, setsigdef=_DEFAULT_SIGNALS)
    except FileNotFoundError:
        return {"spawn_error": f"command not found: {argv[0]}", "exit_code": 127}
    except PermissionError:
        return {"spawn_error": f"permission denied: {argv[0]}", "exit_code": 126}
    except OSError as exc:
        return {"spawn_error": f"cannot run {argv[0]}: {exc.strerror}", "exit_code": 126}
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            return {"error": "lost track of the command process"}
    if os.WIFSIGNALED(status):
        return {"signal": os.WTERMSIG(status)}
    return {"exit_code": os.waitstatus_to_exitcode(status)}


def _run_function(launch: dict[str, Any], cwd: str) -> dict[str, Any]:
    import importlib

    # Import the target the way ``python -c`` would from the submit directory.
    # (No invalidate_caches: path finders notice a changed directory by its mtime.)
    if sys.path[:1] != [cwd]:
        sys.path.insert(0, cwd)
    module_name, _, attr = launch["function"].partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        allow = launch.get("function_allow")
        for part in attr.split("."):
            target = getattr(target, part)
            allowlist.check_path(target, part, tuple(allow) if allow else None)
    except Exception as exc:  # noqa: BLE001
        missing = _missing_target(exc, module_name)
        if missing is not None:  # the target's name is wrong: one line, exit 2, no traceback
            return {"spawn_error": f"cannot load {launch['function']}: {missing}", "exit_code": 2}
        return {"error": f"cannot load {launch['function']}: {type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()}
    calls = _pickle_codec(launch)
    args, kwargs = launch.get("args", ()), launch.get("kwargs", {})
    if calls is not None:
        try:
            args, kwargs = calls.decode_arguments(launch)
        except Exception as exc:  # noqa: BLE001
            return {"error": f"cannot load the arguments: {exc}", "traceback": traceback.format_exc()}
    try:
        value = target(*args, **kwargs)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if code == 0:
            return {"value": None}
        return {"error": f"SystemExit: {exc.code}", "exit_code": code}
    except BaseException as exc:  # noqa: BLE001
        failure = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        if calls is not None:
            failure["exception"] = calls.encode_exception(exc)
        return failure
    return result_blob.report(value, launch)


def _pickle_codec(launch: dict[str, Any]) -> Any:
    """:mod:`weft.runtime.calls` when the spec's values travel pickled, else None."""
    if launch.get("serializer") != "pickle":
        return None
    return calls


def _missing_target(exc: Exception, module_name: str) -> str | None:
    """Why the target does not exist (module or attribute missing), or None when
    the module exists but failed while importing (its traceback then matters)."""
    if isinstance(exc, ModuleNotFoundError) and exc.name and (
            module_name == exc.name or module_name.startswith(exc.name + ".")):
        return f"no module named {exc.name!r}"
    if isinstance(exc, AttributeError) and not exc.__traceback__.tb_next:  # type: ignore[union-attr]
        return str(exc)
    return None
