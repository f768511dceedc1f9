"""The bench report: Markdown with one table of every figure beside its
baseline, and a PNG plot (matplotlib, the optional `bench` extra)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.bench.api import Result

if TYPE_CHECKING:
    from edge.bench.runner import StageOutcome


def fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    a = abs(x)
    if a == 0:
        return "0"
    if a >= 100_000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def verdict(r: Result) -> str:
    """The ratio, and whether it is good news, in words a reader can't misread."""
    ratio = r.ratio
    if ratio is None:
        return ""
    good = ratio >= 1 if r.better == "higher" else ratio <= 1
    return f"{ratio:.2f}x" + ("" if abs(ratio - 1) < 0.05 else (" (better)" if good else " (worse)"))


def cell(text: str) -> str:
    """Text that cannot break a Markdown table row."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def table(outcomes: list[StageOutcome]) -> list[str]:
    lines = ["| stage | figure | value | baseline | baseline is | ratio | note |",
             "|---|---|---|---|---|---|---|"]
    for o in outcomes:
        if o.error:
            lines.append(f"| {cell(o.stage)} | **failed** | | | | | {cell(o.error)} |")
        for r in o.results:
            unit = f" {r.unit}" if r.unit else ""
            base = "" if r.baseline is None else f"{fmt(r.baseline)}{unit}"
            lines.append(f"| {cell(r.stage)} | {cell(r.name)} | {fmt(r.value)}{cell(unit)} | {cell(base)} "
                         f"| {cell(r.baseline_name)} | {verdict(r)} | {cell(r.note)} |")
    return lines


def _load(avg: list[float]) -> str:
    return " ".join(f"{x:.2f}" for x in avg)


def write_report(out_dir: Path, info: dict[str, Any], outcomes: list[StageOutcome], workdir: Path) -> Path:
    m, p = info["machine"], info["profile"]
    plot = out_dir / "report.png"
    plot_note = plot_png(plot, outcomes, workdir)
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info["started"]))
    pin = f"pinned to core(s) {', '.join(map(str, p['cpus']))}" if p["cpus"] else "not pinned"
    cap = f"{p['memory_max_mb']} MB" if p["memory_max_mb"] else "none"
    lines = [
        f"# tidegate bench: {m['host']}",
        "",
        f"- when: {when}; command: `{info['command']}`",
        f"- machine: {m['cpu']} ({m['machine']}), {m['cores']} cores, {m['memory_mb']} MB, "
        f"Linux {m['kernel']}, Python {m['python']}, tidegate {m['tidegate']}",
        f"- profile: **{p['name']}**: agent {pin}, agent memory cap {cap}, "
        f"chain run {p['duration_s']:.0f} s",
        f"- memory limits: {m['cgroup']}",
        *([f"- load average (1, 5, 15 min) at start {_load(info['load_average']['start'])}, "
           f"at end {_load(info['load_average']['end'])}; the suite took {info['seconds'] / 60:.1f} min"]
          if "load_average" in info else []),
        "",
        "Every figure sits beside a baseline measured in the same run on this machine; "
        "the ratio is figure / baseline.",
        "",
        *table(outcomes),
        "",
        f"![ratios and the agent over time]({plot.name})" if plot.exists() else f"(no plot: {plot_note})",
        "",
        "Raw figures: results.json. Rerun: the command above.",
        "",
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def plot_png(path: Path, outcomes: list[StageOutcome], workdir: Path) -> str:
    """Left: every figure's ratio to its baseline. Right: agent CPU and RSS
    over the chain run beside the baseline process. Returns why not, if not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: pip install 'tidegate[bench]'"
    rows = [(f"{r.stage}: {r.name}", r.ratio, r.better) for o in outcomes for r in o.results
            if r.ratio is not None and r.ratio > 0]
    series_file = workdir / "chain-series.json"
    series: dict[str, list[list[float]]] = json.loads(series_file.read_text()) if series_file.exists() else {}
    ncols = 2 if series else 1
    fig, axes = plt.subplots(1, ncols, figsize=(7 * ncols, max(3.0, 0.45 * len(rows) + 1.5)), squeeze=False)
    ax = axes[0][0]
    if rows:
        labels = [r[0] for r in rows]
        ratios = [r[1] or 0.0 for r in rows]
        colours = ["tab:gray" if abs(v - 1) < 0.05 else
                   "tab:green" if (v >= 1 if b == "higher" else v <= 1) else "tab:red"
                   for v, b in zip(ratios, (r[2] for r in rows))]
        ax.barh(range(len(rows)), ratios, color=colours)
        ax.set_yticks(range(len(rows)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("figure / baseline (log; green better, red worse, grey within 5%)")
    else:
        ax.text(0.5, 0.5, "no figure with a baseline", ha="center", va="center")
    ax.set_title("ratio to baseline, same run")
    if series:
        ax2 = axes[0][1]
        ax3 = ax2.twinx()
        for (label, pts), colour in zip(series.items(), ("tab:blue", "tab:orange", "tab:purple")):
            if not pts:
                continue
            t = [q[0] for q in pts]
            ax2.plot(t, [q[2] for q in pts], color=colour, label=f"{label} RSS")
            ax3.plot(t, [q[1] for q in pts], color=colour, linestyle=":", label=f"{label} CPU")
        ax2.set_xlabel("seconds since the measurement window opened")
        ax2.set_ylabel("RSS (MB), solid")
        ax3.set_ylabel("CPU (% of one core), dotted")
        ax2.set_title("chain: agent beside the bare subscriber")
        ax2.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return ""
