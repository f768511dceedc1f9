"""What makes the simulator behave like a spec-conformant server where
asyncua's server is lenient, and what lets tests watch it.

asyncua's server accepts any DataChangeFilter and ignores Percent deadbands.
A real server (Part 4, 7.22.2 and 7.17.2) refuses a deadband on a
non-numeric variable (BadFilterNotAllowed) and a Percent deadband on a
variable without EURange (BadDeadbandFilterInvalid), and applies Percent as
a share of the EURange span. :class:`ServerBehaviour` adds that, can refuse
every filter on chosen nodes (BadMonitoredItemFilterUnsupported, as small
PLCs do), and records every service request the server receives, failing
the ones that would change the plant when ``forbid_writes`` is set (the
read-only proof).

asyncua gives no per-server hook for these, so :func:`install` patches its
classes once and looks the behaviour up by the server's address space.
"""

from __future__ import annotations

import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from asyncua import ua
from asyncua.server import monitored_item_service as mis
from asyncua.server import uaprocessor

from edge.opcua.uahelp import StatusCodes, status_code

if TYPE_CHECKING:
    from asyncua.server.server import Server

    from edge.sim.plant import SimTag

_NUMERIC = frozenset({"SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64", "Float", "Double"})
# Requests that change a server: a read-only client never sends them.
WRITE_REQUESTS: dict[int, str] = {
    ua.ObjectIds.WriteRequest_Encoding_DefaultBinary: "Write",
    ua.ObjectIds.CallRequest_Encoding_DefaultBinary: "Call",
    ua.ObjectIds.AddNodesRequest_Encoding_DefaultBinary: "AddNodes",
    ua.ObjectIds.DeleteNodesRequest_Encoding_DefaultBinary: "DeleteNodes",
    ua.ObjectIds.AddReferencesRequest_Encoding_DefaultBinary: "AddReferences",
    ua.ObjectIds.DeleteReferencesRequest_Encoding_DefaultBinary: "DeleteReferences",
    ua.ObjectIds.HistoryUpdateRequest_Encoding_DefaultBinary: "HistoryUpdate",
}


@dataclass
class ServerBehaviour:
    refuse_filters: set[str] = field(default_factory=set)  # node ids refusing any filter
    forbid_writes: bool = False
    requests: Counter[str] = field(default_factory=Counter)  # service name -> count
    violations: list[str] = field(default_factory=list)  # write-type requests received
    tags: dict[str, SimTag] = field(default_factory=dict)


_BY_SPACE: weakref.WeakKeyDictionary[Any, ServerBehaviour] = weakref.WeakKeyDictionary()
_BY_ISERVER: weakref.WeakKeyDictionary[Any, ServerBehaviour] = weakref.WeakKeyDictionary()
_installed = False


_NAMES: dict[int, str] = {}


def _name(typeid: ua.NodeId) -> str:
    if not _NAMES:
        for oid_name in dir(ua.ObjectIds):
            if oid_name.endswith("Request_Encoding_DefaultBinary"):
                _NAMES[getattr(ua.ObjectIds, oid_name)] = oid_name.removesuffix("Request_Encoding_DefaultBinary")
    ident: Any = typeid.Identifier
    return _NAMES.get(ident, f"i={ident!s}")


def _is_deadband(flt: Any) -> bool:
    # duck-typed: the decoded filter's class is not always ua.DataChangeFilter
    return flt is not None and getattr(flt, "DeadbandType", 0) != ua.DeadbandType.None_


def install(server: Server, behaviour: ServerBehaviour, tags: dict[str, SimTag]) -> None:
    behaviour.tags = tags
    _BY_SPACE[server.iserver.aspace] = behaviour
    _BY_ISERVER[server.iserver] = behaviour
    global _installed
    if _installed:
        return
    _installed = True
    _patch_filters()
    _patch_processor()


def _patch_filters() -> None:
    create = mis.MonitoredItemService._create_data_change_monitored_item
    exceeded = mis.MonitoredItemService._is_deadband_exceeded
    callback = mis.MonitoredItemService.datachange_callback

    async def create_item(self: Any, params: ua.MonitoredItemCreateRequest) -> ua.MonitoredItemCreateResult:
        b = _BY_SPACE.get(self.aspace)
        flt = params.RequestedParameters.Filter
        if b is not None and flt is not None and hasattr(flt, "DeadbandType"):
            nid = params.ItemToMonitor.NodeId.to_string()
            tag = b.tags.get(nid)
            code = None
            if nid in b.refuse_filters:
                code = StatusCodes.BadMonitoredItemFilterUnsupported
            elif flt.DeadbandType != ua.DeadbandType.None_ and tag is not None and tag.data_type not in _NUMERIC:
                code = StatusCodes.BadFilterNotAllowed
            elif flt.DeadbandType == ua.DeadbandType.Percent and (tag is None or not tag.analog):
                code = StatusCodes.BadDeadbandFilterInvalid
            if code is not None:
                res = ua.MonitoredItemCreateResult()
                res.StatusCode = status_code(code)
                return res
        return await create(self, params)

    def is_exceeded(self: Any, values: Any, flt: ua.DataChangeFilter) -> bool:
        if _BY_SPACE.get(self.aspace) is None:
            return bool(exceeded(self, values, flt))
        return True  # decided in on_change, against the last *reported* value

    async def on_change(self: Any, handle: int, value: ua.DataValue, error: ua.StatusCode | None = None) -> None:
        # Part 4, 7.22.2: a deadband compares with the last value *reported*
        # (asyncua compares with the last one seen), and Percent is a share
        # of the EURange span (asyncua ignores it).
        b = _BY_SPACE.get(self.aspace)
        mid = self._monitored_datachange.get(handle) if error is None else None
        mdata = self._monitored_items.get(mid) if mid is not None else None
        flt = getattr(mdata, "filter", None)
        if b is not None and mdata is not None and _is_deadband(flt):
            status = value.StatusCode.value if value.StatusCode is not None else 0
            v = value.Value.Value if value.Value is not None else None
            last = getattr(mdata, "_tidegate_reported", None)
            if last is not None and isinstance(v, int | float) and not isinstance(v, bool) \
                    and last[1] == status and isinstance(last[0], int | float):
                assert flt is not None  # _is_deadband checked it
                limit = flt.DeadbandValue
                if flt.DeadbandType == ua.DeadbandType.Percent:
                    tag = b.tags.get(mdata.read_value_id.NodeId.to_string())
                    assert tag is not None and tag.range_low is not None and tag.range_high is not None
                    limit = flt.DeadbandValue / 100.0 * (tag.range_high - tag.range_low)
                if abs(v - last[0]) <= limit:
                    mdata.mvalue.set_current_datavalue(value)
                    return
            mdata._tidegate_reported = (v, status)
        await callback(self, handle, value, error)

    mis.MonitoredItemService._create_data_change_monitored_item = create_item  # type: ignore[method-assign]
    mis.MonitoredItemService._is_deadband_exceeded = is_exceeded  # type: ignore[method-assign]
    mis.MonitoredItemService.datachange_callback = on_change  # type: ignore[method-assign]


def _patch_processor() -> None:
    process = uaprocessor.UaProcessor._process_message

    async def process_message(self: Any, typeid: ua.NodeId, requesthdr: Any, seqhdr: Any, body: Any) -> Any:
        b = _BY_ISERVER.get(self.iserver)
        if b is not None:
            name = WRITE_REQUESTS.get(cast(int, typeid.Identifier)) if typeid.NamespaceIndex == 0 else None
            b.requests[name or _name(typeid)] += 1
            if name is not None and b.forbid_writes:
                b.violations.append(name)
                raise ua.uaerrors.BadUserAccessDenied
        return await process(self, typeid, requesthdr, seqhdr, body)  # type: ignore[no-untyped-call]

    uaprocessor.UaProcessor._process_message = process_message  # type: ignore[method-assign]
