//! The `tombstones` file: deleted time intervals per series (mirrors
//! `tsdb/tombstones`).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use crate::encoding::{crc32, Decbuf, Encbuf};
use crate::error::{Error, Result};

/// Magic number of a tombstones file.
pub const MAGIC_TOMBSTONES: u32 = 0x0130_BA30;

/// An inclusive deleted interval `[min_time, max_time]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    /// First deleted timestamp.
    pub min_time: i64,
    /// Last deleted timestamp.
    pub max_time: i64,
}

impl Interval {
    /// Whether `t` is inside the interval.
    pub fn contains(&self, t: i64) -> bool {
        self.min_time <= t && t <= self.max_time
    }
}

/// Deleted intervals by series ref, intervals sorted and merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tombstones {
    by_series: BTreeMap<u32, Vec<Interval>>,
}

impl Tombstones {
    /// Whether there are no tombstones.
    pub fn is_empty(&self) -> bool {
        self.by_series.is_empty()
    }

    /// Number of intervals.
    pub fn num_intervals(&self) -> usize {
        self.by_series.values().map(Vec::len).sum()
    }

    /// Adds an interval for a series, merging overlapping or adjacent ones.
    pub fn add(&mut self, series: u32, iv: Interval) {
        let v = self.by_series.entry(series).or_default();
        v.push(iv);
        v.sort();
        let mut out: Vec<Interval> = Vec::with_capacity(v.len());
        for i in v.drain(..) {
            match out.last_mut() {
                Some(l) if i.min_time <= l.max_time.saturating_add(1) => {
                    l.max_time = l.max_time.max(i.max_time)
                }
                _ => out.push(i),
            }
        }
        *v = out;
    }

    /// Intervals of a series (empty if none).
    pub fn get(&self, series: u32) -> &[Interval] {
        self.by_series
            .get(&series)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Reads a tombstones file; a missing file means no tombstones.
    pub fn read(path: &Path) -> Result<Self> {
        let b = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::io(path, e)),
        };
        if b.len() < 9 {
            return Err(Error::corrupt(
                path,
                0,
                format!("file too short ({} bytes)", b.len()),
            ));
        }
        let magic = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        if magic != MAGIC_TOMBSTONES {
            return Err(Error::corrupt(
                path,
                0,
                format!("invalid magic number {magic:#x}"),
            ));
        }
        if b[4] != 1 {
            return Err(Error::corrupt(
                path,
                4,
                format!("unsupported version {}", b[4]),
            ));
        }
        let body = &b[5..b.len() - 4];
        let want = u32::from_be_bytes([
            b[b.len() - 4],
            b[b.len() - 3],
            b[b.len() - 2],
            b[b.len() - 1],
        ]);
        if crc32(body) != want {
            return Err(Error::corrupt(
                path,
                (b.len() - 4) as u64,
                "checksum mismatch",
            ));
        }
        let mut d = Decbuf::new(body);
        let mut t = Self::default();
        while !d.is_empty() {
            let off = 5 + body.len() - d.len();
            let err = |e| Error::corrupt(path, off as u64, format!("tombstone record: {e}"));
            let r = d.uvarint().map_err(err)?;
            let mint = d.varint().map_err(err)?;
            let maxt = d.varint().map_err(err)?;
            let r = u32::try_from(r)
                .map_err(|_| Error::corrupt(path, off as u64, "series ref overflows"))?;
            t.add(
                r,
                Interval {
                    min_time: mint,
                    max_time: maxt,
                },
            );
        }
        Ok(t)
    }

    /// Writes the file atomically (`tombstones.tmp` then rename); returns its size.
    pub fn write(&self, dir: &Path) -> Result<u64> {
        let mut e = Encbuf::default();
        e.be32(MAGIC_TOMBSTONES);
        e.u8(1);
        let start = e.b.len();
        for (r, ivs) in &self.by_series {
            for iv in ivs {
                e.uvarint(u64::from(*r));
                e.varint(iv.min_time);
                e.varint(iv.max_time);
            }
        }
        let crc = crc32(&e.b[start..]);
        e.be32(crc);
        let tmp = dir.join("tombstones.tmp");
        let path = dir.join("tombstones");
        let mut f = fs::File::create(&tmp).map_err(|er| Error::io(&tmp, er))?;
        f.write_all(&e.b).map_err(|er| Error::io(&tmp, er))?;
        f.sync_all().map_err(|er| Error::io(&tmp, er))?;
        fs::rename(&tmp, &path).map_err(|er| Error::io(&path, er))?;
        Ok(e.b.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_nine_bytes() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(Tombstones::default().write(d.path()).unwrap(), 9);
        let b = fs::read(d.path().join("tombstones")).unwrap();
        assert_eq!(b, vec![0x01, 0x30, 0xBA, 0x30, 0x01, 0, 0, 0, 0]);
        assert!(Tombstones::read(&d.path().join("tombstones"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn roundtrip_and_corruption() {
        let d = tempfile::tempdir().unwrap();
        let mut t = Tombstones::default();
        t.add(
            3,
            Interval {
                min_time: 10,
                max_time: 20,
            },
        );
        t.add(
            3,
            Interval {
                min_time: 15,
                max_time: 30,
            },
        );
        t.add(
            7,
            Interval {
                min_time: -5,
                max_time: 5,
            },
        );
        t.write(d.path()).unwrap();
        let p = d.path().join("tombstones");
        let r = Tombstones::read(&p).unwrap();
        assert_eq!(r, t);
        assert_eq!(
            r.get(3),
            &[Interval {
                min_time: 10,
                max_time: 30
            }]
        );
        let mut b = fs::read(&p).unwrap();
        b[6] ^= 0xff;
        fs::write(&p, &b).unwrap();
        let e = Tombstones::read(&p).unwrap_err().to_string();
        assert!(e.contains("tombstones") && e.contains("checksum"), "{e}");
    }
}
