//! Limits on sizes read from untrusted files, and reading under them.

use std::io::Read;
use std::path::Path;

use crate::DataError;

/// Largest payload (decompressed bytes) one array or file may hold: 4 GiB.
/// Sizes in headers are checked against it before anything is allocated.
pub const MAX_DATA_BYTES: u64 = 4 << 30;

/// Largest width or height of an image in an image-folder dataset.
pub const MAX_IMAGE_SIDE: u32 = 16384;

/// First allocation when reading a stream whose claimed size is untrusted:
/// the buffer grows with the bytes that actually arrive, so a header that
/// lies about its size cannot make us allocate more than the file holds.
const INITIAL_CAPACITY: u64 = 16 << 20;

/// Reads exactly `expected` bytes from `r`, failing with a clear message if
/// the stream is shorter or longer (`what` names the payload in errors).
pub(crate) fn read_exact_payload(
    r: &mut impl Read,
    expected: u64,
    path: &Path,
    what: &str,
) -> Result<Vec<u8>, DataError> {
    if expected > MAX_DATA_BYTES {
        return Err(DataError::format(
            path,
            format!("{what} would be {expected} bytes, over the {MAX_DATA_BYTES}-byte limit"),
        ));
    }
    let mut buf = Vec::with_capacity(expected.min(INITIAL_CAPACITY) as usize);
    r.take(expected + 1)
        .read_to_end(&mut buf)
        .map_err(|e| DataError::format(path, format!("cannot read {what}: {e}")))?;
    let got = buf.len() as u64;
    if got < expected {
        return Err(DataError::format(
            path,
            format!("truncated: {what} needs {expected} bytes, the file has {got}"),
        ));
    }
    if got > expected {
        return Err(DataError::format(
            path,
            format!("has bytes after its {what} ({expected} bytes expected)"),
        ));
    }
    Ok(buf)
}

/// Reads a whole stream of at most `limit` bytes.
pub(crate) fn read_to_end_limited(
    r: &mut impl Read,
    limit: u64,
    path: &Path,
    what: &str,
) -> Result<Vec<u8>, DataError> {
    let mut buf = Vec::new();
    r.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| DataError::format(path, format!("cannot read {what}: {e}")))?;
    if buf.len() as u64 > limit {
        return Err(DataError::format(
            path,
            format!("{what} is over the {limit}-byte limit"),
        ));
    }
    Ok(buf)
}
