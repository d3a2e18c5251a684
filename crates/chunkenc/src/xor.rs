//! The XOR float chunk (encoding 1): Gorilla-style delta-of-delta timestamps and
//! XOR-compressed values, bit-for-bit as Prometheus' `tsdb/chunkenc/xor.go` writes it.

use crate::bstream::{BitReader, BitWriter};
use crate::error::{Error, Result};
use crate::SampleIterator;

/// Bytes of the sample-count header.
const HEADER: usize = 2;
/// Sentinel for "no leading/trailing window yet".
const NO_WINDOW: u8 = 0xff;

/// An XOR chunk being built or read: the 2-byte big-endian sample count followed by
/// the bit stream.
#[derive(Clone, Debug)]
pub struct XorChunk {
    w: BitWriter,
}

impl Default for XorChunk {
    fn default() -> Self {
        Self::new()
    }
}

impl XorChunk {
    /// An empty chunk.
    pub fn new() -> Self {
        let mut stream = Vec::with_capacity(128);
        stream.extend_from_slice(&[0, 0]);
        Self {
            w: BitWriter { stream, count: 0 },
        }
    }

    /// The encoded bytes, as stored in a chunk segment file after the encoding byte.
    pub fn bytes(&self) -> &[u8] {
        &self.w.stream
    }

    /// Consumes the chunk, returning its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.w.stream
    }

    /// Number of samples in the chunk.
    pub fn num_samples(&self) -> usize {
        num_samples(&self.w.stream)
    }

    /// An appender for a new chunk. To append to existing data use
    /// [`XorAppender::resume`].
    pub fn appender(self) -> XorAppender {
        XorAppender {
            c: self,
            t: 0,
            v: 0.0,
            t_delta: 0,
            leading: NO_WINDOW,
            trailing: 0,
        }
    }

    /// Iterates over the chunk's samples.
    pub fn iter(&self) -> XorIterator<'_> {
        XorIterator::new(&self.w.stream)
    }
}

/// Number of samples an XOR chunk's bytes announce (0 if shorter than the header).
pub fn num_samples(data: &[u8]) -> usize {
    match data {
        [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
        _ => 0,
    }
}

/// Appends float samples to an [`XorChunk`] in time order.
#[derive(Clone, Debug)]
pub struct XorAppender {
    c: XorChunk,
    t: i64,
    v: f64,
    t_delta: u64,
    leading: u8,
    trailing: u8,
}

/// Whether `x` fits the asymmetric signed range Prometheus' `bitRange` accepts.
#[inline]
fn bit_range(x: i64, nbits: u32) -> bool {
    -((1i64 << (nbits - 1)) - 1) <= x && x <= 1i64 << (nbits - 1)
}

impl XorAppender {
    /// Continues appending to existing chunk bytes, recovering the encoder state by
    /// decoding them. Fails if the bytes do not decode.
    pub fn resume(data: Vec<u8>) -> Result<Self> {
        let mut it = XorIterator::new(&data);
        while it.next()?.is_some() {}
        let st = it.state();
        let used_bits = it.bit_pos() + HEADER * 8;
        let total = data.len() * 8;
        let count = total
            .checked_sub(used_bits)
            .filter(|c| *c <= 8)
            .ok_or(Error::Corrupt("trailing bytes after the last sample"))?;
        let n = it.read;
        Ok(Self {
            c: XorChunk {
                w: BitWriter {
                    stream: data,
                    count: count as u8,
                },
            },
            t: st.t,
            v: st.v,
            t_delta: st.t_delta,
            leading: if n == 0 { NO_WINDOW } else { st.leading },
            trailing: st.trailing,
        })
    }

    /// Samples appended so far.
    pub fn num_samples(&self) -> usize {
        self.c.num_samples()
    }

    /// Encoded size so far, in bytes.
    pub fn size(&self) -> usize {
        self.c.w.stream.len()
    }

    /// The chunk as built so far.
    pub fn chunk(&self) -> &XorChunk {
        &self.c
    }

    /// Finishes the chunk.
    pub fn finish(self) -> XorChunk {
        self.c
    }

    /// Appends a sample. Timestamps must not decrease and a chunk holds at most
    /// 65535 samples; both are the caller's responsibility (the head and the block
    /// writer cut chunks long before), and violating them returns an error.
    pub fn append(&mut self, t: i64, v: f64) -> Result<()> {
        let num = self.c.num_samples();
        if num >= usize::from(u16::MAX) {
            return Err(Error::ChunkFull);
        }
        let w = &mut self.c.w;
        let mut t_delta = 0u64;
        match num {
            0 => {
                let mut buf = [0u8; 10];
                let n = put_varint(&mut buf, t);
                for b in &buf[..n] {
                    w.write_byte(*b);
                }
                w.write_bits(v.to_bits(), 64);
            }
            1 => {
                if t < self.t {
                    return Err(Error::OutOfOrder { t, last: self.t });
                }
                t_delta = (t - self.t) as u64;
                let mut buf = [0u8; 10];
                let n = put_uvarint(&mut buf, t_delta);
                for b in &buf[..n] {
                    w.write_byte(*b);
                }
                write_vdelta(w, v, self.v, &mut self.leading, &mut self.trailing);
            }
            _ => {
                if t < self.t {
                    return Err(Error::OutOfOrder { t, last: self.t });
                }
                t_delta = (t - self.t) as u64;
                let dod = t_delta.wrapping_sub(self.t_delta) as i64;
                if dod == 0 {
                    w.write_bit(false);
                } else if bit_range(dod, 14) {
                    w.write_bits(0b10, 2);
                    w.write_bits(dod as u64, 14);
                } else if bit_range(dod, 17) {
                    w.write_bits(0b110, 3);
                    w.write_bits(dod as u64, 17);
                } else if bit_range(dod, 20) {
                    w.write_bits(0b1110, 4);
                    w.write_bits(dod as u64, 20);
                } else {
                    w.write_bits(0b1111, 4);
                    w.write_bits(dod as u64, 64);
                }
                write_vdelta(w, v, self.v, &mut self.leading, &mut self.trailing);
            }
        }
        self.t = t;
        self.v = v;
        self.t_delta = t_delta;
        let n = (num + 1) as u16;
        w.stream[..HEADER].copy_from_slice(&n.to_be_bytes());
        Ok(())
    }
}

#[inline]
fn write_vdelta(w: &mut BitWriter, v: f64, prev: f64, leading: &mut u8, trailing: &mut u8) {
    let delta = v.to_bits() ^ prev.to_bits();
    if delta == 0 {
        w.write_bit(false);
        return;
    }
    w.write_bit(true);
    let mut new_leading = delta.leading_zeros() as u8;
    let new_trailing = delta.trailing_zeros() as u8;
    if new_leading >= 32 {
        new_leading = 31;
    }
    if *leading != NO_WINDOW && new_leading >= *leading && new_trailing >= *trailing {
        w.write_bit(false);
        w.write_bits(
            delta >> *trailing,
            64 - u32::from(*leading) - u32::from(*trailing),
        );
        return;
    }
    *leading = new_leading;
    *trailing = new_trailing;
    w.write_bit(true);
    w.write_bits(u64::from(new_leading), 5);
    let sig = 64 - u32::from(new_leading) - u32::from(new_trailing);
    w.write_bits(u64::from(sig), 6);
    w.write_bits(delta >> new_trailing, sig);
}

fn put_uvarint(buf: &mut [u8; 10], mut x: u64) -> usize {
    let mut i = 0;
    while x >= 0x80 {
        buf[i] = (x as u8) | 0x80;
        x >>= 7;
        i += 1;
    }
    buf[i] = x as u8;
    i + 1
}

fn put_varint(buf: &mut [u8; 10], x: i64) -> usize {
    let ux = ((x as u64) << 1) ^ ((x >> 63) as u64);
    put_uvarint(buf, ux)
}

/// Decoder state, exposed to let an appender resume.
#[derive(Clone, Copy, Debug, Default)]
struct State {
    t: i64,
    v: f64,
    t_delta: u64,
    leading: u8,
    trailing: u8,
}

/// Iterates over an XOR chunk's samples. Stops at the announced sample count, never
/// at the data length; truncated or corrupt data yields an error.
#[derive(Clone, Debug)]
pub struct XorIterator<'a> {
    r: BitReader<'a>,
    total: usize,
    read: usize,
    st: State,
}

impl<'a> XorIterator<'a> {
    /// An iterator over encoded chunk bytes (header included).
    pub fn new(data: &'a [u8]) -> Self {
        let total = num_samples(data);
        Self {
            r: BitReader::new(data.get(HEADER..).unwrap_or(&[])),
            total,
            read: 0,
            st: State::default(),
        }
    }

    fn state(&self) -> State {
        self.st
    }

    fn bit_pos(&self) -> usize {
        self.r.bit_pos()
    }

    /// The number of samples the chunk announces.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether the chunk holds no samples.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    #[inline]
    fn read_value(&mut self) -> Result<()> {
        if !self.r.read_bit()? {
            return Ok(());
        }
        if self.r.read_bit()? {
            let leading = self.r.read_bits(5)? as u8;
            let mut mbits = self.r.read_bits(6)? as u8;
            if mbits == 0 {
                mbits = 64;
            }
            let trailing = 64u8
                .checked_sub(leading)
                .and_then(|x| x.checked_sub(mbits))
                .ok_or(Error::Corrupt("XOR value window exceeds 64 bits"))?;
            self.st.leading = leading;
            self.st.trailing = trailing;
        }
        let sig = 64u32
            .checked_sub(u32::from(self.st.leading) + u32::from(self.st.trailing))
            .filter(|s| *s > 0)
            .ok_or(Error::Corrupt(
                "XOR value reuses a window before one was set",
            ))?;
        let bits = self.r.read_bits(sig)?;
        let vbits = self.st.v.to_bits() ^ (bits << self.st.trailing);
        self.st.v = f64::from_bits(vbits);
        Ok(())
    }
}

impl SampleIterator for XorIterator<'_> {
    #[inline]
    fn next(&mut self) -> Result<Option<(i64, f64)>> {
        if self.read >= self.total {
            return Ok(None);
        }
        match self.read {
            0 => {
                self.st.t = self.r.read_varint()?;
                self.st.v = f64::from_bits(self.r.read_bits(64)?);
                self.st.leading = NO_WINDOW;
            }
            1 => {
                self.st.t_delta = self.r.read_uvarint()?;
                self.st.t = self.st.t.wrapping_add(self.st.t_delta as i64);
                self.read_value()?;
            }
            _ => {
                let mut d: u8 = 0;
                for _ in 0..4 {
                    d <<= 1;
                    if !self.r.read_bit()? {
                        break;
                    }
                    d |= 1;
                }
                let dod: i64 = match d {
                    0b0 => 0,
                    0b10 | 0b110 | 0b1110 => {
                        let sz = match d {
                            0b10 => 14,
                            0b110 => 17,
                            _ => 20,
                        };
                        let bits = self.r.read_bits(sz)?;
                        if bits > (1 << (sz - 1)) {
                            bits as i64 - (1i64 << sz)
                        } else {
                            bits as i64
                        }
                    }
                    _ => self.r.read_bits(64)? as i64,
                };
                self.st.t_delta = (self.st.t_delta as i64).wrapping_add(dod) as u64;
                self.st.t = self.st.t.wrapping_add(self.st.t_delta as i64);
                self.read_value()?;
            }
        }
        self.read += 1;
        Ok(Some((self.st.t, self.st.v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(samples: &[(i64, f64)]) -> Vec<u8> {
        let mut a = XorChunk::new().appender();
        for (t, v) in samples {
            a.append(*t, *v).unwrap();
        }
        a.finish().into_bytes()
    }

    fn decode(data: &[u8]) -> Vec<(i64, f64)> {
        let mut it = XorIterator::new(data);
        let mut out = Vec::new();
        while let Some(s) = it.next().unwrap() {
            out.push(s);
        }
        out
    }

    #[test]
    fn one_sample_has_trailing_byte() {
        let b = encode(&[(1000, 1.0)]);
        // 2 header + varint(1000)=2 bytes + 8 value bytes + 1 extra.
        assert_eq!(b.len(), 13);
        assert_eq!(*b.last().unwrap(), 0);
        assert_eq!(decode(&b), vec![(1000, 1.0)]);
    }

    #[test]
    fn roundtrip_special_values_and_jumps() {
        let mut s = vec![];
        let mut t = -5_000i64;
        for i in 0..500 {
            t += match i % 7 {
                0 => 15_000,
                1 => 15_001,
                2 => 1,
                3 => 1 << 20,
                4 => 1 << 40,
                _ => 14_999,
            };
            let v = match i % 9 {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => f64::NEG_INFINITY,
                3 => f64::from_bits(strata_stale()),
                4 => -0.0,
                _ => (i as f64) * 1.5e-3,
            };
            s.push((t, v));
        }
        let got = decode(&encode(&s));
        assert_eq!(got.len(), s.len());
        for (a, b) in got.iter().zip(&s) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.1.to_bits(), b.1.to_bits());
        }
    }

    fn strata_stale() -> u64 {
        0x7ff0_0000_0000_0002
    }

    #[test]
    fn resume_continues_identically() {
        let s: Vec<(i64, f64)> = (0..50)
            .map(|i| (i * 15_000 + (i % 3), (i * i) as f64))
            .collect();
        let full = encode(&s);
        for cut in [0usize, 1, 2, 3, 17, 49] {
            let part = encode(&s[..cut]);
            let mut a = XorAppender::resume(part).unwrap();
            for (t, v) in &s[cut..] {
                a.append(*t, *v).unwrap();
            }
            assert_eq!(a.finish().into_bytes(), full, "cut at {cut}");
        }
    }

    #[test]
    fn truncated_is_error_not_panic() {
        let b = encode(
            &(0..100)
                .map(|i| (i * 1000, i as f64 * 0.7))
                .collect::<Vec<_>>(),
        );
        for n in 0..b.len() - 1 {
            let mut it = XorIterator::new(&b[..n]);
            let mut res = Ok(Some((0, 0.0)));
            while let Ok(Some(_)) = res {
                res = it.next();
            }
            if n > 2 {
                assert!(res.is_err(), "len {n} should fail");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn roundtrip_random(deltas in proptest::collection::vec(0i64..100_000_000, 1..300),
                            vals in proptest::collection::vec(proptest::num::f64::ANY, 300)) {
            let mut t = 1_700_000_000_000i64;
            let s: Vec<(i64, f64)> = deltas.iter().zip(&vals).map(|(d, v)| { t += d; (t, *v) }).collect();
            let got = decode(&encode(&s));
            proptest::prop_assert_eq!(got.len(), s.len());
            for (a, b) in got.iter().zip(&s) {
                proptest::prop_assert_eq!(a.0, b.0);
                proptest::prop_assert_eq!(a.1.to_bits(), b.1.to_bits());
            }
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut it = XorIterator::new(&data);
            for _ in 0..70000 {
                match it.next() { Ok(Some(_)) => {}, _ => break }
            }
        }
    }
}
