"""How a batch's arrays are stored: compressor and chunking.

Only codecs of the zarr v3 core spec (zstd, blosc), so any zarr 3 reader
(zarr-python, tensorstore, zarrs, zarr.js...) can open a batch. The default is
what benchmarks/bench_datasets.py measured best for IT's two reads (see
docs/datasets.md, "Codecs and chunking").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from zarr.codecs import BloscCodec, ZstdCodec

COMPRESSORS = ("zstd", "blosc-zstd", "blosc-lz4")
SHUFFLES = ("noshuffle", "shuffle", "bitshuffle")


@dataclass(frozen=True)
class Encoding:
    compressor: str = "zstd"
    level: int = 3
    shuffle: str = "shuffle"  # blosc only: byte shuffle groups the similar high bytes of times and values
    chunk_samples: int = 0  # 0: one chunk per array per batch

    def __post_init__(self) -> None:
        if self.compressor not in COMPRESSORS:
            raise ValueError(f"compressor {self.compressor!r}: one of {', '.join(COMPRESSORS)}")
        if self.shuffle not in SHUFFLES:
            raise ValueError(f"shuffle {self.shuffle!r}: one of {', '.join(SHUFFLES)}")
        if self.chunk_samples < 0:
            raise ValueError(f"chunk_samples {self.chunk_samples}: must be >= 0")

    def compressors(self, dtype: np.dtype[Any]) -> Any:
        # Variable-length strings are bytes of no fixed width: shuffling them means nothing.
        if self.compressor == "zstd" or dtype == object or dtype.kind in "OTU":
            return ZstdCodec(level=self.level if self.compressor == "zstd" else 3)
        cname: Any = self.compressor.split("-", 1)[1]  # checked in __post_init__
        shuffle: Any = self.shuffle
        return BloscCodec(cname=cname, clevel=self.level, shuffle=shuffle, typesize=dtype.itemsize)

    def chunks(self, n: int) -> tuple[int]:
        return (max(min(n, self.chunk_samples) if self.chunk_samples else n, 1),)

    def label(self) -> str:
        c = f"{self.compressor}({self.level}" + ("" if self.compressor == "zstd" else f",{self.shuffle}") + ")"
        return c + (f" chunks {self.chunk_samples}" if self.chunk_samples else " one chunk/batch")
