//! The remote write 1.0 and remote read messages of proto package `prometheus`
//! (`prompb/types.proto`, `prompb/remote.proto`), written by hand with explicit
//! field numbers from `spec/wire-formats.md` §2.1 and §2.4.
//!
//! gogoproto options do not change the wire format, so these plain prost messages
//! are byte-compatible with Prometheus, Thanos and Cortex. Enums are carried as
//! `i32` (as prost does), so unknown values decode instead of failing.

use bytes::Bytes;

/// `prometheus.WriteRequest`: one remote write 1.0 request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series with their samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    /// Metric metadata (Prometheus sends it here although the 1.0 spec reserves 3).
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`: a label set and its samples.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Labels; senders sort them by name.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Float samples in time order.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Exemplars.
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
    /// Native histogram samples.
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct Label {
    /// Label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Labels`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Labels {
    /// The labels.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
}

/// `prometheus.Sample`: a float value at a millisecond timestamp.
///
/// Encoded by hand so that `-0.0` survives: proto3 omits a field equal to its
/// default, and generated code (Go's and prost's) compares `-0.0 == 0.0`, so it
/// sends `-0` as `+0`. Here the value is omitted only when its bits are zero;
/// any decoder reads the explicit field back as `-0`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// The value (stale markers are the NaN `0x7ff0000000000002`).
    pub value: f64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}

impl prost::Message for Sample {
    fn encode_raw(&self, buf: &mut impl bytes::BufMut) {
        if self.value.to_bits() != 0 {
            prost::encoding::double::encode(1, &self.value, buf);
        }
        if self.timestamp != 0 {
            prost::encoding::int64::encode(2, &self.timestamp, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        match tag {
            1 => prost::encoding::double::merge(wire_type, &mut self.value, buf, ctx),
            2 => prost::encoding::int64::merge(wire_type, &mut self.timestamp, buf, ctx),
            _ => prost::encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let mut n = 0;
        if self.value.to_bits() != 0 {
            n += prost::encoding::double::encoded_len(1, &self.value);
        }
        if self.timestamp != 0 {
            n += prost::encoding::int64::encoded_len(2, &self.timestamp);
        }
        n
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// `prometheus.Exemplar`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    /// Exemplar labels (e.g. a trace id).
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// The value.
    #[prost(double, tag = "2")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    /// A [`MetricType`].
    #[prost(enumeration = "MetricType", tag = "1")]
    pub r#type: i32,
    /// The metric family name.
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    /// HELP text.
    #[prost(string, tag = "4")]
    pub help: String,
    /// UNIT.
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// `prometheus.MetricMetadata.MetricType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    /// Unknown.
    Unknown = 0,
    /// Counter.
    Counter = 1,
    /// Gauge.
    Gauge = 2,
    /// Classic histogram.
    Histogram = 3,
    /// Gauge histogram.
    Gaugehistogram = 4,
    /// Summary.
    Summary = 5,
    /// Info.
    Info = 6,
    /// State set.
    Stateset = 7,
}

/// `prometheus.Histogram`: a native histogram sample. Strata decodes it only to
/// reject it with a clear message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// Observation count (integer or float histogram).
    #[prost(oneof = "HistogramCount", tags = "1, 2")]
    pub count: Option<HistogramCount>,
    /// Sum of observations.
    #[prost(double, tag = "3")]
    pub sum: f64,
    /// Bucket schema.
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    /// Width of the zero bucket.
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    /// Zero bucket count.
    #[prost(oneof = "HistogramZeroCount", tags = "6, 7")]
    pub zero_count: Option<HistogramZeroCount>,
    /// Negative bucket spans.
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<BucketSpan>,
    /// Negative bucket deltas (integer histograms).
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: Vec<i64>,
    /// Negative bucket counts (float histograms).
    #[prost(double, repeated, tag = "10")]
    pub negative_counts: Vec<f64>,
    /// Positive bucket spans.
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    /// Positive bucket deltas (integer histograms).
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    /// Positive bucket counts (float histograms).
    #[prost(double, repeated, tag = "13")]
    pub positive_counts: Vec<f64>,
    /// Counter reset hint (`UNKNOWN`=0, `YES`=1, `NO`=2, `GAUGE`=3).
    #[prost(int32, tag = "14")]
    pub reset_hint: i32,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
    /// Custom bucket bounds.
    #[prost(double, repeated, tag = "16")]
    pub custom_values: Vec<f64>,
}

/// `Histogram.count`.
#[derive(Clone, Copy, PartialEq, prost::Oneof)]
pub enum HistogramCount {
    /// Integer histogram count.
    #[prost(uint64, tag = "1")]
    CountInt(u64),
    /// Float histogram count.
    #[prost(double, tag = "2")]
    CountFloat(f64),
}

/// `Histogram.zero_count`.
#[derive(Clone, Copy, PartialEq, prost::Oneof)]
pub enum HistogramZeroCount {
    /// Integer zero bucket count.
    #[prost(uint64, tag = "6")]
    ZeroCountInt(u64),
    /// Float zero bucket count.
    #[prost(double, tag = "7")]
    ZeroCountFloat(f64),
}

/// `prometheus.BucketSpan`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct BucketSpan {
    /// Gap to the previous span, or the starting index.
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    /// Number of consecutive buckets.
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

/// `prometheus.ReadRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadRequest {
    /// The queries, answered in order.
    #[prost(message, repeated, tag = "1")]
    pub queries: Vec<Query>,
    /// [`ResponseType`]s the client accepts, in preference order.
    #[prost(enumeration = "ResponseType", repeated, tag = "2")]
    pub accepted_response_types: Vec<i32>,
}

/// `prometheus.ReadRequest.ResponseType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ResponseType {
    /// One snappy-compressed [`ReadResponse`] of samples.
    Samples = 0,
    /// A stream of [`ChunkedReadResponse`] frames carrying XOR chunks.
    StreamedXorChunks = 1,
}

/// `prometheus.Query`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Query {
    /// Inclusive start, ms.
    #[prost(int64, tag = "1")]
    pub start_timestamp_ms: i64,
    /// Inclusive end, ms.
    #[prost(int64, tag = "2")]
    pub end_timestamp_ms: i64,
    /// All must match.
    #[prost(message, repeated, tag = "3")]
    pub matchers: Vec<LabelMatcher>,
    /// Optional query hints.
    #[prost(message, optional, tag = "4")]
    pub hints: Option<ReadHints>,
}

/// `prometheus.LabelMatcher`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LabelMatcher {
    /// A [`MatcherType`].
    #[prost(enumeration = "MatcherType", tag = "1")]
    pub r#type: i32,
    /// Label name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Value or regex.
    #[prost(string, tag = "3")]
    pub value: String,
}

/// `prometheus.LabelMatcher.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MatcherType {
    /// `=`.
    Eq = 0,
    /// `!=`.
    Neq = 1,
    /// `=~`.
    Re = 2,
    /// `!~`.
    Nre = 3,
}

/// `prometheus.ReadHints`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ReadHints {
    /// Query step, ms.
    #[prost(int64, tag = "1")]
    pub step_ms: i64,
    /// Surrounding function.
    #[prost(string, tag = "2")]
    pub func: String,
    /// Query start, ms.
    #[prost(int64, tag = "3")]
    pub start_ms: i64,
    /// Query end, ms.
    #[prost(int64, tag = "4")]
    pub end_ms: i64,
    /// Grouping labels.
    #[prost(string, repeated, tag = "5")]
    pub grouping: Vec<String>,
    /// `by` (true) or `without` (false).
    #[prost(bool, tag = "6")]
    pub by: bool,
    /// Range selector range, ms.
    #[prost(int64, tag = "7")]
    pub range_ms: i64,
}

/// `prometheus.ReadResponse`: the SAMPLES response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadResponse {
    /// One result per query, in request order.
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<QueryResult>,
}

/// `prometheus.QueryResult`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryResult {
    /// Series with samples in time order.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.ChunkedReadResponse`: one frame of a STREAMED_XOR_CHUNKS response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChunkedReadResponse {
    /// At most one series per frame in Prometheus' and Strata's answers.
    #[prost(message, repeated, tag = "1")]
    pub chunked_series: Vec<ChunkedSeries>,
    /// Index of the query this frame answers.
    #[prost(int64, tag = "2")]
    pub query_index: i64,
}

/// `prometheus.ChunkedSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChunkedSeries {
    /// Sorted labels, external labels merged in.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Chunks in time order.
    #[prost(message, repeated, tag = "2")]
    pub chunks: Vec<Chunk>,
}

/// `prometheus.Chunk`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Chunk {
    /// First sample timestamp, ms.
    #[prost(int64, tag = "1")]
    pub min_time_ms: i64,
    /// Last sample timestamp, ms.
    #[prost(int64, tag = "2")]
    pub max_time_ms: i64,
    /// A [`ChunkEncoding`].
    #[prost(enumeration = "ChunkEncoding", tag = "3")]
    pub r#type: i32,
    /// The chunk bytes as stored (without the encoding byte).
    #[prost(bytes = "bytes", tag = "4")]
    pub data: Bytes,
}

/// `prometheus.Chunk.Encoding`; numbers equal the TSDB chunk encoding bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ChunkEncoding {
    /// Unknown.
    Unknown = 0,
    /// Gorilla XOR floats.
    Xor = 1,
    /// Integer native histograms.
    Histogram = 2,
    /// Float native histograms.
    FloatHistogram = 3,
    /// XOR with start timestamps.
    Xor2 = 4,
    /// Histograms with start timestamps.
    HistogramSt = 5,
    /// Float histograms with start timestamps.
    FloatHistogramSt = 6,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Bytes written by hand from the field numbers: the tags must match the spec.
    #[test]
    fn field_numbers_match_the_wire() {
        let s = Sample {
            value: 1.0,
            timestamp: 5,
        };
        // value=1 (fixed64, tag 0x09), timestamp=2 (varint, tag 0x10).
        let mut want = vec![0x09];
        want.extend_from_slice(&1.0f64.to_le_bytes());
        want.extend_from_slice(&[0x10, 5]);
        assert_eq!(s.encode_to_vec(), want);

        // -0 is sent explicitly; +0 and a zero timestamp are omitted.
        let neg = Sample {
            value: -0.0,
            timestamp: 0,
        };
        let mut want = vec![0x09];
        want.extend_from_slice(&(-0.0f64).to_le_bytes());
        assert_eq!(neg.encode_to_vec(), want);
        assert_eq!(neg.encoded_len(), 9);
        let back = Sample::decode(want.as_slice()).unwrap();
        assert_eq!(back.value.to_bits(), (-0.0f64).to_bits());
        assert!(Sample::default().encode_to_vec().is_empty());
        // Unknown fields are skipped.
        let mut with_unknown = s.encode_to_vec();
        with_unknown.extend_from_slice(&[0x18, 7]);
        assert_eq!(Sample::decode(with_unknown.as_slice()).unwrap(), s);

        let l = Label {
            name: "a".into(),
            value: "b".into(),
        };
        assert_eq!(l.encode_to_vec(), vec![0x0a, 1, b'a', 0x12, 1, b'b']);

        let c = Chunk {
            min_time_ms: 1,
            max_time_ms: 2,
            r#type: ChunkEncoding::Xor as i32,
            data: Bytes::from_static(b"x"),
        };
        assert_eq!(
            c.encode_to_vec(),
            vec![0x08, 1, 0x10, 2, 0x18, 1, 0x22, 1, b'x']
        );

        let r = ReadRequest {
            queries: vec![],
            accepted_response_types: vec![1, 0],
        };
        // Packed repeated enum, as Go writes it.
        assert_eq!(r.encode_to_vec(), vec![0x12, 2, 1, 0]);

        let span = BucketSpan {
            offset: -1,
            length: 2,
        };
        // sint32 zigzag: -1 -> 1.
        assert_eq!(span.encode_to_vec(), vec![0x08, 1, 0x10, 2]);
    }

    #[test]
    fn histogram_oneofs_decode() {
        let h = Histogram {
            count: Some(HistogramCount::CountFloat(2.5)),
            zero_count: Some(HistogramZeroCount::ZeroCountInt(3)),
            schema: -53,
            timestamp: 7,
            ..Default::default()
        };
        let back = Histogram::decode(h.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back, h);
    }
}
