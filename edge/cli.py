"""The one command line: `tidegate SUBCOMMAND ...`.

Each subcommand imports what it needs when it runs, so `tidegate --help` and
`tidegate check` stay fast on a Pi and do not load asyncua, zarr or Textual.
Bad input ends in one line on stderr naming the file, key or argument, and
exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.datasets.storage import Storage

EXIT_USAGE = 2


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

    from edge.datasets.storage import SiteClaimedError, StoreError

    cfg = load_receiver_config(args.config)
    try:
        return run_receiver(cfg, stats_out=Path(args.stats_out) if args.stats_out else None)
    except (SiteClaimedError, StoreError, ImportError) as e:
        raise UsageError(f"[receiver] datasets: {e}") from None


def _cmd_tui(args: argparse.Namespace) -> int:
    from tui import run_tui

    if args.refresh <= 0:
        raise UsageError(f"--refresh: must be a positive number of seconds, got {args.refresh}")
    run_tui(args.socket, refresh=args.refresh, low_bandwidth=args.low_bandwidth,
            operator=args.operator, start=args.screen)
    return 0


def _cmd_browse(args: argparse.Namespace) -> int:
    import asyncio

    from edge.opcua import browse

    if not args.endpoint.startswith("opc.tcp://"):
        raise UsageError(f"ENDPOINT: must start with opc.tcp://, got {args.endpoint!r}")
    entries = asyncio.run(browse(args.endpoint, args.path))
    if args.toml:
        from edge.opcua.browse import tag_entries_toml

        print(tag_entries_toml(entries, args.toml), end="")
        return 0
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
    from edge.datasets.storage import StoreError

    try:
        return _datasets(args)
    except StoreError as e:  # bucket missing, endpoint down, access denied
        raise UsageError(f"ROOT: {e}") from None


def _datasets(args: argparse.Namespace) -> int:
    from edge import datasets
    from edge.datasets.storage import Storage, is_url, open_storage

    if is_url(args.root):
        if not args.root.startswith("s3://"):
            raise UsageError(f"ROOT: a directory or an s3://bucket/prefix URL, got {args.root!r}")
        try:
            root: Path | Storage = open_storage(args.root, {"endpoint": args.s3_endpoint} if args.s3_endpoint else None)
        except (ImportError, ValueError) as e:
            raise UsageError(f"ROOT: {e}") from None
    else:
        if args.s3_endpoint:
            raise UsageError("--s3-endpoint: only for an s3:// ROOT")
        if not Path(args.root).is_dir():
            raise UsageError(f"ROOT: no dataset directory at {args.root}")
        root = Path(args.root)
    if args.action != "export":
        for opt in ("tags", "start", "end", "output", "format"):
            if getattr(args, opt) is not None:
                raise UsageError(f"--{opt}: only for `datasets export`")
    if args.action == "list":
        print(datasets.format_batches_table(datasets.list_batches(root, site=args.site)))
        return 0
    if args.action == "show":
        if not args.batch:
            raise UsageError("datasets show: BATCH (a path printed by `datasets list`) is required")
        print(datasets.describe_batch(args.batch, root))
        return 0
    return _export(args, root)


def _export(args: argparse.Namespace, root: Path | Storage) -> int:
    from edge.datasets.export import export, parse_time

    if args.batch:
        raise UsageError(f"datasets export: unexpected argument {args.batch!r} (select with --tags/--start/--end)")
    if not args.output:
        raise UsageError("datasets export: --output FILE (.parquet or .csv) is required")
    out = Path(args.output)
    if not out.parent.is_dir():
        raise UsageError(f"--output: no directory {out.parent}")
    try:
        start = parse_time(args.start, "--start") if args.start else None
        end = parse_time(args.end, "--end") if args.end else None
        tags = [t.strip() for t in args.tags.split(",") if t.strip()] if args.tags else None
        summary = export(root, out, site=args.site, tags=tags, start_ns=start, end_ns=end,
                         fmt=args.format)
    except (ValueError, ImportError) as e:
        raise UsageError(str(e)) from None
    print(f"{summary.path}: {summary.rows} rows, {len(summary.tags)} tags, value {summary.value_type}")
    return 0


def _cmd_resend(args: argparse.Namespace) -> int:
    from edge.config import DEFAULT_STATUS_SOCKET, load_agent_config
    from edge.resend import parse_seq_range, parse_time
    from edge.status import AgentUnavailable, StatusError, request_sync

    if args.seq is None and args.since is None:
        raise UsageError("give --seq FIRST-LAST or --since TIME [--until TIME]")
    if args.seq is not None and (args.since is not None or args.until is not None):
        raise UsageError("--seq cannot be combined with --since/--until")
    if args.until is not None and args.since is None:
        raise UsageError("--until needs --since")
    if args.config and args.socket:
        raise UsageError("give --config or --socket, not both")
    socket = (str(load_agent_config(args.config).agent.status_socket) if args.config
              else args.socket or str(DEFAULT_STATUS_SOCKET))
    request: dict[str, object] = {"op": "resend"}
    try:
        if args.seq is not None:
            request["seq_first"], request["seq_last"] = parse_seq_range(args.seq)
        else:
            t0 = parse_time(args.since)
            t1 = parse_time(args.until) if args.until is not None else parse_time("now")
            if t1 < t0:
                raise ValueError("--until is before --since")
            request["t_first_ns"], request["t_last_ns"] = t0, t1
    except ValueError as e:
        raise UsageError(str(e)) from None
    try:
        reply = request_sync(socket, request, timeout=args.timeout)
    except AgentUnavailable as e:
        raise UsageError(str(e)) from None
    except StatusError as e:
        raise UsageError(str(e).removeprefix("resend: ")) from None
    print(f"queued {reply['frames']} frames (seq {reply['lsn_first']}..{reply['lsn_last']}) "
          f"for re-sending on the diode link")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import shutil
    import tempfile
    import time

    from edge.bench.runner import discover, make_profile, run_suite

    stages = discover()
    if args.list:
        for stage, module in stages.items():
            print(f"{stage}\t{module}")
        return 0
    if args.duration is not None and args.duration < 10:
        raise UsageError(f"--duration: at least 10 seconds, got {args.duration:g}")
    if args.memory_max_mb is not None and args.memory_max_mb < 0:
        raise UsageError(f"--memory-max-mb: must be 0 (none) or more, got {args.memory_max_mb}")
    if not 0 < args.scale <= 100:
        raise UsageError(f"--scale: a factor above 0 and at most 100, got {args.scale:g}")
    cpus = None
    if args.cpus:
        try:
            cpus = sorted({int(c) for c in args.cpus.split(",")})
        except ValueError:
            raise UsageError(f"--cpus: a comma-separated list of core numbers, got {args.cpus!r}") from None
        if not set(cpus) <= os.sched_getaffinity(0):
            raise UsageError(f"--cpus: this process may only use cores {sorted(os.sched_getaffinity(0))}")
    only = [s for s in (args.only or "").split(",") if s] or None
    if only and (unknown := [s for s in only if s not in stages]):
        raise UsageError(f"--only: no stage {', '.join(unknown)} (have: {', '.join(stages) or 'none'})")
    out = Path(args.out) if args.out else Path(f"tidegate-bench-{time.strftime('%Y%m%d-%H%M%S')}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a directory")
    if not stages:
        raise UsageError("no benchmark stages found (the `benchmarks` package is not installed)")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="work-", dir=out))  # on the disk being measured
    profile = make_profile(args.profile, work, args.duration, args.memory_max_mb, cpus, args.scale)
    try:
        report = run_suite(profile, out, only)
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    print(f"tidegate bench: report {report}")
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    from edge import _core

    try:
        _core.keygen(args.path)
    except OSError as e:
        raise UsageError(str(e)) from None
    print(f"wrote {args.path} (mode 0600). Copy it to both ends of the link over a trusted path and set "
          f"[link] key_file (agent) and [receiver] key_file (receiver).", file=sys.stderr)
    return 0


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
    t.add_argument("--operator", action="store_true",
                   help="ask the agent for operator rights (add tags, re-send); granted to root, "
                        "the agent's user and the tidegate-ops group; read-only otherwise")
    t.add_argument("--screen", default="overview",
                   choices=["overview", "tags", "sources", "spool", "events", "browse", "resend"],
                   help="screen to start on (default overview)")
    t.set_defaults(func=_cmd_tui)

    b = sub.add_parser("browse", help="print a server's address space")
    b.add_argument("endpoint", metavar="ENDPOINT", help="opc.tcp://host:port/path")
    b.add_argument("path", metavar="PATH", nargs="?", default=None, help="browse path to start from")
    b.add_argument("--toml", metavar="SOURCE", default=None,
                   help="print [[tags]] entries for the variables found, for source SOURCE of the tag file")
    b.set_defaults(func=_cmd_browse)

    c = sub.add_parser("check", help="validate a config file")
    c.add_argument("config", metavar="CONFIG")
    c.add_argument("--receiver", action="store_true", help="the file is a receiver config")
    c.set_defaults(func=_cmd_check)

    ds = sub.add_parser("datasets", help="list, show and export the zarr batches (IT side)")
    ds.add_argument("action", choices=["list", "show", "export"])
    ds.add_argument("root", metavar="ROOT",
                    help="datasets directory, or s3://bucket/prefix (credentials: AWS_* environment)")
    ds.add_argument("batch", metavar="BATCH", nargs="?", help="batch path, URL or name (show)")
    ds.add_argument("--site", default=None, help="only this site")
    ds.add_argument("--tags", default=None, help="export: tag names or shell patterns, comma-separated (default all)")
    ds.add_argument("--start", default=None, help="export: from this time, ISO 8601 (UTC unless it says)")
    ds.add_argument("--end", default=None, help="export: up to (not including) this time")
    ds.add_argument("-o", "--output", default=None, help="export: the file to write (.parquet or .csv)")
    ds.add_argument("--format", default=None, choices=["parquet", "csv"], help="export: default from --output")
    ds.add_argument("--s3-endpoint", default=None, metavar="URL",
                    help="S3-compatible endpoint (default: AWS_ENDPOINT_URL, else AWS)")
    ds.set_defaults(func=_cmd_datasets)

    rs = sub.add_parser("resend", help="re-send a sequence or time range from the agent's spool",
                        description="Ask the running agent to send spooled frames again "
                                    "(frames stay in the spool for [spool] retain_sent_seconds after "
                                    "they were sent). The receiver drops frames it already has.")
    rs.add_argument("--seq", metavar="FIRST-LAST", help="frame sequence numbers, inclusive (or one N)")
    rs.add_argument("--since", metavar="TIME",
                    help="start of a time range: ISO 8601 (local time unless it has an offset), "
                         "'now', or relative: --since=-30m / -2h / -1d")
    rs.add_argument("--until", metavar="TIME", help="end of the time range (default: now)")
    rs.add_argument("--config", metavar="FILE", help="agent tag file (to find its status socket)")
    rs.add_argument("--socket", metavar="PATH", help="agent status socket (default /run/tidegate/agent.sock)")
    rs.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the agent (default 10)")
    rs.set_defaults(func=_cmd_resend)

    s = sub.add_parser("sim", help="run the plant simulator (an OPC UA server) on loopback")
    s.add_argument("--port", type=int, default=4840)
    s.add_argument("--seed", type=int, default=1)
    s.set_defaults(func=_cmd_sim)

    bn = sub.add_parser("bench", help="run the benchmark suite on this machine and write a report")
    bn.add_argument("--profile", choices=["default", "pi"], default="default",
                    help="pi: the agent pinned to one core with a memory cap (default: this machine as it is)")
    bn.add_argument("--out", metavar="DIR", help="report directory (default: ./tidegate-bench-DATE-TIME)")
    bn.add_argument("--duration", type=float, default=None, metavar="S",
                    help="seconds the chain runs (default 90)")
    bn.add_argument("--only", metavar="STAGES", help="comma-separated stages to run (see --list)")
    bn.add_argument("--memory-max-mb", type=int, default=None, metavar="MB",
                    help="the agent's memory cap (pi default 256, otherwise none)")
    bn.add_argument("--cpus", metavar="LIST", help="cores to pin the agent to, e.g. 3 or 2,3 (pi default: the last)")
    bn.add_argument("--scale", type=float, default=1.0, metavar="F",
                    help="size of every stage's workload (data, tags, frames) relative to the full suite "
                         "(default 1; 0.05 for a quick look)")
    bn.add_argument("--list", action="store_true", help="list the stages and exit")
    bn.add_argument("--keep-work", action="store_true", help="keep the scratch directory (spools, logs, zarr)")
    bn.set_defaults(func=_cmd_bench)
    k = sub.add_parser("keygen", help="create the diode link's authentication key file")
    k.add_argument("path", metavar="PATH", help="key file to create (refuses to overwrite)")
    k.set_defaults(func=_cmd_keygen)

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
