"""Address-space helpers shared by SourceSession and ``tidegate browse``:
operation limits, browse-path resolution, batched browsing and batched
description of variables (data type, unit, range). Read services only, always
batched within the server's operation limits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from asyncua import ua
from asyncua.common.node import Node
from asyncua.common.ua_utils import data_type_to_variant_type

from edge.model import DATA_TYPES
from edge.opcua.uahelp import AttributeIds, Client, ObjectIds, node_id

T = TypeVar("T")
_FALSE: Any = False  # typed as ua.Boolean by asyncua
DEFAULT_LIMIT = 1000

# ns=0 data types a scalar value of which we can carry, by NodeId identifier.
_BUILTIN_TYPES: dict[int, str] = {
    1: "Boolean", 2: "SByte", 3: "Byte", 4: "Int16", 5: "UInt16", 6: "Int32", 7: "UInt32",
    8: "Int64", 9: "UInt64", 10: "Float", 11: "Double", 12: "String", 13: "DateTime",
    # common subtypes
    290: "Double",  # Duration
    294: "DateTime",  # UtcTime
    288: "UInt32",  # IntegerId
    289: "UInt32",  # Counter
    295: "String",  # LocaleId
    12877: "String",  # NormalizedString
    12878: "String",  # DecimalString
    12879: "String",  # DurationString
    12880: "String",  # TimeString
    12881: "String",  # DateString
    # Enumeration (29) and its subtypes travel as Int32: handled by the supertype walk.
}


@dataclass(frozen=True)
class Limits:
    """The server's operation limits that shape our requests (0 on the server
    means "no limit"; we then use DEFAULT_LIMIT as a polite batch size)."""

    monitored_items_per_call: int = DEFAULT_LIMIT
    nodes_per_read: int = DEFAULT_LIMIT
    nodes_per_browse: int = DEFAULT_LIMIT
    nodes_per_translate: int = DEFAULT_LIMIT
    nodes_per_history_read: int = DEFAULT_LIMIT

    def to_dict(self) -> dict[str, int]:
        return {"monitored_items_per_call": self.monitored_items_per_call,
                "nodes_per_read": self.nodes_per_read, "nodes_per_browse": self.nodes_per_browse,
                "nodes_per_translate": self.nodes_per_translate,
                "nodes_per_history_read": self.nodes_per_history_read}


@dataclass(frozen=True)
class VariableInfo:
    """What we learned about one node (a failed node has `error` set)."""

    node_id: str
    browse_name: str = ""
    data_type: str = ""  # edge.model.DATA_TYPES name, "" if unsupported
    data_type_id: str = ""  # the server's DataType node id, for messages
    unit: str = ""
    description: str = ""
    range_low: float | None = None
    range_high: float | None = None
    error: str = ""
    historizing: bool = False  # the server keeps history of the value: HistoryRead can fill gaps


def chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    size = max(1, size)
    for i in range(0, len(items), size):
        yield items[i:i + size]


def queue_size_for(publishing_ms: float, sampling_ms: float) -> int:
    """ceil(publishing / sampling) + 1, at least 2: nothing sampled inside one
    publishing interval is dropped by the server's queue."""
    if sampling_ms <= 0:  # "as fast as the server can": a generous queue
        return 10
    return max(2, math.ceil(publishing_ms / sampling_ms) + 1)


async def read_limits(client: Client) -> Limits:
    ids = (
        ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
        ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
        ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerBrowse,
        ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerTranslateBrowsePathsToNodeIds,
        ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerHistoryReadData,
    )
    values = await read_attribute(client, [node_id(i) for i in ids], AttributeIds.Value, len(ids))
    out: list[int] = []
    for dv in values:
        v = dv.Value.Value if dv.Value is not None and dv.StatusCode is not None and dv.StatusCode.is_good() \
            else None
        out.append(int(v) if isinstance(v, int) and v > 0 else DEFAULT_LIMIT)
    return Limits(*out)


async def read_attribute(client: Client, nodes: Sequence[ua.NodeId], attr: AttributeIds,
                         per_call: int) -> list[ua.DataValue]:
    return await read_many(client, [(n, attr) for n in nodes], per_call)


async def read_many(client: Client, items: Sequence[tuple[ua.NodeId, AttributeIds]],
                    per_call: int) -> list[ua.DataValue]:
    """One Read service call per `per_call` (node, attribute) pairs."""
    out: list[ua.DataValue] = []
    for chunk in chunks(items, per_call):
        params = ua.ReadParameters()
        params.TimestampsToReturn = ua.TimestampsToReturn.Neither
        for nid, attr in chunk:
            rv = ua.ReadValueId()
            rv.NodeId = nid
            rv.AttributeId = attr
            params.NodesToRead.append(rv)
        out.extend(await client.uaclient.read(params))
    return out


async def namespace_array(client: Client) -> list[str]:
    dv = await read_attribute(client, [node_id(ObjectIds.Server_NamespaceArray)], AttributeIds.Value, 1)
    v = dv[0].Value.Value if dv and dv[0].Value is not None else None
    return [str(x) for x in v] if isinstance(v, list) else []


def parse_node_id(text: str, namespaces: Sequence[str]) -> ua.NodeId:
    """'ns=2;s=X', 'i=85', 'nsu=urn:x;s=X' -> NodeId (nsu resolved against the
    server's namespace array). Raises ValueError."""
    if text.startswith("nsu="):
        uri, sep, rest = text[4:].partition(";")
        if not sep:
            raise ValueError(f"bad node id {text!r}")
        if uri not in namespaces:
            raise ValueError(f"namespace {uri!r} is not on this server")
        text = f"ns={namespaces.index(uri)};{rest}"
    try:
        nid = ua.NodeId.from_string(text)
    except Exception as e:  # asyncua raises several types here
        raise ValueError(f"bad node id {text!r}: {e}") from None
    return nid


def _plain(nid: ua.NodeId) -> ua.NodeId:
    """An ExpandedNodeId (as Browse returns) -> a plain, hashable NodeId."""
    return ua.NodeId(nid.Identifier, nid.NamespaceIndex, nid.NodeIdType)


def node_id_str(nid: ua.NodeId) -> str:
    return nid.to_string()


async def _browse_once(client: Client, nodes: Sequence[ua.NodeId]) -> list[list[ua.ReferenceDescription]]:
    """Browse forward hierarchical references of each node (one Browse call),
    following continuation points with BrowseNext."""
    params = ua.BrowseParameters()
    params.RequestedMaxReferencesPerNode = 0
    for nid in nodes:
        desc = ua.BrowseDescription()
        desc.NodeId = nid
        desc.BrowseDirection = ua.BrowseDirection.Forward
        desc.ReferenceTypeId = node_id(ObjectIds.HierarchicalReferences)
        desc.IncludeSubtypes = True
        desc.NodeClassMask = int(ua.NodeClass.Object) | int(ua.NodeClass.Variable)
        desc.ResultMask = int(ua.BrowseResultMask.All)
        params.NodesToBrowse.append(desc)
    results = await client.uaclient.browse(params)
    out: list[list[ua.ReferenceDescription]] = []
    for res in results:
        refs: list[ua.ReferenceDescription] = list(res.References or []) if res.StatusCode.is_good() else []
        cp = res.ContinuationPoint
        while cp:
            nparams = ua.BrowseNextParameters()
            nparams.ReleaseContinuationPoints = False
            nparams.ContinuationPoints = [cp]
            more = await client.uaclient.browse_next(nparams)
            if not more or not more[0].StatusCode.is_good():
                break
            refs.extend(more[0].References or [])
            cp = more[0].ContinuationPoint
        out.append(refs)
    return out


def _qname_matches(element: str, qn: ua.QualifiedName) -> bool:
    ns, sep, name = element.partition(":")
    if sep and ns.isdigit():
        return qn.Name == name and qn.NamespaceIndex == int(ns)
    return qn.Name == element


def split_path(path: str | None) -> list[str]:
    """'Objects/Plant/Area1', '/Plant/Area1', 'Plant/Area1' -> ['Plant', 'Area1']."""
    parts = [p for p in (path or "").strip().strip("/").split("/") if p]
    if parts and parts[0] in ("Objects", "0:Objects"):
        parts = parts[1:]
    return parts


async def resolve_path(client: Client, path: str | None) -> ua.NodeId:
    """The node at a browse path below Objects (names, optionally 'ns:Name')."""
    nid = node_id(ObjectIds.ObjectsFolder)
    walked = ["Objects"]
    for element in split_path(path):
        refs = (await _browse_once(client, [nid]))[0]
        match = [r for r in refs if _qname_matches(element, r.BrowseName)]
        if not match:
            names = sorted({r.BrowseName.Name for r in refs})
            shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
            raise LookupError(f"no {element!r} under {'/'.join(walked)} (children: {shown or 'none'})")
        nid = match[0].NodeId
        walked.append(element)
    return nid


@dataclass(frozen=True)
class Found:
    node_id: ua.NodeId
    path: list[str]  # browse names from below Objects
    node_class: ua.NodeClass


async def walk(client: Client, root: ua.NodeId, root_path: Sequence[str], limits: Limits,
               max_depth: int = 32, include_objects: bool = False) -> list[Found]:
    """Every Variable below `root` (components, organized nodes; properties
    excluded), breadth first, batched per MaxNodesPerBrowse."""
    out: list[Found] = []
    seen: set[ua.NodeId] = {root}
    level: list[tuple[ua.NodeId, list[str]]] = [(root, list(root_path))]
    depth = 0
    has_property = node_id(ObjectIds.HasProperty)
    while level and depth < max_depth:
        nxt: list[tuple[ua.NodeId, list[str]]] = []
        for chunk in chunks(level, limits.nodes_per_browse):
            results = await _browse_once(client, [n for n, _ in chunk])
            for (_, path), refs in zip(chunk, results):
                for r in sorted(refs, key=lambda r: r.BrowseName.Name):
                    if r.ReferenceTypeId == has_property:
                        continue
                    if getattr(r.NodeId, "ServerIndex", 0):
                        continue  # a node on another server
                    nid = _plain(r.NodeId)
                    if nid in seen:
                        continue
                    seen.add(nid)
                    p = [*path, r.BrowseName.Name]
                    if r.NodeClass == ua.NodeClass.Variable:
                        out.append(Found(nid, p, ua.NodeClass.Variable))
                        nxt.append((nid, p))  # variables can have component variables
                    else:
                        if include_objects:
                            out.append(Found(nid, p, r.NodeClass))
                        nxt.append((nid, p))
        level = nxt
        depth += 1
    return out


async def data_type_name(client: Client, dtype: ua.NodeId, cache: dict[ua.NodeId, str]) -> str:
    """A DataType node id -> edge.model type name ("" if we cannot carry it)."""
    if dtype in cache:
        return cache[dtype]
    name = ""
    if dtype.NamespaceIndex == 0 and isinstance(dtype.Identifier, int) and dtype.Identifier in _BUILTIN_TYPES:
        name = _BUILTIN_TYPES[dtype.Identifier]
    else:
        try:
            vt = await data_type_to_variant_type(Node(client.uaclient.session, dtype))
            name = vt.name if vt.name in DATA_TYPES else ""
        except Exception:
            name = ""
    cache[dtype] = name
    return name


_ATTRS = (AttributeIds.NodeClass, AttributeIds.BrowseName, AttributeIds.DataType,
          AttributeIds.ValueRank, AttributeIds.Description, AttributeIds.Historizing,
          AttributeIds.AccessLevel)
_NA = len(_ATTRS)
_HISTORY_READ = 0x04  # AccessLevel bit HistoryRead


def _value(dv: ua.DataValue) -> Any:
    if dv.StatusCode is not None and not dv.StatusCode.is_good():
        return None
    return dv.Value.Value if dv.Value is not None else None


async def describe(client: Client, nodes: Sequence[ua.NodeId], limits: Limits,
                   dtype_cache: dict[ua.NodeId, str] | None = None) -> list[VariableInfo]:
    """Data type, unit, range and description of each node, in a few batched
    Read and TranslateBrowsePathsToNodeIds calls."""
    cache = {} if dtype_cache is None else dtype_cache
    items = [(n, a) for n in nodes for a in _ATTRS]
    dvs = await read_many(client, items, limits.nodes_per_read)
    # property lookup: EURange and EngineeringUnits of every node
    paths: list[ua.BrowsePath] = []
    for n in nodes:
        for prop in ("EURange", "EngineeringUnits"):
            bp = ua.BrowsePath()
            bp.StartingNode = n
            el = ua.RelativePathElement()
            el.ReferenceTypeId = node_id(ObjectIds.HasProperty)
            el.IsInverse = _FALSE  # asyncua's default is True
            el.IncludeSubtypes = _FALSE
            el.TargetName = ua.QualifiedName(prop, 0)
            bp.RelativePath.Elements.append(el)
            paths.append(bp)
    targets: list[ua.NodeId | None] = []
    for chunk in chunks(paths, limits.nodes_per_translate):
        for res in await client.uaclient.translate_browsepaths_to_nodeids(list(chunk)):
            if res.StatusCode.is_good() and res.Targets:
                targets.append(_plain(res.Targets[0].TargetId))
            else:
                targets.append(None)
    found = [t for t in targets if t is not None]
    prop_values: dict[ua.NodeId, Any] = {}
    if found:
        for t, dv in zip(found, await read_attribute(client, found, AttributeIds.Value, limits.nodes_per_read)):
            prop_values[t] = _value(dv)
    out: list[VariableInfo] = []
    for k, n in enumerate(nodes):
        nclass, bname, dtype, vrank, desc, hist, access = (_value(dv) for dv in dvs[k * _NA:(k + 1) * _NA])
        sid = node_id_str(n)
        first_status = dvs[k * _NA].StatusCode
        if nclass is None:
            code = first_status.name if first_status is not None else "unreadable"
            out.append(VariableInfo(sid, error=f"node not readable ({code})"))
            continue
        if nclass != ua.NodeClass.Variable:
            out.append(VariableInfo(sid, error=f"not a Variable (node class {ua.NodeClass(nclass).name})"))
            continue
        name = bname.Name if isinstance(bname, ua.QualifiedName) else str(bname or "")
        dt_name = await data_type_name(client, dtype, cache) if isinstance(dtype, ua.NodeId) else ""
        dt_id = dtype.to_string() if isinstance(dtype, ua.NodeId) else ""
        text = desc.Text if isinstance(desc, ua.LocalizedText) and desc.Text else ""
        rng = prop_values.get(targets[2 * k]) if targets[2 * k] is not None else None  # type: ignore[arg-type]
        eu = prop_values.get(targets[2 * k + 1]) if targets[2 * k + 1] is not None else None  # type: ignore[arg-type]
        unit = ""
        if isinstance(eu, ua.EUInformation) and eu.DisplayName is not None and eu.DisplayName.Text:
            unit = eu.DisplayName.Text
        lo = hi = None
        if isinstance(rng, ua.Range):
            lo, hi = float(rng.Low), float(rng.High)
        error = ""
        if not dt_name:
            error = f"unsupported data type {dt_id}"
        elif isinstance(vrank, int) and vrank >= 0:
            error = f"arrays are not supported (ValueRank {vrank})"
        historizing = bool(hist) and isinstance(access, int) and bool(access & _HISTORY_READ)
        out.append(VariableInfo(sid, name, dt_name, dt_id, unit, text, lo, hi, error, historizing))
    return out
