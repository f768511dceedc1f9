"""tidegate's benchmark suite: each `bench_<stage>` module exposes
`run(profile) -> list[Result]` (edge/bench/api.py); `tidegate bench` finds and
runs them. Shipped in the wheel so the suite runs on the target box."""
