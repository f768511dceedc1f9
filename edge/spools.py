"""Opening the OT and IT spools with the bounds and group commit their config
asks for (docs/spool.md). The cursor that releases frames is the one their
consumer moves: the diode sender's "sent" on the OT side, the zarr writer's
"zarr" on the IT side.
"""

from __future__ import annotations

from edge import _core
from edge.config import ReceiverSection, SpoolConfig

SENT_CURSOR = "sent"  # core_rs/src/diode/sender.rs CURSOR
ZARR_CURSOR = "zarr"  # edge/receiver.py CURSOR


def open_agent_spool(cfg: SpoolConfig, site_id: int) -> _core.Spool:
    return _core.Spool(
        str(cfg.path), site_id,
        segment_bytes=cfg.segment_mb << 20,
        max_bytes=cfg.max_mb << 20,
        max_age_s=float(cfg.max_age_seconds),
        retain_released_s=float(cfg.retain_sent_seconds),
        release_cursor=SENT_CURSOR,
        commit_interval_s=cfg.commit_interval_ms / 1000,
        commit_bytes=cfg.commit_kb << 10,
    )


def open_receiver_spool(rx: ReceiverSection) -> _core.Spool:
    # The diode receiver thread commits the IT spool itself; no group committer.
    return _core.Spool(
        str(rx.spool), 0,
        max_bytes=rx.spool_max_mb << 20,
        retain_released_s=float(rx.spool_retain_seconds),
        release_cursor=ZARR_CURSOR,
    )
