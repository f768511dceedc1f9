"""Screens of the tidegate TUI, one per task."""

from tui.screens.base import DataScreen
from tui.screens.browse import BrowseScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.events import EventsScreen
from tui.screens.help import HelpScreen
from tui.screens.overview import OverviewScreen
from tui.screens.resend import ResendScreen
from tui.screens.sources import SourcesScreen
from tui.screens.spool import SpoolScreen
from tui.screens.tags import TagsScreen

__all__ = ["BrowseScreen", "ConfirmScreen", "DataScreen", "EventsScreen", "HelpScreen",
           "OverviewScreen", "ResendScreen", "SourcesScreen", "SpoolScreen", "TagsScreen"]
