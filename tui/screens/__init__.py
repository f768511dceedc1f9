"""Screens of the tidegate TUI, one per task."""

from tui.screens.base import DataScreen
from tui.screens.help import HelpScreen
from tui.screens.tags import TagsScreen

__all__ = ["DataScreen", "HelpScreen", "TagsScreen"]
