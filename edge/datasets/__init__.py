"""IT side: decoded column batches -> immutable, atomically published zarr batches,
and the readers IT (and the demo, and `tidegate datasets`) use on them.

See docs/datasets.md for the layout and how to open it with xarray.
"""

from edge.datasets.layout import FORMAT, iso_ns, safe_name, severity_name
from edge.datasets.reader import (
    BatchInfo,
    GapInfo,
    TagSamples,
    describe_batch,
    format_batches_table,
    iter_samples,
    iter_tag_samples,
    find_batch,
    list_batches,
    list_gaps,
    list_sites,
    open_tag,
    quality_mask,
    usable,
)
from edge.datasets.snapshot import values_at
from edge.datasets.storage import SiteClaimedError, Storage, open_storage
from edge.datasets.writer import DatasetWriter

__all__ = [
    "FORMAT",
    "SiteClaimedError",
    "Storage",
    "BatchInfo",
    "DatasetWriter",
    "GapInfo",
    "TagSamples",
    "describe_batch",
    "find_batch",
    "format_batches_table",
    "iso_ns",
    "iter_samples",
    "iter_tag_samples",
    "list_batches",
    "list_gaps",
    "list_sites",
    "open_storage",
    "open_tag",
    "quality_mask",
    "safe_name",
    "severity_name",
    "usable",
    "values_at",
]
