//! Mapping between the StoreAPI messages and Strata's types: labels, matchers,
//! chunks (passed through as stored, never re-encoded) and hints.

use std::sync::Arc;

use strata_chunkenc::{AggrChunk as AggrView, AggrType, Encoding, RawChunk, XorChunk};
use strata_model::{Label, Labels, MatchType, Matcher, Sample};
use strata_proto::thanos::{self as pb, chunk::Encoding as PbEncoding, label_matcher::Type};
use strata_storage::{ChunkMeta, SelectHints};
use tonic::Status;

/// Labels as sent: sorted by name.
pub(crate) fn labels_to_pb(l: &Labels) -> Vec<pb::Label> {
    l.iter()
        .map(|x| pb::Label {
            name: x.name.clone(),
            value: x.value.clone(),
        })
        .collect()
}

/// Labels as received, sorted and deduplicated whatever the peer sent.
pub(crate) fn labels_from_pb(l: Vec<pb::Label>) -> Labels {
    Labels::from_vec(
        l.into_iter()
            .map(|x| Label {
                name: x.name,
                value: x.value,
            })
            .collect(),
    )
}

/// A received matcher; a regex that does not compile is `InvalidArgument`.
pub(crate) fn matcher_from_pb(m: &pb::LabelMatcher) -> Result<Matcher, Status> {
    let kind = match Type::try_from(m.r#type) {
        Ok(Type::Eq) => MatchType::Equal,
        Ok(Type::Neq) => MatchType::NotEqual,
        Ok(Type::Re) => MatchType::Regex,
        Ok(Type::Nre) => MatchType::NotRegex,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "matcher on label {:?}: unknown matcher type {}",
                m.name, m.r#type
            )))
        }
    };
    Matcher::new(kind, m.name.clone(), m.value.clone()).map_err(|e| {
        Status::invalid_argument(format!(
            "matcher {}{}{:?}: {e}",
            m.name,
            kind.as_str(),
            m.value
        ))
    })
}

/// All received matchers.
pub(crate) fn matchers_from_pb(ms: &[pb::LabelMatcher]) -> Result<Vec<Matcher>, Status> {
    ms.iter().map(matcher_from_pb).collect()
}

/// Matchers as sent.
pub(crate) fn matchers_to_pb(ms: &[Matcher]) -> Vec<pb::LabelMatcher> {
    ms.iter()
        .map(|m| pb::LabelMatcher {
            r#type: match m.kind {
                MatchType::Equal => Type::Eq,
                MatchType::NotEqual => Type::Neq,
                MatchType::Regex => Type::Re,
                MatchType::NotRegex => Type::Nre,
            } as i32,
            name: m.name.clone(),
            value: m.value.clone(),
        })
        .collect()
}

/// The StoreAPI encoding of a chunkenc encoding: one less than Prometheus' numbers.
/// Encodings the StoreAPI cannot carry are `None`.
fn encoding_to_pb(e: Encoding) -> Option<PbEncoding> {
    match e {
        Encoding::Xor => Some(PbEncoding::Xor),
        Encoding::Histogram => Some(PbEncoding::Histogram),
        Encoding::FloatHistogram => Some(PbEncoding::FloatHistogram),
        _ => None,
    }
}

fn encoding_from_pb(e: i32) -> Option<Encoding> {
    match PbEncoding::try_from(e).ok()? {
        PbEncoding::Xor => Some(Encoding::Xor),
        PbEncoding::Histogram => Some(Encoding::Histogram),
        PbEncoding::FloatHistogram => Some(Encoding::FloatHistogram),
    }
}

fn pb_chunk(e: Encoding, data: prost::bytes::Bytes) -> Result<pb::Chunk, Status> {
    let t = encoding_to_pb(e).ok_or_else(|| {
        Status::internal(format!(
            "chunk encoding {} cannot be sent over the StoreAPI",
            e.name()
        ))
    })?;
    Ok(pb::Chunk {
        r#type: t as i32,
        data,
        hash: 0,
    })
}

/// A stored chunk as an `AggrChunk` frame. Raw chunks fill `raw`; Thanos aggregate
/// chunks are split into their `count`..`counter` sub-chunks. The bytes are slices
/// of the stored data, never re-encoded.
pub(crate) fn chunk_to_pb(c: &ChunkMeta) -> Result<pb::AggrChunk, Status> {
    let mut out = pb::AggrChunk {
        min_time: c.min_time,
        max_time: c.max_time,
        ..Default::default()
    };
    if c.chunk.encoding != Encoding::Aggr {
        out.raw = Some(pb_chunk(c.chunk.encoding, c.chunk.data.clone())?);
        return Ok(out);
    }
    let view = AggrView::new(&c.chunk.data);
    for t in [
        AggrType::Count,
        AggrType::Sum,
        AggrType::Min,
        AggrType::Max,
        AggrType::Counter,
    ] {
        let part = view
            .get(t)
            .map_err(|e| Status::internal(format!("aggregate chunk {:?}: {e}", t)))?;
        let Some((enc, body)) = part else { continue };
        let data = c.chunk.data.slice_ref(body);
        let pc = Some(pb_chunk(enc, data)?);
        match t {
            AggrType::Count => out.count = pc,
            AggrType::Sum => out.sum = pc,
            AggrType::Min => out.min = pc,
            AggrType::Max => out.max = pc,
            AggrType::Counter => out.counter = pc,
        }
    }
    Ok(out)
}

/// A received chunk: `raw` becomes a [`RawChunk`] with the bytes unchanged; aggregate
/// sub-chunks are framed back into one Thanos aggregate chunk.
pub(crate) fn chunk_from_pb(c: pb::AggrChunk) -> Result<ChunkMeta, String> {
    let (min_time, max_time) = (c.min_time, c.max_time);
    if let Some(raw) = c.raw {
        let enc = encoding_from_pb(raw.r#type)
            .ok_or_else(|| format!("unknown chunk encoding {}", raw.r#type))?;
        return Ok(ChunkMeta {
            min_time,
            max_time,
            chunk: RawChunk::new(enc, raw.data),
        });
    }
    let parts = [c.count, c.sum, c.min, c.max, c.counter];
    if parts.iter().all(Option::is_none) {
        return Err("chunk without raw or aggregate data".to_string());
    }
    let mut encs = [None; 5];
    for (slot, p) in encs.iter_mut().zip(&parts) {
        if let Some(p) = p {
            *slot = Some(
                encoding_from_pb(p.r#type)
                    .ok_or_else(|| format!("unknown chunk encoding {}", p.r#type))?,
            );
        }
    }
    let mut refs: [Option<(Encoding, &[u8])>; 5] = [None; 5];
    for ((r, e), p) in refs.iter_mut().zip(encs).zip(&parts) {
        if let (Some(e), Some(p)) = (e, p) {
            *r = Some((e, &p.data[..]));
        }
    }
    Ok(ChunkMeta {
        min_time,
        max_time,
        chunk: RawChunk::new(Encoding::Aggr, AggrView::encode(refs)),
    })
}

/// Decoded samples (a non-chunk source) as XOR chunks of at most 120 samples.
pub(crate) fn samples_to_pb(samples: &Arc<[Sample]>) -> Result<Vec<pb::AggrChunk>, Status> {
    let mut out = Vec::new();
    for part in samples.chunks(strata_chunkenc::SAMPLES_PER_CHUNK) {
        let (Some(first), Some(last)) = (part.first(), part.last()) else {
            continue;
        };
        let mut app = XorChunk::new().appender();
        for s in part {
            app.append(s.t, s.v)
                .map_err(|e| Status::internal(format!("encoding samples: {e}")))?;
        }
        out.push(pb::AggrChunk {
            min_time: first.t,
            max_time: last.t,
            raw: Some(pb::Chunk {
                r#type: PbEncoding::Xor as i32,
                data: app.finish().into_bytes().into(),
                hash: 0,
            }),
            ..Default::default()
        });
    }
    Ok(out)
}

/// Select hints from the request's `query_hints` (and the deprecated `step`/`range`).
/// The opaque `hints` Any is store-specific; Strata sources define none, so it is
/// ignored.
pub(crate) fn hints_from_pb(r: &pb::SeriesRequest) -> SelectHints {
    let mut h = SelectHints {
        start_ms: r.min_time,
        end_ms: r.max_time,
        step_ms: r.step,
        range_ms: r.range,
        ..Default::default()
    };
    if let Some(q) = &r.query_hints {
        if q.step_millis != 0 {
            h.step_ms = q.step_millis;
        }
        if let Some(f) = &q.func {
            h.func = Some(f.name.clone());
        }
        if let Some(g) = &q.grouping {
            h.by = g.by;
            h.grouping = g.labels.clone();
        }
        if let Some(r) = &q.range {
            h.range_ms = r.millis;
        }
    }
    h
}

/// Query hints as sent.
pub(crate) fn hints_to_pb(h: &SelectHints) -> Option<pb::QueryHints> {
    if *h == SelectHints::default() {
        return None;
    }
    Some(pb::QueryHints {
        step_millis: h.step_ms,
        func: h.func.as_ref().map(|n| pb::Func { name: n.clone() }),
        grouping: (h.by || !h.grouping.is_empty()).then(|| pb::Grouping {
            by: h.by,
            labels: h.grouping.clone(),
        }),
        range: (h.range_ms != 0).then_some(pb::Range { millis: h.range_ms }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_chunks_split_and_rejoin_byte_identical() {
        let mut a = XorChunk::new().appender();
        a.append(1, 2.0).unwrap();
        let count = a.finish().into_bytes();
        let mut a = XorChunk::new().appender();
        a.append(1, 7.5).unwrap();
        let sum = a.finish().into_bytes();
        let data = AggrView::encode([
            Some((Encoding::Xor, &count[..])),
            Some((Encoding::Xor, &sum[..])),
            None,
            None,
            None,
        ]);
        let meta = ChunkMeta {
            min_time: 1,
            max_time: 1,
            chunk: RawChunk::new(Encoding::Aggr, data.clone()),
        };
        let pbc = chunk_to_pb(&meta).unwrap();
        assert!(pbc.raw.is_none() && pbc.min.is_none());
        assert_eq!(&pbc.count.as_ref().unwrap().data[..], &count[..]);
        assert_eq!(&pbc.sum.as_ref().unwrap().data[..], &sum[..]);
        let back = chunk_from_pb(pbc).unwrap();
        assert_eq!(back, meta);
    }

    #[test]
    fn unsendable_encodings_and_bad_regexes_are_clear_errors() {
        let meta = ChunkMeta {
            min_time: 0,
            max_time: 0,
            chunk: RawChunk::new(Encoding::Xor2, vec![0u8]),
        };
        let e = chunk_to_pb(&meta).unwrap_err();
        assert!(e.message().contains("cannot be sent"), "{e}");
        let m = pb::LabelMatcher {
            r#type: Type::Re as i32,
            name: "job".into(),
            value: "(".into(),
        };
        let e = matcher_from_pb(&m).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("job=~\"(\""), "{e}");
        let m = pb::LabelMatcher { r#type: 9, ..m };
        assert_eq!(
            matcher_from_pb(&m).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn samples_are_cut_into_chunks_of_120() {
        let s: Arc<[Sample]> = (0..250).map(|i| Sample::new(i, i as f64)).collect();
        let c = samples_to_pb(&s).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!((c[2].min_time, c[2].max_time), (240, 249));
        let n: usize = c
            .iter()
            .map(|x| strata_chunkenc::xor_num_samples(&x.raw.as_ref().unwrap().data))
            .sum();
        assert_eq!(n, 250);
    }
}
