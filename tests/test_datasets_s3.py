"""edge.datasets on an S3-compatible object store: a real S3 server (moto's
ThreadedMotoServer) on loopback, written through zarr's ObjectStore backend and
read back with xarray."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from edge.cli import main as cli_main
from edge.datasets import DatasetWriter, describe_batch, iter_tag_samples, list_batches, list_gaps, open_tag
from edge.datasets.storage import SiteClaimedError, open_storage

from test_datasets import (
    HOUR,
    REPO,
    S,
    SITE,
    T0,
    W0,
    GOOD,
    VALUES,
    assert_values_equal,
    catalog,
    crash_frames,
    every_type_rows,
    frame,
)

BUCKET = "it-telemetry"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API (moto's server, in memory) on a free loopback port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture()
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A fresh bucket prefix per test; credentials the way S3 clients take them."""
    import boto3

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(k, v)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    if BUCKET not in [b["Name"] for b in client.list_buckets().get("Buckets", [])]:
        client.create_bucket(Bucket=BUCKET)
    return f"s3://{BUCKET}/{request.node.name.replace('[', '-').replace(']', '')}"


def keys(url: str) -> list[str]:
    import boto3

    bucket, _, prefix = url[len("s3://"):].partition("/")
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    return sorted(o["Key"][len(prefix) + 1:] for p in pages for o in p.get("Contents", []))


def test_round_trip_every_type_on_s3(s3: str) -> None:
    tags = catalog(list(VALUES))
    rows = every_type_rows(tags)
    w = DatasetWriter(s3, SITE, 3600)
    w.set_catalog(tags, "cfg-s3")
    w.add(frame(tags, rows), 0, session_id=1, seq=5)
    [url] = w.flush()
    assert url == f"{s3}/{SITE}/2025-10-09/080000-3600s-L0-0"
    # The layout in the bucket: the batch prefix, its manifest beside it, the claim.
    k = keys(s3)
    assert f"{SITE}/2025-10-09/080000-3600s-L0-0.json" in k and f"{SITE}/.writer.json" in k
    assert f"{SITE}/2025-10-09/080000-3600s-L0-0/zarr.json" in k

    [b] = list_batches(s3)
    assert (b.path, b.n_samples, b.lsn_last) == (url, len(rows), 0)
    for t in tags:
        want = sorted((r for r in rows if r[0] == t.index), key=lambda r: r[1])
        # Plain xarray on zarr's own ObjectStore, no tidegate reader in between.
        ds = xr.open_zarr(b.store(), group=b.group_of(t.name)[0]).load()
        assert ds["time"].values.astype(np.int64).tolist() == [r[1] for r in want]
        assert ds["status"].values.tolist() == [r[3] for r in want]
        assert_values_equal(t.data_type, ds["value"].values, [r[4] for r in want])
        assert ds.attrs["node_id"] == t.node_id and ds.attrs["site"] == SITE
    got = {n: s for n, s in iter_tag_samples(s3, SITE)}
    assert sum(len(s.source_ns) for s in got.values()) == len(rows)
    assert "session 1 seq 5..5" in describe_batch(b.name, s3)


# Killed (SIGKILL) after every key of its second batch is in the bucket, just
# before the manifest that publishes it: the worst moment.
S3_CRASH_CHILD = textwrap.dedent("""
    import os, signal, sys, json
    sys.path[:0] = [sys.argv[2], sys.argv[2] + "/tests"]
    from test_datasets import crash_frames, catalog, W0, HOUR, S
    from edge.datasets import DatasetWriter
    import obstore
    w = DatasetWriter(sys.argv[1], "plant-1", 3600, lateness_seconds=1)
    tags = catalog(["Double", "UInt64"])
    w.set_catalog(tags, "v1")
    for lsn, b in crash_frames(tags):
        w.add(b, lsn, session_id=9, seq=1000 + lsn)
    w.add_gap("spool_overflow", [1], W0 + HOUR + 30 * S, W0 + HOUR + 40 * S, 1003, 1004, lsn=10)
    published = w.publish_due(W0 + HOUR + 2 * S)
    print(json.dumps({"published": published, "cursor": w.published_lsn()}), flush=True)
    real_put = w.storage._obs.put
    def put(store, key, *a, **k):
        if key.endswith("-3600s-L4-10.json"):
            os.kill(os.getpid(), signal.SIGKILL)
        return real_put(store, key, *a, **k)
    w.storage._obs = type("O", (), {"__getattr__": lambda self, n: put if n == "put" else getattr(obstore, n)})()
    w.flush()
    print("not reached", flush=True)
""")


def test_s3_crash_before_manifest_is_invisible_and_resume_has_no_duplicates(s3: str) -> None:
    child = subprocess.run([sys.executable, "-c", S3_CRASH_CHILD, s3, str(REPO)], capture_output=True, text=True,
                           timeout=90, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert child.returncode == -9, child.stderr
    state = json.loads(child.stdout.splitlines()[0])
    [published] = state["published"]
    assert state["cursor"] == 3
    # The second batch's keys are all there (root zarr.json too), its manifest is not:
    orphan = f"{SITE}/2025-10-09/090000-3600s-L4-10"
    assert f"{orphan}/zarr.json" in keys(s3) and f"{orphan}.json" not in keys(s3)
    assert [b.path for b in list_batches(s3)] == [published]  # readers see only the first

    # Restart: the orphan goes, and the replay from the cursor lands every sample once.
    tags = catalog(["Double", "UInt64"])
    w = DatasetWriter(s3, SITE, 3600, lateness_seconds=1)
    assert not [k for k in keys(s3) if k.startswith(orphan + "/")]
    w.set_catalog(tags, "v1")
    for lsn, b in crash_frames(tags)[state["cursor"]:]:
        w.add(b, lsn, session_id=9, seq=1000 + lsn)
    w.add_gap("spool_overflow", [1], W0 + HOUR + 30 * S, W0 + HOUR + 40 * S, 1003, 1004, lsn=10)
    w.flush()
    assert w.published_lsn() == 10
    want: dict[str, list[int]] = {}
    for _lsn, b in crash_frames(tags):
        for i in range(len(b)):
            want.setdefault(tags[int(b.tag[i])].name, []).append(int(b.source_ns[i]))
    got = {n: s.source_ns.tolist() for n, s in iter_tag_samples(s3, SITE)}
    assert got == {n: sorted(v) for n, v in want.items()}
    [gap] = list_gaps(s3, SITE)
    assert (gap.reason, gap.seq_first, gap.seq_last) == ("spool_overflow", 1003, 1004)


# warnings.catch_warnings is process-wide, so the writers' own filter races across threads.
@pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")
def test_many_sites_share_a_bucket_and_a_site_has_one_writer(s3: str) -> None:
    tags = catalog(["Double"])
    sites = [f"site-{i}" for i in range(3)]
    errors: list[BaseException] = []

    def receiver(site: str, k: int) -> None:
        try:
            w = DatasetWriter(s3, site, 600, owner=f"rx-{site}")
            w.set_catalog(tags)
            for h in range(3):  # three windows each, published while the others publish
                t = W0 + h * 600 * S + k
                w.add(frame(tags, [(0, t, t, GOOD, float(k * 100 + h), 0)]), h)
                w.publish_due(t + 700 * S)
            w.flush()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=receiver, args=(s, k)) for k, s in enumerate(sites)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors
    assert [s for s in open_storage(s3).list_dirs("")] == sites
    for k, site in enumerate(sites):
        ds = open_tag(s3, site, tags[0].name)
        assert ds["value"].values.tolist() == [k * 100.0, k * 100.0 + 1, k * 100.0 + 2]
        assert [b.site for b in list_batches(s3, site)] == [site] * 3
    # A second receiver configured with a taken site is refused, naming the owner.
    with pytest.raises(SiteClaimedError, match="rx-site-1"):
        DatasetWriter(s3, "site-1", 600, owner="someone-else")
    DatasetWriter(s3, "site-1", 600, owner="rx-site-1")  # the owner itself restarts fine


def test_cli_on_s3(s3: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tags = catalog(["Double", "Int64", "String"])
    w = DatasetWriter(s3, SITE, 3600)
    w.set_catalog(tags)
    w.add(frame(tags, [(0, T0, T0, GOOD, 1.5, 0), (1, T0, T0, GOOD, 7, 0), (2, T0 + 1, T0, GOOD, "on", 0)]), 0)
    w.add_gap("source_down", [1], T0 + 5 * S, T0 + 9 * S, 3, 4, lsn=1)
    [url] = w.flush()
    assert cli_main(["datasets", "list", s3]) == 0
    out = capsys.readouterr().out
    assert url in out and "1 batches, 3 samples, 1 gaps" in out
    assert cli_main(["datasets", "show", s3, url]) == 0
    assert "source_down" in capsys.readouterr().out
    out_file = tmp_path / "x.csv"
    assert cli_main(["datasets", "export", s3, "--tags", "*Double*,*Int64*", "-o", str(out_file)]) == 0
    lines = out_file.read_text().splitlines()
    assert lines[0].startswith("site,tag,unit,time,value") and len(lines) == 3
    assert cli_main(["datasets", "show", s3, "no-such-batch"]) == 2
    assert "BATCH" in capsys.readouterr().err


def test_receiver_config_takes_an_s3_url(tmp_path: Path) -> None:
    from edge.config import ConfigError, receiver_config_from_dict

    base = {"site": {"name": "a"}, "receiver": {"bind": "127.0.0.1:5005", "spool": str(tmp_path / "sp")}}
    cfg = receiver_config_from_dict({**base, "receiver": {
        **base["receiver"], "datasets": "s3://bucket/tele/", "s3": {"endpoint": "http://127.0.0.1:9000",
                                                                     "region": "eu-west-1"}}})
    assert cfg.receiver.datasets == "s3://bucket/tele"
    assert cfg.receiver.s3.storage_options() == {"endpoint": "http://127.0.0.1:9000", "region": "eu-west-1"}
    bad: list[tuple[dict[str, Any], str]] = [
        ({"datasets": "gs://bucket"}, "receiver.datasets"),
        ({"datasets": str(tmp_path), "s3": {"region": "x"}}, "receiver.s3"),
        ({"datasets": "s3://bkt/p", "s3": {"endpoint": "ftp://x"}}, "receiver.s3.endpoint"),
        ({"datasets": "s3://bkt/p", "s3": {"allow_http": "yes"}}, "receiver.s3.allow_http"),
        ({"datasets": "s3://bkt/p", "s3": {"bucket": "x"}}, "receiver.s3.bucket"),
    ]
    for extra, where in bad:
        with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
            receiver_config_from_dict({**base, "receiver": {**base["receiver"], **extra}})


def test_demo_chain_lands_every_value_in_s3(s3: str, s3_endpoint: str, tmp_path: Path) -> None:
    """Simulator -> agent -> UDP -> receiver process writing to the S3 server -> xarray."""
    import io

    from edge.demo import DemoOptions, run_demo

    out = io.StringIO()
    rc = run_demo(DemoOptions(headless=True, duration=3, state_dir=tmp_path, seed=5, out=out,
                              datasets_url=s3, s3_endpoint=s3_endpoint))
    assert rc == 0, out.getvalue() + (tmp_path / "receiver.log").read_text()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["missing"] == 0 and summary["zarr_values"] == summary["source_values"] > 200
    assert not (tmp_path / "datasets").exists()
    bs = list_batches(s3, "demo-plant")  # one, or two if the run crossed an hour
    assert 1 <= len(bs) <= 2 and all(b.path.startswith(s3) for b in bs)
    ds = open_tag(s3, "demo-plant", bs[0].tags[0])
    assert np.issubdtype(ds["time"].dtype, np.datetime64) and ds.attrs["site"] == "demo-plant"


def test_store_errors_are_one_line_and_publication_retries(s3: str, s3_endpoint: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from edge.datasets.storage import StoreError

    # A bucket that does not exist: the CLI says so on one line, exit 2.
    assert cli_main(["datasets", "list", "s3://no-such-bucket/x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tidegate datasets: ROOT: s3://no-such-bucket/x: cannot") and err.count("\n") == 1
    # The store goes away mid-run: publication fails whole, the window stays pending,
    # and publishes once the store is back, with nothing lost or doubled.
    tags = catalog(["Double"])
    w = DatasetWriter(s3, SITE, 3600)
    w.set_catalog(tags)
    w.add(frame(tags, [(0, T0, T0, GOOD, 1.0, 0)]), 0)
    real = w.storage
    w.storage = open_storage("s3://no-such-bucket/x")
    with pytest.raises(StoreError, match="no-such-bucket"):
        w.flush()
    assert w.published_lsn() == -1 and w.pending_samples() == 1
    w.storage = real
    [url] = w.flush()
    assert w.published_lsn() == 0 and [b.path for b in list_batches(s3)] == [url]


def test_receiver_keeps_running_while_the_store_is_down(s3: str, tmp_path: Path) -> None:
    from edge.config import receiver_config_from_dict
    from edge.demo import free_port
    from edge.receiver import Receiver

    cfg = receiver_config_from_dict({"site": {"name": SITE}, "receiver": {
        "bind": f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}", "spool": str(tmp_path / "spool"), "datasets": s3}})
    rx = Receiver(cfg)
    try:
        tags = catalog(["Double"])
        rx.writer.set_catalog(tags)
        rx.writer.lateness_ns = 0  # a window is due as soon as it ends
        rx.writer.add(frame(tags, [(0, T0, T0, GOOD, 1.0, 0)]), 0)
        real, rx.writer.storage = rx.writer.storage, open_storage("s3://no-such-bucket/x")
        rx.publish()  # the window is long due: publication is tried, fails, is logged
        assert rx.counters["publish_errors"] == 1 and rx.writer.pending_samples() == 1
        rx.publish()  # within the back-off: not retried yet
        assert rx.counters["publish_errors"] == 1
        rx.writer.storage = real
        rx._publish_retry_at = 0.0  # the back-off has passed
        rx.publish()
        assert rx.writer.pending_samples() == 0 and len(list_batches(s3, SITE)) == 1
        assert rx.spool.get_cursor("zarr") == 1
    finally:
        rx.link.stop()
        rx.spool.close()
