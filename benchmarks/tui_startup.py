"""How fast `tidegate tui` is on screen, beside a bare Textual app in the same run.

Each sample is a fresh Python process (cold imports, as an SSH login gets):
it starts a real StatusServer with a 300-tag snapshot, then measures from
process start to the first snapshot rendered on the Tags screen (headless,
80x24). The baseline process measures a minimal Textual app (one Static) to
its first paint the same way, so the ratio says what tidegate adds.

    python benchmarks/tui_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import textwrap

TIDEGATE = textwrap.dedent("""
    import time; t0 = time.perf_counter()
    import asyncio, tempfile
    from edge.status import StatusServer
    from tui.app import TidegateApp

    def snap():
        now = time.time_ns()
        return {"agent": {"site": "bench", "now_ns": now}, "sources": [],
                "tags": [{"index": i, "name": f"Plant.Area{i % 4}.Unit{i}.Value", "unit": "bar",
                          "source": "plc1", "data_type": "Double", "value": i * 0.5, "status": 0,
                          "source_ns": now, "count": i} for i in range(300)]}

    async def main():
        sock = tempfile.mkdtemp(dir="/tmp") + "/a.sock"
        async with StatusServer(sock, snap):
            app = TidegateApp(sock, refresh=0.05, start="tags")
            async with app.run_test(size=(80, 24)) as pilot:
                while app.history.updates < 1 or app.screen.table.row_count < 300:
                    await pilot.pause(0.005)
                await pilot.pause(0)
                print(time.perf_counter() - t0)
    asyncio.run(main())
""")

BASELINE = textwrap.dedent("""
    import time; t0 = time.perf_counter()
    import asyncio
    from textual.app import App
    from textual.widgets import Static

    class Bare(App):
        def compose(self):
            yield Static("hello")

    async def main():
        app = Bare()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0)
            print(time.perf_counter() - t0)
    asyncio.run(main())
""")


def sample(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         timeout=120)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    tg, base = [], []
    for _ in range(args.runs):  # interleaved, so load on the box hits both alike
        base.append(sample(BASELINE))
        tg.append(sample(TIDEGATE))
    mt, mb = statistics.median(tg), statistics.median(base)
    print(f"bare Textual app, first paint           : median {mb * 1000:6.0f} ms  (runs {args.runs})")
    print(f"tidegate tui, 300 tags on screen        : median {mt * 1000:6.0f} ms  "
          f"(min {min(tg) * 1000:.0f}, max {max(tg) * 1000:.0f})")
    print(f"ratio                                   : {mt / mb:.2f}x")


if __name__ == "__main__":
    main()
