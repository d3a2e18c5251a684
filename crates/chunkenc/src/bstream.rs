//! MSB-first bit streams, written exactly like Prometheus' `bstream`.

use crate::error::{Error, Result};

/// Appends bits MSB-first. Mirrors Prometheus' writer byte for byte, including the
/// fresh zero byte it starts whenever it writes a whole byte (§3.2 of the format
/// notes): `count` is the number of free low bits in the last byte.
#[derive(Clone, Debug, Default)]
pub(crate) struct BitWriter {
    pub(crate) stream: Vec<u8>,
    pub(crate) count: u8,
}

impl BitWriter {
    pub(crate) fn write_bit(&mut self, bit: bool) {
        if self.count == 0 {
            self.stream.push(0);
            self.count = 8;
        }
        if bit {
            if let Some(last) = self.stream.last_mut() {
                *last |= 1 << (self.count - 1);
            }
        }
        self.count -= 1;
    }

    pub(crate) fn write_byte(&mut self, byt: u8) {
        if self.count == 0 {
            self.stream.push(0);
            self.count = 8;
        }
        if let Some(last) = self.stream.last_mut() {
            *last |= byt >> (8 - self.count);
        }
        self.stream
            .push(((u16::from(byt) << self.count) & 0xff) as u8);
    }

    /// Writes the `nbits` low bits of `u`, most significant first.
    pub(crate) fn write_bits(&mut self, u: u64, mut nbits: u32) {
        if nbits == 0 {
            return;
        }
        let mut u = u << (64 - nbits);
        while nbits >= 8 {
            self.write_byte((u >> 56) as u8);
            u <<= 8;
            nbits -= 8;
        }
        while nbits > 0 {
            self.write_bit((u >> 63) == 1);
            u <<= 1;
            nbits -= 1;
        }
    }
}

/// Reads bits MSB-first from a byte slice, with bounds checks that turn truncated
/// input into [`Error::Truncated`] instead of a panic.
#[derive(Clone, Debug)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Next byte of `data` to load into `buf`.
    pos: usize,
    /// Buffered bits, left-aligned (the next bit is bit 63).
    buf: u64,
    /// Number of valid bits in `buf`.
    valid: u32,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            buf: 0,
            valid: 0,
        }
    }

    /// Bits consumed so far.
    pub(crate) fn bit_pos(&self) -> usize {
        self.pos * 8 - self.valid as usize
    }

    #[inline]
    fn refill(&mut self) {
        // Load whole bytes while at least 8 bits of room remain.
        if self.pos + 8 <= self.data.len() && self.valid <= 56 {
            // Fast path: read 8 bytes big-endian, keep as many as fit.
            let mut w = [0u8; 8];
            w.copy_from_slice(&self.data[self.pos..self.pos + 8]);
            let word = u64::from_be_bytes(w);
            let take = (64 - self.valid) / 8;
            let bits = take * 8;
            let chunk = if bits == 64 {
                word
            } else {
                word >> (64 - bits)
            };
            self.buf |= if self.valid == 0 && bits == 64 {
                chunk
            } else {
                chunk << (64 - self.valid - bits)
            };
            self.valid += bits;
            self.pos += take as usize;
            return;
        }
        while self.valid <= 56 && self.pos < self.data.len() {
            self.buf |= u64::from(self.data[self.pos]) << (56 - self.valid);
            self.valid += 8;
            self.pos += 1;
        }
    }

    #[inline]
    pub(crate) fn read_bit(&mut self) -> Result<bool> {
        if self.valid == 0 {
            self.refill();
            if self.valid == 0 {
                return Err(Error::Truncated);
            }
        }
        let bit = self.buf >> 63 == 1;
        self.buf <<= 1;
        self.valid -= 1;
        Ok(bit)
    }

    /// Reads `n` (≤ 64) bits as an unsigned integer.
    #[inline]
    pub(crate) fn read_bits(&mut self, n: u32) -> Result<u64> {
        debug_assert!(n <= 64);
        if n == 0 {
            return Ok(0);
        }
        if n <= self.valid {
            let v = self.buf >> (64 - n);
            self.buf = if n == 64 { 0 } else { self.buf << n };
            self.valid -= n;
            return Ok(v);
        }
        // Take what is buffered, refill, take the rest.
        let have = self.valid;
        let hi = if have == 0 {
            0
        } else {
            self.buf >> (64 - have)
        };
        self.buf = 0;
        self.valid = 0;
        self.refill();
        let rest = n - have;
        if rest > self.valid {
            return Err(Error::Truncated);
        }
        let lo = self.buf >> (64 - rest);
        self.buf = if rest == 64 { 0 } else { self.buf << rest };
        self.valid -= rest;
        Ok(if rest == 64 { lo } else { (hi << rest) | lo })
    }

    #[inline]
    pub(crate) fn read_byte(&mut self) -> Result<u8> {
        Ok(self.read_bits(8)? as u8)
    }

    pub(crate) fn read_uvarint(&mut self) -> Result<u64> {
        let mut x: u64 = 0;
        let mut s: u32 = 0;
        for i in 0..10 {
            let b = self.read_byte()?;
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return Err(Error::Corrupt("varint overflows 64 bits"));
                }
                return Ok(x | (u64::from(b) << s));
            }
            x |= u64::from(b & 0x7f) << s;
            s += 7;
        }
        Err(Error::Corrupt("varint overflows 64 bits"))
    }

    pub(crate) fn read_varint(&mut self) -> Result<i64> {
        let ux = self.read_uvarint()?;
        let x = (ux >> 1) as i64;
        Ok(if ux & 1 != 0 { !x } else { x })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_bits() {
        let mut w = BitWriter::default();
        w.write_bit(true);
        w.write_bits(0b1011, 4);
        w.write_bits(0xdead_beef_1234_5678, 64);
        w.write_byte(0x5a);
        w.write_bits(3, 2);
        let mut r = BitReader::new(&w.stream);
        assert!(r.read_bit().unwrap());
        assert_eq!(r.read_bits(4).unwrap(), 0b1011);
        assert_eq!(r.read_bits(64).unwrap(), 0xdead_beef_1234_5678);
        assert_eq!(r.read_byte().unwrap(), 0x5a);
        assert_eq!(r.read_bits(2).unwrap(), 3);
    }

    #[test]
    fn whole_bytes_leave_an_empty_trailing_byte() {
        let mut w = BitWriter::default();
        w.write_byte(0xab);
        assert_eq!(w.stream, vec![0xab, 0x00]);
        assert_eq!(w.count, 8);
    }

    #[test]
    fn truncation_is_an_error() {
        let mut r = BitReader::new(&[0xff]);
        assert!(r.read_bits(9).is_err());
    }
}
