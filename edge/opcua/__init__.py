"""OPC UA client side: SourceSession (subscribe -> Collector) and browse."""

from edge.opcua.address import Limits, VariableInfo, queue_size_for
from edge.opcua.browse import BrowseEntry, browse, browse_client
from edge.opcua.session import ReadOnlyViolation, SourceSession, TidegateSubscription, guard_read_only

__all__ = ["BrowseEntry", "Limits", "ReadOnlyViolation", "SourceSession", "TidegateSubscription",
           "VariableInfo", "browse", "browse_client", "guard_read_only", "queue_size_for"]
