"""``wecom-sync simulate wecom|authing [options]``: run a bundled simulator in the foreground.

The simulator's own options are parsed by its module, imported only when asked for, so
the product's CLI starts without loading simulator code: the main parser hands whatever
follows ``wecom``/``authing`` (``--help`` included) to that module's parser.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

_MODULES = {"wecom": "simulators.wecom.cli", "authing": "simulators.authing.cli"}
_ABOUT = {"wecom": "a simulated WeCom corp (API, admin routes, callback pusher)",
          "authing": "a simulated Authing user pool (API, admin routes, webhook pusher)"}


def register(sub: Any) -> None:
    parser = sub.add_parser("simulate", help="run a bundled WeCom or Authing simulator",
                            description="Run a bundled simulator in the foreground; "
                                        "`wecom-sync simulate NAME --help` lists its options "
                                        "and defaults.")
    names = parser.add_subparsers(title="simulators", metavar="NAME", required=True)
    for name in sorted(_MODULES):
        # No help of its own: --help, like every option, goes to the simulator's parser.
        one = names.add_parser(name, help=_ABOUT[name], add_help=False)
        one.set_defaults(handler=_run, simulator=name, passthrough=True)


def _run(args: argparse.Namespace) -> int:
    from sync_core import logs

    module = importlib.import_module(_MODULES[args.simulator])
    sim_parser = argparse.ArgumentParser(
        prog=f"wecom-sync simulate {args.simulator}", description=module.__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    module.add_arguments(sim_parser)
    options = sim_parser.parse_args(args.extra)
    logs.configure("INFO")
    return int(module.run(options))
