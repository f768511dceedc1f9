//! Named cursors: one small text file per cursor under `<spool>/cursors/`,
//! replaced atomically (write temp, fsync, rename, fsync dir) so a crash leaves
//! either the old or the new value, never a torn one.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::Path;

use super::SpoolError;

pub const CURSOR_DIR: &str = "cursors";
const MAX_NAME: usize = 64;

pub fn check_name(name: &str) -> Result<(), SpoolError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SpoolError::BadCursorName(name.to_owned()))
    }
}

/// Sync a directory so a rename or create in it survives power loss.
pub fn fsync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SpoolError::io(format!("fsync directory {}", dir.display()), e))
}

/// Atomically replace `path` with `contents`.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), SpoolError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| SpoolError::io(format!("write {}", path.display()), e))?;
    fsync_dir(dir)
}

pub fn read(dir: &Path, name: &str) -> Result<u64, SpoolError> {
    check_name(name)?;
    let path = dir.join(CURSOR_DIR).join(name);
    match fs::read_to_string(&path) {
        Ok(s) => s.trim().parse().map_err(|_| SpoolError::BadCursorFile {
            path: path.display().to_string(),
            content: s.chars().take(40).collect(),
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(0),
        Err(e) => Err(SpoolError::io(format!("read cursor {}", path.display()), e)),
    }
}

pub fn write(dir: &Path, name: &str, value: u64) -> Result<(), SpoolError> {
    check_name(name)?;
    write_atomic(
        &dir.join(CURSOR_DIR).join(name),
        format!("{value}\n").as_bytes(),
    )
}
