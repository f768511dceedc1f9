"""``tidegate browse``: list the variables below a browse path of a server."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from edge.opcua.address import describe, read_limits, resolve_path, split_path, walk
from edge.opcua.session import guard_read_only
from edge.opcua.uahelp import Client


@dataclass(frozen=True)
class BrowseEntry:
    node_id: str  # "ns=2;s=Plant.Area1.Pump01.Speed"
    browse_path: str  # "Plant/Area1/Pump01/Speed" (below Objects)
    data_type: str  # edge.model type name, or "" if tidegate cannot carry it
    unit: str = ""
    description: str = ""
    range_low: float | None = None
    range_high: float | None = None
    supported: bool = True  # False: unsupported type, array, ...
    problem: str = ""


async def browse_client(client: Client, path: str | None = None, max_depth: int = 32) -> list[BrowseEntry]:
    """Every Variable below `path` ("Plant/Area1"; None or "" for Objects),
    tree order, with data type and unit, on an already connected client."""
    limits = await read_limits(client)
    root = await resolve_path(client, path)
    found = await walk(client, root, split_path(path), limits, max_depth=max_depth)
    infos = await describe(client, [f.node_id for f in found], limits)
    out: list[BrowseEntry] = []
    for f, info in zip(found, infos):
        out.append(BrowseEntry(
            node_id=info.node_id, browse_path="/".join(f.path), data_type=info.data_type,
            unit=info.unit, description=info.description, range_low=info.range_low,
            range_high=info.range_high, supported=not info.error, problem=info.error))
    out.sort(key=lambda e: e.browse_path)
    return out


async def browse(endpoint: str, path: str | None = None, *, timeout: float = 10.0,
                 max_depth: int = 32) -> list[BrowseEntry]:
    """Connect to `endpoint`, list the variables below `path`, disconnect.

    Raises LookupError if the path does not exist, OSError/TimeoutError if the
    server cannot be reached.
    """
    client = Client(endpoint, timeout=timeout)
    client.name = client.description = "tidegate browse"
    client.application_uri = "urn:tidegate:browse"
    guard_read_only(client)
    await asyncio.wait_for(client.connect(), timeout)
    try:
        return await browse_client(client, path, max_depth)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), 3.0)


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def tag_entries_toml(entries: list[BrowseEntry], source: str) -> str:
    """[[tags]] blocks for the variables tidegate can carry, named by their
    dotted browse path, ready to paste into the tag file (unsupported ones
    are listed as comments with the reason)."""
    out: list[str] = []
    for e in entries:
        if not e.supported:
            out.append(f"# skipped {e.node_id} ({e.browse_path}): {e.problem}\n")
            continue
        lines = ["[[tags]]", f"source = {_toml_str(source)}", f"node_id = {_toml_str(e.node_id)}",
                 f"name = {_toml_str(e.browse_path.replace('/', '.'))}"]
        if e.unit:
            lines.append(f"unit = {_toml_str(e.unit)}  # from the server")
        out.append("\n".join(lines) + "\n\n")
    return "".join(out)
