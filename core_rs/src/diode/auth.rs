//! Link authentication: one 32-byte pre-shared key per link, from a key file
//! that only its owner may read. Two subkeys are derived from it (BLAKE3
//! derive_key): one for the truncated 8-byte tag on every packet (forged or
//! corrupted packets are dropped before FEC), one for the full 16-byte tag on
//! every decoded frame.

use std::fs;
use std::io::Write;
use std::path::Path;

pub const KEY_LEN: usize = 32;
pub const PACKET_TAG_LEN: usize = 8;
pub const FRAME_TAG_LEN: usize = 16;
const PACKET_CONTEXT: &str = "tidegate 2026 diode packet tag v2";
const FRAME_CONTEXT: &str = "tidegate 2026 diode frame tag v2";

#[derive(Clone)]
pub struct LinkKeys {
    packet: [u8; KEY_LEN],
    frame: [u8; KEY_LEN],
    /// False for the built-in public key (integrity only, no authentication).
    pub authenticated: bool,
}

impl LinkKeys {
    pub fn from_master(master: &[u8; KEY_LEN]) -> Self {
        LinkKeys {
            packet: blake3::derive_key(PACKET_CONTEXT, master),
            frame: blake3::derive_key(FRAME_CONTEXT, master),
            authenticated: true,
        }
    }

    /// The well-known all-zero master key: tags still catch corruption, but
    /// anyone can forge them. Used only when no key file is configured.
    pub fn unauthenticated() -> Self {
        LinkKeys {
            authenticated: false,
            ..Self::from_master(&[0u8; KEY_LEN])
        }
    }

    /// Read a key file written by `generate_key_file`: 64 hex digits and a newline.
    pub fn load(path: &Path) -> Result<Self, String> {
        let where_ = path.display();
        let meta = fs::metadata(path).map_err(|e| format!("key file {where_}: {e}"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(format!(
                    "key file {where_}: permissions {mode:04o} are too open (others can read the link key); run chmod 600"
                ));
            }
        }
        if !meta.is_file() {
            return Err(format!("key file {where_}: not a regular file"));
        }
        let text = fs::read_to_string(path).map_err(|e| format!("key file {where_}: {e}"))?;
        let master = parse_hex_key(text.trim())
            .ok_or_else(|| format!("key file {where_}: expected {} hex digits", 2 * KEY_LEN))?;
        Ok(Self::from_master(&master))
    }

    pub fn packet_tag(&self, parts: &[&[u8]]) -> [u8; PACKET_TAG_LEN] {
        let mut h = blake3::Hasher::new_keyed(&self.packet);
        for p in parts {
            h.update(p);
        }
        let mut out = [0u8; PACKET_TAG_LEN];
        out.copy_from_slice(&h.finalize().as_bytes()[..PACKET_TAG_LEN]);
        out
    }

    pub fn frame_tag(&self, frame: &[u8]) -> [u8; FRAME_TAG_LEN] {
        let mut out = [0u8; FRAME_TAG_LEN];
        out.copy_from_slice(&blake3::keyed_hash(&self.frame, frame).as_bytes()[..FRAME_TAG_LEN]);
        out
    }
}

/// Constant-time comparison (no early exit an attacker could time).
pub fn tags_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_hex_key(s: &str) -> Option<[u8; KEY_LEN]> {
    if s.len() != 2 * KEY_LEN || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; KEY_LEN];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Write a fresh random key to `path` (mode 0600, never overwriting a file).
pub fn generate_key_file(path: &Path) -> Result<(), String> {
    let mut key = [0u8; KEY_LEN];
    getrandom::fill(&mut key).map_err(|e| format!("cannot get random bytes: {e}"))?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let where_ = path.display();
    let mut f = opts
        .open(path)
        .map_err(|e| format!("key file {where_}: {e}"))?;
    let written = f
        .write_all(format!("{hex}\n").as_bytes())
        .and_then(|_| f.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(path);
        return Err(format!("key file {where_}: {e}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_load_and_permissions() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("link.key");
        generate_key_file(&p).unwrap();
        assert!(generate_key_file(&p).unwrap_err().contains("exists"));
        let k = LinkKeys::load(&p).unwrap();
        assert!(k.authenticated);
        let other = LinkKeys::unauthenticated();
        assert_ne!(k.packet_tag(&[b"x"]), other.packet_tag(&[b"x"]));
        assert_eq!(k.packet_tag(&[b"ab", b"c"]), k.packet_tag(&[b"abc"]));
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        let e = LinkKeys::load(&p).err().unwrap();
        assert!(e.contains("permissions 0644 are too open"), "{e}");
        let bad = d.path().join("bad.key");
        fs::write(&bad, "abcd\n").unwrap();
        fs::set_permissions(&bad, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(LinkKeys::load(&bad)
            .err()
            .unwrap()
            .contains("64 hex digits"));
        assert!(tags_equal(b"abc", b"abc") && !tags_equal(b"abc", b"abd"));
    }
}
