"""``wecom-sync simulate wecom|authing [options]``: run a bundled simulator in the foreground.

The simulator's own options are parsed by its module, imported only when asked for, so
the product's CLI starts without loading simulator code.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

_MODULES = {"wecom": "simulators.wecom.cli", "authing": "simulators.authing.cli"}


def register(sub: Any) -> None:
    parser = sub.add_parser("simulate", help="run a bundled WeCom or Authing simulator",
                            add_help=False)
    parser.add_argument("name", choices=sorted(_MODULES), help="which simulator")
    parser.add_argument("options", nargs=argparse.REMAINDER,
                        help="simulator options (see: wecom-sync simulate NAME --help)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from sync_core import logs

    module = importlib.import_module(_MODULES[args.name])
    sim_parser = argparse.ArgumentParser(prog=f"wecom-sync simulate {args.name}")
    module.add_arguments(sim_parser)
    logs.configure("INFO")
    return int(module.run(sim_parser.parse_args(args.options)))
