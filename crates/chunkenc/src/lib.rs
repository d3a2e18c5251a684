//! Prometheus chunk encodings, bit-for-bit (mirrors `tsdb/chunkenc`).
//!
//! Owns the XOR float chunk ([`XorChunk`], [`XorAppender`], [`XorIterator`]), the
//! encoding ids of every chunk kind Prometheus and Thanos write ([`Encoding`]), raw
//! chunks as stored on disk ([`RawChunk`]), and Thanos' downsampled aggregate chunk
//! ([`AggrChunk`]). Several crates speak this format (TSDB, StoreAPI, remote read),
//! so it sits below storage. Native-histogram encodings are recognised and refused
//! with [`Error::Unsupported`] until they are implemented.

mod aggr;
mod bstream;
pub mod downsampled;
pub mod error;
mod xor;

use std::fmt;

use bytes::Bytes;

pub use aggr::{AggrChunk, AggrType};
pub use downsampled::{AverageIterator, CounterResetsIterator};
pub use error::{Error, Result};
pub use xor::{num_samples as xor_num_samples, XorAppender, XorChunk, XorIterator};

/// Maximum samples Prometheus puts in an XOR chunk cut by sample count (2 × 120).
pub const MAX_SAMPLES_PER_CHUNK: usize = 240;
/// The head's target samples per chunk (`--storage.tsdb.samples-per-chunk`).
pub const SAMPLES_PER_CHUNK: usize = 120;
/// Prometheus cuts an XOR chunk once it exceeds this many bytes (1024 − 19).
pub const MAX_BYTES_PER_XOR_CHUNK: usize = 1024 - 19;

/// A chunk encoding id, as stored in the byte before a chunk's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// XOR float samples (1).
    Xor,
    /// Integer native histograms (2).
    Histogram,
    /// Float native histograms (3).
    FloatHistogram,
    /// XOR with start timestamps (4), Prometheus 3.11+.
    Xor2,
    /// Histogram with start timestamps (5).
    HistogramSt,
    /// Float histogram with start timestamps (6).
    FloatHistogramSt,
    /// Thanos' downsampled aggregate chunk (0xFF).
    Aggr,
}

impl Encoding {
    /// Parses an encoding byte.
    pub fn from_u8(b: u8) -> Result<Self> {
        Ok(match b {
            1 => Encoding::Xor,
            2 => Encoding::Histogram,
            3 => Encoding::FloatHistogram,
            4 => Encoding::Xor2,
            5 => Encoding::HistogramSt,
            6 => Encoding::FloatHistogramSt,
            0xff => Encoding::Aggr,
            other => return Err(Error::UnknownEncoding(other)),
        })
    }

    /// The encoding byte.
    pub fn as_u8(self) -> u8 {
        match self {
            Encoding::Xor => 1,
            Encoding::Histogram => 2,
            Encoding::FloatHistogram => 3,
            Encoding::Xor2 => 4,
            Encoding::HistogramSt => 5,
            Encoding::FloatHistogramSt => 6,
            Encoding::Aggr => 0xff,
        }
    }

    /// Prometheus' name for the encoding.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Xor => "XOR",
            Encoding::Histogram => "histogram",
            Encoding::FloatHistogram => "floathistogram",
            Encoding::Xor2 => "XOR2",
            Encoding::HistogramSt => "histogramST",
            Encoding::FloatHistogramSt => "floathistogramST",
            Encoding::Aggr => "aggr",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.as_u8())
    }
}

/// Iterates over float samples in time order.
///
/// `next` returns `Ok(None)` at the end and an error for corrupt data; after an error
/// the iterator must not be used further.
pub trait SampleIterator {
    /// The next sample.
    fn next(&mut self) -> Result<Option<(i64, f64)>>;

    /// Advances to the first sample at or after `t` and returns it.
    fn seek(&mut self, t: i64) -> Result<Option<(i64, f64)>> {
        while let Some(s) = self.next()? {
            if s.0 >= t {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }
}

/// A chunk as stored: its encoding and its data bytes (without length, encoding
/// byte or CRC). Cloning shares the bytes, which may live in a memory-mapped file.
#[derive(Clone, PartialEq, Eq)]
pub struct RawChunk {
    /// The encoding.
    pub encoding: Encoding,
    /// The encoded data.
    pub data: Bytes,
}

impl fmt::Debug for RawChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawChunk")
            .field("encoding", &self.encoding)
            .field("len", &self.data.len())
            .finish()
    }
}

impl RawChunk {
    /// A raw chunk from an encoding and bytes.
    pub fn new(encoding: Encoding, data: impl Into<Bytes>) -> Self {
        Self {
            encoding,
            data: data.into(),
        }
    }

    /// An XOR raw chunk from a finished [`XorChunk`].
    pub fn from_xor(c: XorChunk) -> Self {
        Self::new(Encoding::Xor, c.into_bytes())
    }

    /// Number of samples the chunk announces (for an aggregate chunk, the count
    /// sub-chunk's), or an error for encodings that cannot be read yet.
    pub fn num_samples(&self) -> Result<usize> {
        match self.encoding {
            Encoding::Xor => Ok(xor_num_samples(&self.data)),
            Encoding::Histogram | Encoding::FloatHistogram => Ok(xor_num_samples(&self.data)),
            Encoding::Aggr => AggrChunk::new(&self.data).num_samples(),
            e => Err(Error::Unsupported(e)),
        }
    }

    /// A float iterator over the chunk. For an aggregate chunk this is the counter
    /// sub-chunk when present, otherwise the sum (raw-resolution reads of downsampled
    /// data go through [`AggrChunk`] instead). Histogram encodings are refused.
    pub fn iter(&self) -> Result<XorIterator<'_>> {
        match self.encoding {
            Encoding::Xor => Ok(XorIterator::new(&self.data)),
            e => Err(Error::Unsupported(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_chunks_are_refused_clearly() {
        for b in [2u8, 3, 4, 5, 6] {
            let e = Encoding::from_u8(b).unwrap();
            let c = RawChunk::new(e, vec![0u8, 1, 0x40]);
            let err = c.iter().unwrap_err().to_string();
            assert!(err.contains("not supported yet"), "{err}");
        }
        assert!(matches!(
            Encoding::from_u8(0),
            Err(Error::UnknownEncoding(0))
        ));
        assert!(matches!(
            Encoding::from_u8(7),
            Err(Error::UnknownEncoding(7))
        ));
    }

    #[test]
    fn seek_finds_first_sample_at_or_after() {
        let mut a = XorChunk::new().appender();
        for i in 0..100 {
            a.append(i * 10, i as f64).unwrap();
        }
        let c = a.finish();
        let mut it = c.iter();
        assert_eq!(it.seek(55).unwrap(), Some((60, 6.0)));
        assert_eq!(it.next().unwrap(), Some((70, 7.0)));
        assert_eq!(it.seek(10_000).unwrap(), None);
    }
}
