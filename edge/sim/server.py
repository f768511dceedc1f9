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
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.common.node import Node
from asyncua.server.history import HistoryDict
from asyncua.server.server import Server

from edge.opcua.uahelp import ObjectIds, data_value, node_id
from edge.sim.behaviour import ServerBehaviour, install
from edge.sim.security import SimSecurity
from edge.sim.plant import NAMESPACE_URI, NS_INDEX, TICK_MS, UNITS, PlantModel, SimTag, unece_unit_id

_log = logging.getLogger(__name__)
BAD_NODE_ID_UNKNOWN = 0x80340000

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)

VARIANT_TYPES: dict[str, ua.VariantType] = {
    "Boolean": ua.VariantType.Boolean,
    "SByte": ua.VariantType.SByte,
    "Byte": ua.VariantType.Byte,
    "Int16": ua.VariantType.Int16,
    "UInt16": ua.VariantType.UInt16,
    "Int32": ua.VariantType.Int32,
    "UInt32": ua.VariantType.UInt32,
    "Int64": ua.VariantType.Int64,
    "UInt64": ua.VariantType.UInt64,
    "Float": ua.VariantType.Float,
    "Double": ua.VariantType.Double,
    "String": ua.VariantType.String,
    "DateTime": ua.VariantType.DateTime,
}
UNECE_NAMESPACE = "http://www.opcfoundation.org/UA/units/un/cefact"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (asyncua cannot bind port 0 and
    report it back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class _History(HistoryDict):
    """In-memory history that outlives a server restart (the simulator keeps
    it), like a historian on disk would."""

    async def new_historized_node(self, node_id: ua.NodeId, period: timedelta | None, count: int = 0) -> None:
        if node_id not in self._datachanges:
            await super().new_historized_node(node_id, period, count)


def _wire_value(value: Any, vtype: ua.VariantType) -> Any:
    if vtype == ua.VariantType.DateTime and isinstance(value, int):
        return _EPOCH + timedelta(microseconds=value // 1000)
    return value


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
                 max_monitored_items_per_call: int = 100, max_nodes_per_read: int = 500,
                 types: bool = False, historize: Sequence[str] = (),
                 behaviour: ServerBehaviour | None = None,
                 security: SimSecurity | None = None) -> None:
        self.port = port
        self.seed = seed
        self.host = host
        self.endpoint = f"opc.tcp://{host}:{port}/tidegate/sim"
        self.model = PlantModel(seed, types=types)
        self.max_monitored_items_per_call = max_monitored_items_per_call
        self.max_nodes_per_read = max_nodes_per_read
        self.historize = list(historize)  # node ids whose history the server keeps (HistoryRead)
        self._historized = {ua.NodeId.from_string(n) for n in self.historize}
        self.behaviour = behaviour or ServerBehaviour()
        self.security = security
        self._history = _History()
        self._removed: dict[str, list[ua.AddNodesItem]] = {}
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
        """Bring the server up; after a stop() (a restart) the plant goes on
        from where it was, and the history the server kept is still there."""
        if self._server is not None:
            return
        server = Server(user_manager=self.security.user_manager() if self.security else None)
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("tidegate plant simulator")
        if self.security is not None:
            await self.security.apply(server)
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        install(server, self.behaviour, {t.node_id: t for t in self.model.tags})
        idx = await server.register_namespace(NAMESPACE_URI)
        if idx != NS_INDEX:
            raise RuntimeError(f"namespace {NAMESPACE_URI} got index {idx}, expected {NS_INDEX}")
        await self._build(server)
        await self._set_limits(server)
        server.iserver.history_manager.set_storage(self._history)
        self._server = server
        for n in self.historize:
            # The simulator is the historian: _write stores each value as it is
            # written, so nothing written is missing from history at a crash.
            nid = ua.NodeId.from_string(n)
            await self._history.new_historized_node(nid, None)
            node = Node(server.iserver.isession, nid)
            await node.write_attribute(ua.AttributeIds.Historizing, ua.DataValue(ua.Variant(True)))
            await node.set_attr_bit(ua.AttributeIds.AccessLevel, ua.AccessLevel.HistoryRead)
            await node.set_attr_bit(ua.AttributeIds.UserAccessLevel, ua.AccessLevel.HistoryRead)
        await self._write(self.model.initial())
        await server.start()

    async def restart(self, down_s: float = 0.0, *, ticks_while_down: int = 0) -> None:
        """Stop the server (sessions, subscriptions and queues are lost), stay
        down `down_s` seconds while the plant moves on `ticks_while_down`
        ticks unseen, and start again; the dynamics resume if they ran."""
        was_running = self.running
        await self.stop()
        for _ in range(ticks_while_down):
            self.model.step()
        await asyncio.sleep(down_s)
        await self.start()
        if was_running:
            self.begin()

    async def remove_node(self, node: str) -> None:
        """The node disappears from the address space (a PLC program change):
        subscribers first get BadNodeIdUnknown, as a real server sends."""
        server = self._server
        assert server is not None
        i = next(k for k, t in enumerate(self.model.tags) if t.node_id == node)
        nid = self._nodeids[i]
        await self._write([(i, None, BAD_NODE_ID_UNKNOWN)], record=True)
        await asyncio.sleep(0.05)
        self._removed[node] = [it for it in self._items if it.RequestedNewNodeId == nid
                               or it.ParentNodeId == nid]
        await server.delete_nodes([Node(server.iserver.isession, nid)], recursive=True)

    async def restore_node(self, node: str) -> None:
        """Put a removed node back, with the plant's current value."""
        server = self._server
        assert server is not None
        items = self._removed.pop(node)
        results = await server.iserver.isession.add_nodes(items)
        for res in results:
            if not res.StatusCode.is_good():
                raise RuntimeError(f"sim: restoring {node} failed: {res.StatusCode}")
        i = next(k for k, t in enumerate(self.model.tags) if t.node_id == node)
        await self._write([(i, *self.model.current()[i])])

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

    async def _write(self, changes: list[tuple[int, Any, int]], record: bool = True) -> int:
        server = self._server
        assert server is not None
        now = datetime.now(timezone.utc)
        now_ns = datetime_ns(now)
        for i, value, status in changes:
            if self.model.tags[i].node_id in self._removed:
                continue  # not in the address space right now
            var = (ua.Variant(None, ua.VariantType.Null) if value is None
                   else ua.Variant(_wire_value(value, self._vtypes[i]), self._vtypes[i]))
            dv = data_value(var, status, now, now)
            await server.write_attribute_value(self._nodeids[i], dv)
            if self._nodeids[i] in self._historized:
                await self._history.save_node_value(self._nodeids[i], dv)
            if record:
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
            initial_var = ua.Variant(None, ua.VariantType.Null) if value is None \
                else ua.Variant(_wire_value(value, vt), vt)
            variable(nid, parent, ua.QualifiedName(t.browse_name, NS_INDEX), initial_var,
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
        self._items = items
        results = await server.iserver.isession.add_nodes(items)
        for it, res in zip(items, results):
            if not res.StatusCode.is_good():
                raise RuntimeError(f"sim: adding {it.RequestedNewNodeId} failed: {res.StatusCode}")
