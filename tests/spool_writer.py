"""A spool writer for tests/test_spool_crash.py, run as a child process and
killed with SIGKILL at random moments.

Appends DATA frames whose payload is a function of their LSN, makes them
durable, and prints each durable LSN it was promised on stdout (flushed) only
after the spool said so. Usage: spool_writer.py DIR MODE SEED, MODE one of
commit (commit() per batch), group (group commit + wait_durable), bounded
(group commit with a small byte bound, so segments are dropped meanwhile).
"""

from __future__ import annotations

import hashlib
import random
import sys
import time

from edge import _core

SEGMENT = 64 << 10
BOUND = 4 * SEGMENT


def payload(lsn: int) -> bytes:
    digest = hashlib.sha256(lsn.to_bytes(8, "little")).digest()
    return digest * (1 + lsn % 29)


def open_spool(path: str, mode: str) -> _core.Spool:
    return _core.Spool(path, 5, segment_bytes=SEGMENT,
                       max_bytes=BOUND if mode == "bounded" else 0,
                       commit_interval_s=0.0 if mode == "commit" else 0.005)


def main() -> None:
    path, mode, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    sp = open_spool(path, mode)
    while True:
        lsn = -1
        for _ in range(rng.randint(1, 30)):
            lsn = sp.next_lsn()
            got = sp.append(_core.FRAME_DATA, lsn, lsn, payload(lsn))
            assert got == lsn
        if mode == "commit":
            durable = sp.commit()
        else:
            assert sp.wait_durable(lsn, 30.0)
            durable = lsn + 1
        print(durable, flush=True)
        time.sleep(rng.random() * 0.002)  # a flush loop's pace, roughly


if __name__ == "__main__":
    main()
