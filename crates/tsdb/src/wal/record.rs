//! WAL record decoding (mirrors `tsdb/record`).

use strata_model::{Label, Labels};

use crate::encoding::{Decbuf, DecodeError, Encbuf};

/// A series record entry: the head's series ref and its labels.
#[derive(Clone, Debug, PartialEq)]
pub struct RefSeries {
    /// Series ref (head-internal ID).
    pub series_ref: u64,
    /// Labels.
    pub labels: Labels,
}

/// A float sample of a series ref.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefSample {
    /// Series ref.
    pub series_ref: u64,
    /// Timestamp, ms.
    pub t: i64,
    /// Value (bits preserved).
    pub v: f64,
}

/// A deleted interval of a series ref.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefTombstone {
    /// Series ref.
    pub series_ref: u64,
    /// First deleted timestamp.
    pub min_time: i64,
    /// Last deleted timestamp.
    pub max_time: i64,
}

/// A decoded WAL record.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// Type 1.
    Series(Vec<RefSeries>),
    /// Type 2.
    Samples(Vec<RefSample>),
    /// Type 3.
    Tombstones(Vec<RefTombstone>),
    /// A record type this reader skips (exemplars, metadata, mmap markers), by id.
    Skipped(u8),
    /// Records this reader cannot decode yet, by id: native-histogram samples
    /// (7–10, 12, 13) and samples with start timestamps (11).
    Unsupported(u8),
}

/// Decodes a record's bytes.
pub fn decode(b: &[u8]) -> Result<Record, String> {
    let Some((&typ, body)) = b.split_first() else {
        return Err("empty record".into());
    };
    let err = |e: DecodeError| format!("record type {typ}: {e}");
    let mut d = Decbuf::new(body);
    match typ {
        1 => {
            let mut out = Vec::new();
            while !d.is_empty() {
                let r = d.be64().map_err(err)?;
                let n = d.uvarint().map_err(err)? as usize;
                let mut ls = Vec::with_capacity(n.min(256));
                for _ in 0..n {
                    let name = d.uvarint_str().map_err(err)?;
                    let value = d.uvarint_str().map_err(err)?;
                    ls.push(Label::new(name, value));
                }
                out.push(RefSeries {
                    series_ref: r,
                    labels: Labels::from_vec(ls),
                });
            }
            Ok(Record::Series(out))
        }
        2 => {
            let mut out = Vec::new();
            if d.is_empty() {
                return Ok(Record::Samples(out));
            }
            let base_ref = d.be64().map_err(err)?;
            let base_t = d.be64().map_err(err)? as i64;
            while !d.is_empty() {
                let dr = d.varint().map_err(err)?;
                let dt = d.varint().map_err(err)?;
                let v = f64::from_bits(d.be64().map_err(err)?);
                out.push(RefSample {
                    series_ref: base_ref.wrapping_add(dr as u64),
                    t: base_t.wrapping_add(dt),
                    v,
                });
            }
            Ok(Record::Samples(out))
        }
        3 => {
            let mut out = Vec::new();
            while !d.is_empty() {
                let r = d.be64().map_err(err)?;
                let mint = d.varint().map_err(err)?;
                let maxt = d.varint().map_err(err)?;
                out.push(RefTombstone {
                    series_ref: r,
                    min_time: mint,
                    max_time: maxt,
                });
            }
            Ok(Record::Tombstones(out))
        }
        4..=6 => Ok(Record::Skipped(typ)),
        7..=13 => Ok(Record::Unsupported(typ)),
        other => Err(format!("unknown record type {other}")),
    }
}

/// Encodes a series record (type 1).
pub fn encode_series(series: &[RefSeries]) -> Vec<u8> {
    let mut e = Encbuf::default();
    e.u8(1);
    for s in series {
        e.be64(s.series_ref);
        e.uvarint(s.labels.len() as u64);
        for l in &s.labels {
            e.uvarint_str(&l.name);
            e.uvarint_str(&l.value);
        }
    }
    e.b
}

/// Encodes a samples record (type 2), deltas against the first sample.
pub fn encode_samples(samples: &[RefSample]) -> Vec<u8> {
    let mut e = Encbuf::default();
    e.u8(2);
    let Some(first) = samples.first() else {
        return e.b;
    };
    e.be64(first.series_ref);
    e.be64(first.t as u64);
    for s in samples {
        e.varint(s.series_ref.wrapping_sub(first.series_ref) as i64);
        e.varint(s.t.wrapping_sub(first.t));
        e.be64(s.v.to_bits());
    }
    e.b
}

/// Encodes a tombstones record (type 3).
pub fn encode_tombstones(ts: &[RefTombstone]) -> Vec<u8> {
    let mut e = Encbuf::default();
    e.u8(3);
    for t in ts {
        e.be64(t.series_ref);
        e.varint(t.min_time);
        e.varint(t.max_time);
    }
    e.b
}
