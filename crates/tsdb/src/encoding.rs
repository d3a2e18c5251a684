//! Bounds-checked decoding and simple encoding of the TSDB's primitive types
//! (mirrors `tsdb/encoding`): big-endian integers, (u)varints, length-prefixed
//! strings, and CRC32-Castagnoli.

/// Why a decode failed; the caller adds file and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// Not enough bytes.
    Short,
    /// A varint longer than 10 bytes or overflowing 64 bits.
    Varint,
    /// A string that is not UTF-8.
    Utf8,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DecodeError::Short => "unexpected end of data",
            DecodeError::Varint => "invalid varint",
            DecodeError::Utf8 => "string is not valid UTF-8",
        })
    }
}

pub(crate) type DResult<T> = std::result::Result<T, DecodeError>;

/// A read cursor over a byte slice.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Decbuf<'a> {
    pub(crate) b: &'a [u8],
}

impl<'a> Decbuf<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Self { b }
    }

    pub(crate) fn len(&self) -> usize {
        self.b.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.b.is_empty()
    }

    pub(crate) fn bytes(&mut self, n: usize) -> DResult<&'a [u8]> {
        let (h, t) = (self.b.get(..n), self.b.get(n..));
        match (h, t) {
            (Some(h), Some(t)) => {
                self.b = t;
                Ok(h)
            }
            _ => Err(DecodeError::Short),
        }
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
        let (v, n) = uvarint(self.b)?;
        self.b = &self.b[n..];
        Ok(v)
    }

    pub(crate) fn varint(&mut self) -> DResult<i64> {
        let ux = self.uvarint()?;
        Ok(zigzag_decode(ux))
    }

    pub(crate) fn uvarint_str(&mut self) -> DResult<&'a str> {
        let n = usize::try_from(self.uvarint()?).map_err(|_| DecodeError::Short)?;
        let b = self.bytes(n)?;
        std::str::from_utf8(b).map_err(|_| DecodeError::Utf8)
    }
}

/// Decodes a uvarint, returning the value and bytes used.
#[inline]
pub(crate) fn uvarint(b: &[u8]) -> DResult<(u64, usize)> {
    let mut x: u64 = 0;
    let mut s: u32 = 0;
    for (i, &c) in b.iter().enumerate() {
        if i == 10 {
            return Err(DecodeError::Varint);
        }
        if c < 0x80 {
            if i == 9 && c > 1 {
                return Err(DecodeError::Varint);
            }
            return Ok((x | (u64::from(c) << s), i + 1));
        }
        x |= u64::from(c & 0x7f) << s;
        s += 7;
    }
    Err(DecodeError::Short)
}

#[inline]
pub(crate) fn zigzag_decode(ux: u64) -> i64 {
    let x = (ux >> 1) as i64;
    if ux & 1 != 0 {
        !x
    } else {
        x
    }
}

/// An append-only output buffer.
#[derive(Default, Debug)]
pub(crate) struct Encbuf {
    pub(crate) b: Vec<u8>,
}

impl Encbuf {
    pub(crate) fn reset(&mut self) {
        self.b.clear();
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.b.push(v);
    }
    pub(crate) fn be32(&mut self, v: u32) {
        self.b.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn be64(&mut self, v: u64) {
        self.b.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn uvarint(&mut self, mut x: u64) {
        while x >= 0x80 {
            self.b.push((x as u8) | 0x80);
            x >>= 7;
        }
        self.b.push(x as u8);
    }
    pub(crate) fn varint(&mut self, x: i64) {
        self.uvarint(((x as u64) << 1) ^ ((x >> 63) as u64));
    }
    pub(crate) fn uvarint_str(&mut self, s: &str) {
        self.uvarint(s.len() as u64);
        self.b.extend_from_slice(s.as_bytes());
    }
}

/// CRC32-Castagnoli of `b`.
#[inline]
pub(crate) fn crc32(b: &[u8]) -> u32 {
    crc32c::crc32c(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_roundtrip() {
        let mut e = Encbuf::default();
        for v in [0i64, 1, -1, 63, -64, 1 << 40, i64::MIN, i64::MAX] {
            e.varint(v);
        }
        e.uvarint(u64::MAX);
        let mut d = Decbuf::new(&e.b);
        for v in [0i64, 1, -1, 63, -64, 1 << 40, i64::MIN, i64::MAX] {
            assert_eq!(d.varint().unwrap(), v);
        }
        assert_eq!(d.uvarint().unwrap(), u64::MAX);
        assert!(d.is_empty());
        assert_eq!(Decbuf::new(&[0x80]).uvarint(), Err(DecodeError::Short));
        assert_eq!(Decbuf::new(&[0xff; 11]).uvarint(), Err(DecodeError::Varint));
    }

    #[test]
    fn crc_castagnoli() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xE306_9283);
    }
}
