"""The one command line: `tidegate SUBCOMMAND ...`.

Each subcommand imports what it needs when it runs, so `tidegate --help` and
`tidegate check` stay fast on a Pi and do not load asyncua, zarr or Textual.
Bad input ends in one line on stderr naming the file, key or argument, and
exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

EXIT_USAGE = 2
EXIT_NOT_BUILT = 3

# Subcommands that later issues build; they say so instead of pretending.
NOT_BUILT = {
    "resend": ("re-send a time or sequence range from the spool", 5),
    "bench": ("run the benchmark suite on this machine", 9),
}


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def _cmd_demo(args: argparse.Namespace) -> int:
    from edge.demo import DemoOptions, run_demo

    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"--duration: must be a positive number of seconds, got {args.duration}")
    opts = DemoOptions(
        headless=args.headless,
        duration=args.duration,
        state_dir=Path(args.state) if args.state else None,
        seed=args.seed,
    )
    return run_demo(opts)


def _cmd_run(args: argparse.Namespace) -> int:
    from edge.agent import run_agent
    from edge.config import load_agent_config

    cfg = load_agent_config(args.config)
    return run_agent(cfg, stats_out=Path(args.stats_out) if args.stats_out else None)


def _cmd_receive(args: argparse.Namespace) -> int:
    from edge.config import load_receiver_config
    from edge.receiver import run_receiver

    cfg = load_receiver_config(args.config)
    return run_receiver(cfg, stats_out=Path(args.stats_out) if args.stats_out else None)


def _cmd_tui(args: argparse.Namespace) -> int:
    from tui import run_tui

    run_tui(args.socket, refresh=args.refresh, low_bandwidth=args.low_bandwidth)
    return 0


def _cmd_browse(args: argparse.Namespace) -> int:
    import asyncio

    from edge.opcua import browse

    if not args.endpoint.startswith("opc.tcp://"):
        raise UsageError(f"ENDPOINT: must start with opc.tcp://, got {args.endpoint!r}")
    entries = asyncio.run(browse(args.endpoint, args.path))
    for e in entries:
        print(f"{e.node_id}\t{e.browse_path}\t{e.data_type}\t{e.unit}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from edge.config import load_agent_config, load_receiver_config

    if args.receiver:
        rcfg = load_receiver_config(args.config)
        print(f"{args.config}: ok (receiver for site {rcfg.site.name!r})")
    else:
        acfg = load_agent_config(args.config)
        print(f"{args.config}: ok ({len(acfg.sources)} sources, {len(acfg.tags)} tags, "
              f"{len(acfg.tag_groups)} tag groups)")
    return 0


def _cmd_sim(args: argparse.Namespace) -> int:
    from edge.sim.__main__ import main as sim_main

    return sim_main(["--port", str(args.port), "--seed", str(args.seed)])


def _cmd_datasets(args: argparse.Namespace) -> int:
    from edge import datasets

    root = Path(args.root)
    if not root.is_dir():
        raise UsageError(f"ROOT: no dataset directory at {root}")
    if args.action == "list":
        print(datasets.format_batches_table(datasets.list_batches(root, site=args.site)))
        return 0
    if args.action == "show":
        if not args.batch:
            raise UsageError("datasets show: BATCH (a path printed by `datasets list`) is required")
        print(datasets.describe_batch(args.batch))
        return 0
    raise UsageError("datasets export: not built yet (issue 7)")


def _cmd_keygen(args: argparse.Namespace) -> int:
    from edge import _core

    try:
        _core.keygen(args.path)
    except OSError as e:
        raise UsageError(str(e)) from None
    print(f"wrote {args.path} (mode 0600). Copy it to both ends of the link over a trusted path and set "
          f"[link] key_file (agent) and [receiver] key_file (receiver).", file=sys.stderr)
    return 0


def _not_built(name: str) -> Callable[[argparse.Namespace], int]:
    what, issue = NOT_BUILT[name]

    def handler(_: argparse.Namespace) -> int:
        print(f"tidegate {name}: not built yet ({what}; issue {issue})", file=sys.stderr)
        return EXIT_NOT_BUILT

    return handler


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tidegate",
        description="Edge telemetry across a one-way diode: OPC UA in, zarr out.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("demo", help="run the whole chain on this machine (simulator to zarr)")
    d.add_argument("--headless", action="store_true", help="no terminal UI; print a summary at the end")
    d.add_argument("--duration", type=float, default=None,
                   help="seconds to run (headless default 30; with the UI, until you quit)")
    d.add_argument("--state", metavar="DIR", help="keep spools and datasets here (default: a new temp dir)")
    d.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")
    d.set_defaults(func=_cmd_demo)

    r = sub.add_parser("run", help="run the OT-side agent")
    r.add_argument("--config", required=True, help="agent tag file (TOML)")
    r.add_argument("--stats-out", metavar="FILE", help="write final counters as JSON on exit")
    r.set_defaults(func=_cmd_run)

    rc = sub.add_parser("receive", help="run the IT-side receiver")
    rc.add_argument("--config", required=True, help="receiver config (TOML)")
    rc.add_argument("--stats-out", metavar="FILE", help="write final counters as JSON on exit")
    rc.set_defaults(func=_cmd_receive)

    t = sub.add_parser("tui", help="the technician's terminal UI")
    t.add_argument("--socket", default="/run/tidegate/agent.sock", help="agent status socket")
    t.add_argument("--refresh", type=float, default=1.0, help="seconds between updates")
    t.add_argument("--low-bandwidth", action="store_true", help="16 colours, no animation")
    t.set_defaults(func=_cmd_tui)

    b = sub.add_parser("browse", help="print a server's address space")
    b.add_argument("endpoint", metavar="ENDPOINT", help="opc.tcp://host:port/path")
    b.add_argument("path", metavar="PATH", nargs="?", default=None, help="browse path to start from")
    b.set_defaults(func=_cmd_browse)

    c = sub.add_parser("check", help="validate a config file")
    c.add_argument("config", metavar="CONFIG")
    c.add_argument("--receiver", action="store_true", help="the file is a receiver config")
    c.set_defaults(func=_cmd_check)

    ds = sub.add_parser("datasets", help="list and show the zarr batches (IT side)")
    ds.add_argument("action", choices=["list", "show", "export"])
    ds.add_argument("root", metavar="ROOT", help="datasets directory")
    ds.add_argument("batch", metavar="BATCH", nargs="?", help="batch path (show)")
    ds.add_argument("--site", default=None, help="only this site")
    ds.set_defaults(func=_cmd_datasets)

    s = sub.add_parser("sim", help="run the plant simulator (an OPC UA server) on loopback")
    s.add_argument("--port", type=int, default=4840)
    s.add_argument("--seed", type=int, default=1)
    s.set_defaults(func=_cmd_sim)

    k = sub.add_parser("keygen", help="create the diode link's authentication key file")
    k.add_argument("path", metavar="PATH", help="key file to create (refuses to overwrite)")
    k.set_defaults(func=_cmd_keygen)

    for name, (what, _) in NOT_BUILT.items():
        sp = sub.add_parser(name, help=f"{what} (not built yet)")
        sp.set_defaults(func=_not_built(name))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from edge.errors import user_errors

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as e:
        print(f"tidegate {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except user_errors() as e:  # config, frame, spool errors carry their own location
        print(f"tidegate {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
