"""tidegate's technician terminal UI (Textual); talks to the agent only through
its status socket.

Entry point: :func:`run_tui` (``tidegate tui [--socket PATH]``). This module
does not import Textual, so the low-bandwidth settings can be applied first.

Low-bandwidth mode (``low_bandwidth=True``, for slow SSH links): 16-colour
output (``TEXTUAL_COLOR_SYSTEM=standard``), no animations
(``TEXTUAL_ANIMATIONS=none``), no smooth scrolling
(``TEXTUAL_SMOOTH_SCROLL=0``), and a refresh of at least
:data:`LOW_BANDWIDTH_REFRESH` seconds. Textual reads these variables when it
is first imported, so they are set before that; setting them in the shell
(``TEXTUAL_COLOR_SYSTEM=standard tidegate tui``) works too. What changes on
screen drives bandwidth: a full 80x24 table of changing values costs a few
KB/s.
"""

from __future__ import annotations

import os
import sys

LOW_BANDWIDTH_REFRESH = 5.0
LOW_BANDWIDTH_ENV = {
    "TEXTUAL_COLOR_SYSTEM": "standard",
    "TEXTUAL_ANIMATIONS": "none",
    "TEXTUAL_SMOOTH_SCROLL": "0",
}

__all__ = ["LOW_BANDWIDTH_ENV", "LOW_BANDWIDTH_REFRESH", "apply_low_bandwidth", "run_tui"]


def apply_low_bandwidth() -> None:
    """Set the low-bandwidth Textual environment (before Textual is imported;
    if it already is, its constants are patched to match)."""
    os.environ.update(LOW_BANDWIDTH_ENV)
    constants = sys.modules.get("textual.constants")
    if constants is not None:
        for name, value in (
            ("COLOR_SYSTEM", "standard"),
            ("TEXTUAL_ANIMATIONS", "none"),
            ("SMOOTH_SCROLL", False),
        ):
            setattr(constants, name, value)


def run_tui(socket_path: str, refresh: float = 1.0, low_bandwidth: bool = False, *,
            operator: bool = False, start: str = "overview") -> None:
    """Run the TUI in the current terminal until the user quits. ``operator``
    asks the agent for operator rights (read-only otherwise)."""
    if low_bandwidth:
        apply_low_bandwidth()
        refresh = max(refresh, LOW_BANDWIDTH_REFRESH)
    from tui.app import TidegateApp

    TidegateApp(socket_path, refresh=refresh, read_only=not operator, start=start).run()
