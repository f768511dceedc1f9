"""Browse: walk a source's address space and add variables to the tag file.

The agent browses on a short read-only session of its own and caches the
result briefly (see :mod:`edge.control`); the TUI shows it as a tree built
lazily as folders open. Space marks variables (on a folder: every variable
below it), ``a`` adds the marked ones after a confirmation: the agent
validates the tag file with them, writes it atomically and reloads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Input, Label, Static, Tree
from textual.widgets.tree import TreeNode

from edge.status import AgentUnavailable, StatusError
from tui.messages import AgentLink
from tui.screens.base import DataScreen
from tui.screens.confirm import ConfirmScreen

MAX_LIST = 12  # names listed in the confirmation


@dataclass
class Folder:
    path: tuple[str, ...]
    folders: dict[str, Folder] = field(default_factory=dict)
    variables: list[dict[str, Any]] = field(default_factory=list)
    filled: bool = False

    def all_variables(self) -> Iterable[dict[str, Any]]:
        yield from self.variables
        for f in self.folders.values():
            yield from f.all_variables()


def build_folders(entries: list[dict[str, Any]], base: str) -> Folder:
    """The browse result as a folder tree (below `base`)."""
    prefix = [p for p in base.split("/") if p]
    root = Folder(tuple(prefix))
    for e in entries:
        parts = [p for p in str(e.get("browse_path", "")).split("/") if p]
        if parts[: len(prefix)] == prefix:
            parts = parts[len(prefix):]
        node = root
        for p in parts[:-1]:
            node = node.folders.setdefault(p, Folder(node.path + (p,)))
        node.variables.append(e)
    return root


def tag_name(entry: dict[str, Any]) -> str:
    """The name a browsed variable gets in the tag file: its dotted browse
    path from Objects, as tag groups name theirs."""
    return str(entry.get("browse_path", "")).strip("/").replace("/", ".") or str(entry["node_id"])


class BrowseTree(Tree[Folder | dict[str, Any]]):
    """The address-space tree; space marks (the screen's action) instead of
    toggling, enter opens and closes folders."""

    BINDINGS = [Binding("space", "screen.toggle_mark", "Mark", id="browse.tree.mark")]


class BrowseScreen(DataScreen):
    MODE = "browse"
    AUTO_FOCUS = "#browse-tree"  # so the number keys switch screens on arrival
    GLOSSARY = (
        ("[ ] / [x]", "a variable you can add / one you marked"),
        ("✓", "already collected (in the tag file or found by a tag group)"),
        ("✗", "cannot be collected (type not supported, array…), with the reason"),
        ("adding", "operators only; the agent validates the tag file before writing it "
                   "and restarts that source's session to subscribe the new tags"),
    )
    BINDINGS = [
        Binding("space", "toggle_mark", "Mark", show=False, id="browse.mark"),
        Binding("a", "add_marked", "Add", tooltip="add the marked variables to the tag file",
                id="browse.add"),
        Binding("p", "edit_path", "Path", id="browse.path"),
        Binding("b", "browse_again", "Rebrowse", id="browse.again"),
        Binding("s", "next_source", "Source", tooltip="next source", id="browse.source"),
        Binding("escape", "leave_path", "Back to the tree", show=False, id="browse.leave_path"),
    ]

    DEFAULT_CSS = """
    BrowseScreen #browse-bar { height: 1; }
    BrowseScreen #browse-bar Label { padding: 0 1; }
    BrowseScreen #browse-path { height: 1; width: 1fr; border: none; padding: 0; }
    BrowseScreen #browse-tree { height: 1fr; }
    BrowseScreen #browse-status { height: 1; padding: 0 1; background: $boost; }
    """

    def __init__(self) -> None:
        super().__init__(id="browse")
        self.source: str | None = None
        self.path = ""
        self.entries: list[dict[str, Any]] = []
        self.marked: dict[str, dict[str, Any]] = {}  # node_id -> entry
        self.busy = False
        self.message = Text("")
        self._root: Folder | None = None
        self._asked: set[str] = set()

    def compose_body(self) -> Iterable[Widget]:
        with Horizontal(id="browse-bar"):
            yield Label("", id="browse-source")
            yield Input(placeholder="browse path below Objects, e.g. Plant/Area1 (Enter)", id="browse-path")
        tree = BrowseTree("Objects", id="browse-tree")
        tree.show_root = True
        tree.guide_depth = 2
        yield tree
        yield Static("", id="browse-status", markup=False)

    @property
    def addr_tree(self) -> Tree[Folder | dict[str, Any]]:
        return self.query_one("#browse-tree", Tree)

    def _sources(self) -> list[str]:
        return [str(s.get("name")) for s in (self.tg_app.link.snapshot or {}).get("sources") or []]

    def render_snapshot(self, link: AgentLink) -> None:
        sources = self._sources()
        if self.source is None and sources:
            self.source = sources[0]
        self.query_one("#browse-source", Label).update(f"source {self.source or '—'}:")
        if self.source and self.source not in self._asked and link.state == "connected":
            self._asked.add(self.source)
            self.start_browse()
        self._render_status()

    def _render_status(self) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        if self.busy:
            t.append(f"browsing {self.source} {self.path or 'Objects'}…", style="yellow")
        elif self.message.plain:
            t.append_text(self.message)
        elif self.entries:
            done = sum(1 for e in self.entries if e.get("configured"))
            t.append(f"{len(self.entries)} variables below {self.path or 'Objects'}; {done} collected; ")
            t.append(f"{len(self.marked)} marked", style="bold" if self.marked else "")
        elif self.tg_app.link.snapshot is None:
            t.append("waiting for the agent…", style="dim")
        self.query_one("#browse-status", Static).update(t)

    # ------------------------------------------------------------ browsing

    def start_browse(self) -> None:
        if self.source is None or self.busy:
            return
        self.busy = True
        self.message = Text("")
        self._render_status()
        self._browse(self.source, self.path)

    @work(exclusive=True, group="browse")
    async def _browse(self, source: str, path: str) -> None:
        try:
            reply = await self.tg_app.control({"op": "browse", "source": source, "path": path})
        except (AgentUnavailable, StatusError) as e:
            self.busy = False
            self.message = Text(f"browse failed: {e}", style="red")
            self._render_status()
            return
        self.busy = False
        self.entries = list(reply.get("entries") or [])
        if reply.get("truncated"):
            self.message = Text(f"only the first {len(self.entries)} variables shown; browse a deeper path",
                                style="yellow")
        self.marked = {k: v for k, v in self.marked.items()
                       if any(e["node_id"] == k and not e.get("configured") for e in self.entries)}
        self._fill_tree()
        self._render_status()

    def _fill_tree(self) -> None:
        tree = self.addr_tree
        tree.clear()
        self._root = build_folders(self.entries, self.path)
        tree.root.set_label(self.path or "Objects")
        tree.root.data = self._root
        self._root.filled = False
        self._expand(tree.root)
        tree.root.expand()
        if not self.entries and not self.message.plain:
            self.message = Text(f"no variables below {self.path or 'Objects'}", style="yellow")

    def _expand(self, node: TreeNode[Folder | dict[str, Any]]) -> None:
        folder = node.data
        if not isinstance(folder, Folder) or folder.filled:
            return
        folder.filled = True
        for name in sorted(folder.folders):
            sub = folder.folders[name]
            n = sum(1 for _ in sub.all_variables())
            node.add(Text.assemble((name, "bold"), (f"  {n}", "dim")), data=sub)
        for e in sorted(folder.variables, key=lambda e: str(e.get("browse_path"))):
            node.add_leaf(self._leaf_label(e), data=e)

    def _leaf_label(self, e: dict[str, Any]) -> Text:
        name = str(e.get("browse_path", "")).rsplit("/", 1)[-1] or str(e.get("node_id"))
        kind = " ".join(x for x in (str(e.get("data_type") or ""), str(e.get("unit") or "")) if x)
        t = Text(no_wrap=True)
        if not e.get("supported", True):
            t.append("✗ ", style="red")
            t.append(name, style="dim")
            t.append(f"  {e.get('problem') or 'not supported'}", style="red")
        elif e.get("configured"):
            t.append("✓ ", style="green")
            t.append(name, style="dim")
            t.append(f"  {kind}", style="dim")
        else:
            mark = e["node_id"] in self.marked
            t.append("[x] " if mark else "[ ] ", style="bold magenta" if mark else "")
            t.append(name, style="bold" if mark else "")
            t.append(f"  {kind}", style="dim")
        return t

    @on(Tree.NodeExpanded, "#browse-tree")
    def _expanded(self, event: Tree.NodeExpanded[Folder | dict[str, Any]]) -> None:
        self._expand(event.node)

    # ------------------------------------------------------------ actions

    def action_toggle_mark(self) -> None:
        node = self.addr_tree.cursor_node
        if node is None:
            return
        data = node.data
        items = list(data.all_variables()) if isinstance(data, Folder) else [data] if data else []
        items = [e for e in items if e.get("supported", True) and not e.get("configured")]
        if not items:
            return
        if all(e["node_id"] in self.marked for e in items):
            for e in items:
                self.marked.pop(e["node_id"], None)
        else:
            for e in items:
                self.marked[e["node_id"]] = e
        self._relabel(self.addr_tree.root)
        self._render_status()

    def _relabel(self, node: TreeNode[Folder | dict[str, Any]]) -> None:
        for child in node.children:
            if isinstance(child.data, dict):
                child.set_label(self._leaf_label(child.data))
            else:
                self._relabel(child)

    def action_add_marked(self) -> None:
        if not self.marked:
            self.notify("Mark variables with space first", severity="warning", timeout=3)
            return
        if not self.tg_app.require_operator("Adding tags"):
            return
        names = [tag_name(e) for e in self.marked.values()]
        listed = "\n".join(f"  {n}" for n in names[:MAX_LIST])
        if len(names) > MAX_LIST:
            listed += f"\n  … and {len(names) - MAX_LIST} more"
        body = (f"Add {len(names)} tag(s) of source {self.source!r} to the tag file?\n{listed}\n\n"
                f"The agent subscribes them on the plant's server (more load on it) and restarts "
                f"this source's session: a few seconds without new values.")
        self.app.push_screen(ConfirmScreen("Add tags to the tag file", body), self._confirmed_add)

    def _confirmed_add(self, yes: bool | None) -> None:
        if yes and self.source is not None:
            tags = [{"node_id": e["node_id"], "name": tag_name(e)} for e in self.marked.values()]
            self._add(self.source, tags)

    @work(exclusive=True, group="browse-add")
    async def _add(self, source: str, tags: list[dict[str, Any]]) -> None:
        self.message = Text(f"adding {len(tags)} tag(s)…", style="yellow")
        self._render_status()
        try:
            reply = await self.tg_app.control({"op": "add_tags", "source": source, "tags": tags})
        except (AgentUnavailable, StatusError) as e:
            self.message = Text(f"not added: {e}", style="red")
            self.notify(f"Tags not added: {e}", severity="error", timeout=8)
            self._render_status()
            return
        added = list(reply.get("added") or [])
        skipped = list(reply.get("skipped") or [])
        self.message = Text(f"added {len(added)} tag(s) to {reply.get('file')}"
                            + (f"; {len(skipped)} were already there" if skipped else "")
                            + f"; config {reply.get('config_version')}", style="green")
        self.notify(f"Added {len(added)} tag(s); the agent reloaded the tag file", timeout=5)
        self.marked.clear()
        self.busy = True
        self._render_status()
        self._browse(source, self.path)

    def action_edit_path(self) -> None:
        self.query_one("#browse-path", Input).focus()

    @on(Input.Submitted, "#browse-path")
    def _path_submitted(self, event: Input.Submitted) -> None:
        self.path = event.value.strip().strip("/")
        self.addr_tree.focus()
        self.start_browse()

    def action_leave_path(self) -> None:
        self.addr_tree.focus()

    def action_browse_again(self) -> None:
        self.start_browse()

    def action_next_source(self) -> None:
        sources = self._sources()
        if not sources:
            return
        i = sources.index(self.source) + 1 if self.source in sources else 0
        self.source = sources[i % len(sources)]
        self.marked.clear()
        self.query_one("#browse-source", Label).update(f"source {self.source}:")
        self.start_browse()
