"""SourceSession: one OPC UA server -> the Collector.

run() connects, resolves the configured tags (and tag groups, by browsing),
registers them in the collector's catalog, creates ONE subscription and its
monitored items (batched per MaxMonitoredItemsPerCall), and then stays up
until cancelled. asyncua's supervisor (auto_reconnect) handles connection
loss: it re-activates the session and transfers the subscription, asking the
server to Republish what was missed (marked REPLAYED), or recreates the
subscription with the same client handles. If the first connect or the setup
fails, the whole client is thrown away and tried again with backoff.

Notifications are handled a whole PublishResponse at a time (our Subscription
subclass overrides ``publish_callback``): each DataValue goes to the collector
as it came (value, all 32 status bits, both timestamps). asyncua acknowledges
a NotificationMessage with the *next* Publish request, i.e. only after
publish_callback returned; the optional ``durable`` coroutine is awaited at
the end of publish_callback, which is the seam for ack-after-durable.

Read only: the session's write/call/node-management services are replaced by
a guard that raises :class:`ReadOnlyViolation`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asyncua import ua
from asyncua.client.ua_client import UaClientState
from asyncua.client.ua_session import UaSession
from asyncua.common.subscription import Subscription

from edge.collect import Collector, to_ns
from edge.config import SourceConfig, TagConfig, TagGroupConfig
from edge.model import SampleFlags
from edge.opcua.address import (
    Limits,
    VariableInfo,
    chunks,
    describe,
    namespace_array,
    parse_node_id,
    queue_size_for,
    read_limits,
    resolve_path,
    split_path,
    walk,
)
from edge.opcua.uahelp import AttributeIds, Client

_log = logging.getLogger(__name__)

EventSink = Callable[[str, dict[str, Any]], None]
Durable = Callable[[], Awaitable[None]]

# StatusCode InfoType=DataValue (0x0400) with the Overflow bit (0x0080).
_OVERFLOW_BITS = 0x0480
_REPLAYED = int(SampleFlags.REPLAYED)
_WRITE_SERVICES = ("write", "call", "add_nodes", "delete_nodes", "add_references", "delete_references",
                   "history_update", "register_nodes", "unregister_nodes")


class ReadOnlyViolation(RuntimeError):
    """Something tried to use an OPC UA service that changes the server."""


def guard_read_only(client: Client) -> None:
    """Make every service that writes to the server raise instead."""
    session = client.uaclient.session

    def make(name: str) -> Callable[..., Awaitable[Any]]:
        async def forbidden(*_args: Any, **_kwargs: Any) -> Any:
            raise ReadOnlyViolation(f"tidegate is read-only: OPC UA {name} refused")
        return forbidden

    for name in _WRITE_SERVICES:
        if hasattr(session, name):
            setattr(session, name, make(name))
        if hasattr(client.uaclient, name):
            setattr(client.uaclient, name, make(name))


class _Want:
    """One tag the session wants: from [[tags]] or found under a tag group."""

    __slots__ = ("node_id", "name", "unit", "description", "sampling_ms", "queue_size", "default_name")

    def __init__(self, node_id: str, name: str | None, unit: str | None, description: str | None,
                 sampling_ms: int | None, queue_size: int | None, default_name: str | None = None) -> None:
        self.node_id = node_id
        self.name = name
        self.unit = unit
        self.description = description
        self.sampling_ms = sampling_ms
        self.queue_size = queue_size
        self.default_name = default_name


class TidegateSubscription(Subscription):
    """A Subscription whose publish_callback hands the whole batch to a sink
    (no per-notification tasks or events)."""

    def __init__(self, session: UaSession, params: ua.CreateSubscriptionParameters,
                 on_publish: Callable[[TidegateSubscription, ua.PublishResult], Awaitable[None]]) -> None:
        super().__init__(session, params, handler=None, queue_maxsize=1)
        self._on_publish = on_publish

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        self.last_publish_at = time.monotonic()
        msg = publish_result.NotificationMessage
        if msg.NotificationData:
            # Only real NotificationMessages move the sequence number: a
            # keep-alive carries the number of the *next* message, and taking
            # it would make a Republish after reconnect skip that message.
            self.last_sequence_number = int(msg.SequenceNumber)
            await self._on_publish(self, publish_result)


class SourceSession:
    """Collects one source's tags into `collector` until cancelled."""

    def __init__(self, source: SourceConfig, tags: list[TagConfig], collector: Collector,
                 on_event: EventSink | None = None, *, tag_groups: list[TagGroupConfig] | None = None,
                 durable: Durable | None = None, request_timeout: float = 10.0,
                 reconnect_max_delay: float = 30.0) -> None:
        self.source = source
        self.tags = list(tags)
        self.tag_groups = list(tag_groups or [])
        self.collector = collector
        self.on_event = on_event
        self.durable = durable
        self.request_timeout = request_timeout
        self.reconnect_max_delay = reconnect_max_delay
        self.client: Client | None = None
        self.subscription: TidegateSubscription | None = None
        self.limits = Limits()
        self._handles: set[int] = set()
        self._failing: dict[str, str] = {}
        self._connected_once = False
        self._last_connect_error = ""
        self.subscribe_calls = 0
        self.state: dict[str, Any] = {
            "name": source.name,
            "endpoint": source.endpoint,
            "connected": False,
            "tags": len(self.tags),
            "subscribed": 0,
            "reconnects": 0,
            "failing": [],
            "publishing_interval_ms": float(source.publishing_interval_ms),
            "notifications": 0,
            "replayed": 0,
            "overflows": 0,
            "unknown_handles": 0,
            "limits": self.limits.to_dict(),
            "last_error": None,
        }

    # -- events -------------------------------------------------------------------
    def _event(self, kind: str, **detail: Any) -> None:
        _log.info("%s: %s %s", self.source.name, kind, detail)
        if self.on_event is not None:
            try:
                self.on_event(kind, {"source": self.source.name, **detail})
            except Exception:
                _log.exception("on_event raised")

    def _fail_node(self, node_id: str, reason: str) -> None:
        if self._failing.get(node_id) != reason:
            self._failing[node_id] = reason
            self._event("node_failed", node_id=node_id, reason=reason)
        self.state["failing"] = [{"node_id": k, "reason": v} for k, v in self._failing.items()]

    def _set_connected(self, connected: bool, reason: str = "") -> None:
        if connected == self.state["connected"]:
            return
        self.state["connected"] = connected
        if connected:
            if self._connected_once:
                self.state["reconnects"] += 1
            self._connected_once = True
            self._last_connect_error = ""
            self._event("source_connected", endpoint=self.source.endpoint)
        else:
            self._event("source_disconnected", endpoint=self.source.endpoint, reason=reason or "connection lost")

    # -- main loop ----------------------------------------------------------------
    async def run(self) -> None:
        delay = 1.0
        while True:
            client = Client(self.source.endpoint, timeout=self.request_timeout)
            client.name = client.description = f"tidegate {self.source.name}"
            client.application_uri = "urn:tidegate:agent"
            client.product_uri = "urn:tidegate"
            guard_read_only(client)
            self.client = client
            ok = False
            try:
                await client.connect(auto_reconnect=True, reconnect_max_delay=self.reconnect_max_delay)
                await self._setup(client)
                ok = True
                delay = 1.0
                self._set_connected(True)
                await self._watch(client)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # connect or setup failed: start over with a new client
                reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                self.state["last_error"] = reason
                if ok or self.state["connected"]:
                    self._set_connected(False, reason)
                elif reason != self._last_connect_error:  # report each new reason once, not every retry
                    self._last_connect_error = reason
                    self._event("source_connect_failed", endpoint=self.source.endpoint, reason=reason)
            finally:
                self.subscription = None
                self.client = None
                if self.state["connected"]:
                    self._set_connected(False, "session closed")
                self.state["subscribed"] = 0
                await self._close(client)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max_delay)

    async def _close(self, client: Client) -> None:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(client.disconnect(), 3.0)

    async def _watch(self, client: Client) -> None:
        """Mirror asyncua's connection state into ours until cancelled."""
        async with client.uaclient.subscribe_state() as sub:
            while True:
                try:
                    st = await sub.next_change(5.0)
                except TimeoutError:
                    st = client.uaclient.state
                if st is UaClientState.CONNECTED:
                    self._set_connected(True)
                    s = self.subscription
                    if s is not None:
                        self.state["subscribed"] = sum(
                            1 for d in s._monitored_items.values() if d.server_handle is not None)
                elif st in (UaClientState.DISCONNECTED, UaClientState.RECONNECTING):
                    self._set_connected(False, "connection lost")

    # -- setup ----------------------------------------------------------------------
    async def _setup(self, client: Client) -> None:
        self.limits = await read_limits(client)
        self.state["limits"] = self.limits.to_dict()
        namespaces = await namespace_array(client)
        wants = await self._wants(client)
        self.state["tags"] = len(wants)
        # resolve node ids
        parsed: list[tuple[_Want, ua.NodeId]] = []
        for w in wants:
            try:
                parsed.append((w, parse_node_id(w.node_id, namespaces)))
            except ValueError as e:
                self._fail_node(w.node_id, str(e))
        infos = await describe(client, [n for _, n in parsed], self.limits)
        # register (default names that would clash get a unique fallback, all of them)
        ok = [(w, nid, info) for (w, nid), info in zip(parsed, infos) if not self._check(w, info)]
        defaults: dict[str, int] = {}
        for w, _, info in ok:
            if w.name is None:
                d = self._default_name(w, info)
                defaults[d] = defaults.get(d, 0) + 1
        renamed: list[str] = []
        to_subscribe: list[tuple[int, ua.NodeId, _Want]] = []
        for w, nid, info in ok:
            name = w.name
            if name is None:
                name = self._default_name(w, info)
                taken = self.collector.index_of_name(name)
                mine = self.collector.index_of(self.source.name, w.node_id)
                if defaults[name] > 1 or (taken is not None and taken != mine):
                    renamed.append(name)
                    name = self._fallback_name(w.node_id)
            index = self._register(w, info, name)
            if index is not None:
                to_subscribe.append((index, nid, w))
        if renamed:
            self._event("tags_renamed", count=len(renamed),
                        reason="browse names not unique; named after the node id instead",
                        examples=", ".join(sorted(set(renamed))[:5]))
        # subscribe
        await self._subscribe(client, to_subscribe)

    async def _wants(self, client: Client) -> list[_Want]:
        wants: list[_Want] = []
        seen: set[str] = set()
        for t in self.tags:
            if t.node_id in seen:
                continue
            seen.add(t.node_id)
            wants.append(_Want(t.node_id, t.name, t.unit, t.description, t.sampling_interval_ms, t.queue_size))
        for g in self.tag_groups:
            try:
                root = await resolve_path(client, g.browse_path)
            except LookupError as e:
                self._fail_node(g.browse_path, f"tag group: {e}")
                continue
            for f in await walk(client, root, split_path(g.browse_path), self.limits):
                sid = f.node_id.to_string()
                if sid in seen:
                    continue
                seen.add(sid)
                wants.append(_Want(sid, None, None, None, g.sampling_interval_ms, g.queue_size,
                                   default_name=".".join(f.path)))
        return wants

    def _check(self, w: _Want, info: VariableInfo) -> bool:
        """True (and the node reported failing) if the node cannot be collected."""
        if info.error:
            self._fail_node(w.node_id, info.error)
            return True
        return False

    @staticmethod
    def _default_name(w: _Want, info: VariableInfo) -> str:
        return w.default_name or info.browse_name or w.node_id

    def _fallback_name(self, node_id: str) -> str:
        """A unique, readable name from the node id: the string identifier
        ('ns=2;s=Plant.Pump01.Speed' -> 'Plant.Pump01.Speed'), else source:node_id."""
        _, sep, ident = node_id.partition(";s=")
        if sep and ident and self.collector.index_of_name(ident) in (
                None, self.collector.index_of(self.source.name, node_id)):
            return ident
        return f"{self.source.name}:{node_id}"

    def _register(self, w: _Want, info: VariableInfo, name: str) -> int | None:
        try:
            return self.collector.register(
                name=name, node_id=w.node_id, source=self.source.name, data_type=info.data_type,
                unit=w.unit if w.unit is not None else info.unit,
                description=w.description if w.description is not None else info.description,
                range_low=info.range_low, range_high=info.range_high)
        except ValueError as e:
            self._fail_node(w.node_id, str(e))
            return None

    async def _subscribe(self, client: Client, items: list[tuple[int, ua.NodeId, _Want]]) -> None:
        src = self.source
        interval = float(src.publishing_interval_ms)
        keepalive = max(1, src.keepalive_count)
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = interval
        params.RequestedMaxKeepAliveCount = keepalive
        # The server keeps the subscription (and its queues) this many intervals
        # without a Publish request: at least 10 minutes, for reconnects.
        params.RequestedLifetimeCount = max(3 * keepalive, math.ceil(600_000 / max(interval, 1.0)))
        params.MaxNotificationsPerPublish = 10_000
        params.PublishingEnabled = True
        params.Priority = 0
        sub = TidegateSubscription(client.uaclient.session, params, self._on_publish)
        result = await sub.init()
        self.state["publishing_interval_ms"] = float(result.RevisedPublishingInterval)
        # The auto-reconnect supervisor restores the subscriptions it knows of.
        client._subscriptions.append(sub)
        self.subscription = sub
        revised = float(result.RevisedPublishingInterval) or interval
        ok = 0
        for batch in chunks(items, self.limits.monitored_items_per_call):
            reqs: list[ua.MonitoredItemCreateRequest] = []
            for index, nid, w in batch:
                sampling = float(w.sampling_ms) if w.sampling_ms is not None else revised
                rv = ua.ReadValueId()
                rv.NodeId = nid
                rv.AttributeId = AttributeIds.Value
                mp = ua.MonitoringParameters()
                mp.ClientHandle = index  # the catalog index: no lookup table on the hot path
                mp.SamplingInterval = sampling
                mp.QueueSize = w.queue_size if w.queue_size is not None else queue_size_for(revised, sampling)
                mp.DiscardOldest = True
                req = ua.MonitoredItemCreateRequest()
                req.ItemToMonitor = rv
                req.MonitoringMode = ua.MonitoringMode.Reporting
                req.RequestedParameters = mp
                reqs.append(req)
                self._handles.add(index)
            self.subscribe_calls += 1
            results = await sub.create_monitored_items(reqs)
            for (index, _, w), res in zip(batch, results):
                if isinstance(res, ua.StatusCode):
                    self._fail_node(w.node_id, f"subscribe failed: {res.name}")
                    self._handles.discard(index)
                else:
                    ok += 1
                    if w.node_id in self._failing:
                        del self._failing[w.node_id]
            self.state["subscribed"] = ok
        self.state["failing"] = [{"node_id": k, "reason": v} for k, v in self._failing.items()]

    # -- data path --------------------------------------------------------------------
    async def _on_publish(self, sub: TidegateSubscription, result: ua.PublishResult) -> None:
        try:
            self._collect(sub, result)
        except Exception as e:
            # asyncua logs and still acknowledges this message: make the loss visible.
            self.state["last_error"] = f"collect: {type(e).__name__}: {e}"
            self._event("collect_error", reason=self.state["last_error"])
            raise
        if self.durable is not None:
            await self.durable()  # ack-after-durable seam: the ack goes with the next Publish

    def _collect(self, sub: TidegateSubscription, result: ua.PublishResult) -> None:
        flags = _REPLAYED if sub._replaying else 0
        add = self.collector.add
        handles = self._handles
        n = overflows = unknown = 0
        for notif in result.NotificationMessage.NotificationData:
            if isinstance(notif, ua.DataChangeNotification):
                for item in notif.MonitoredItems:
                    h = item.ClientHandle
                    if h not in handles:
                        unknown += 1
                        continue
                    dv = item.Value
                    var = dv.Value
                    sc = dv.StatusCode
                    status = 0 if sc is None else sc.value
                    if status & _OVERFLOW_BITS == _OVERFLOW_BITS:
                        overflows += 1
                    add(h, None if var is None else var.Value, status,
                        to_ns(dv.SourceTimestamp), to_ns(dv.ServerTimestamp), flags)
                    n += 1
            elif isinstance(notif, ua.StatusChangeNotification):
                code = notif.Status
                self._event("subscription_status", status=int(code.value) if code is not None else 0,
                            name=code.name if code is not None else "")
        st = self.state
        st["notifications"] += n
        if flags:
            st["replayed"] += n
        if overflows:
            st["overflows"] += overflows
        if unknown:
            st["unknown_handles"] += unknown
