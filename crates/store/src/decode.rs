//! Bounds-checked decoding of the pieces of a block read from the bucket: series
//! entries, postings lists and chunk records (tsdb-formats.md §2.3, §2.5, §3.1).
//! Every read goes through [`Dec`], so malformed input is an error, never a panic.

use bytes::Bytes;
use strata_chunkenc::{Encoding, RawChunk};
use strata_model::{Label, Labels};
use strata_tsdb::index::ChunkRef;

/// Why a decode failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The data ended early.
    Short,
    /// A varint is longer than 10 bytes or overflows.
    Overflow,
    /// A string is not UTF-8.
    Utf8,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DecodeError::Short => "unexpected end of data",
            DecodeError::Overflow => "varint overflows",
            DecodeError::Utf8 => "string is not valid UTF-8",
        })
    }
}

pub(crate) type DResult<T> = std::result::Result<T, DecodeError>;

/// A cursor over a byte slice.
pub(crate) struct Dec<'a> {
    b: &'a [u8],
}

impl<'a> Dec<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Self { b }
    }

    /// Bytes left.
    pub(crate) fn len(&self) -> usize {
        self.b.len()
    }

    pub(crate) fn bytes(&mut self, n: usize) -> DResult<&'a [u8]> {
        let out = self.b.get(..n).ok_or(DecodeError::Short)?;
        self.b = &self.b[n..];
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> DResult<u8> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn be32(&mut self) -> DResult<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn be64(&mut self) -> DResult<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    pub(crate) fn uvarint(&mut self) -> DResult<u64> {
        let mut x: u64 = 0;
        let mut s = 0u32;
        for i in 0..10 {
            let b = *self.b.get(i).ok_or(DecodeError::Short)?;
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return Err(DecodeError::Overflow);
                }
                self.b = &self.b[i + 1..];
                return Ok(x | (u64::from(b) << s));
            }
            x |= u64::from(b & 0x7f) << s;
            s += 7;
        }
        Err(DecodeError::Overflow)
    }

    pub(crate) fn varint(&mut self) -> DResult<i64> {
        let ux = self.uvarint()?;
        let x = (ux >> 1) as i64;
        Ok(if ux & 1 != 0 { !x } else { x })
    }

    pub(crate) fn uvarint_str(&mut self) -> DResult<&'a str> {
        let n = usize::try_from(self.uvarint()?).map_err(|_| DecodeError::Overflow)?;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| DecodeError::Utf8)
    }
}

/// CRC32 Castagnoli, as every checksum of the TSDB formats.
pub(crate) fn crc32(b: &[u8]) -> u32 {
    crc32c::crc32c(b)
}

/// A series entry decoded from the index, with symbol references resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Series {
    pub labels: Labels,
    pub chunks: Vec<ChunkRef>,
}

/// How long the series entry at the start of `b` is in total (length varint,
/// body and CRC), when the length varint itself is complete.
pub(crate) fn series_entry_len(b: &[u8]) -> DResult<usize> {
    let mut d = Dec::new(b);
    let n = usize::try_from(d.uvarint()?).map_err(|_| DecodeError::Overflow)?;
    let hdr = b.len() - d.len();
    hdr.checked_add(n)
        .and_then(|x| x.checked_add(4))
        .ok_or(DecodeError::Overflow)
}

/// Decodes the series entry at the start of `b` (`len uvarint | body | CRC32C`),
/// resolving symbol ordinals with `symbol`.
pub(crate) fn decode_series<'s>(
    b: &[u8],
    symbol: impl Fn(u32) -> Result<&'s str, String>,
) -> Result<Series, String> {
    let mut d = Dec::new(b);
    let e = |e: DecodeError| e.to_string();
    let len = usize::try_from(d.uvarint().map_err(e)?).map_err(|_| "length overflows")?;
    let body = d.bytes(len).map_err(e)?;
    let want = d.be32().map_err(e)?;
    if crc32(body) != want {
        return Err("series entry checksum mismatch".into());
    }
    let mut d = Dec::new(body);
    let nl = d.uvarint().map_err(e)? as usize;
    let mut labels = Vec::with_capacity(nl.min(256));
    for _ in 0..nl {
        let n = u32::try_from(d.uvarint().map_err(e)?).map_err(|_| "symbol ref overflows")?;
        let v = u32::try_from(d.uvarint().map_err(e)?).map_err(|_| "symbol ref overflows")?;
        labels.push(Label::new(symbol(n)?, symbol(v)?));
    }
    if !labels.windows(2).all(|w| w[0].name < w[1].name) {
        return Err("series labels are not sorted".into());
    }
    let nc = d.uvarint().map_err(e)? as usize;
    let mut chunks = Vec::with_capacity(nc.min(4096));
    let mut prev: Option<ChunkRef> = None;
    for _ in 0..nc {
        let c = match prev {
            None => {
                let mint = d.varint().map_err(e)?;
                let dt = d.uvarint().map_err(e)? as i64;
                ChunkRef {
                    min_time: mint,
                    max_time: mint.wrapping_add(dt),
                    chunk_ref: d.uvarint().map_err(e)?,
                }
            }
            Some(p) => {
                let mint = p.max_time.wrapping_add(d.uvarint().map_err(e)? as i64);
                let maxt = mint.wrapping_add(d.uvarint().map_err(e)? as i64);
                ChunkRef {
                    min_time: mint,
                    max_time: maxt,
                    chunk_ref: p.chunk_ref.wrapping_add(d.varint().map_err(e)? as u64),
                }
            }
        };
        chunks.push(c);
        prev = Some(c);
    }
    Ok(Series {
        labels: Labels::from_sorted(labels),
        chunks,
    })
}

/// Checks a postings list read from `[start of its len field, …)` (trailing
/// bytes are ignored) and returns its refs as big-endian u32s.
pub(crate) fn postings_refs(b: &Bytes) -> Result<Bytes, String> {
    let mut d = Dec::new(b);
    let e = |e: DecodeError| format!("postings list: {e}");
    let len = d.be32().map_err(e)? as usize;
    let body = d.bytes(len).map_err(e)?;
    let want = d.be32().map_err(e)?;
    if crc32(body) != want {
        return Err("postings list checksum mismatch".into());
    }
    let mut bd = Dec::new(body);
    let n = bd.be32().map_err(e)? as usize;
    if n.checked_mul(4) != Some(len - 4) {
        return Err(format!("postings list length {len} does not hold {n} refs"));
    }
    Ok(b.slice(8..8 + n * 4))
}

/// How long the chunk record at the start of `b` is in total, when its length
/// varint is complete.
pub(crate) fn chunk_record_len(b: &[u8]) -> DResult<usize> {
    let mut d = Dec::new(b);
    let n = usize::try_from(d.uvarint()?).map_err(|_| DecodeError::Overflow)?;
    let hdr = b.len() - d.len();
    hdr.checked_add(n)
        .and_then(|x| x.checked_add(5))
        .ok_or(DecodeError::Overflow)
}

/// Decodes the chunk record at the start of `b` (`len uvarint | encoding |
/// data | CRC32C(encoding, data)`); the data is shared with `b`.
pub(crate) fn decode_chunk(b: &Bytes) -> Result<RawChunk, String> {
    let mut d = Dec::new(b);
    let e = |e: DecodeError| format!("chunk: {e}");
    let n = usize::try_from(d.uvarint().map_err(e)?).map_err(|_| "chunk length overflows")?;
    let hdr = b.len() - d.len();
    let with_enc = n.checked_add(1).ok_or("chunk length overflows")?;
    let enc_and_data = d.bytes(with_enc).map_err(e)?;
    let want = d.be32().map_err(e)?;
    if crc32(enc_and_data) != want {
        return Err("chunk checksum mismatch".into());
    }
    let first = enc_and_data
        .first()
        .copied()
        .ok_or("chunk: no encoding byte")?;
    let enc = Encoding::from_u8(first).map_err(|e| e.to_string())?;
    Ok(RawChunk::new(enc, b.slice(hdr + 1..hdr + 1 + n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_length_of_u64_max_is_an_error_not_a_panic() {
        // A record claiming 2^64-1 bytes with a zero CRC (what a poisoned cache
        // entry could hold): n + 1 must not wrap around to an empty slice.
        let mut rec = vec![0xff; 9];
        rec.push(0x01);
        rec.extend_from_slice(&[0, 0, 0, 0]);
        let err = decode_chunk(&Bytes::from(rec)).unwrap_err();
        assert!(err.contains("overflow") || err.contains("chunk"), "{err}");
    }

    #[test]
    fn varints_and_short_input() {
        let mut d = Dec::new(&[0xac, 0x02, 0x03]);
        assert_eq!(d.uvarint(), Ok(300));
        assert_eq!(d.varint(), Ok(-2));
        assert_eq!(d.u8(), Err(DecodeError::Short));
        let mut d = Dec::new(&[0xff; 11]);
        assert_eq!(d.uvarint(), Err(DecodeError::Overflow));
    }

    #[test]
    fn chunk_record_roundtrip_and_corruption() {
        let data = [1u8, 2, 3];
        let mut rec = vec![3u8, 1];
        rec.extend_from_slice(&data);
        let crc = crc32(&rec[1..]);
        rec.extend_from_slice(&crc.to_be_bytes());
        let b = Bytes::from(rec.clone());
        assert_eq!(chunk_record_len(&b), Ok(rec.len()));
        let c = decode_chunk(&b).unwrap();
        assert_eq!(c.encoding, Encoding::Xor);
        assert_eq!(&c.data[..], &data);
        rec[3] ^= 0xff;
        assert!(decode_chunk(&Bytes::from(rec.clone()))
            .unwrap_err()
            .contains("checksum"));
        assert!(decode_chunk(&Bytes::from(rec[..4].to_vec())).is_err());
    }

    #[test]
    fn postings_list_checks() {
        let mut body = 2u32.to_be_bytes().to_vec();
        body.extend_from_slice(&5u32.to_be_bytes());
        body.extend_from_slice(&9u32.to_be_bytes());
        let mut rec = (body.len() as u32).to_be_bytes().to_vec();
        rec.extend_from_slice(&body);
        rec.extend_from_slice(&crc32(&body).to_be_bytes());
        rec.extend_from_slice(&[0, 0, 0, 0]);
        let refs = postings_refs(&Bytes::from(rec.clone())).unwrap();
        assert_eq!(refs.len(), 8);
        rec[9] ^= 1;
        assert!(postings_refs(&Bytes::from(rec)).is_err());
    }
}
