//! Framing of STREAMED_XOR_CHUNKS responses (Prometheus `storage/remote/chunked.go`):
//! each frame is the uvarint length of the message, the CRC32-Castagnoli of the
//! message as a big-endian u32, then the message (a `ChunkedReadResponse`).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;

use crate::error::{Error, Result};
use crate::prompb::ChunkedReadResponse;

/// Content-Type of a streamed response (with the space after `;`, as Prometheus).
pub const STREAMED_CONTENT_TYPE: &str =
    "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";

/// Default largest frame a reader accepts (Prometheus `DefaultChunkedReadLimit`, 50 MB).
pub const DEFAULT_CHUNKED_READ_LIMIT: u64 = 50_000_000;

/// Appends one frame holding `msg` to `out`.
pub fn encode_frame(msg: &[u8], out: &mut BytesMut) {
    prost::encoding::encode_varint(msg.len() as u64, out);
    out.put_u32(crc32c::crc32c(msg));
    out.put_slice(msg);
}

/// Encodes `resp` as one frame.
pub fn frame(resp: &ChunkedReadResponse) -> Bytes {
    let msg = resp.encode_to_vec();
    let mut out = BytesMut::with_capacity(msg.len() + 14);
    encode_frame(&msg, &mut out);
    out.freeze()
}

/// Incremental reader of a framed stream: feed bytes as they arrive with
/// [`FrameDecoder::push`], take messages with [`FrameDecoder::next_frame`].
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    size_limit: u64,
}

impl FrameDecoder {
    /// A decoder that rejects frames over `size_limit` bytes.
    pub fn new(size_limit: u64) -> Self {
        Self {
            buf: BytesMut::new(),
            size_limit,
        }
    }

    /// Adds received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame's message bytes, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    ///
    /// [`Error::FrameTooLarge`], [`Error::FrameChecksum`], or
    /// [`Error::Protobuf`] for a bad length varint.
    pub fn next_raw(&mut self) -> Result<Option<Bytes>> {
        let mut peek: &[u8] = &self.buf;
        if peek.is_empty() {
            return Ok(None);
        }
        let before = peek.len();
        let size = match prost::encoding::decode_varint(&mut peek) {
            Ok(n) => n,
            // An incomplete varint (at most 10 bytes) needs more data.
            Err(_) if before < 10 && self.buf.iter().all(|b| b & 0x80 != 0) => return Ok(None),
            Err(e) => return Err(Error::Protobuf(e)),
        };
        if size > self.size_limit {
            return Err(Error::FrameTooLarge {
                size,
                limit: self.size_limit,
            });
        }
        let header = before - peek.len() + 4;
        let Some(total) = usize::try_from(size)
            .ok()
            .and_then(|s| s.checked_add(header))
        else {
            return Err(Error::FrameTooLarge {
                size,
                limit: self.size_limit,
            });
        };
        if self.buf.len() < total {
            return Ok(None);
        }
        self.buf.advance(header - 4);
        let crc = self.buf.get_u32();
        let msg = self.buf.split_to(total - header).freeze();
        if crc32c::crc32c(&msg) != crc {
            return Err(Error::FrameChecksum);
        }
        Ok(Some(msg))
    }

    /// The next complete frame decoded, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    ///
    /// As [`FrameDecoder::next_raw`], and [`Error::Protobuf`] for a bad message.
    pub fn next_frame(&mut self) -> Result<Option<ChunkedReadResponse>> {
        match self.next_raw()? {
            Some(msg) => Ok(Some(ChunkedReadResponse::decode(msg)?)),
            None => Ok(None),
        }
    }

    /// Checks that the stream ended on a frame boundary.
    ///
    /// # Errors
    ///
    /// [`Error::FrameTruncated`] when bytes of a partial frame are left.
    pub fn finish(&self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(Error::FrameTruncated)
        }
    }
}

/// Decodes a whole framed response body.
///
/// # Errors
///
/// As [`FrameDecoder::next_frame`] and [`FrameDecoder::finish`].
pub fn decode_frames(body: &[u8], size_limit: u64) -> Result<Vec<ChunkedReadResponse>> {
    let mut d = FrameDecoder::new(size_limit);
    d.push(body);
    let mut out = Vec::new();
    while let Some(f) = d.next_frame()? {
        out.push(f);
    }
    d.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompb::{ChunkedSeries, Label};

    fn resp(i: i64) -> ChunkedReadResponse {
        ChunkedReadResponse {
            chunked_series: vec![ChunkedSeries {
                labels: vec![Label {
                    name: "__name__".into(),
                    value: format!("m{i}"),
                }],
                chunks: vec![],
            }],
            query_index: i,
        }
    }

    #[test]
    fn round_trip_byte_by_byte() {
        let mut all = BytesMut::new();
        for i in 0..3 {
            all.extend_from_slice(&frame(&resp(i)));
        }
        let mut d = FrameDecoder::new(1000);
        let mut got = Vec::new();
        for b in all.iter() {
            d.push(&[*b]);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        d.finish().unwrap();
        assert_eq!(got, (0..3).map(resp).collect::<Vec<_>>());
    }

    #[test]
    fn frame_layout_is_varint_crc_be_message() {
        let msg = resp(1).encode_to_vec();
        let f = frame(&resp(1));
        assert_eq!(f[0] as usize, msg.len());
        assert_eq!(&f[1..5], &crc32c::crc32c(&msg).to_be_bytes());
        assert_eq!(&f[5..], &msg[..]);
    }

    #[test]
    fn corrupt_and_oversized_frames_are_errors() {
        let mut f = frame(&resp(1)).to_vec();
        let last = f.len() - 1;
        f[last] ^= 1;
        assert!(matches!(decode_frames(&f, 1000), Err(Error::FrameChecksum)));
        let f = frame(&resp(1));
        assert!(matches!(
            decode_frames(&f, 3),
            Err(Error::FrameTooLarge { .. })
        ));
        assert!(matches!(
            decode_frames(&f[..f.len() - 1], 1000),
            Err(Error::FrameTruncated)
        ));
        let huge = [0xff; 12];
        assert!(decode_frames(&huge, u64::MAX).is_err());
    }
}
