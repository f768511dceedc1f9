"""SourceSession: one OPC UA server -> the Collector.

run() connects (secure channel and user identity per the source), resolves
the configured tags (and tag groups, by browsing), registers them in the
collector's catalog, creates ONE subscription and its monitored items
(batched per MaxMonitoredItemsPerCall; DataChangeFilter per tag, tried and
dropped per tag when the server refuses it), polls what cannot be
subscribed, and stays up until cancelled.

Connection loss: asyncua's supervisor (auto_reconnect) notices it within
about four seconds (it probes the server every two), reconnects with
backoff, re-activates the session and transfers the subscription, asking
the server to Republish what was missed (marked REPLAYED); when the server
lost the subscription it is re-created (TidegateSubscription.recreate) and
the span in between is either read back with HistoryRead (nodes the server
historizes; marked BACKFILLED) or named in a GAP record. The first value of
each re-created item repeats the last one if nothing changed: it is dropped,
so IT never sees a sample twice. A notification whose status has the
Overflow bit set means the server's queue dropped samples: also a GAP.

Notifications are handled a whole PublishResponse at a time; each DataValue
goes to the collector as it came (value, all 32 status bits, both
timestamps). The ``durable`` coroutine is awaited before publish_callback
returns, and asyncua acknowledges with the next Publish: ack after durable.

A node that cannot be collected never stops the others: it is reported
(event ``node_failed``, ``state["failing"]``) and tried again every
``retry_interval_ms``; a node that disappears (BadNodeIdUnknown) likewise.

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
from dataclasses import KW_ONLY, dataclass
from typing import Any

from asyncua import ua
from asyncua.client.ua_client import UaClientState

from edge.collect import Collector, to_ns
from edge.config import SourceConfig, TagConfig, TagGroupConfig
from edge.frames import Gap
from edge.model import FLOAT_TYPES, SIGNED_TYPES, UNSIGNED_TYPES, SampleFlags
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
from edge.opcua.history import read_raw
from edge.opcua.security import apply_security, explain_connect_error
from edge.opcua.subscription import TidegateSubscription
from edge.opcua.uahelp import AttributeIds, Client, StatusCodes, UaError, UaStatusCodeError, status_code

_log = logging.getLogger(__name__)

EventSink = Callable[[str, dict[str, Any]], None]
GapSink = Callable[[Gap], None]
Durable = Callable[[], Awaitable[None]]
# (server time of the last message received, client handles) of a subscription
# that went away with its session
Handover = tuple[int, list[int]]

# StatusCode InfoType=DataValue (0x0400) with the Overflow bit (0x0080).
_OVERFLOW_BITS = 0x0480
_REPLAYED = int(SampleFlags.REPLAYED)
_BACKFILLED = int(SampleFlags.BACKFILLED)
_POLLED = int(SampleFlags.POLLED)
_NUMERIC = (FLOAT_TYPES | SIGNED_TYPES | UNSIGNED_TYPES) - {"DateTime"}
_GONE = frozenset({0x8034, 0x8033})  # BadNodeIdUnknown, BadNodeIdInvalid (upper 16 bits)
# The server will not take this filter: subscribe the item without one.
_FILTER_REFUSED = frozenset({StatusCodes.BadMonitoredItemFilterUnsupported, StatusCodes.BadFilterNotAllowed,
                             StatusCodes.BadDeadbandFilterInvalid, StatusCodes.BadMonitoredItemFilterInvalid})
# The server cannot monitor this item at all: poll it.
_POLL_INSTEAD = frozenset({StatusCodes.BadNotSupported, StatusCodes.BadServiceUnsupported,
                           StatusCodes.BadTooManyMonitoredItems, StatusCodes.BadMonitoredItemIdInvalid,
                           StatusCodes.BadNotImplemented})
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


@dataclass(slots=True)
class _Want:
    """One tag the session wants: from [[tags]] or found under a tag group."""

    node_id: str
    name: str | None
    unit: str | None
    description: str | None
    sampling_ms: int | None
    queue_size: int | None
    default_name: str | None = None
    _: KW_ONLY
    deadband_abs: float | None = None
    deadband_pct: float | None = None
    mode: str = "subscribe"
    range_low: float | None = None
    range_high: float | None = None


class _Item:
    """A registered tag: catalog index, node, what we asked for, what the server said."""

    __slots__ = ("index", "nid", "want", "info")

    def __init__(self, index: int, nid: ua.NodeId, want: _Want, info: VariableInfo) -> None:
        self.index = index
        self.nid = nid
        self.want = want
        self.info = info


class SourceSession:
    """Collects one source's tags into `collector` until cancelled."""

    def __init__(self, source: SourceConfig, tags: list[TagConfig], collector: Collector,
                 on_event: EventSink | None = None, *, tag_groups: list[TagGroupConfig] | None = None,
                 durable: Durable | None = None, request_timeout: float = 10.0,
                 reconnect_max_delay: float = 30.0, on_gap: GapSink | None = None,
                 resume: Handover | None = None) -> None:
        self.source = source
        self.tags = list(tags)
        self.tag_groups = list(tag_groups or [])
        self.collector = collector
        self.on_event = on_event
        self.on_gap = on_gap
        self.durable = durable
        self.request_timeout = request_timeout
        self.reconnect_max_delay = reconnect_max_delay
        self.client: Client | None = None
        self.subscription: TidegateSubscription | None = None
        self.limits = Limits()
        self._handles: set[int] = set()
        self._items: dict[int, _Item] = {}  # subscribed, by catalog index (= client handle)
        self._polled: dict[int, _Item] = {}
        self._gone: dict[int, int] = {}  # index -> when the node disappeared (ns)
        self._retry: list[_Want] = []  # wants that could not be set up; tried again
        self._dedupe: set[int] = set()  # first value after a re-create: drop if it repeats the last
        self._first_after: dict[int, int] = {}
        self._before: dict[int, int] = {}
        # (when, handles) of a subscription torn down: the next setup fills or names
        # the span; `resume` hands over the one a reloaded session left behind
        self._lost: Handover | None = resume
        self._failing: dict[str, str] = {}
        self._connected_once = False
        self._last_connect_error = ""
        self._background: set[asyncio.Task[None]] = set()
        self.subscribe_calls = 0
        self.state: dict[str, Any] = {
            "name": source.name,
            "endpoint": source.endpoint,
            "security": f"{source.security_policy}/{source.security_mode}",
            "connected": False,
            "tags": len(self.tags),
            "subscribed": 0,
            "polled": 0,
            "reconnects": 0,
            "recreated": 0,
            "failing": [],
            "publishing_interval_ms": float(source.publishing_interval_ms),
            "notifications": 0,
            "replayed": 0,
            "backfilled": 0,
            "duplicates_dropped": 0,
            "overflows": 0,
            "gaps": 0,
            "filters_refused": 0,
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

    def _gap(self, reason: str, tags: list[int], t_first_ns: int, t_last_ns: int) -> None:
        if not tags:
            return
        self.state["gaps"] += 1
        gap = Gap(reason, sorted(tags), int(t_first_ns), int(max(t_first_ns, t_last_ns)), None, None)
        _log.info("%s: gap %s", self.source.name, gap)
        if self.on_gap is not None:
            try:
                self.on_gap(gap)
            except Exception:
                _log.exception("on_gap raised")

    def _fail_node(self, node_id: str, reason: str) -> None:
        if self._failing.get(node_id) != reason:
            self._failing[node_id] = reason
            self._event("node_failed", node_id=node_id, reason=reason)
        self._publish_failing()

    def _node_ok(self, node_id: str) -> None:
        if self._failing.pop(node_id, None) is not None:
            self._event("node_recovered", node_id=node_id)
            self._publish_failing()

    def _publish_failing(self) -> None:
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

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(f"{self.source.name}:{name}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- main loop ----------------------------------------------------------------
    def _new_client(self) -> Client:
        # asyncua probes the server every 2 s (2 s timeout): a dead connection is
        # noticed within about 4 s, a merely busy server is not taken for dead
        client = Client(self.source.endpoint, timeout=self.request_timeout, watchdog_intervall=2.0)
        client.name = client.description = f"tidegate {self.source.name}"
        client.application_uri = "urn:tidegate:agent"
        client.product_uri = "urn:tidegate"
        client.session_timeout = self.source.session_timeout_ms
        guard_read_only(client)
        return client

    def handover(self) -> Handover | None:
        """After the session was cancelled: the span its successor must fill
        (from history) or name in a GAP, so a reload leaves no silent hole."""
        return self._lost

    async def run(self) -> None:
        delay = 1.0
        while True:
            client = self._new_client()
            self.client = client
            ok = False
            try:
                await apply_security(client, self.source)
                await client.connect(auto_reconnect=True, reconnect_max_delay=self.reconnect_max_delay)
                await self._setup(client)
                ok = True
                delay = 1.0
                self._set_connected(True)
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._watch(client))
                    tg.create_task(self._retry_loop(client))
                    tg.create_task(self._poll_loop(client))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # connect or setup failed: start over with a new client
                if isinstance(e, ExceptionGroup):
                    e = e.exceptions[0]
                reason = explain_connect_error(self.source, e) or \
                    (f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
                self.state["last_error"] = reason
                if ok or self.state["connected"]:
                    self._set_connected(False, reason)
                elif reason != self._last_connect_error:  # report each new reason once, not every retry
                    self._last_connect_error = reason
                    self._event("source_connect_failed", endpoint=self.source.endpoint, reason=reason)
            finally:
                for t in list(self._background):
                    t.cancel()
                sub = self.subscription
                if ok and sub is not None:
                    # the whole client goes: the next setup names (or fills) the span
                    self._lost = (sub.last_publish_ns or time.time_ns(), sub.handles())
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
                        self.state["subscribed"] = len(s.handles())
                elif st in (UaClientState.DISCONNECTED, UaClientState.RECONNECTING):
                    self._set_connected(False, "connection lost")

    # -- setup ----------------------------------------------------------------------
    async def _setup(self, client: Client) -> None:
        self.limits = await read_limits(client)
        self.state["limits"] = self.limits.to_dict()
        wants = await self._wants(client)
        self.state["tags"] = len(wants)
        await self._create_subscription(client)
        lost = self._lost
        if lost is not None:
            self._on_recreating(lost[1])
        await self._add(client, wants, rename=True)
        if lost is not None and self.subscription is not None:
            self._lost = None
            again = [h for h in lost[1] if h in self._handles]
            await self._on_recreated(self.subscription, lost[0], again, {})

    async def _add(self, client: Client, wants: list[_Want], rename: bool) -> None:
        """Resolve, describe, register and subscribe (or poll) `wants`; the
        ones that fail are reported and kept for the retry loop."""
        namespaces = await namespace_array(client)
        parsed: list[tuple[_Want, ua.NodeId]] = []
        for w in wants:
            try:
                parsed.append((w, parse_node_id(w.node_id, namespaces)))
            except ValueError as e:
                self._fail_node(w.node_id, str(e))
                self._retry.append(w)
        infos = await describe(client, [n for _, n in parsed], self.limits)
        ok: list[tuple[_Want, ua.NodeId, VariableInfo]] = []
        for (w, nid), info in zip(parsed, infos):
            if info.error:
                self._fail_node(w.node_id, info.error)
                self._retry.append(w)
            else:
                ok.append((w, nid, info))
        # register (default names that would clash get a unique fallback, all of them)
        defaults: dict[str, int] = {}
        for w, _, info in ok:
            if w.name is None:
                d = self._default_name(w, info)
                defaults[d] = defaults.get(d, 0) + 1
        renamed: list[str] = []
        items: list[_Item] = []
        for w, nid, info in ok:
            name = w.name
            if name is None:
                name = self._default_name(w, info)
                taken = self.collector.index_of_name(name)
                mine = self.collector.index_of(self.source.name, w.node_id)
                if (rename and defaults[name] > 1) or (taken is not None and taken != mine):
                    renamed.append(name)
                    name = self._fallback_name(w.node_id)
            index = self._register(w, info, name)
            if index is not None:
                items.append(_Item(index, nid, w, info))
        if renamed:
            self._event("tags_renamed", count=len(renamed),
                        reason="browse names not unique; named after the node id instead",
                        examples=", ".join(sorted(set(renamed))[:5]))
        polled = [it for it in items if it.want.mode == "poll" or self.subscription is None]
        await self._subscribe([it for it in items if it not in polled])
        for it in polled:
            self._poll(it)
        self._publish_failing()

    async def _wants(self, client: Client) -> list[_Want]:
        wants: list[_Want] = []
        seen: set[str] = set()
        for t in self.tags:
            if t.node_id in seen:
                continue
            seen.add(t.node_id)
            wants.append(_Want(t.node_id, t.name, t.unit, t.description, t.sampling_interval_ms, t.queue_size,
                               deadband_abs=t.deadband_absolute, deadband_pct=t.deadband_percent, mode=t.mode,
                               range_low=t.range_low, range_high=t.range_high))
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
                                   default_name=".".join(f.path), deadband_abs=g.deadband_absolute,
                                   deadband_pct=g.deadband_percent, mode=g.mode))
        return wants

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
                range_low=w.range_low if w.range_low is not None else info.range_low,
                range_high=w.range_high if w.range_high is not None else info.range_high)
        except ValueError as e:
            self._fail_node(w.node_id, str(e))
            return None

    async def _create_subscription(self, client: Client) -> None:
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
        sub = TidegateSubscription(client.uaclient.session, params, self._on_publish, self._on_recreated,
                                   items_per_call=self.limits.monitored_items_per_call,
                                   on_recreating=self._on_recreating)
        try:
            result = await sub.init()
        except UaStatusCodeError as e:
            # A server without subscriptions (or out of them): every tag is polled.
            self._event("subscription_refused", reason=type(e).__name__, fallback="polling")
            self.subscription = None
            return
        self.state["publishing_interval_ms"] = float(result.RevisedPublishingInterval)
        # The auto-reconnect supervisor restores the subscriptions it knows of.
        client._subscriptions.append(sub)
        self.subscription = sub

    def _filter(self, it: _Item) -> ua.DataChangeFilter | None:
        w, info = it.want, it.info
        if w.deadband_abs is None and w.deadband_pct is None:
            return None
        if info.data_type not in _NUMERIC:
            self._event("deadband_ignored", node_id=w.node_id, reason=f"not numeric ({info.data_type})")
            return None
        if w.deadband_pct is not None and (info.range_low is None or info.range_high is None):
            self._event("deadband_ignored", node_id=w.node_id,
                        reason="percent deadband needs the node's EURange, which the server does not give")
            return None
        f = ua.DataChangeFilter()
        f.Trigger = ua.DataChangeTrigger.StatusValue
        if w.deadband_pct is not None:
            f.DeadbandType = ua.DeadbandType.Percent
            f.DeadbandValue = float(w.deadband_pct)
        else:
            f.DeadbandType = ua.DeadbandType.Absolute
            f.DeadbandValue = float(w.deadband_abs or 0.0)
        return f

    def _request(self, it: _Item, with_filter: bool) -> ua.MonitoredItemCreateRequest:
        sub = self.subscription
        assert sub is not None
        revised = self.state["publishing_interval_ms"] or float(self.source.publishing_interval_ms)
        w = it.want
        sampling = float(w.sampling_ms) if w.sampling_ms is not None else revised
        rv = ua.ReadValueId()
        rv.NodeId = it.nid
        rv.AttributeId = AttributeIds.Value
        mp = ua.MonitoringParameters()
        mp.ClientHandle = it.index  # the catalog index: no lookup table on the hot path
        mp.SamplingInterval = sampling
        mp.QueueSize = w.queue_size if w.queue_size is not None else queue_size_for(revised, sampling)
        mp.DiscardOldest = True
        if with_filter:
            flt = self._filter(it)
            if flt is not None:
                mp.Filter = flt
        req = ua.MonitoredItemCreateRequest()
        req.ItemToMonitor = rv
        req.MonitoringMode = ua.MonitoringMode.Reporting
        req.RequestedParameters = mp
        return req

    async def _subscribe(self, items: list[_Item], with_filter: bool = True) -> None:
        sub = self.subscription
        if sub is None or not items:
            return
        refused: list[_Item] = []
        for batch in chunks(items, self.limits.monitored_items_per_call):
            reqs = [self._request(it, with_filter) for it in batch]
            for it in batch:
                self._handles.add(it.index)
                self._items[it.index] = it
            self.subscribe_calls += 1
            results = await sub.create_monitored_items(reqs)
            for it, req, res in zip(batch, reqs, results):
                if not isinstance(res, ua.StatusCode):
                    self._node_ok(it.want.node_id)
                    continue
                self._handles.discard(it.index)
                if it.index in self._gone:
                    continue  # still gone: reported when it went, tried again next round
                del self._items[it.index]
                code = res.value
                if req.RequestedParameters.Filter is not None and code in _FILTER_REFUSED:
                    refused.append(it)
                elif code in _POLL_INSTEAD:
                    self._event("polling", node_id=it.want.node_id, reason=f"cannot subscribe: {res.name}")
                    self._poll(it)
                else:
                    self._fail_node(it.want.node_id, f"subscribe failed: {res.name}")
                    self._retry.append(it.want)
        self.state["subscribed"] = len(sub.handles())
        if refused:
            self.state["filters_refused"] += len(refused)
            self._event("filter_refused", count=len(refused),
                        examples=", ".join(it.want.node_id for it in refused[:5]),
                        fallback="subscribed without a deadband")
            await self._subscribe(refused, with_filter=False)

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
            await self.durable()  # ack-after-durable: the ack goes with the next Publish

    def _collect(self, sub: TidegateSubscription, result: ua.PublishResult) -> None:
        flags = _REPLAYED if sub._replaying else 0
        col = self.collector
        add = col.add
        handles = self._handles
        dedupe = self._dedupe
        n = unknown = dropped = 0
        overflow: list[tuple[int, int, int]] = []
        gone: list[tuple[int, int, int]] = []
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
                    value = None if var is None else var.Value
                    src = to_ns(dv.SourceTimestamp)
                    if dedupe and h in dedupe:
                        dedupe.discard(h)
                        self._first_after[h] = src
                        if col.same_as_last(h, value, status, src):
                            dropped += 1
                            continue
                    if status & _OVERFLOW_BITS == _OVERFLOW_BITS:
                        overflow.append((h, col.last_source_ns(h), src))
                    if status >> 16 in _GONE:
                        gone.append((h, status, src))
                    add(h, value, status, src, to_ns(dv.ServerTimestamp), flags)
                    n += 1
            elif isinstance(notif, ua.StatusChangeNotification):
                code = notif.Status
                self._event("subscription_status", status=int(code.value) if code is not None else 0,
                            name=code.name if code is not None else "")
        st = self.state
        st["notifications"] += n
        if flags:
            st["replayed"] += n
        if dropped:
            st["duplicates_dropped"] += dropped
        if unknown:
            st["unknown_handles"] += unknown
        if overflow:
            st["overflows"] += len(overflow)
            self._gap("server_queue_overflow", sorted({h for h, _, _ in overflow}),
                      min(t for _, t, _ in overflow), max(t for _, _, t in overflow))
        for h, status, src in gone:
            if h not in self._gone:
                self._gone[h] = src if src > 0 else time.time_ns()
                self._fail_node(self._items[h].want.node_id,
                                f"node disappeared ({status_code(status).name})")

    # -- re-created subscription: gaps and history -------------------------------------
    def _on_recreating(self, handles: list[int]) -> None:
        """Before the re-created items can deliver: remember where each tag
        stood, and check each one's first value for a repeat."""
        col = self.collector
        self._before = {h: col.last_source_ns(h) for h in handles}
        self._first_after = {}
        self._dedupe = set(handles)

    async def _on_recreated(self, sub: TidegateSubscription, t_lost: int, made: list[int],
                            failed: dict[int, str]) -> None:
        t_now = time.time_ns()
        self.state["recreated"] += 1
        self.state["subscribed"] = len(made)
        before = self._before
        for h, reason in failed.items():
            it = self._items.get(h)
            if it is not None:
                self._handles.discard(h)
                self._gone.setdefault(h, t_lost)
                self._fail_node(it.want.node_id, f"subscribe failed after reconnect: {reason}")
        hist = [h for h in made if self._items[h].info.historizing]
        plain = [h for h in made if not self._items[h].info.historizing]
        self._event("subscription_recreated", items=len(made), failed=len(failed), backfill=len(hist))
        self._gap("subscription_lost", plain, t_lost, t_now)
        if hist:
            self._spawn(self._backfill(hist, before, t_lost, t_now), "backfill")

    async def _backfill(self, handles: list[int], before: dict[int, int], t_lost: int, t_now: int) -> None:
        """Read the lost span back from the server's history; a tag that
        cannot be read back is named in a GAP."""
        client = self.client
        lost: list[int] = []
        try:
            # Let the re-created items deliver their first values, which bound the span.
            await asyncio.sleep(2 * self.state["publishing_interval_ms"] / 1000 + 0.5)
            assert client is not None
            starts = [before[h] for h in handles if before[h] > 0]
            t_first = min(starts) if starts else t_lost
            results = await read_raw(client, [self._items[h].nid for h in handles], t_first, t_now,
                                     self.limits.nodes_per_history_read)
            col = self.collector
            n = 0
            for h, res in zip(handles, results):
                if isinstance(res, str):
                    lost.append(h)
                    self._event("backfill_failed", node_id=self._items[h].want.node_id, reason=res)
                    continue
                lo = before[h]
                hi = self._first_after.get(h, t_now + 1)
                for dv in res:
                    src = to_ns(dv.SourceTimestamp)
                    if lo < src < hi:
                        sc = dv.StatusCode
                        var = dv.Value
                        col.add(h, None if var is None else var.Value, 0 if sc is None else sc.value,
                                src, to_ns(dv.ServerTimestamp), _BACKFILLED)
                        n += 1
            self.state["backfilled"] += n
            self._event("backfilled", tags=len(handles) - len(lost), values=n)
            if n and self.durable is not None:
                await self.durable()
        except asyncio.CancelledError:
            self._gap("subscription_lost", handles, t_lost, t_now)
            raise
        except Exception as e:
            self._event("backfill_failed", reason=f"{type(e).__name__}: {e}")
            lost = handles
        self._gap("subscription_lost", lost, t_lost, t_now)

    # -- retries: failed and vanished nodes ------------------------------------------
    async def _retry_loop(self, client: Client) -> None:
        every = self.source.retry_interval_ms / 1000
        while True:
            await asyncio.sleep(every)
            if client.uaclient.state is not UaClientState.CONNECTED:
                continue
            try:
                await self._retry_once(client)
            except (ConnectionError, OSError, TimeoutError, UaError) as e:
                _log.info("%s: retry failed: %s", self.source.name, e)

    async def _retry_once(self, client: Client) -> None:
        sub = self.subscription
        if self._gone and sub is not None:
            items = [self._items[h] for h in list(self._gone) if h in self._items]
            old = [s for s in (sub.server_handle(it.index) for it in items) if s is not None]
            if old:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe(old)
            await self._subscribe(items)
        if self._retry:
            wants, self._retry = self._retry, []
            await self._add(client, wants, rename=False)
        now = time.time_ns()
        for h in [h for h in self._gone if h in self._handles or h in self._polled]:
            t_gone = self._gone.pop(h)
            self._dedupe.add(h)
            self._gap("node_unavailable", [h], t_gone, now)

    # -- polling ------------------------------------------------------------------------
    def _poll(self, it: _Item) -> None:
        self._polled[it.index] = it
        self.state["polled"] = len(self._polled)
        self._node_ok(it.want.node_id)

    async def _poll_loop(self, client: Client) -> None:
        """Read polled tags every sampling interval (batched per
        MaxNodesPerRead); a value goes on only if value, status or source
        time changed, as a subscription would report it."""
        due: dict[int, float] = {}
        while True:
            if not self._polled:
                await asyncio.sleep(0.5)
                continue
            now = time.monotonic()
            todo = [it for it in self._polled.values() if due.get(it.index, 0.0) <= now]
            if todo:
                try:
                    await self._poll_once(client, todo)
                except (ConnectionError, OSError, TimeoutError, UaError) as e:
                    # the supervisor is reconnecting; the next round reads again
                    _log.info("%s: poll failed: %s", self.source.name, e)
                for it in todo:
                    ms = it.want.sampling_ms or self.source.publishing_interval_ms
                    due[it.index] = now + max(ms, 10) / 1000
            wake = min(due.get(i, now) for i in self._polled)
            await asyncio.sleep(max(0.01, wake - time.monotonic()))

    async def _poll_once(self, client: Client, items: list[_Item]) -> None:
        col = self.collector
        n = 0
        for batch in chunks(items, self.limits.nodes_per_read):
            params = ua.ReadParameters()
            params.TimestampsToReturn = ua.TimestampsToReturn.Both
            for it in batch:
                rv = ua.ReadValueId()
                rv.NodeId = it.nid
                rv.AttributeId = AttributeIds.Value
                params.NodesToRead.append(rv)
            for it, dv in zip(batch, await client.uaclient.read(params)):
                sc = dv.StatusCode
                status = 0 if sc is None else sc.value
                value = None if dv.Value is None else dv.Value.Value
                src = to_ns(dv.SourceTimestamp)
                if col.same_as_last(it.index, value, status, src):
                    continue
                col.add(it.index, value, status, src, to_ns(dv.ServerTimestamp), _POLLED)
                n += 1
        self.state["notifications"] += n
        if n and self.durable is not None:
            await self.durable()
