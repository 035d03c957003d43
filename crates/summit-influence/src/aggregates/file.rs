//! The aggregate file format: magic, version, payload length and checksum, then the
//! zlib-compressed bincode payload, written atomically (`summit_io`) and checked on load.

use super::*;

impl Aggregates {
    /// Writes the aggregates to `path` atomically (a temporary file in the
    /// same directory, synced, then renamed over `path`).
    ///
    /// Format: the 8-byte magic [`AGGREGATES_MAGIC`], the format version
    /// ([`AGGREGATES_FORMAT_VERSION`], u32 little-endian), the payload length
    /// (u64 LE), an FNV-1a 64 checksum of the payload (u64 LE), then the
    /// payload: this value encoded with bincode 2 (serde, standard config; influence rows as
    /// varint gaps and counts), zlib-compressed.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), InfluenceError> {
        use std::io::{Seek, SeekFrom};
        let path = path.as_ref();
        let io = |source: std::io::Error| InfluenceError::Io {
            path: path.to_path_buf(),
            source,
        };
        let from_io = |e: summit_io::IoError| InfluenceError::Io {
            path: e.path,
            source: e.source,
        };
        let mut tmp = summit_io::AtomicFile::create(path).map_err(from_io)?;
        // the header's length and checksum are filled in once the payload is written: the
        // payload streams from the encoder through zlib into the file, never held whole
        tmp.write_all(&[0u8; HEADER_LEN]).map_err(io)?;
        let mut sink = HashingWriter {
            inner: std::io::BufWriter::new(tmp.file_mut()),
            hash: FNV_OFFSET,
            len: 0,
        };
        {
            let mut z = flate2::write::ZlibEncoder::new(&mut sink, flate2::Compression::default());
            bincode::serde::encode_into_std_write(self, &mut z, bincode::config::standard())
                .map_err(|e| InfluenceError::Format {
                    path: path.to_path_buf(),
                    reason: format!("cannot encode: {e}"),
                })?;
            z.finish().map_err(io)?;
        }
        let (hash, len) = (sink.hash, sink.len);
        sink.inner.flush().map_err(io)?;
        drop(sink);
        let file = tmp.file_mut();
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(&AGGREGATES_MAGIC).map_err(io)?;
        file.write_all(&AGGREGATES_FORMAT_VERSION.to_le_bytes())
            .map_err(io)?;
        file.write_all(&len.to_le_bytes()).map_err(io)?;
        file.write_all(&hash.to_le_bytes()).map_err(io)?;
        tmp.commit(true).map_err(from_io)
    }

    /// Reads aggregates written by [`save`](Self::save). A file with another
    /// magic or format version, a truncated, extended or corrupt file, or
    /// contents that contradict their own parameters give a
    /// [`InfluenceError::Format`] naming the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, InfluenceError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| InfluenceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let fail = |reason: String| InfluenceError::Format {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.len() < 8 || bytes[..8] != AGGREGATES_MAGIC {
            return Err(fail(
                "not a summit-rs aggregate file (wrong magic bytes)".into(),
            ));
        }
        if bytes.len() < HEADER_LEN {
            return Err(fail(format!(
                "truncated: {} bytes, shorter than the {HEADER_LEN}-byte header",
                bytes.len()
            )));
        }
        let u32_at =
            |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let u64_at = |o: usize| u64::from(u32_at(o)) | (u64::from(u32_at(o + 4)) << 32);
        let version = u32_at(8);
        if version != AGGREGATES_FORMAT_VERSION {
            return Err(fail(format!(
                "format version {version}, but this build reads version {AGGREGATES_FORMAT_VERSION}"
            )));
        }
        let declared = u64_at(12);
        let checksum = u64_at(20);
        let payload = &bytes[HEADER_LEN..];
        if (payload.len() as u64) < declared {
            return Err(fail(format!(
                "truncated: the header declares {declared} payload bytes, the file holds {}",
                payload.len()
            )));
        }
        if payload.len() as u64 > declared {
            return Err(fail(format!(
                "{} unexpected bytes after the declared {declared}-byte payload",
                payload.len() as u64 - declared
            )));
        }
        if fnv1a64(payload) != checksum {
            return Err(fail("corrupt: payload checksum mismatch".into()));
        }
        let mut z = flate2::read::ZlibDecoder::new(payload);
        let value: Aggregates =
            bincode::serde::decode_from_std_read(&mut z, bincode::config::standard())
                .map_err(|e| fail(format!("corrupt payload: {e}")))?;
        let mut rest = [0u8; 1];
        match std::io::Read::read(&mut z, &mut rest) {
            Ok(0) => {}
            Ok(_) => return Err(fail("corrupt payload: bytes left undecoded".into())),
            Err(e) => return Err(fail(format!("corrupt compressed payload: {e}"))),
        }
        value
            .check_consistency()
            .map_err(|e| fail(format!("inconsistent contents: {e}")))?;
        Ok(value)
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, 64 bit, continued from `h`.
fn fnv1a64_from(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// FNV-1a, 64 bit.
fn fnv1a64(data: &[u8]) -> u64 {
    fnv1a64_from(FNV_OFFSET, data)
}

/// Passes bytes on, counting them and hashing them (FNV-1a).
struct HashingWriter<W> {
    inner: W,
    hash: u64,
    len: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash = fnv1a64_from(self.hash, &buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
