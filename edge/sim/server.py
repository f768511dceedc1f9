"""PlantSimulator: the plant model served by an asyncua OPC UA server.

Every value the simulator puts into the address space is written once, with an
explicit SourceTimestamp and ServerTimestamp, and only when value or status
changed; :meth:`PlantSimulator.published` is therefore the exact list of data
changes a subscriber must see (the ground truth of the end-to-end tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from asyncua import ua
from asyncua.server.server import Server

from edge.opcua.uahelp import ObjectIds, data_value, node_id

from edge.sim.plant import NAMESPACE_URI, NS_INDEX, TICK_MS, UNITS, PlantModel, SimTag, unece_unit_id

_log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)

VARIANT_TYPES: dict[str, ua.VariantType] = {
    "Boolean": ua.VariantType.Boolean,
    "Int32": ua.VariantType.Int32,
    "Int64": ua.VariantType.Int64,
    "UInt16": ua.VariantType.UInt16,
    "UInt32": ua.VariantType.UInt32,
    "Float": ua.VariantType.Float,
    "Double": ua.VariantType.Double,
    "String": ua.VariantType.String,
}
UNECE_NAMESPACE = "http://www.opcfoundation.org/UA/units/un/cefact"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (asyncua cannot bind port 0 and
    report it back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def datetime_ns(dt: datetime) -> int:
    """Unix nanoseconds of an (aware or naive-UTC) datetime, exact to the µs."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return ((dt - _EPOCH) // _US) * 1000


class PlantSimulator:
    """An OPC UA server on ``host:port`` with the plant of :class:`PlantModel`.

    ``start()`` brings the server up with every tag at its initial value;
    values stay constant until ``begin()`` starts the dynamics, so a client
    that subscribes in between misses nothing. ``hold()`` freezes the plant
    again (the server keeps serving); ``stop()`` shuts everything down.
    """

    def __init__(self, port: int = 4840, seed: int = 1, host: str = "127.0.0.1", *,
                 max_monitored_items_per_call: int = 100, max_nodes_per_read: int = 500) -> None:
        self.port = port
        self.seed = seed
        self.host = host
        self.endpoint = f"opc.tcp://{host}:{port}/tidegate/sim"
        self.model = PlantModel(seed)
        self.max_monitored_items_per_call = max_monitored_items_per_call
        self.max_nodes_per_read = max_nodes_per_read
        self._server: Server | None = None
        self._nodeids = [node_id(t.name, NS_INDEX) for t in self.model.tags]
        self._vtypes = [VARIANT_TYPES[t.data_type] for t in self.model.tags]
        self._published: dict[str, list[tuple[int, Any, int]]] = {t.node_id: [] for t in self.model.tags}
        self._task: asyncio.Task[None] | None = None
        self._holding = False
        self.writes = 0

    # -- public ---------------------------------------------------------------
    def tags(self) -> list[SimTag]:
        return list(self.model.tags)

    def published(self) -> dict[str, list[tuple[int, Any, int]]]:
        """node id -> [(source_ns, value, status), ...] of every value written."""
        return {k: list(v) for k, v in self._published.items()}

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self._server is not None:
            return
        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("tidegate plant simulator")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(NAMESPACE_URI)
        if idx != NS_INDEX:
            raise RuntimeError(f"namespace {NAMESPACE_URI} got index {idx}, expected {NS_INDEX}")
        await self._build(server)
        await self._set_limits(server)
        self._server = server
        await self._write(self.model.initial())
        await server.start()

    def begin(self) -> None:
        """Start the dynamics (idempotent; also resumes after hold())."""
        if self._server is None:
            raise RuntimeError("PlantSimulator.begin() before start()")
        self._holding = False
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="plant-sim")

    def hold(self) -> None:
        """Freeze the plant: no write after the tick in progress (if any) has
        finished; the server keeps serving the last values."""
        self._holding = True

    async def wait_held(self) -> None:
        """hold(), then wait until the dynamics task has really finished."""
        self.hold()
        task, self._task = self._task, None
        if task is not None:
            await task

    async def stop(self) -> None:
        await self.wait_held()
        server, self._server = self._server, None
        if server is not None:
            await server.stop()

    async def advance(self, ticks: int = 1) -> int:
        """Run `ticks` steps of the plant now (no waiting); returns values written."""
        n = 0
        for _ in range(ticks):
            n += await self._write(self.model.step())
        return n

    # -- internals --------------------------------------------------------------
    async def _run(self) -> None:
        period = TICK_MS / 1000.0
        next_at = time.monotonic() + period
        while not self._holding:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if self._holding:
                break
            next_at += period
            await self._write(self.model.step())

    async def _write(self, changes: list[tuple[int, Any, int]]) -> int:
        server = self._server
        assert server is not None
        now = datetime.now(timezone.utc)
        now_ns = datetime_ns(now)
        for i, value, status in changes:
            var = (ua.Variant(None, ua.VariantType.Null) if value is None
                   else ua.Variant(value, self._vtypes[i]))
            dv = data_value(var, status, now, now)
            await server.write_attribute_value(self._nodeids[i], dv)
            self._published[self.model.tags[i].node_id].append((now_ns, value, status))
        self.writes += len(changes)
        return len(changes)

    async def _set_limits(self, server: Server) -> None:
        for oid, limit in (
            (ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
             self.max_monitored_items_per_call),
            (ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead, self.max_nodes_per_read),
        ):
            await server.write_attribute_value(
                node_id(oid), data_value(ua.Variant(limit, ua.VariantType.UInt32)))

    async def _build(self, server: Server) -> None:
        """Create the whole address space with one AddNodes call."""
        items: list[ua.AddNodesItem] = []
        objects = node_id(ObjectIds.ObjectsFolder)
        made: set[str] = set()

        def obj(path: str, parent: ua.NodeId, folder: bool) -> ua.NodeId:
            nid = node_id(path, NS_INDEX)
            if path in made:
                return nid
            made.add(path)
            name = path.rsplit(".", 1)[-1]
            it = ua.AddNodesItem()
            it.RequestedNewNodeId = nid
            it.BrowseName = ua.QualifiedName(name, NS_INDEX)
            it.NodeClass = ua.NodeClass.Object
            it.ParentNodeId = parent
            it.ReferenceTypeId = node_id(ObjectIds.Organizes)
            it.TypeDefinition = node_id(ObjectIds.FolderType if folder else ObjectIds.BaseObjectType)
            attrs = ua.ObjectAttributes()
            attrs.DisplayName = ua.LocalizedText(name)
            attrs.Description = ua.LocalizedText(name)
            attrs.EventNotifier = 0
            it.NodeAttributes = attrs
            items.append(it)
            return nid

        def variable(nid: ua.NodeId, parent: ua.NodeId, bname: ua.QualifiedName, value: ua.Variant,
                     datatype: ua.NodeId, typedef: int, ref: int, description: str,
                     min_sampling: float = 0.0) -> None:
            it = ua.AddNodesItem()
            it.RequestedNewNodeId = nid
            it.BrowseName = bname
            it.NodeClass = ua.NodeClass.Variable
            it.ParentNodeId = parent
            it.ReferenceTypeId = node_id(ref)
            it.TypeDefinition = node_id(typedef)
            attrs = ua.VariableAttributes()
            attrs.DisplayName = ua.LocalizedText(bname.Name)
            attrs.Description = ua.LocalizedText(description)
            attrs.DataType = datatype
            attrs.Value = value
            attrs.ValueRank = ua.ValueRank.Scalar
            attrs.WriteMask = 0
            attrs.UserWriteMask = 0
            attrs.Historizing = False
            attrs.AccessLevel = ua.AccessLevel.CurrentRead.mask
            attrs.UserAccessLevel = ua.AccessLevel.CurrentRead.mask
            attrs.MinimumSamplingInterval = min_sampling
            it.NodeAttributes = attrs
            items.append(it)

        initial = self.model.initial()
        for t, (_, value, _status) in zip(self.model.tags, initial):
            parts = t.name.split(".")
            parent = objects
            for depth in range(1, len(parts)):
                parent = obj(".".join(parts[:depth]), parent, folder=depth < 3)
            nid = node_id(t.name, NS_INDEX)
            vt = VARIANT_TYPES[t.data_type]
            variable(nid, parent, ua.QualifiedName(t.browse_name, NS_INDEX), ua.Variant(value, vt),
                     node_id(vt.value), ObjectIds.AnalogItemType if t.analog
                     else ObjectIds.BaseDataVariableType, ObjectIds.HasComponent,
                     t.description, float(t.period_ms))
            if t.analog:
                assert t.range_low is not None and t.range_high is not None
                rng = ua.Range(Low=float(t.range_low), High=float(t.range_high))
                variable(node_id(f"{t.name}.EURange", NS_INDEX), nid, ua.QualifiedName("EURange", 0),
                         ua.Variant(rng, ua.VariantType.ExtensionObject), node_id(ObjectIds.Range),
                         ObjectIds.PropertyType, ObjectIds.HasProperty, "engineering range")
            if t.unece:
                display, desc = UNITS[t.unece]
                eu = ua.EUInformation(NamespaceUri=UNECE_NAMESPACE, UnitId=unece_unit_id(t.unece),
                                      DisplayName=ua.LocalizedText(display), Description=ua.LocalizedText(desc))
                variable(node_id(f"{t.name}.EngineeringUnits", NS_INDEX), nid,
                         ua.QualifiedName("EngineeringUnits", 0),
                         ua.Variant(eu, ua.VariantType.ExtensionObject), node_id(ObjectIds.EUInformation),
                         ObjectIds.PropertyType, ObjectIds.HasProperty, "engineering units")
        results = await server.iserver.isession.add_nodes(items)
        for it, res in zip(items, results):
            if not res.StatusCode.is_good():
                raise RuntimeError(f"sim: adding {it.RequestedNewNodeId} failed: {res.StatusCode}")
