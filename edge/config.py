"""TOML configuration of the agent (OT side) and the receiver (IT side).

Both files are read with :mod:`tomllib` into frozen dataclasses. Anything wrong
raises :class:`ConfigError`, whose text is one line naming the file, the line
(where it can be found) and the key path, e.g.::

    agent.toml:12: sources[0].endpoint: must start with opc.tcp://, got 'http://plc:4840'

Unknown keys are errors (with a "did you mean" from :mod:`difflib`), so a typo
never silently falls back to a default. Relative paths are taken relative to
the directory of the config file. The schema is documented in docs/config.md.
"""

from __future__ import annotations

import difflib
import re
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_STATUS_SOCKET = Path("/run/tidegate/agent.sock")
SECURITY_POLICIES = ("None", "Basic256Sha256", "Aes256_Sha256_RsaPss")
SECURITY_MODES = ("None", "Sign", "SignAndEncrypt")
TAG_MODES = ("subscribe", "poll")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_NODE_ID_RE = re.compile(
    r"^(?:(?:ns=\d+|nsu=[^;]+);)?(?:i=\d+|s=.+|g=[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}|b=.+)$")
_HOST_PORT_RE = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.\-]+)):(?P<port>\d+)$")
_ENDPOINT_RE = re.compile(r"^opc\.tcp://(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+)(?::(?P<port>\d+))?(?:/.*)?$")


class ConfigError(Exception):
    """A config problem: one line, ``file:line: key.path: message``."""

    def __init__(self, origin: str, key: str, message: str, line: int | None = None) -> None:
        self.origin = origin
        self.key = key
        self.message = message
        self.line = line
        where = origin if line is None else f"{origin}:{line}"
        text = f"{where}: {key}: {message}" if key else f"{where}: {message}"
        super().__init__(text.replace("\n", " "))


# -- dataclasses ----------------------------------------------------------------


@dataclass(frozen=True)
class SiteConfig:
    id: int
    name: str


@dataclass(frozen=True)
class AgentSection:
    status_socket: Path = DEFAULT_STATUS_SOCKET
    flush_interval_ms: int = 1000
    memory_max_mb: int = 0  # 0: no cap of its own (edge/memguard.py)


@dataclass(frozen=True)
class SpoolConfig:
    path: Path
    segment_mb: int = 16
    # Bounds and group commit (docs/spool.md); 0 turns a bound off.
    max_mb: int = 2048
    max_age_seconds: int = 35 * 86_400
    retain_sent_seconds: int = 86_400
    commit_interval_ms: int = 1000
    commit_kb: int = 4096


@dataclass(frozen=True)
class LinkConfig:
    target: str  # "host:port"
    rate_mbit: float = 100.0
    mtu: int = 1500
    key_file: Path | None = None  # from `tidegate keygen`; None: integrity only, no authentication
    repair_pct: float = 5.0  # FEC recovery symbols per block, % of its source symbols
    carousel_s: tuple[float, ...] = (30.0, 600.0, 3600.0)  # re-send delays after the first send


@dataclass(frozen=True)
class SourceConfig:
    name: str
    endpoint: str
    publishing_interval_ms: int = 1000
    security_policy: str = "None"
    keepalive_count: int = 10
    security_mode: str = "None"  # "Sign" | "SignAndEncrypt" with a policy other than "None"
    certificate: Path | None = None  # our application instance certificate (DER or PEM)
    private_key: Path | None = None
    trust_store: Path | None = None  # directory of trusted server (or CA) certificates
    username: str | None = None
    password_file: Path | None = None
    user_certificate: Path | None = None  # X.509 user identity
    user_private_key: Path | None = None
    session_timeout_ms: int = 600_000
    retry_interval_ms: int = 30_000  # how often failing nodes are tried again


@dataclass(frozen=True)
class TagConfig:
    source: str
    node_id: str
    name: str | None = None  # None: the node's browse name
    unit: str | None = None  # None: the node's EngineeringUnits, if any
    description: str | None = None
    sampling_interval_ms: int | None = None  # None: the source's publishing interval
    queue_size: int | None = None  # None: ceil(publishing / sampling) + 1, at least 2
    deadband_absolute: float | None = None
    deadband_percent: float | None = None  # of the server's EURange; needs one
    mode: str = "subscribe"  # or "poll" (Read every sampling interval)
    range_low: float | None = None  # None: the server's EURange
    range_high: float | None = None
    # Lossy reduction (docs/codec.md): "none", "swinging_door" or "exception",
    # with the guaranteed absolute bound max_error (engineering units).
    compression: str = "none"
    max_error: float | None = None
    exception_deviation: float | None = None
    max_hold_s: float = 60.0


COMPRESSIONS = ("none", "swinging_door", "exception")


@dataclass(frozen=True)
class TagGroupConfig:
    source: str
    browse_path: str  # "Plant/Area1" below the Objects folder
    sampling_interval_ms: int | None = None
    queue_size: int | None = None
    deadband_absolute: float | None = None
    deadband_percent: float | None = None
    mode: str = "subscribe"


@dataclass(frozen=True)
class AgentConfig:
    site: SiteConfig
    spool: SpoolConfig
    link: LinkConfig
    agent: AgentSection = field(default_factory=AgentSection)
    sources: list[SourceConfig] = field(default_factory=list)
    tags: list[TagConfig] = field(default_factory=list)
    tag_groups: list[TagGroupConfig] = field(default_factory=list)
    origin: str = "<memory>"


IT_RETAIN_S = 7 * 86_400


@dataclass(frozen=True)
class ReceiverSiteConfig:
    name: str


@dataclass(frozen=True)
class S3Options:
    """[receiver.s3]: how to reach an S3-compatible store. Credentials never live
    in the file: the usual AWS environment variables or the instance's role."""

    endpoint: str | None = None  # e.g. "https://s3.example.net" (default: AWS for the region)
    region: str | None = None
    allow_http: bool | None = None  # plain-HTTP endpoint (default: only if endpoint is http://)

    def storage_options(self) -> dict[str, Any]:
        """As `edge.datasets.DatasetWriter(storage_options=...)` takes them."""
        d: dict[str, Any] = {}
        if self.endpoint is not None:
            d["endpoint"] = self.endpoint
        if self.region is not None:
            d["region"] = self.region
        if self.allow_http is not None:
            d["allow_http"] = self.allow_http
        return d


@dataclass(frozen=True)
class ReceiverSection:
    bind: str  # "host:port"
    spool: Path
    datasets: Path | str  # a directory, or an "s3://bucket/prefix" URL (str)
    batch_seconds: int = 3600
    lateness_seconds: float = 60.0  # edge/datasets/writer.py DEFAULT_LATENESS_S
    status_socket: Path | None = None
    s3: S3Options = field(default_factory=S3Options)
    # Bounds of the IT spool (0 = off): frames written to zarr are kept this
    # long (a week: time to rebuild a lost batch), and the spool may hold at
    # most this many MiB.
    spool_retain_seconds: int = IT_RETAIN_S
    spool_max_mb: int = 0
    key_file: Path | None = None  # the same key file as the agent's [link] key_file


@dataclass(frozen=True)
class ReceiverConfig:
    site: ReceiverSiteConfig
    receiver: ReceiverSection
    origin: str = "<memory>"


# -- locating keys in the text ----------------------------------------------------


class _Lines:
    """Best-effort map from key paths to line numbers (tomllib gives none).

    Understands [table], [[array]] headers and ``key = value`` lines at the
    start of a line; good enough for hand-written config files.
    """

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(?:#.*)?$")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\"|'[^']*')\s*=")

    def __init__(self, text: str | None) -> None:
        self.lines: dict[str, int] = {}
        if not text:
            return
        counts: dict[str, int] = {}
        table = ""
        in_ml: str | None = None
        for no, line in enumerate(text.splitlines(), start=1):
            if in_ml is not None:
                if line.count(in_ml) % 2 == 1:
                    in_ml = None
                continue
            m = self._HEADER.match(line)
            if m:
                name = m.group(2).replace('"', "").replace("'", "").replace(" ", "")
                if m.group(1) == "[[":
                    i = counts.get(name, 0)
                    counts[name] = i + 1
                    table = f"{name}[{i}]"
                else:
                    table = name
                self.lines.setdefault(table, no)
                continue
            m = self._KEY.match(line)
            if m:
                key = m.group(1).strip("\"'")
                path = f"{table}.{key}" if table else key
                self.lines.setdefault(path, no)
                for q in ('"""', "'''"):
                    if line.count(q) % 2 == 1:
                        in_ml = q

    def find(self, path: str) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            if cut <= 0:
                return None
            path = path[:cut]
        return None


class _Ctx:
    def __init__(self, origin: str, text: str | None, base: Path | None) -> None:
        self.origin = origin
        self.lines = _Lines(text)
        self.base = base

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.origin, key, message, self.lines.find(key))


def _kind_name(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a float"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "a table"
    return type(v).__name__


class _Table:
    """One TOML table being read: typed getters, then done() rejects leftovers."""

    def __init__(self, ctx: _Ctx, path: str, value: Any) -> None:
        self.ctx = ctx
        self.path = path
        if not isinstance(value, dict):
            raise ctx.error(path, f"must be a table, got {_kind_name(value)}")
        self.d: dict[str, Any] = value
        self.used: set[str] = set()

    def key(self, k: str) -> str:
        return f"{self.path}.{k}" if self.path else k

    def error(self, k: str, message: str) -> ConfigError:
        return self.ctx.error(self.key(k), message)

    def _get(self, k: str, required: bool) -> Any:
        self.used.add(k)
        if k not in self.d:
            if required:
                raise self.error(k, "required key is missing")
            return None
        return self.d[k]

    def str_(self, k: str, default: str | None = None, *, required: bool = False,
             check: Callable[[str], str | None] | None = None) -> str | None:
        v = self._get(k, required)
        if v is None:
            return default
        if not isinstance(v, str):
            raise self.error(k, f"must be a string, got {_kind_name(v)}")
        if check is not None:
            problem = check(v)
            if problem:
                raise self.error(k, problem)
        return v

    def req_str(self, k: str, check: Callable[[str], str | None] | None = None) -> str:
        v = self.str_(k, required=True, check=check)
        assert v is not None
        return v

    def int_(self, k: str, default: int | None, lo: int, hi: int, *, required: bool = False) -> int | None:
        v = self._get(k, required)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(k, f"must be an integer, got {_kind_name(v)}")
        if not lo <= v <= hi:
            raise self.error(k, f"must be between {lo} and {hi}, got {v}")
        return v

    def req_int(self, k: str, default: int, lo: int, hi: int) -> int:
        v = self.int_(k, default, lo, hi)
        assert v is not None
        return v

    def float_(self, k: str, default: float, lo: float, hi: float) -> float:
        v = self._get(k, False)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.error(k, f"must be a number, got {_kind_name(v)}")
        if not lo < v <= hi:
            raise self.error(k, f"must be greater than {lo:g} and at most {hi:g}, got {v}")
        return float(v)

    def opt_float(self, k: str, lo: float, hi: float) -> float | None:
        """An optional number in [lo, hi]."""
        v = self._get(k, False)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.error(k, f"must be a number, got {_kind_name(v)}")
        if not lo <= v <= hi or v != v:
            raise self.error(k, f"must be between {lo:g} and {hi:g}, got {v}")
        return float(v)

    def file_(self, k: str, *, directory: bool = False) -> Path | None:
        """An optional path that must exist now (a file, or a directory)."""
        p = self.path_(k)
        if p is None:
            return None
        if directory and not p.is_dir():
            raise self.error(k, f"no such directory: {p}")
        if not directory and not p.is_file():
            raise self.error(k, f"no such file: {p}")
        return p

    def path_(self, k: str, default: Path | None = None, *, required: bool = False) -> Path | None:
        v = self.str_(k, None, required=required, check=lambda s: None if s.strip() else "must not be empty")
        if v is None:
            return default
        p = Path(v).expanduser()
        if not p.is_absolute() and self.ctx.base is not None:
            p = self.ctx.base / p
        return p

    def table(self, k: str, required: bool = True) -> _Table:
        v = self._get(k, required)
        return _Table(self.ctx, self.key(k), {} if v is None else v)

    def array(self, k: str) -> list[_Table]:
        v = self._get(k, False)
        if v is None:
            return []
        if not isinstance(v, list):
            raise self.error(k, f"must be an array of tables ([[{k}]]), got {_kind_name(v)}")
        return [_Table(self.ctx, f"{self.key(k)}[{i}]", item) for i, item in enumerate(v)]

    def done(self) -> None:
        for k in self.d:
            if k not in self.used:
                close = difflib.get_close_matches(k, sorted(self.used), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else \
                    f" (known: {', '.join(sorted(self.used))})"
                raise self.error(k, f"unknown key{hint}")


# -- checks -------------------------------------------------------------------------


def _tag_compression(tt: _Table) -> dict[str, Any]:
    """The lossy keys of one [[tags]] table, checked together."""
    max_error = tt.float_("max_error", 0.0, 0.0, 1e300) or None
    exc = tt.float_("exception_deviation", 0.0, 0.0, 1e300) or None
    hold = tt.float_("max_hold_s", 60.0, 0.0, 86_400.0)
    comp = tt.str_("compression", None, check=lambda s: None if s in COMPRESSIONS else
                   f"must be one of {', '.join(COMPRESSIONS)}, got {s!r}")
    if comp is None:
        comp = "none" if max_error is None else "swinging_door"
    if comp == "none":
        if max_error is not None or exc is not None:
            key = "max_error" if max_error is not None else "exception_deviation"
            raise tt.error(key, 'is set but compression = "none"')
        return {}
    if max_error is None:
        raise tt.error("max_error", f'is required with compression = "{comp}"')
    if comp == "exception" and exc is None:
        exc = max_error / 2
    if exc is not None and 2 * exc > max_error:
        raise tt.error("exception_deviation", f"must be at most max_error / 2 = {max_error / 2:g} "
                                              f"(a dropped sample can be 2x it off the line), got {exc:g}")
    return {"compression": comp, "max_error": max_error, "exception_deviation": exc, "max_hold_s": hold}


def _check_name(s: str) -> str | None:
    if not _NAME_RE.match(s):
        return f"must be letters, digits, '_', '.' or '-', got {s!r}"
    return None


def _check_nonempty(s: str) -> str | None:
    return None if s.strip() else "must not be empty"


def _check_host_port(s: str) -> str | None:
    m = _HOST_PORT_RE.match(s)
    if not m:
        return f"must be host:port, got {s!r}"
    if not 0 < int(m.group("port")) < 65536:
        return f"port must be 1..65535, got {s!r}"
    return None


def _check_endpoint(s: str) -> str | None:
    if not s.startswith("opc.tcp://"):
        return f"must start with opc.tcp://, got {s!r}"
    m = _ENDPOINT_RE.match(s)
    if not m:
        return f"must look like opc.tcp://host:port/path, got {s!r}"
    if m.group("port") is not None and not 0 < int(m.group("port")) < 65536:
        return f"port must be 1..65535, got {s!r}"
    return None


def _check_node_id(s: str) -> str | None:
    if not _NODE_ID_RE.match(s):
        return f"must be an OPC UA node id like 'ns=2;s=Plant.Pump01.Speed' or 'i=2258', got {s!r}"
    return None


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str | None]:
    def check(s: str) -> str | None:
        if s not in choices:
            return f"must be one of {', '.join(repr(c) for c in choices)}, got {s!r}"
        return None
    return check


_check_policy = _one_of(SECURITY_POLICIES)


def _deadbands(t: _Table) -> tuple[float | None, float | None]:
    absolute = t.opt_float("deadband_absolute", 0.0, 1e300)
    percent = t.opt_float("deadband_percent", 0.0, 100.0)
    if absolute is not None and percent is not None:
        raise t.error("deadband_percent", "give deadband_absolute or deadband_percent, not both")
    return absolute, percent


def _source(st: _Table) -> SourceConfig:
    policy = st.str_("security_policy", "None", check=_check_policy) or "None"
    mode = st.str_("security_mode", None, check=_one_of(SECURITY_MODES))
    if mode is None:
        mode = "None" if policy == "None" else "SignAndEncrypt"
    if (policy == "None") != (mode == "None"):
        raise st.error("security_mode", f"security_mode {mode!r} does not go with security_policy {policy!r}")
    cert, key, trust = st.file_("certificate"), st.file_("private_key"), st.file_("trust_store", directory=True)
    if policy != "None":
        for k, v in (("certificate", cert), ("private_key", key), ("trust_store", trust)):
            if v is None:
                raise st.error(k, f"required with security_policy {policy!r}")
    username = st.str_("username", check=_check_nonempty)
    password_file = st.file_("password_file")
    if (username is None) != (password_file is None):
        raise st.error("password_file" if password_file is None else "username",
                       "username and password_file go together")
    ucert, ukey = st.file_("user_certificate"), st.file_("user_private_key")
    if (ucert is None) != (ukey is None):
        raise st.error("user_private_key" if ukey is None else "user_certificate",
                       "user_certificate and user_private_key go together")
    if ucert is not None and username is not None:
        raise st.error("user_certificate", "choose one user identity: username or user_certificate")
    return SourceConfig(
        name=st.req_str("name", _check_name),
        endpoint=st.req_str("endpoint", _check_endpoint),
        publishing_interval_ms=st.req_int("publishing_interval_ms", 1000, 10, _MS_MAX),
        security_policy=policy,
        keepalive_count=st.req_int("keepalive_count", 10, 1, 1000),
        security_mode=mode, certificate=cert, private_key=key, trust_store=trust,
        username=username, password_file=password_file, user_certificate=ucert, user_private_key=ukey,
        session_timeout_ms=st.req_int("session_timeout_ms", 600_000, 10_000, 86_400_000),
        retry_interval_ms=st.req_int("retry_interval_ms", 30_000, 100, _MS_MAX))


# -- agent --------------------------------------------------------------------------

_MS_MAX = 3_600_000


_YEARS_10 = 10 * 366 * 86_400


def _spool_max_mb(t: _Table, key: str, default: int, segment_mb: int) -> int:
    """A spool byte bound: 0 (unbounded) or room for at least two segments."""
    v = t.req_int(key, default, 0, 1 << 24)
    if 0 < v < 2 * segment_mb:
        raise t.error(key, f"must be 0 (unbounded) or at least 2 x segment_mb ({2 * segment_mb}), got {v}")
    return v


def _key_file(t: _Table) -> Path | None:
    """A link key file must exist and be readable by its owner only (it authenticates the link)."""
    p = t.path_("key_file")
    if p is None:
        return None
    try:
        st = p.stat()
    except OSError as e:
        raise t.error("key_file", f"cannot read {str(p)!r}: {e.strerror} (create it with `tidegate keygen`)") from None
    if not stat.S_ISREG(st.st_mode):
        raise t.error("key_file", f"{str(p)!r} is not a regular file")
    if st.st_mode & 0o077:
        raise t.error("key_file", f"{str(p)!r} has permissions {st.st_mode & 0o777:04o}, too open; run chmod 600")
    return p


def _carousel(t: _Table) -> tuple[float, ...]:
    v = t._get("carousel_s", False)
    if v is None:
        return LinkConfig.carousel_s
    if not isinstance(v, list) or len(v) > 8 or \
            any(isinstance(x, bool) or not isinstance(x, int | float) or x <= 0 for x in v):
        raise t.error("carousel_s", f"must be a list of at most 8 positive numbers of seconds, got {v!r}")
    if any(b <= a for a, b in zip(v, v[1:])):
        raise t.error("carousel_s", f"must be increasing, got {v!r}")
    return tuple(float(x) for x in v)


def _agent(root: _Table) -> AgentConfig:
    ctx = root.ctx
    site_t = root.table("site")
    site = SiteConfig(id=site_t.int_("id", None, 0, 0xFFFF_FFFF, required=True) or 0,
                      name=site_t.req_str("name", _check_nonempty))
    site_t.done()

    agent_t = root.table("agent", required=False)
    agent = AgentSection(
        status_socket=agent_t.path_("status_socket", DEFAULT_STATUS_SOCKET) or DEFAULT_STATUS_SOCKET,
        flush_interval_ms=agent_t.req_int("flush_interval_ms", 1000, 50, 60_000),
        memory_max_mb=agent_t.req_int("memory_max_mb", 0, 0, 1 << 20))
    agent_t.done()

    spool_t = root.table("spool")
    spool_path = spool_t.path_("path", required=True)
    assert spool_path is not None
    segment_mb = spool_t.req_int("segment_mb", 16, 1, 1024)
    spool = SpoolConfig(
        path=spool_path, segment_mb=segment_mb,
        max_mb=_spool_max_mb(spool_t, "max_mb", 2048, segment_mb),
        max_age_seconds=spool_t.req_int("max_age_seconds", 35 * 86_400, 0, _YEARS_10),
        retain_sent_seconds=spool_t.req_int("retain_sent_seconds", 86_400, 0, _YEARS_10),
        commit_interval_ms=spool_t.req_int("commit_interval_ms", 1000, 0, 60_000),
        commit_kb=spool_t.req_int("commit_kb", 4096, 0, 1 << 20))
    spool_t.done()

    link_t = root.table("link")
    link = LinkConfig(target=link_t.req_str("target", _check_host_port),
                      rate_mbit=link_t.float_("rate_mbit", 100.0, 0.0, 100_000.0),
                      mtu=link_t.req_int("mtu", 1500, 576, 65_000),
                      key_file=_key_file(link_t),
                      repair_pct=link_t.float_("repair_pct", 5.0, 0.0, 100.0),
                      carousel_s=_carousel(link_t))
    link_t.done()

    sources: list[SourceConfig] = []
    seen_sources: dict[str, str] = {}
    for st in root.array("sources"):
        src = _source(st)
        if src.name in seen_sources:
            raise st.error("name", f"duplicate source name {src.name!r} (also {seen_sources[src.name]})")
        seen_sources[src.name] = st.path
        st.done()
        sources.append(src)

    def source_of(t: _Table) -> str:
        name = t.req_str("source")
        if name not in seen_sources:
            close = difflib.get_close_matches(name, list(seen_sources), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else \
                (" (no [[sources]] defined)" if not seen_sources else f" (sources: {', '.join(seen_sources)})")
            raise t.error("source", f"no source named {name!r}{hint}")
        return name

    tags: list[TagConfig] = []
    names: dict[str, str] = {}
    nodes: dict[tuple[str, str], str] = {}
    for tt in root.array("tags"):
        db = _deadbands(tt)
        tag = TagConfig(
            source=source_of(tt),
            node_id=tt.req_str("node_id", _check_node_id),
            name=tt.str_("name", check=_check_nonempty),
            unit=tt.str_("unit"),
            description=tt.str_("description"),
            sampling_interval_ms=tt.int_("sampling_interval_ms", None, 0, _MS_MAX),
            queue_size=tt.int_("queue_size", None, 1, 100_000),
            deadband_absolute=db[0], deadband_percent=db[1],
            mode=tt.str_("mode", "subscribe", check=_one_of(TAG_MODES)) or "subscribe",
            range_low=tt.opt_float("range_low", -1e300, 1e300),
            range_high=tt.opt_float("range_high", -1e300, 1e300),
            **_tag_compression(tt))
        if (tag.range_low is None) != (tag.range_high is None):
            raise tt.error("range_high" if tag.range_high is None else "range_low",
                           "range_low and range_high go together")
        if tag.range_low is not None and tag.range_high is not None and tag.range_low >= tag.range_high:
            raise tt.error("range_high", f"must be greater than range_low ({tag.range_low:g})")
        if tag.name is not None:
            if tag.name in names:
                raise tt.error("name", f"duplicate tag name {tag.name!r} (also {names[tag.name]})")
            names[tag.name] = tt.path
        key = (tag.source, tag.node_id)
        if key in nodes:
            raise tt.error("node_id", f"node {tag.node_id!r} of source {tag.source!r} is already "
                                      f"configured ({nodes[key]})")
        nodes[key] = tt.path
        tt.done()
        tags.append(tag)

    groups: list[TagGroupConfig] = []
    for gt in root.array("tag_groups"):
        gdb = _deadbands(gt)
        groups.append(TagGroupConfig(
            source=source_of(gt),
            browse_path=gt.req_str("browse_path", _check_nonempty),
            sampling_interval_ms=gt.int_("sampling_interval_ms", None, 0, _MS_MAX),
            queue_size=gt.int_("queue_size", None, 1, 100_000),
            deadband_absolute=gdb[0], deadband_percent=gdb[1],
            mode=gt.str_("mode", "subscribe", check=_one_of(TAG_MODES)) or "subscribe"))
        gt.done()

    if (tags or groups) and not sources:
        raise ctx.error("sources", "tags are configured but no [[sources]]")
    root.done()
    return AgentConfig(site=site, agent=agent, spool=spool, link=link, sources=sources, tags=tags,
                       tag_groups=groups, origin=ctx.origin)


def _receiver(root: _Table) -> ReceiverConfig:
    ctx = root.ctx
    site_t = root.table("site")
    site = ReceiverSiteConfig(name=site_t.req_str("name", _check_nonempty))
    site_t.done()
    rt = root.table("receiver")
    bind = rt.req_str("bind", _check_host_port)
    spool = rt.path_("spool", required=True)
    url = rt.str_("datasets", required=True)
    datasets: Path | str | None
    if url is not None and _URL_RE.match(url):
        if not _S3_URL_RE.match(url):
            raise rt.error("datasets", f"must be a directory or an s3://bucket[/prefix] URL, got {url!r}")
        datasets = url.rstrip("/")
    else:
        datasets = rt.path_("datasets", required=True)
    assert spool is not None and datasets is not None
    s3 = _s3_options(rt.table("s3", required=False))
    if s3 != S3Options() and not isinstance(datasets, str):
        raise rt.error("s3", "is only for an s3:// datasets URL")
    rx = ReceiverSection(bind=bind, spool=spool, datasets=datasets,
                         batch_seconds=rt.req_int("batch_seconds", 3600, 1, 7 * 86_400),
                         lateness_seconds=rt.float_("lateness_seconds", 60.0, 0.0, 86_400.0),
                         status_socket=rt.path_("status_socket"), s3=s3,
                         spool_retain_seconds=rt.req_int("spool_retain_seconds", IT_RETAIN_S, 0, _YEARS_10),
                         spool_max_mb=_spool_max_mb(rt, "spool_max_mb", 0, 16),
                         key_file=_key_file(rt))
    rt.done()
    root.done()
    return ReceiverConfig(site=site, receiver=rx, origin=ctx.origin)


_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_S3_URL_RE = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^/]+)*/?$")


def _s3_options(t: _Table) -> S3Options:
    endpoint = t.str_("endpoint", check=lambda s: None if re.match(r"^https?://[^/\s]+", s)
                      else f"must be an http:// or https:// URL, got {s!r}")
    region = t.str_("region", check=_check_nonempty)
    t.used.add("allow_http")
    allow_http = t.d.get("allow_http")
    if allow_http is not None and not isinstance(allow_http, bool):
        raise t.error("allow_http", f"must be true or false, got {_kind_name(allow_http)}")
    t.done()
    return S3Options(endpoint=endpoint, region=region, allow_http=allow_http)


# -- entry points ---------------------------------------------------------------------

_TOML_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")


def _read(path: str | Path) -> tuple[str, dict[str, Any], str, Path]:
    p = Path(path)
    origin = str(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(origin, "", "no such file") from None
    except IsADirectoryError:
        raise ConfigError(origin, "", "is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError(origin, "", "permission denied") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(origin, "", "not UTF-8 text", line) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _TOML_LINE.search(msg)
        at = int(m.group(1)) if m else None
        msg = _TOML_LINE.sub(f"(column {m.group(2)})" if m else "", msg).strip()
        raise ConfigError(origin, "", f"TOML syntax error: {msg}", at) from None
    return text, data, origin, p.resolve().parent


def load_agent_config(path: str | Path) -> AgentConfig:
    text, data, origin, base = _read(path)
    return _agent(_Table(_Ctx(origin, text, base), "", data))


def load_receiver_config(path: str | Path) -> ReceiverConfig:
    text, data, origin, base = _read(path)
    return _receiver(_Table(_Ctx(origin, text, base), "", data))


def agent_config_from_dict(d: Mapping[str, Any], origin: str = "<memory>",
                           base: Path | None = None) -> AgentConfig:
    """Validate an in-memory config (same schema as the TOML file)."""
    return _agent(_Table(_Ctx(origin, None, base), "", dict(d)))


def receiver_config_from_dict(d: Mapping[str, Any], origin: str = "<memory>",
                              base: Path | None = None) -> ReceiverConfig:
    return _receiver(_Table(_Ctx(origin, None, base), "", dict(d)))
