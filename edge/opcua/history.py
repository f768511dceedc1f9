"""HistoryRead (raw) of a time span, batched, following continuation points:
what fills the span a re-created subscription could not deliver, on nodes
the server historizes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from asyncua import ua

from edge.opcua.uahelp import Client

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
VALUES_PER_CALL = 1000


def ns_to_datetime(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


async def read_raw(client: Client, nodes: Sequence[ua.NodeId], t_first_ns: int, t_last_ns: int,
                   per_call: int) -> list[list[ua.DataValue] | str]:
    """For each node: its DataValues with t_first <= SourceTimestamp <= t_last
    in time order, or the reason it could not be read."""
    out: list[list[ua.DataValue] | str] = [[] for _ in nodes]
    for start in range(0, len(nodes), max(1, per_call)):
        idx = list(range(start, min(start + max(1, per_call), len(nodes))))
        cps: dict[int, bytes | None] = {i: None for i in idx}
        while cps:
            details = ua.ReadRawModifiedDetails()
            details.IsReadModified = False
            details.StartTime = ns_to_datetime(t_first_ns)
            details.EndTime = ns_to_datetime(t_last_ns)
            details.NumValuesPerNode = VALUES_PER_CALL
            details.ReturnBounds = False
            params = ua.HistoryReadParameters()
            params.HistoryReadDetails = details
            params.TimestampsToReturn = ua.TimestampsToReturn.Both
            params.ReleaseContinuationPoints = False
            order = list(cps)
            for i in order:
                rv = ua.HistoryReadValueId()
                rv.NodeId = nodes[i]
                rv.ContinuationPoint = cps[i]
                params.NodesToRead.append(rv)
            results: list[Any] = await client.uaclient.history_read(params)
            nxt: dict[int, bytes | None] = {}
            for i, res in zip(order, results):
                if not res.StatusCode.is_good():
                    out[i] = f"HistoryRead: {res.StatusCode.name}"
                    continue
                data = res.HistoryData
                values = list(getattr(data, "DataValues", None) or [])
                acc = out[i]
                if isinstance(acc, list):
                    acc.extend(values)
                if res.ContinuationPoint:
                    nxt[i] = res.ContinuationPoint
            cps = nxt
    return out

