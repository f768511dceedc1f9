"""TidegateSubscription: asyncua's Subscription, taken a whole
PublishResponse at a time, with what an edge collector needs on top.

- ``publish_callback`` hands the whole NotificationMessage to a sink and
  returns only when the sink returns (the sink waits until the samples are
  durable); asyncua acknowledges a message with the *next* Publish request,
  i.e. after that: ack after durable.
- A NotificationMessage whose sequence number we already processed (a
  resend around a reconnect) is dropped: no duplicate at the IT side.
- ``recreate`` (the server lost the subscription: restart, expired session)
  re-creates the monitored items batched within MaxMonitoredItemsPerCall
  (asyncua sends them all in one call) and reports what happened, so the
  session can name the span that could not be recovered and fill it from
  history.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from asyncua import ua
from asyncua.client.ua_session import UaSession
from asyncua.common.subscription import Subscription, SubscriptionEvent, SubscriptionItemData

from edge.collect import to_ns
from edge.opcua.address import chunks

PublishSink = Callable[["TidegateSubscription", ua.PublishResult], Awaitable[None]]
# (subscription, server time of the last message before the loss, handles re-created, handle -> failure)
RecreateSink = Callable[["TidegateSubscription", int, list[int], dict[int, str]], Awaitable[None]]
# (handles about to be re-created): called before any of them can deliver a value
RecreatingSink = Callable[[list[int]], None]


class TidegateSubscription(Subscription):
    def __init__(self, session: UaSession, params: ua.CreateSubscriptionParameters, on_publish: PublishSink,
                 on_recreated: RecreateSink | None = None, items_per_call: int = 1000,
                 on_recreating: RecreatingSink | None = None) -> None:
        super().__init__(session, params, handler=None, queue_maxsize=1)
        self._on_publish = on_publish
        self._on_recreated = on_recreated
        self._on_recreating = on_recreating
        self.items_per_call = items_per_call
        self.last_publish_ns = 0  # server PublishTime of the last message, data or keep-alive
        self.duplicates = 0

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        self.last_publish_at = time.monotonic()
        msg = publish_result.NotificationMessage
        if msg.PublishTime is not None:
            self.last_publish_ns = max(self.last_publish_ns, to_ns(msg.PublishTime))
        if not msg.NotificationData:
            return
        seq = int(msg.SequenceNumber)
        last = self.last_sequence_number
        if seq and last is not None and seq <= last:
            self.duplicates += 1  # already processed (and durable): the server sent it again
            return
        await self._on_publish(self, publish_result)
        # Only real NotificationMessages move the sequence number: a keep-alive
        # carries the number of the *next* message, and taking it would make a
        # Republish after reconnect skip that message.
        if seq:
            self.last_sequence_number = seq

    async def recreate(self) -> None:
        """asyncua's recreate, batched, keeping client handles, then reported."""
        if self._deleted:
            return
        self._recreate_count += 1
        t_lost = self.last_publish_ns or time.time_ns()
        saved: list[SubscriptionItemData] = [
            item for item in self._monitored_items.values() if item.server_handle is not None]
        if self._on_recreating is not None:
            self._on_recreating([h for h in (i.client_handle for i in saved) if h is not None])
        old_id = self.subscription_id
        self._monitored_items.clear()
        self.subscription_id = None
        self.last_sequence_number = None  # a new subscription numbers its messages from 1
        self.last_publish_at = time.monotonic()
        if old_id is not None and isinstance(self.server, UaSession):
            self.server._subscription_callbacks.pop(old_id, None)
            try:
                await self.server.delete_subscriptions([old_id])
            except Exception:
                self.logger.debug("best-effort delete of old subscription %s failed", old_id, exc_info=True)
        await self._create(SubscriptionEvent.RECREATED)
        failed: dict[int, str] = {}
        made: list[int] = []
        for batch in chunks(saved, self.items_per_call):
            reqs: list[ua.MonitoredItemCreateRequest] = []
            for item in batch:
                assert item.node is not None and item.attribute is not None and item.client_handle is not None
                rv = ua.ReadValueId()
                rv.NodeId = item.node.nodeid
                rv.AttributeId = item.attribute
                mp = ua.MonitoringParameters()
                mp.ClientHandle = item.client_handle
                mp.SamplingInterval = item.sampling_interval
                mp.QueueSize = item.queuesize
                mp.DiscardOldest = True
                if item.mfilter is not None:
                    mp.Filter = item.mfilter
                req = ua.MonitoredItemCreateRequest()
                req.ItemToMonitor = rv
                req.MonitoringMode = item.monitoring_mode
                req.RequestedParameters = mp
                reqs.append(req)
            results = await self.create_monitored_items(reqs)
            for item, res in zip(batch, results):
                assert item.client_handle is not None
                if isinstance(res, ua.StatusCode):
                    failed[item.client_handle] = res.name
                else:
                    made.append(item.client_handle)
        if self._on_recreated is not None:
            await self._on_recreated(self, t_lost, made, failed)

    def handles(self) -> list[int]:
        """Client handles of the monitored items the server has."""
        return [h for h, d in self._monitored_items.items() if d.server_handle is not None]

    def server_handle(self, client_handle: int) -> int | None:
        d = self._monitored_items.get(client_handle)
        return None if d is None else d.server_handle
