//! Thanos' downsampled aggregate chunk (encoding 0xFF): five optional sub-chunks
//! (count, sum, min, max, counter), each an ordinary chunk.

use crate::error::{Error, Result};
use crate::{Encoding, XorIterator};

/// The aggregate a sub-chunk holds, in storage order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggrType {
    /// Number of raw samples per window.
    Count = 0,
    /// Sum of raw values per window.
    Sum = 1,
    /// Minimum per window.
    Min = 2,
    /// Maximum per window.
    Max = 3,
    /// Reset-adjusted counter value.
    Counter = 4,
}

/// A view over an aggregate chunk's data.
#[derive(Clone, Copy, Debug)]
pub struct AggrChunk<'a> {
    data: &'a [u8],
}

impl<'a> AggrChunk<'a> {
    /// A view over encoded aggregate-chunk data.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The sub-chunk of type `t` as (encoding, data), or `None` if absent.
    pub fn get(&self, t: AggrType) -> Result<Option<(Encoding, &'a [u8])>> {
        let mut rest = self.data;
        for i in 0..=(t as usize) {
            let (len, n) = uvarint(rest).ok_or(Error::Corrupt("aggregate chunk length"))?;
            rest = &rest[n..];
            if len == 0 {
                if i == t as usize {
                    return Ok(None);
                }
                continue;
            }
            let len = usize::try_from(len).map_err(|_| Error::Corrupt("aggregate chunk length"))?;
            let enc = *rest.first().ok_or(Error::Truncated)?;
            let end = len.checked_add(1).ok_or(Error::Truncated)?;
            let body = rest.get(1..end).ok_or(Error::Truncated)?;
            if i == t as usize {
                return Ok(Some((Encoding::from_u8(enc)?, body)));
            }
            rest = rest.get(end..).ok_or(Error::Truncated)?;
        }
        Ok(None)
    }

    /// A float iterator over sub-chunk `t`.
    pub fn iter(&self, t: AggrType) -> Result<Option<XorIterator<'a>>> {
        match self.get(t)? {
            None => Ok(None),
            Some((Encoding::Xor, d)) => Ok(Some(XorIterator::new(d))),
            Some((e, _)) => Err(Error::Unsupported(e)),
        }
    }

    /// Samples of the count sub-chunk.
    pub fn num_samples(&self) -> Result<usize> {
        Ok(match self.get(AggrType::Count)? {
            Some((_, d)) => crate::xor_num_samples(d),
            None => 0,
        })
    }

    /// Encodes sub-chunks (count, sum, min, max, counter order) into aggregate data.
    pub fn encode(parts: [Option<(Encoding, &[u8])>; 5]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            match p {
                None => out.push(0),
                Some((e, d)) => {
                    let mut x = d.len() as u64;
                    while x >= 0x80 {
                        out.push((x as u8) | 0x80);
                        x >>= 7;
                    }
                    out.push(x as u8);
                    out.push(e.as_u8());
                    out.extend_from_slice(d);
                }
            }
        }
        out
    }
}

fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut x = 0u64;
    let mut s = 0u32;
    for (i, &c) in b.iter().enumerate().take(10) {
        if c < 0x80 {
            return Some((x | (u64::from(c) << s), i + 1));
        }
        x |= u64::from(c & 0x7f) << s;
        s += 7;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SampleIterator, XorChunk};

    #[test]
    fn roundtrip() {
        let mut a = XorChunk::new().appender();
        a.append(10, 3.0).unwrap();
        let c = a.finish().into_bytes();
        let data = AggrChunk::encode([
            Some((Encoding::Xor, &c)),
            None,
            None,
            None,
            Some((Encoding::Xor, &c)),
        ]);
        let ag = AggrChunk::new(&data);
        assert_eq!(ag.num_samples().unwrap(), 1);
        assert!(ag.get(AggrType::Sum).unwrap().is_none());
        let mut it = ag.iter(AggrType::Counter).unwrap().unwrap();
        assert_eq!(it.next().unwrap(), Some((10, 3.0)));
        assert!(AggrChunk::new(&[5, 1]).get(AggrType::Count).is_err());
        // Found by the fuzzer: a length near u64::MAX must not overflow.
        let huge = [
            0u8, 4, 0xfe, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x41,
        ];
        for t in [
            AggrType::Count,
            AggrType::Sum,
            AggrType::Min,
            AggrType::Max,
            AggrType::Counter,
        ] {
            let _ = AggrChunk::new(&huge).get(t);
        }
    }
}
