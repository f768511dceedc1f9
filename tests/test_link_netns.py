"""The link's loss scenarios with the kernel dropping packets: sender and
receiver as separate processes in a network namespace whose loopback loses
2% (5% repair) or 5% (10% repair) of UDP packets, i.i.d. Every frame must
land, and the receiver must have had to repair blocks (the loss was real).
Skipped where the machine allows no such namespace (not root, no netns, no
netem and no nftables); the in-process relay tests cover the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.bench_link import prefill, run_one
from benchmarks.lossy_netns import LossyNamespace, NamespaceError
from edge import _core


@pytest.mark.parametrize(("loss", "repair"), [(2.0, 5.0), (5.0, 10.0)])
def test_no_frame_lost_under_kernel_packet_loss(tmp_path: Path, loss: float, repair: float) -> None:
    ot = tmp_path / "ot"
    n, total = prefill(ot, 12, 256)
    key = tmp_path / "link.key"
    _core.keygen(str(key))
    try:
        with LossyNamespace(loss) as ns:
            r = run_one(f"loss{loss}", tmp_path, ot, n, total, str(key), 200_000_000, repair, ns.name)
    except NamespaceError as e:
        pytest.skip(f"no lossy namespace here: {e}")
    assert (r.frames, r.lost) == (n, 0), f"{loss}% loss ({ns.how}), {repair}% repair: {r}"
    assert r.repaired_blocks > 0, f"no block needed repair: did {ns.how} drop anything?"
