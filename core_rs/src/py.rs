//! The Python module `edge._core`: a thin layer over the plain Rust modules.
//! Stubs: edge/_core.pyi (checked by `python -m mypy.stubtest edge._core`).
//! Batch work runs with the GIL released; arrays cross as numpy buffers.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::codec::{self, lossy, CodecError as RsCodecError, Columns};
use crate::diode::{self, DiodeError};
use crate::frame::{self, FrameError as RsFrameError, FrameSpec, Kind};
use crate::spool::{self, SpoolError as RsSpoolError};

// The Python default for segment_bytes is spelled out in the signatures below.
const _: () = assert!(spool::DEFAULT_SEGMENT_BYTES == 16_777_216);

create_exception!(
    edge._core,
    FrameError,
    PyValueError,
    "A byte string that is not a valid frame (message names offset and field)."
);
create_exception!(
    edge._core,
    CodecError,
    PyValueError,
    "A DATA payload that cannot be decoded."
);
create_exception!(
    edge._core,
    SpoolError,
    PyOSError,
    "The spool directory or a segment in it cannot be used."
);

fn frame_err(e: RsFrameError) -> PyErr {
    FrameError::new_err(e.to_string())
}

fn codec_err(e: RsCodecError) -> PyErr {
    CodecError::new_err(e.to_string())
}

fn spool_err(e: RsSpoolError) -> PyErr {
    match e {
        RsSpoolError::Frame(f) => frame_err(f),
        RsSpoolError::Invalid(_) | RsSpoolError::BadCursorName(_) => {
            PyValueError::new_err(e.to_string())
        }
        other => SpoolError::new_err(other.to_string()),
    }
}

fn diode_err(e: DiodeError) -> PyErr {
    match e {
        DiodeError::Config(_) => PyValueError::new_err(e.to_string()),
        DiodeError::Io { .. } => PyOSError::new_err(e.to_string()),
        DiodeError::Spool(s) => spool_err(s),
    }
}

/// A non-negative, finite number of seconds.
fn seconds(name: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| {
        PyValueError::new_err(format!(
            "{name}: must be a finite number of seconds >= 0, got {s}"
        ))
    })
}

fn kind_of(kind: u8) -> PyResult<Kind> {
    Kind::from_u8(kind).ok_or_else(|| {
        FrameError::new_err(format!("frame: unknown kind {kind} (valid kinds are 1-6)"))
    })
}

fn stats_dict<'py>(py: Python<'py>, items: &[(&'static str, u64)]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in items {
        d.set_item(k, v)?;
    }
    Ok(d)
}

/// A parsed, CRC-verified frame.
#[pyclass(module = "edge._core", frozen, get_all)]
pub struct Frame {
    kind: u8,
    version: u8,
    site_id: u32,
    session_id: u64,
    seq: u64,
    t_first_ns: i64,
    t_last_ns: i64,
    payload: Py<PyBytes>,
}

#[pymethods]
impl Frame {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Frame(kind={}, site_id={}, session_id={:#018x}, seq={}, t_first_ns={}, t_last_ns={}, payload=<{} bytes>)",
            self.kind,
            self.site_id,
            self.session_id,
            self.seq,
            self.t_first_ns,
            self.t_last_ns,
            self.payload.bind(py).as_bytes().len()
        )
    }
}

#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn build_frame<'py>(
    py: Python<'py>,
    kind: u8,
    site_id: u32,
    session_id: u64,
    seq: u64,
    t_first_ns: i64,
    t_last_ns: i64,
    payload: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let spec = FrameSpec {
        kind: kind_of(kind)?,
        site_id,
        session_id,
        seq,
        t_first_ns,
        t_last_ns,
    };
    let out = py
        .detach(|| frame::build(&spec, payload))
        .map_err(frame_err)?;
    Ok(PyBytes::new(py, &out))
}

#[pyfunction]
fn parse_frame(py: Python<'_>, data: &[u8]) -> PyResult<Frame> {
    let (h, range) = py
        .detach(|| {
            frame::parse(data).map(|f| {
                (
                    f.header,
                    frame::HEADER_LEN..frame::HEADER_LEN + f.payload.len(),
                )
            })
        })
        .map_err(frame_err)?;
    Ok(Frame {
        kind: h.kind as u8,
        version: h.version,
        site_id: h.site_id,
        session_id: h.session_id,
        seq: h.seq,
        t_first_ns: h.t_first_ns,
        t_last_ns: h.t_last_ns,
        payload: PyBytes::new(py, &data[range]).unbind(),
    })
}

/// A contiguous view of a 1-D array, copying only if it is strided.
fn slice<'a, T: numpy::Element + Copy>(a: &'a PyReadonlyArray1<'_, T>) -> Cow<'a, [T]> {
    match a.as_slice() {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(a.as_array().iter().copied().collect()),
    }
}

/// A chunk's six numpy columns as slices (borrowed, or copied when an array
/// is not contiguous), so the GIL-free codec can take them as `Columns`.
struct ChunkSlices<'a> {
    tag: Cow<'a, [u32]>,
    source_ns: Cow<'a, [i64]>,
    server_ns: Cow<'a, [i64]>,
    status: Cow<'a, [u32]>,
    value_bits: Cow<'a, [u64]>,
    flags: Cow<'a, [u8]>,
}

impl<'a> ChunkSlices<'a> {
    fn new(
        tag: &'a PyReadonlyArray1<'_, u32>,
        source_ns: &'a PyReadonlyArray1<'_, i64>,
        server_ns: &'a PyReadonlyArray1<'_, i64>,
        status: &'a PyReadonlyArray1<'_, u32>,
        value_bits: &'a PyReadonlyArray1<'_, u64>,
        flags: &'a PyReadonlyArray1<'_, u8>,
    ) -> Self {
        ChunkSlices {
            tag: slice(tag),
            source_ns: slice(source_ns),
            server_ns: slice(server_ns),
            status: slice(status),
            value_bits: slice(value_bits),
            flags: slice(flags),
        }
    }

    fn columns<'s>(&'s self, strings: &'s [String]) -> Columns<'s> {
        Columns {
            tag: &self.tag,
            source_ns: &self.source_ns,
            server_ns: &self.server_ns,
            status: &self.status,
            value_bits: &self.value_bits,
            flags: &self.flags,
            strings,
        }
    }
}

#[pyfunction]
#[pyo3(signature = (tag, source_ns, server_ns, status, value_bits, flags, strings, kinds=None))]
#[allow(clippy::too_many_arguments)]
fn encode_chunk<'py>(
    py: Python<'py>,
    tag: PyReadonlyArray1<'py, u32>,
    source_ns: PyReadonlyArray1<'py, i64>,
    server_ns: PyReadonlyArray1<'py, i64>,
    status: PyReadonlyArray1<'py, u32>,
    value_bits: PyReadonlyArray1<'py, u64>,
    flags: PyReadonlyArray1<'py, u8>,
    strings: Vec<String>,
    kinds: Option<PyReadonlyArray1<'py, u8>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let kinds = kinds.as_ref().map(slice);
    let kinds: &[u8] = kinds.as_deref().unwrap_or(&[]);
    let arrays = ChunkSlices::new(&tag, &source_ns, &server_ns, &status, &value_bits, &flags);
    let cols = arrays.columns(&strings);
    let out = py
        .detach(|| codec::encode_typed(&cols, kinds))
        .map_err(codec_err)?;
    Ok(PyBytes::new(py, &out))
}

type ChunkArrays<'py> = (
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyArray1<u64>>,
    Bound<'py, PyArray1<u8>>,
    Bound<'py, PyList>,
);

fn chunk_arrays(py: Python<'_>, c: codec::Chunk) -> PyResult<ChunkArrays<'_>> {
    Ok((
        PyArray1::from_vec(py, c.tag),
        PyArray1::from_vec(py, c.source_ns),
        PyArray1::from_vec(py, c.server_ns),
        PyArray1::from_vec(py, c.status),
        PyArray1::from_vec(py, c.value_bits),
        PyArray1::from_vec(py, c.flags),
        PyList::new(py, c.strings)?,
    ))
}

#[pyfunction]
fn decode_chunk<'py>(py: Python<'py>, payload: &[u8]) -> PyResult<ChunkArrays<'py>> {
    let c = py.detach(|| codec::decode(payload)).map_err(codec_err)?;
    chunk_arrays(py, c)
}

/// Per-tag exception deviation + swinging door (codec::lossy), stateful
/// across flush windows.
#[pyclass(module = "edge._core", name = "LossyFilter")]
pub struct PyLossyFilter {
    inner: lossy::Filter,
}

#[pymethods]
impl PyLossyFilter {
    #[new]
    fn new() -> Self {
        PyLossyFilter {
            inner: lossy::Filter::new(),
        }
    }

    #[pyo3(signature = (tag, kind, max_error, exception_deviation=0.0, swinging_door=true, max_hold_s=60.0))]
    fn configure(
        &mut self,
        tag: u32,
        kind: u8,
        max_error: f64,
        exception_deviation: f64,
        swinging_door: bool,
        max_hold_s: f64,
    ) -> PyResult<()> {
        let bound = lossy::Bound {
            kind,
            max_error,
            exception_deviation,
            swinging_door,
            max_hold_ns: (max_hold_s * 1e9) as i64,
        };
        self.inner.configure(tag, Some(bound)).map_err(codec_err)
    }

    fn clear(&mut self, tag: u32) -> PyResult<()> {
        self.inner.configure(tag, None).map_err(codec_err)
    }

    #[allow(clippy::too_many_arguments)]
    fn apply<'py>(
        &mut self,
        py: Python<'py>,
        tag: PyReadonlyArray1<'py, u32>,
        source_ns: PyReadonlyArray1<'py, i64>,
        server_ns: PyReadonlyArray1<'py, i64>,
        status: PyReadonlyArray1<'py, u32>,
        value_bits: PyReadonlyArray1<'py, u64>,
        flags: PyReadonlyArray1<'py, u8>,
        strings: Vec<String>,
        now_ns: i64,
    ) -> PyResult<ChunkArrays<'py>> {
        let arrays = ChunkSlices::new(&tag, &source_ns, &server_ns, &status, &value_bits, &flags);
        let cols = arrays.columns(&strings);
        let inner = &mut self.inner;
        let c = py
            .detach(|| inner.apply(&cols, now_ns))
            .map_err(codec_err)?;
        chunk_arrays(py, c)
    }

    fn flush_all<'py>(&mut self, py: Python<'py>) -> PyResult<ChunkArrays<'py>> {
        let c = self.inner.flush_all();
        chunk_arrays(py, c)
    }

    fn pending(&self) -> usize {
        self.inner.pending()
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(
            py,
            &[
                ("samples_in", self.inner.samples_in),
                ("samples_kept", self.inner.samples_kept),
                ("pending", self.inner.pending() as u64),
            ],
        )
    }
}

/// The crash-safe frame log (see docs/format.md, "Spool").
#[pyclass(module = "edge._core", name = "Spool", frozen)]
pub struct PySpool {
    inner: Arc<spool::Spool>,
}

#[pymethods]
impl PySpool {
    #[new]
    #[pyo3(signature = (path, site_id, session_id=None, segment_bytes=16_777_216, *,
                        max_bytes=0, max_age_s=0.0, retain_released_s=0.0,
                        release_cursor=None, commit_interval_s=0.0, commit_bytes=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        site_id: u32,
        session_id: Option<u64>,
        segment_bytes: u64,
        max_bytes: u64,
        max_age_s: f64,
        retain_released_s: f64,
        release_cursor: Option<String>,
        commit_interval_s: f64,
        commit_bytes: u64,
    ) -> PyResult<Self> {
        let opts = spool::SpoolOptions {
            segment_bytes,
            max_bytes,
            max_age: seconds("max_age_s", max_age_s)?,
            retain_released: seconds("retain_released_s", retain_released_s)?,
            release_cursor,
            commit_interval: seconds("commit_interval_s", commit_interval_s)?,
            commit_bytes,
        };
        let sp = py
            .detach(|| -> spool::Result<Arc<spool::Spool>> {
                let sp = Arc::new(spool::Spool::open_with(&path, site_id, session_id, opts)?);
                sp.start_group_commit()?;
                Ok(sp)
            })
            .map_err(spool_err)?;
        Ok(PySpool { inner: sp })
    }

    /// Construction happens in `__new__`; this mirrors its signature so the
    /// stub's `__init__` is true at runtime.
    #[pyo3(signature = (path, site_id, session_id=None, segment_bytes=16_777_216, *,
                        max_bytes=0, max_age_s=0.0, retain_released_s=0.0,
                        release_cursor=None, commit_interval_s=0.0, commit_bytes=0))]
    #[allow(unused_variables, clippy::too_many_arguments)]
    fn __init__(
        &self,
        path: PathBuf,
        site_id: u32,
        session_id: Option<u64>,
        segment_bytes: u64,
        max_bytes: u64,
        max_age_s: f64,
        retain_released_s: f64,
        release_cursor: Option<String>,
        commit_interval_s: f64,
        commit_bytes: u64,
    ) {
    }

    #[getter]
    fn session_id(&self) -> u64 {
        self.inner.session_id()
    }

    #[getter]
    fn site_id(&self) -> u32 {
        self.inner.site_id()
    }

    fn append(
        &self,
        py: Python<'_>,
        kind: u8,
        t_first_ns: i64,
        t_last_ns: i64,
        payload: &[u8],
    ) -> PyResult<u64> {
        let kind = kind_of(kind)?;
        py.detach(|| self.inner.append(kind, t_first_ns, t_last_ns, payload))
            .map_err(spool_err)
    }

    fn append_frame(&self, py: Python<'_>, frame: &[u8]) -> PyResult<bool> {
        py.detach(|| self.inner.append_frame(frame))
            .map_err(spool_err)
    }

    fn commit(&self, py: Python<'_>) -> PyResult<u64> {
        py.detach(|| self.inner.commit()).map_err(spool_err)
    }

    #[pyo3(signature = (from_lsn, max_frames=1024))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        from_lsn: u64,
        max_frames: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let frames = py
            .detach(|| self.inner.read(from_lsn, max_frames))
            .map_err(spool_err)?;
        PyList::new(py, frames.iter().map(|f| PyBytes::new(py, f)))
    }

    /// Block (GIL released) until record `lsn` is durable: True, or False
    /// after `timeout` seconds. See the stub for the asyncio recipe.
    #[pyo3(signature = (lsn, timeout=None))]
    fn wait_durable(&self, py: Python<'_>, lsn: u64, timeout: Option<f64>) -> PyResult<bool> {
        let t = timeout.map(|t| seconds("timeout", t)).transpose()?;
        py.detach(|| self.inner.wait_durable(lsn, t))
            .map_err(spool_err)
    }

    #[pyo3(signature = (from_lsn, max_frames=1024))]
    fn read_entries<'py>(
        &self,
        py: Python<'py>,
        from_lsn: u64,
        max_frames: usize,
    ) -> PyResult<(Bound<'py, PyList>, u64)> {
        let (entries, next) = py
            .detach(|| self.inner.read_entries(from_lsn, max_frames))
            .map_err(spool_err)?;
        let list = PyList::empty(py);
        for (lsn, f) in &entries {
            list.append((lsn, PyBytes::new(py, f)))?;
        }
        Ok((list, next))
    }

    fn lsn_range_for_time(
        &self,
        py: Python<'_>,
        t_first_ns: i64,
        t_last_ns: i64,
    ) -> PyResult<Option<(u64, u64)>> {
        py.detach(|| self.inner.lsn_range_for_time(t_first_ns, t_last_ns))
            .map_err(spool_err)
    }

    fn first_lsn(&self) -> u64 {
        self.inner.first_lsn()
    }

    fn next_lsn(&self) -> u64 {
        self.inner.next_lsn()
    }

    fn durable_lsn(&self) -> u64 {
        self.inner.durable_lsn()
    }

    fn get_cursor(&self, py: Python<'_>, name: &str) -> PyResult<u64> {
        py.detach(|| self.inner.get_cursor(name)).map_err(spool_err)
    }

    fn set_cursor(&self, py: Python<'_>, name: &str, lsn: u64) -> PyResult<()> {
        py.detach(|| self.inner.set_cursor(name, lsn))
            .map_err(spool_err)
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, &self.inner.stats().items())
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.close()).map_err(spool_err)
    }

    fn __repr__(&self) -> String {
        format!(
            "Spool({:?}, site_id={})",
            self.inner.dir().display().to_string(),
            self.inner.site_id()
        )
    }
}

/// Sends durable spool frames over UDP from a background thread.
#[pyclass(module = "edge._core", name = "DiodeSender", frozen)]
pub struct PyDiodeSender {
    inner: diode::DiodeSender,
}

#[pymethods]
impl PyDiodeSender {
    #[new]
    #[pyo3(signature = (spool, target, rate_bps, mtu=1500, *, key_file=None, repair_pct=5.0,
                        carousel_s=None, heartbeat_s=1.0, manifest_s=60.0,
                        interleave_s=1.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        spool: &PySpool,
        target: &str,
        rate_bps: u64,
        mtu: usize,
        key_file: Option<PathBuf>,
        repair_pct: f64,
        carousel_s: Option<Vec<f64>>,
        heartbeat_s: f64,
        manifest_s: f64,
        interleave_s: f64,
    ) -> PyResult<Self> {
        let secs = |name: &str, v: f64| {
            Duration::try_from_secs_f64(v).map_err(|_| {
                PyValueError::new_err(format!("diode: {name} {v} is not a duration in seconds"))
            })
        };
        let mut opts = diode::SenderOptions::new(rate_bps, mtu);
        opts.repair_pct = repair_pct;
        if let Some(c) = carousel_s {
            opts.carousel = c
                .iter()
                .map(|&v| secs("carousel_s", v))
                .collect::<PyResult<_>>()?;
        }
        opts.heartbeat = secs("heartbeat_s", heartbeat_s)?;
        opts.manifest = secs("manifest_s", manifest_s)?;
        opts.interleave = secs("interleave_s", interleave_s)?;
        if let Some(k) = key_file {
            opts.keys = diode::LinkKeys::load(&k).map_err(PyValueError::new_err)?;
        }
        let sp = spool.inner.clone();
        let inner = py
            .detach(|| diode::DiodeSender::start_with(sp, target, opts))
            .map_err(diode_err)?;
        Ok(PyDiodeSender { inner })
    }

    #[pyo3(signature = (spool, target, rate_bps, mtu=1500, *, key_file=None, repair_pct=5.0,
                        carousel_s=None, heartbeat_s=1.0, manifest_s=60.0,
                        interleave_s=1.0))]
    #[allow(unused_variables, clippy::too_many_arguments)]
    fn __init__(
        &self,
        spool: &PySpool,
        target: &str,
        rate_bps: u64,
        mtu: usize,
        key_file: Option<PathBuf>,
        repair_pct: f64,
        carousel_s: Option<Vec<f64>>,
        heartbeat_s: f64,
        manifest_s: f64,
        interleave_s: f64,
    ) {
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, &self.inner.stats().items())
    }

    fn idle(&self) -> bool {
        self.inner.idle()
    }

    fn resend(&self, lsn_first: u64, lsn_end: u64) -> Option<(u64, u64)> {
        self.inner.resend(lsn_first, lsn_end)
    }

    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.stop()).map_err(diode_err)
    }
}

/// Receives authenticated FEC packets into a spool from background threads.
#[pyclass(module = "edge._core", name = "DiodeReceiver", frozen)]
pub struct PyDiodeReceiver {
    inner: diode::DiodeReceiver,
}

#[pymethods]
impl PyDiodeReceiver {
    #[new]
    #[pyo3(signature = (bind, spool, mtu=1500, *, key_file=None, ledger=None))]
    fn new(
        py: Python<'_>,
        bind: &str,
        spool: &PySpool,
        mtu: usize,
        key_file: Option<PathBuf>,
        ledger: Option<PathBuf>,
    ) -> PyResult<Self> {
        let mut opts = diode::ReceiverOptions::new(mtu);
        if let Some(k) = key_file {
            opts.keys = diode::LinkKeys::load(&k).map_err(PyValueError::new_err)?;
        }
        opts.ledger = ledger;
        let sp = spool.inner.clone();
        let inner = py
            .detach(|| diode::DiodeReceiver::start_with(bind, sp, opts))
            .map_err(diode_err)?;
        Ok(PyDiodeReceiver { inner })
    }

    #[pyo3(signature = (bind, spool, mtu=1500, *, key_file=None, ledger=None))]
    #[allow(unused_variables)]
    fn __init__(
        &self,
        bind: &str,
        spool: &PySpool,
        mtu: usize,
        key_file: Option<PathBuf>,
        ledger: Option<PathBuf>,
    ) {
    }

    /// Seq ranges (first, last) sent but not received (yet).
    fn missing(&self) -> Vec<(u64, u64)> {
        self.inner.missing()
    }

    #[getter]
    fn local_addr(&self) -> String {
        self.inner.local_addr().to_string()
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, &self.inner.stats().items())
    }

    fn stop(&self, py: Python<'_>) {
        py.detach(|| self.inner.stop())
    }
}

/// Write a new random link key to `path` (mode 0600; an existing file is kept).
#[pyfunction]
fn keygen(path: PathBuf) -> PyResult<()> {
    diode::auth::generate_key_file(&path).map_err(PyOSError::new_err)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("FORMAT_VERSION", frame::FORMAT_VERSION)?;
    m.add("HEADER_LEN", frame::HEADER_LEN)?;
    m.add("FRAME_DATA", Kind::Data as u8)?;
    m.add("FRAME_META", Kind::Meta as u8)?;
    m.add("FRAME_GAP", Kind::Gap as u8)?;
    m.add("FRAME_HEARTBEAT", Kind::Heartbeat as u8)?;
    m.add("FRAME_MANIFEST", Kind::Manifest as u8)?;
    m.add("FRAME_EVENT", Kind::Event as u8)?;
    m.add("FrameError", py.get_type::<FrameError>())?;
    m.add("CodecError", py.get_type::<CodecError>())?;
    m.add("SpoolError", py.get_type::<SpoolError>())?;
    m.add_class::<Frame>()?;
    m.add_class::<PySpool>()?;
    m.add_class::<PyDiodeSender>()?;
    m.add_class::<PyDiodeReceiver>()?;
    m.add_class::<PyLossyFilter>()?;
    m.add_function(wrap_pyfunction!(build_frame, m)?)?;
    m.add_function(wrap_pyfunction!(parse_frame, m)?)?;
    m.add_function(wrap_pyfunction!(encode_chunk, m)?)?;
    m.add_function(wrap_pyfunction!(decode_chunk, m)?)?;
    m.add_function(wrap_pyfunction!(keygen, m)?)?;
    // pyo3 fills __all__; the stub (the contract) has none, so drop it.
    m.delattr("__all__")?;
    Ok(())
}
