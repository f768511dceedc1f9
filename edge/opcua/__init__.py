"""OPC UA client side: SourceSession (subscribe -> Collector), browse, security."""

from edge.opcua.address import Limits, VariableInfo, queue_size_for
from edge.opcua.browse import BrowseEntry, browse, browse_client
from edge.opcua.security import SecurityError
from edge.opcua.session import ReadOnlyViolation, SourceSession, guard_read_only
from edge.opcua.subscription import TidegateSubscription

__all__ = ["BrowseEntry", "Limits", "ReadOnlyViolation", "SecurityError", "SourceSession", "TidegateSubscription",
           "VariableInfo", "browse", "browse_client", "guard_read_only", "queue_size_for"]
