"""Typed doorways into asyncua for mypy --strict.

asyncua annotates its wire types as int/str subclasses (ua.Int32, ua.UInt32,
ua.DateTime, ...) and re-exports names implicitly; these helpers take plain
Python values so the rest of the code needs no casts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from asyncua import ua
from asyncua.client.client import Client as Client
from asyncua.ua.attribute_ids import AttributeIds as AttributeIds
from asyncua.ua.object_ids import ObjectIds as ObjectIds
from asyncua.ua.status_codes import StatusCodes as StatusCodes
from asyncua.ua.uaerrors import UaError as UaError
from asyncua.ua.uaerrors import UaStatusCodeError as UaStatusCodeError

__all__ = ["AttributeIds", "Client", "ObjectIds", "StatusCodes", "UaError", "UaStatusCodeError", "data_value",
           "node_id", "status_code"]


def node_id(identifier: int | str, ns: int = 0, kind: ua.NodeIdType | None = None) -> ua.NodeId:
    if kind is None:
        return ua.NodeId(cast(Any, identifier), cast(Any, ns))
    return ua.NodeId(cast(Any, identifier), cast(Any, ns), kind)


def status_code(code: int) -> ua.StatusCode:
    return ua.StatusCode(cast(Any, code))


def data_value(variant: ua.Variant, status: int = 0, source: datetime | None = None,
               server: datetime | None = None) -> ua.DataValue:
    return ua.DataValue(variant, StatusCode=status_code(status), SourceTimestamp=cast(Any, source),
                        ServerTimestamp=cast(Any, server))
