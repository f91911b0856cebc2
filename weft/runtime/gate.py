"""What a manager checks and supplies before a task runs, beyond admission.

The trust rules live here so the manager's loop needs one call each:

- the function allow-list (:mod:`weft.runtime.allowlist`): a request whose
  function target is outside ``WEFT_FUNCTION_ALLOW`` is refused before it
  is claimed;
- secrets by reference (:mod:`weft.runtime.secret_refs`): a request whose
  secrets this manager cannot supply is refused with the reason; at launch
  the values are added to the task's environment, which travels to the
  launcher over its socket and never through the broker;
- pickle (:mod:`weft.models.values`): with ``WEFT_ALLOW_PICKLE=0`` a request
  whose values may travel pickled (``serializer: "pickle"``) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from weft.models import TaskSpec
from weft.runtime import allowlist
from weft.runtime.secret_refs import SecretError, SecretStore


@dataclass(frozen=True)
class Refusal:
    reason: str  # short code, as in the result's ``reason``
    error: str   # one line for the user


class Gate:
    def __init__(self, *, allow: tuple[str, ...] | None, secrets: SecretStore,
                 allow_pickle: bool = True) -> None:
        self.allow = allow
        self.secrets = secrets
        self.allow_pickle = allow_pickle

    @classmethod
    def for_manager(cls, ctx: Any, options: dict[str, Any]) -> Gate:
        return cls(allow=allowlist.parse(ctx.settings.function_allow),
                   secrets=SecretStore.for_manager(ctx.weft_dir, options.get("secrets_file")),
                   allow_pickle=ctx.settings.allow_pickle)

    def refusal(self, spec: TaskSpec) -> Refusal | None:
        """Why this manager will not run the task, or None."""
        why = allowlist.refusal(spec.function, self.allow)
        if why:
            return Refusal("not_allowed", why)
        if spec.serializer == "pickle" and not self.allow_pickle:
            return Refusal("pickle_refused", "taskspec.serializer: pickled values are refused: "
                                             "pickle is turned off in this project "
                                             "(WEFT_ALLOW_PICKLE=0)")
        try:
            self.secrets.resolve(spec.secrets)
        except SecretError as exc:
            return Refusal("missing_secret", str(exc))
        return None

    def prepare(self, spec: TaskSpec, op: dict[str, Any]) -> None:
        """Add the secrets' values and the allow-list to a launch op (never to the broker)."""
        if spec.secrets:
            try:
                op["env"] = {**op.get("env", {}), **self.secrets.resolve(spec.secrets)}
            except SecretError as exc:  # the file changed since the check: fail the task
                op["refused"] = str(exc)
        if self.allow is not None:
            op["function_allow"] = list(self.allow)
