"""Where batches live: a local directory, or an S3-compatible object store.

Both give the writer one atomic "publish" and the readers one definition of
"published", so nothing above this module knows which store it talks to.

- Local directory: the batch is written into a hidden `.tmp-*` sibling,
  fsynced, then renamed into place. A batch directory exists = published.
- Object store (through zarr's own `ObjectStore` backend, obstore underneath):
  S3 has no rename. The batch's keys are PUT under their final prefix, the
  root `zarr.json` last (so even a reader that skips the rule below cannot
  open a half batch), then a small manifest object `<name>.json` next to the
  prefix is created with a conditional PUT (If-None-Match: *). A batch whose
  manifest exists = published; readers list manifests, never prefixes.

Every site has one writer: it claims the site with `<site>/.writer.json`
(created only if absent, naming the writer). A second writer with another
identity is refused, so receivers of different sites share one bucket and a
misconfigured second receiver of the same site cannot interleave batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

from zarr.core.buffer import Buffer

from edge.datasets import layout as L

CLAIM = ".writer.json"
MANIFEST_SUFFIX = ".json"
PUT_CONCURRENCY = 32
_URL_RE = re.compile(r"^[a-z][a-z0-9+.-]*://")


class SiteClaimedError(ValueError):
    """Another writer owns this site in this store."""


class StoreError(OSError):
    """The object store failed (unreachable, denied, no such bucket...): one line, with the URL."""


def default_owner() -> str:
    return socket.gethostname()


def is_url(root: object) -> bool:
    return isinstance(root, str) and bool(_URL_RE.match(root))


class Storage(ABC):
    """A datasets root: where sites, days and published batches are."""

    url: str

    # -- reading -----------------------------------------------------------

    @abstractmethod
    def list_dirs(self, key: str) -> list[str]:
        """Names of the child "directories" of `key` ("" = the root), hidden ones excluded."""

    @abstractmethod
    def list_published(self, site: str, day: str) -> list[str]:
        """Names of the published batches of one site and day."""

    @abstractmethod
    def batch_attrs(self, key: str) -> dict[str, Any]:
        """The root attributes of the published batch at `key` ("site/day/name")."""

    def batch_attrs_many(self, keys: list[str]) -> list[dict[str, Any]]:
        return [self.batch_attrs(k) for k in keys]

    @abstractmethod
    def zarr_store(self, key: str) -> Any:
        """What `xarray.open_zarr` / `zarr.open_group` take for the batch at `key` (read-only)."""

    def batch_url(self, key: str) -> str:
        return f"{self.url.rstrip('/')}/{key}"

    # -- writing -----------------------------------------------------------

    @abstractmethod
    def claim(self, site: str, owner: str) -> None:
        """Become the site's one writer, or raise SiteClaimedError naming the other one."""

    @abstractmethod
    def scan_and_clean(self, site: str) -> list[tuple[str, str]]:
        """(day, name) of every published batch of the site, after removing what a
        crashed writer left unpublished. Only the site's claimed writer calls this."""

    @abstractmethod
    def publish(self, site: str, day: str, name_for: Callable[[int], str], files: Mapping[str, Buffer],
                attrs: dict[str, Any], fsync: bool) -> str:
        """Publish one batch atomically under the first free `name_for(n)` (n = 0, 1...);
        returns its path or URL. On any error nothing is published."""


# -- local directory ---------------------------------------------------------------

class LocalStorage(Storage):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def list_dirs(self, key: str) -> list[str]:
        d = self.root / key if key else self.root
        if not d.is_dir():
            return []
        return sorted(e.name for e in d.iterdir() if e.is_dir() and not e.name.startswith("."))

    def list_published(self, site: str, day: str) -> list[str]:
        d = self.root / site / day
        if not d.is_dir():
            return []
        return sorted(n for n in os.listdir(d)
                      if L.parse_batch_dir(day, n) is not None and (d / n / "zarr.json").is_file())

    def batch_attrs(self, key: str) -> dict[str, Any]:
        return root_attrs_from_file(self.root / key)

    def zarr_store(self, key: str) -> str:
        return str(self.root / key)

    def batch_url(self, key: str) -> str:
        return str(self.root / key)

    def claim(self, site: str, owner: str) -> None:
        sdir = self.root / site
        sdir.mkdir(parents=True, exist_ok=True)
        path = sdir / CLAIM
        body = json.dumps({"owner": owner, "claimed": L.iso_ns(time.time_ns())}).encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            _check_claim(path.read_bytes(), owner, str(path))
            return
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)

    def scan_and_clean(self, site: str) -> list[tuple[str, str]]:
        sdir = self.root / site
        out: list[tuple[str, str]] = []
        for day in sorted(os.listdir(sdir)):
            ddir = sdir / day
            if not ddir.is_dir():
                continue
            if day.startswith(L.TMP_PREFIX):
                shutil.rmtree(ddir, ignore_errors=True)
                continue
            if not L.is_day_dir(day):
                continue
            for name in sorted(os.listdir(ddir)):
                if name.startswith(L.TMP_PREFIX):
                    shutil.rmtree(ddir / name, ignore_errors=True)
                elif L.parse_batch_dir(day, name) is not None:
                    out.append((day, name))
        return out

    def publish(self, site: str, day: str, name_for: Callable[[int], str], files: Mapping[str, Buffer],
                attrs: dict[str, Any], fsync: bool) -> str:
        site_dir = self.root / site
        day_dir = site_dir / day
        new_day = not day_dir.exists()
        day_dir.mkdir(parents=True, exist_ok=True)
        tmp = day_dir / f"{L.TMP_PREFIX}{name_for(0)}-{os.getpid()}-{time.time_ns()}"
        try:
            _dump(files, tmp, fsync)
            n = 0
            while True:
                final = day_dir / name_for(n)
                try:
                    if final.exists():
                        raise FileExistsError(final)
                    os.rename(tmp, final)  # atomic; fails if a batch of that name exists
                    break
                except OSError:
                    if not final.exists():
                        raise
                    n += 1
        except BaseException:
            # Disk full, permissions...: nothing is published.
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if fsync:
            _fsync_dir(day_dir)
            if new_day:
                _fsync_dir(site_dir)
        return str(final)


def _dump(keys: Mapping[str, Buffer], path: Path, fsync: bool) -> None:
    """A MemoryStore's keys -> files under `path` (the LocalStore layout), fsynced."""
    dirs = {path}
    path.mkdir()
    for key, buf in keys.items():
        f = path / key
        if f.parent not in dirs:
            f.parent.mkdir(parents=True, exist_ok=True)
            dirs.update(f.parent.parents)
            dirs.add(f.parent)
        fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _write_all(fd, buf.to_bytes())
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
    if fsync:
        for d in sorted((d for d in dirs if d == path or path in d.parents), key=lambda d: -len(d.parts)):
            _fsync_dir(d)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_ATTRS_START = re.compile(r'\s*\{\s*"attributes"\s*:\s*')


def root_attrs_from_file(path: Path) -> dict[str, Any]:
    """A local batch's attributes, without parsing the consolidated metadata.

    The root zarr.json also holds the metadata of every array (about 6 kB per
    tag); zarr writes "attributes" first, so only that object is read and parsed.
    """
    attrs: dict[str, Any] | None = None
    size = 1 << 16
    with open(path / "zarr.json", "rb") as f:
        while attrs is None:
            f.seek(0)
            head = f.read(size)
            whole = len(head) < size
            text = head.decode("utf-8", errors="ignore")
            m = _ATTRS_START.match(text)
            if m is None or whole:
                attrs = json.loads(text if whole else head + f.read()).get("attributes", {})
                break
            try:
                attrs = json.JSONDecoder().raw_decode(text, m.end())[0]
            except json.JSONDecodeError:
                size *= 4  # the attributes run past what was read
    return check_format(attrs, str(path))


def check_format(attrs: dict[str, Any], where: str) -> dict[str, Any]:
    if attrs.get("tidegate_format") != L.FORMAT:
        raise ValueError(f"{where}: not a tidegate batch (tidegate_format {attrs.get('tidegate_format')!r})")
    return attrs


def _check_claim(raw: bytes, owner: str, where: str) -> None:
    try:
        held = json.loads(raw)
        other = str(held["owner"])
    except (ValueError, KeyError, TypeError):
        raise SiteClaimedError(f"{where}: unreadable writer claim; remove it if no receiver writes this site") from None
    if other != owner:
        raise SiteClaimedError(
            f"{where}: this site is written by {other!r} (claimed {held.get('claimed', '?')}), not {owner!r}; "
            "one receiver per site: give this one its own site name, or delete the claim if that receiver is retired")


# -- object store -----------------------------------------------------------------------

class ObjectStorage(Storage):
    """An S3-compatible bucket (and prefix) through obstore and zarr's ObjectStore.

    Credentials and endpoint come from `options` or, as usual for S3 clients,
    from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP).
    """

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        obstore = _need_obstore()
        from obstore.store import from_url

        opts = dict(options or {})
        client: dict[str, Any] = {}
        allow_http = opts.pop("allow_http", None)
        if allow_http is None and str(opts.get("endpoint", os.environ.get("AWS_ENDPOINT_URL", ""))).startswith("http:"):
            allow_http = True
        if allow_http is not None:
            client["allow_http"] = bool(allow_http)
        if "endpoint" not in opts and os.environ.get("AWS_ENDPOINT_URL"):
            opts["endpoint"] = os.environ["AWS_ENDPOINT_URL"]
        self.url = url.rstrip("/")
        self._obs = obstore
        self._from_url = from_url
        # obstore's TypedDicts; the keys are checked by obstore itself.
        self._config: Any = cast(Any, opts or None)
        self._client: Any = cast(Any, client or None)
        self.store = from_url(self.url, config=self._config, client_options=self._client)

    def _sub(self, key: str) -> Any:
        """An obstore store rooted at `key` under ours (what zarr's ObjectStore wraps)."""
        return self._from_url(f"{self.url}/{key}", config=self._config, client_options=self._client)

    def _list(self, key: str) -> tuple[list[str], list[str]]:
        prefix = f"{key.strip('/')}/" if key else ""
        res = self._obs.list_with_delimiter(self.store, prefix or None)
        dirs = [p.rstrip("/").rsplit("/", 1)[-1] for p in res["common_prefixes"]]
        files = [o["path"].rsplit("/", 1)[-1] for o in res["objects"]]
        return sorted(dirs), sorted(files)

    def list_dirs(self, key: str) -> list[str]:
        with self._errors("list"):
            return [d for d in self._list(key)[0] if not d.startswith(".")]

    def list_published(self, site: str, day: str) -> list[str]:
        with self._errors("list"):
            _, files = self._list(f"{site}/{day}")
        names = (f[: -len(MANIFEST_SUFFIX)] for f in files if f.endswith(MANIFEST_SUFFIX))
        return sorted(n for n in names if L.parse_batch_dir(day, n) is not None)

    def batch_attrs(self, key: str) -> dict[str, Any]:
        where = self.batch_url(key)
        try:
            with self._errors("read a manifest"):
                raw = bytes(self._obs.get(self.store, key + MANIFEST_SUFFIX).bytes())
        except FileNotFoundError:
            raise FileNotFoundError(f"{where}: no published batch (no manifest {key}{MANIFEST_SUFFIX})") from None
        return check_format(json.loads(raw), where)

    def batch_attrs_many(self, keys: list[str]) -> list[dict[str, Any]]:
        """Concurrent GETs: a year of hourly batches is 8760 manifests."""
        limit = asyncio.Semaphore(PUT_CONCURRENCY)

        async def one(key: str) -> bytes:
            async with limit:
                try:
                    r = await self._obs.get_async(self.store, key + MANIFEST_SUFFIX)
                    return bytes(await r.bytes_async())
                except FileNotFoundError:
                    raise FileNotFoundError(f"{self.batch_url(key)}: no published batch") from None

        async def all_() -> list[bytes]:
            return list(await asyncio.gather(*(one(k) for k in keys)))

        with self._errors("read manifests"):
            raws = _run(all_())
        return [check_format(json.loads(r), self.batch_url(k)) for k, r in zip(keys, raws)]

    def zarr_store(self, key: str) -> Any:
        from zarr.storage import ObjectStore

        return ObjectStore(self._sub(key), read_only=True)

    def claim(self, site: str, owner: str) -> None:
        key = f"{site}/{CLAIM}"
        body = json.dumps({"owner": owner, "claimed": L.iso_ns(time.time_ns())}).encode()
        with self._errors(f"claim site {site!r}"):
            try:
                self._obs.put(self.store, key, body, mode="create")
            except self._obs.exceptions.AlreadyExistsError:
                _check_claim(bytes(self._obs.get(self.store, key).bytes()), owner, self.batch_url(key))

    def scan_and_clean(self, site: str) -> list[tuple[str, str]]:
        with self._errors(f"list site {site!r}"):
            return self._scan_and_clean(site)

    def _scan_and_clean(self, site: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for day in self._list(site)[0]:
            if not L.is_day_dir(day):
                continue
            dirs, files = self._list(f"{site}/{day}")
            published = {f[: -len(MANIFEST_SUFFIX)] for f in files if f.endswith(MANIFEST_SUFFIX)}
            for name in dirs:
                if name not in published:  # a crashed writer's unpublished keys
                    self._delete_prefix(f"{site}/{day}/{name}/")
            out += [(day, n) for n in sorted(published) if L.parse_batch_dir(day, n) is not None]
        return out

    def _delete_prefix(self, prefix: str) -> None:
        paths = [m["path"] for chunk in self._obs.list(self.store, prefix) for m in chunk]
        if paths:
            self._obs.delete(self.store, paths)

    def _taken(self, key: str) -> bool:
        try:
            self._obs.head(self.store, key + MANIFEST_SUFFIX)
            return True
        except FileNotFoundError:
            pass
        return bool(next(iter(self._obs.list(self.store, key + "/", chunk_size=1)), []))

    def publish(self, site: str, day: str, name_for: Callable[[int], str], files: Mapping[str, Buffer],
                attrs: dict[str, Any], fsync: bool) -> str:
        with self._errors("publish a batch"):
            n = 0
            while self._taken(key := f"{site}/{day}/{name_for(n)}"):
                n += 1
        manifest = json.dumps(attrs, separators=(",", ":")).encode()
        try:
            with self._errors(f"publish {key}"):
                _run(self._put_batch(key, files))
                # The publication point: created only if absent, so two writers can never
                # both publish one name (the claim should already prevent that).
                self._obs.put(self.store, key + MANIFEST_SUFFIX, manifest, mode="create")
        except BaseException:
            try:
                self._delete_prefix(key + "/")
            except Exception:  # noqa: BLE001 - the next writer start removes it anyway
                pass
            raise
        return self.batch_url(key)

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """obstore's errors -> StoreError naming the store, on one line."""
        try:
            yield
        except (self._obs.exceptions.BaseError, OSError) as e:
            if isinstance(e, (StoreError, FileNotFoundError)):
                raise
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise StoreError(f"{self.url}: cannot {what}: {first}") from e

    async def _put_batch(self, key: str, files: Mapping[str, Buffer]) -> None:
        limit = asyncio.Semaphore(PUT_CONCURRENCY)

        async def put(k: str, buf: Buffer) -> None:
            async with limit:
                await self._obs.put_async(self.store, f"{key}/{k}", buf.to_bytes())

        await asyncio.gather(*(put(k, b) for k, b in files.items() if k != "zarr.json"))
        # The root metadata (with the consolidated metadata) last: until it exists
        # zarr cannot open the group at all.
        await put("zarr.json", files["zarr.json"])


def _run(coro: Any) -> Any:
    from zarr.core.sync import sync

    return sync(coro)


def _need_obstore() -> Any:
    try:
        import obstore
    except ImportError:
        raise ImportError("an s3:// datasets root needs obstore: pip install 'tidegate[s3]'") from None
    return obstore


def open_storage(root: str | os.PathLike[str] | Storage,
                 options: Mapping[str, Any] | None = None) -> Storage:
    """A path (local directory) or a URL such as s3://bucket/prefix -> its Storage."""
    if isinstance(root, Storage):
        return root
    if is_url(root):
        assert isinstance(root, str)
        if not root.startswith("s3://"):
            raise ValueError(f"{root}: only local directories and s3:// URLs are supported")
        return ObjectStorage(root, options)
    return LocalStorage(root)
