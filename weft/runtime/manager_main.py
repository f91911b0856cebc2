"""Entry point of a manager process: ``python -m weft.runtime.manager_main``.

Started detached by ``weft worker start`` / ``weft run`` (or in the
foreground with ``--foreground``). Options arrive as one JSON object so the
client and the process agree on a single schema.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from weft import context
from weft.errors import WeftError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="weft-manager")
    parser.add_argument("--root", required=True)
    parser.add_argument("--tid", required=True)
    parser.add_argument("--options", default="{}")
    args = parser.parse_args(argv)
    try:
        ctx = context.resolve(args.root)
        logging.basicConfig(level=ctx.settings.log_level.upper(),
                            format="%(asctime)s weft-manager[%(process)d] %(levelname)s %(message)s")
        from weft.runtime.manager import Manager

        return Manager(ctx, tid=args.tid, options=json.loads(args.options)).run()
    except WeftError as exc:
        print(f"weft manager: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
