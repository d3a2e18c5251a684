//! Thanos' downsampling tests (`pkg/compact/downsample/downsample_test.go`),
//! the float cases, with the same inputs and expected outputs. Timestamps and
//! values are compared exactly (values by bit pattern).
//!
//! Upstream runs `Downsample` over an in-memory block and reads the written
//! block back; here the per-series body ([`downsample_series`]) gets the same
//! chunks, with the input resolution the upstream harness puts in its fake
//! meta (`resolution - 1` for aggregated input, else raw). One test goes
//! through [`downsample_block`] with real blocks on disk. Upstream's sample
//! iterators over plain lists become XOR chunks here (our iterators read XOR
//! chunks); XOR keeps every timestamp and bit pattern.
//!
//! Not ported: the native-histogram tests (not implemented yet),
//! `TestDownsampleAndReadResultingData` (it reads through a PromQL querier),
//! `TestExpandChunkIterator` and `TestSamplesFromTSDBSamples` (helpers with
//! no public counterpart here).

#![allow(clippy::unwrap_used)]

#[path = "thanos_downsample/data.rs"]
mod data;

use std::collections::BTreeMap;

use strata_block::Meta;
use strata_chunkenc::{
    AggrChunk, AggrType, AverageIterator, CounterResetsIterator, Encoding, RawChunk,
    SampleIterator, XorChunk, XorIterator,
};
use strata_compact::downsample::{
    downsample_aggr, downsample_block, downsample_raw, downsample_series, RES_1H, RES_5M, RES_RAW,
};
use strata_compact::Error;
use strata_model::{labels, Labels, Sample, NORMAL_NAN_BITS, STALE_NAN_BITS};
use strata_storage::ChunkMeta;
use strata_tsdb::block::{Block, BlockWriter, BlockWriterOptions};
use ulid::Ulid;

use data::{
    realistic_chk_data_with_counter_reset_res_5m,
    realistic_chk_data_with_counter_resets_after_counter_series_iterating,
    realistic_chk_data_with_stale_marker,
};

const AGGR_TYPES: [AggrType; 5] = [
    AggrType::Count,
    AggrType::Sum,
    AggrType::Min,
    AggrType::Max,
    AggrType::Counter,
];

/// `value.StaleNaN`.
fn stale() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// `value.NormalNaN`, which is also Go's `math.NaN()`.
fn normal_nan() -> f64 {
    f64::from_bits(NORMAL_NAN_BITS)
}

type Samples = Vec<(i64, f64)>;

/// One aggregate chunk's samples per aggregate (upstream's
/// `map[AggrType][]sample`), indexed by `AggrType as usize`; `None`: absent.
type Aggrs = [Option<Samples>; 5];

fn aggrs(entries: Vec<(AggrType, Samples)>) -> Aggrs {
    let mut a: Aggrs = Default::default();
    for (at, s) in entries {
        a[at as usize] = Some(s);
    }
    a
}

fn res_5m() -> Vec<Aggrs> {
    realistic_chk_data_with_counter_reset_res_5m()
        .into_iter()
        .map(aggrs)
        .collect()
}

fn xor_bytes(samples: &[(i64, f64)]) -> Vec<u8> {
    let mut app = XorChunk::new().appender();
    for &(t, v) in samples {
        app.append(t, v).unwrap();
    }
    app.finish().into_bytes()
}

/// A raw chunk as upstream's `chunksToSeriesIteratable` builds it: min and max
/// time are the first and last sample's.
fn raw_chunk(samples: &[(i64, f64)]) -> ChunkMeta {
    ChunkMeta {
        min_time: samples[0].0,
        max_time: samples[samples.len() - 1].0,
        chunk: RawChunk::new(Encoding::Xor, xor_bytes(samples)),
    }
}

/// Upstream's `encodeTestAggrSeries`: all five sub-chunks are written (empty
/// XOR chunks for absent aggregates, as `newAggrChunkBuilder` creates all
/// five); min and max time span every sample of every aggregate.
fn encode_test_aggr_series(v: &Aggrs) -> ChunkMeta {
    assert!(v.iter().any(Option::is_some), "no data");
    let (mut mint, mut maxt) = (i64::MAX, i64::MIN);
    let bytes: Vec<Vec<u8>> = v
        .iter()
        .map(|s| {
            let s = s.as_deref().unwrap_or(&[]);
            for &(t, _) in s {
                mint = mint.min(t);
                maxt = maxt.max(t);
            }
            xor_bytes(s)
        })
        .collect();
    let parts = std::array::from_fn(|i| Some((Encoding::Xor, bytes[i].as_slice())));
    ChunkMeta {
        min_time: mint,
        max_time: maxt,
        chunk: RawChunk::new(Encoding::Aggr, AggrChunk::encode(parts)),
    }
}

/// Upstream's `expandXorChunkIterator`: no stale markers, no samples that go
/// back in time (starting from 0).
fn expand(mut it: impl SampleIterator) -> Samples {
    let mut out = Vec::new();
    let mut last_t = 0i64;
    while let Some((t, v)) = it.next().unwrap() {
        if v.to_bits() == STALE_NAN_BITS {
            continue;
        }
        if t >= last_t {
            out.push((t, v));
            last_t = t;
        }
    }
    out
}

/// Every sample of an iterator, unfiltered.
fn drain(mut it: impl SampleIterator) -> Samples {
    let mut out = Vec::new();
    while let Some(s) = it.next().unwrap() {
        out.push(s);
    }
    out
}

/// Upstream's read-back of an output chunk: each present aggregate, expanded.
fn decode_aggr(c: &ChunkMeta) -> Aggrs {
    assert_eq!(c.chunk.encoding, Encoding::Aggr, "output chunk encoding");
    let ac = AggrChunk::new(&c.chunk.data);
    std::array::from_fn(|i| ac.iter(AGGR_TYPES[i]).unwrap().map(expand))
}

/// Upstream's `assertValidChunkTime` (min time set, max ≥ min), plus: chunks
/// in time order and non-overlapping, as `Downsample` demands of its input.
fn assert_valid_chunk_time(chks: &[ChunkMeta]) {
    for c in chks {
        assert_ne!(c.min_time, i64::MAX, "chunk MinTime is not set");
        assert!(
            c.max_time >= c.min_time,
            "chunk MaxTime {} is not greater equal to MinTime {}",
            c.max_time,
            c.min_time
        );
    }
    for w in chks.windows(2) {
        assert!(
            w[0].max_time < w[1].min_time,
            "chunks out of order or overlapping: [{}, {}] then [{}, {}]",
            w[0].min_time,
            w[0].max_time,
            w[1].min_time,
            w[1].max_time
        );
    }
}

fn bits(s: &[(i64, f64)]) -> Vec<(i64, u64)> {
    s.iter().map(|&(t, v)| (t, v.to_bits())).collect()
}

fn assert_samples_eq(what: &str, expected: &[(i64, f64)], got: &[(i64, f64)]) {
    assert!(
        bits(expected) == bits(got),
        "{what}:\nexpected {expected:?}\n     got {got:?}"
    );
}

/// Compares chunk by chunk and aggregate by aggregate; reports every mismatch.
fn assert_aggrs_eq(what: &str, expected: &[Aggrs], got: &[Aggrs]) {
    assert_eq!(
        got.len(),
        expected.len(),
        "{what}: number of chunks: expected {expected:?}, got {got:?}"
    );
    let mut diffs = Vec::new();
    for (i, (e, g)) in expected.iter().zip(got).enumerate() {
        for at in AGGR_TYPES {
            let (e, g) = (&e[at as usize], &g[at as usize]);
            if e.as_deref().map(bits) != g.as_deref().map(bits) {
                diffs.push(format!("chunk {i} {at:?}:\nexpected {e:?}\n     got {g:?}"));
            }
        }
    }
    assert!(diffs.is_empty(), "{what}:\n{}", diffs.join("\n"));
}

fn series_labels() -> Labels {
    labels! {"__name__" => "a"}
}

// ---------------------------------------------------------------------------
// TestDownsample
// ---------------------------------------------------------------------------

enum Expect {
    Chunks(Vec<Aggrs>),
    OverlapError,
}

/// One case of upstream's `TestDownsample` table: either raw or aggregated
/// input.
struct Case {
    in_raw: Vec<Samples>,
    in_aggr: Vec<Aggrs>,
    resolution: i64,
    expected: Expect,
}

fn run_case(name: &str, c: Case) {
    assert!(
        c.in_raw.is_empty() || c.in_aggr.is_empty(),
        "test must not have raw and aggregate input data at once"
    );
    let chunks: Vec<ChunkMeta> = if c.in_aggr.is_empty() {
        c.in_raw.iter().map(|s| raw_chunk(s)).collect()
    } else {
        c.in_aggr.iter().map(encode_test_aggr_series).collect()
    };
    // Upstream's fakeMeta: `resolution - 1` for aggregated input, else raw.
    let in_res = if c.in_aggr.is_empty() {
        RES_RAW
    } else {
        c.resolution - 1
    };
    let mut buf = Vec::new();
    let res = downsample_series(
        Ulid::nil(),
        &series_labels(),
        &chunks,
        in_res,
        c.resolution,
        &mut buf,
    );
    match c.expected {
        Expect::OverlapError => {
            let err = res.unwrap_err();
            assert!(
                matches!(err, Error::OverlappingChunks { .. }),
                "{name}: expected an overlapping-chunks error, got {err}"
            );
            assert!(
                err.to_string()
                    .contains("found overlapping chunks within series"),
                "{name}: {err}"
            );
        }
        Expect::Chunks(expected) => {
            let out = res.unwrap();
            assert_valid_chunk_time(&out);
            let got: Vec<Aggrs> = out.iter().map(decode_aggr).collect();
            assert_aggrs_eq(name, &expected, &got);
        }
    }
}

fn raw_case(in_raw: Vec<Samples>, resolution: i64, expected: Expect) -> Case {
    Case {
        in_raw,
        in_aggr: Vec::new(),
        resolution,
        expected,
    }
}

fn aggr_case(in_aggr: Vec<Aggrs>, resolution: i64, expected: Expect) -> Case {
    Case {
        in_raw: Vec::new(),
        in_aggr,
        resolution,
        expected,
    }
}

fn three_chunks_first() -> Samples {
    vec![
        (20, 1.0),
        (40, 2.0),
        (60, 3.0),
        (80, 1.0),
        (100, 2.0),
        (101, stale()),
        (120, 5.0),
        (180, 10.0),
        (250, 2.0),
    ]
}

fn three_chunks_rest() -> Vec<Samples> {
    vec![
        vec![
            (260, 1.0),
            (300, 10.0),
            (340, 15.0),
            (380, 25.0),
            (420, 35.0),
        ],
        vec![(460, stale()), (500, 10.0), (540, 3.0)],
    ]
}

// TestDownsample "single chunk".
#[test]
fn downsample_single_chunk() {
    let in_raw = vec![vec![
        (20, 1.0),
        (40, 2.0),
        (60, 3.0),
        (80, 1.0),
        (100, 2.0),
        (101, stale()),
        (120, 5.0),
        (180, 10.0),
        (250, 1.0),
    ]];
    let expected = vec![aggrs(vec![
        (AggrType::Count, vec![(99, 4.0), (199, 3.0), (250, 1.0)]),
        (AggrType::Sum, vec![(99, 7.0), (199, 17.0), (250, 1.0)]),
        (AggrType::Min, vec![(99, 1.0), (199, 2.0), (250, 1.0)]),
        (AggrType::Max, vec![(99, 3.0), (199, 10.0), (250, 1.0)]),
        (
            AggrType::Counter,
            vec![(20, 1.0), (99, 4.0), (199, 13.0), (250, 14.0), (250, 1.0)],
        ),
    ])];
    run_case(
        "single chunk",
        raw_case(in_raw, 100, Expect::Chunks(expected)),
    );
}

// TestDownsample "three chunks".
#[test]
fn downsample_three_chunks() {
    let mut in_raw = vec![three_chunks_first()];
    in_raw.extend(three_chunks_rest());
    let expected = vec![aggrs(vec![
        (
            AggrType::Count,
            vec![
                (99, 4.0),
                (199, 3.0),
                (299, 2.0),
                (399, 3.0),
                (499, 1.0),
                (540, 2.0),
            ],
        ),
        (
            AggrType::Sum,
            vec![
                (99, 7.0),
                (199, 17.0),
                (299, 3.0),
                (399, 50.0),
                (499, 35.0),
                (540, 13.0),
            ],
        ),
        (
            AggrType::Min,
            vec![
                (99, 1.0),
                (199, 2.0),
                (299, 1.0),
                (399, 10.0),
                (499, 35.0),
                (540, 3.0),
            ],
        ),
        (
            AggrType::Max,
            vec![
                (99, 3.0),
                (199, 10.0),
                (299, 2.0),
                (399, 25.0),
                (499, 35.0),
                (540, 10.0),
            ],
        ),
        (
            AggrType::Counter,
            vec![
                (20, 1.0),
                (99, 4.0),
                (199, 13.0),
                (299, 16.0),
                (399, 40.0),
                (499, 50.0),
                (540, 63.0),
                (540, 3.0),
            ],
        ),
    ])];
    run_case(
        "three chunks",
        raw_case(in_raw, 100, Expect::Chunks(expected)),
    );
}

// TestDownsample "four chunks, two of them overlapping": an error.
#[test]
fn downsample_four_chunks_two_overlapping() {
    let mut in_raw = vec![three_chunks_first(), three_chunks_first()];
    in_raw.extend(three_chunks_rest());
    run_case(
        "four chunks, two of them overlapping",
        raw_case(in_raw, 100, Expect::OverlapError),
    );
}

// TestDownsample "realistic 15s interval raw chunks".
#[test]
fn downsample_realistic_15s_interval_raw_chunks() {
    run_case(
        "realistic 15s interval raw chunks",
        raw_case(
            realistic_chk_data_with_stale_marker(),
            RES_5M,
            Expect::Chunks(res_5m()),
        ),
    );
}

// TestDownsample "three chunks, the first one with NaN values only".
#[test]
fn downsample_three_chunks_first_nan_only() {
    let nn = normal_nan();
    let mut in_raw = vec![vec![
        (20, nn),
        (40, nn),
        (60, nn),
        (80, nn),
        (100, nn), // math.NaN()
        (101, stale()),
        (120, nn),
        (180, nn),
        (250, nn),
    ]];
    in_raw.extend(three_chunks_rest());
    let expected = vec![aggrs(vec![
        (
            AggrType::Count,
            vec![(299, 1.0), (399, 3.0), (499, 1.0), (540, 2.0)],
        ),
        (
            AggrType::Sum,
            vec![(299, 1.0), (399, 50.0), (499, 35.0), (540, 13.0)],
        ),
        (
            AggrType::Min,
            vec![(299, 1.0), (399, 10.0), (499, 35.0), (540, 3.0)],
        ),
        (
            AggrType::Max,
            vec![(299, 1.0), (399, 25.0), (499, 35.0), (540, 10.0)],
        ),
        (
            AggrType::Counter,
            vec![
                (260, 1.0),
                (299, 1.0),
                (399, 25.0),
                (499, 35.0),
                (540, 48.0),
                (540, 3.0),
            ],
        ),
    ])];
    run_case(
        "three chunks, the first one with NaN values only",
        raw_case(in_raw, 100, Expect::Chunks(expected)),
    );
}

/// The input of "single aggregated chunks" (and the first chunk of "two
/// aggregated chunks").
fn single_aggr_input() -> Aggrs {
    let cs = vec![
        (199, 5.0),
        (299, 1.0),
        (399, 10.0),
        (400, 3.0),
        (499, 10.0),
        (699, 0.0),
        (999, 100.0),
    ];
    let mm = vec![
        (199, 5.0),
        (299, 1.0),
        (399, 10.0),
        (400, -3.0),
        (499, 10.0),
        (699, 0.0),
        (999, 100.0),
    ];
    aggrs(vec![
        (AggrType::Count, cs.clone()),
        (AggrType::Sum, cs),
        (AggrType::Min, mm.clone()),
        (AggrType::Max, mm),
        (
            AggrType::Counter,
            vec![
                (99, 100.0),
                (299, 150.0),
                (499, 210.0),
                (499, 10.0), // Chunk 1.
                (599, 20.0),
                (799, 50.0),
                (999, 120.0),
                (999, 50.0), // Chunk 2, no reset.
                (1099, 40.0),
                (1199, 80.0),
                (1299, 110.0), // Chunk 3, reset.
            ],
        ),
    ])
}

/// The expected output of "single aggregated chunks".
fn downsample_500_resolution_chunk() -> Vec<Aggrs> {
    vec![aggrs(vec![
        (AggrType::Count, vec![(499, 29.0), (999, 100.0)]),
        (AggrType::Sum, vec![(499, 29.0), (999, 100.0)]),
        (AggrType::Min, vec![(499, -3.0), (999, 0.0)]),
        (AggrType::Max, vec![(499, 10.0), (999, 100.0)]),
        (
            AggrType::Counter,
            vec![
                (99, 100.0),
                (499, 210.0),
                (999, 320.0),
                (1299, 430.0),
                (1299, 110.0),
            ],
        ),
    ])]
}

// TestDownsample "single aggregated chunks".
#[test]
fn downsample_single_aggregated_chunks() {
    run_case(
        "single aggregated chunks",
        aggr_case(
            vec![single_aggr_input()],
            500,
            Expect::Chunks(downsample_500_resolution_chunk()),
        ),
    );
}

// TestDownsample "downsampling already downsampled to the same resolution
// aggregated chunks": the output is the input.
#[test]
fn downsample_already_downsampled_to_same_resolution() {
    run_case(
        "downsampling already downsampled to the same resolution aggregated chunks",
        aggr_case(
            downsample_500_resolution_chunk(),
            500,
            Expect::Chunks(downsample_500_resolution_chunk()),
        ),
    );
}

// TestDownsample "two aggregated chunks".
#[test]
fn downsample_two_aggregated_chunks() {
    let cs = vec![
        (1399, 10.0),
        (1400, 3.0),
        (1499, 10.0),
        (1699, 0.0),
        (1999, 100.0),
    ];
    let mm = vec![
        (1399, 10.0),
        (1400, -3.0),
        (1499, 10.0),
        (1699, 0.0),
        (1999, 100.0),
    ];
    let second = aggrs(vec![
        (AggrType::Count, cs.clone()),
        (AggrType::Sum, cs),
        (AggrType::Min, mm.clone()),
        (AggrType::Max, mm),
        (
            AggrType::Counter,
            vec![
                (1499, 210.0),
                (1499, 10.0), // Chunk 1.
                (1599, 20.0),
                (1799, 50.0),
                (1999, 120.0),
                (1999, 50.0), // Chunk 2, no reset.
                (2099, 40.0),
                (2199, 80.0),
                (2299, 110.0), // Chunk 3, reset.
            ],
        ),
    ]);
    let cs = vec![(499, 29.0), (999, 100.0), (1499, 23.0), (1999, 100.0)];
    let expected = vec![aggrs(vec![
        (AggrType::Count, cs.clone()),
        (AggrType::Sum, cs),
        (
            AggrType::Min,
            vec![(499, -3.0), (999, 0.0), (1499, -3.0), (1999, 0.0)],
        ),
        (
            AggrType::Max,
            vec![(499, 10.0), (999, 100.0), (1499, 10.0), (1999, 100.0)],
        ),
        (
            AggrType::Counter,
            vec![
                (99, 100.0),
                (499, 210.0),
                (999, 320.0),
                (1499, 530.0),
                (1999, 640.0),
                (2299, 750.0),
                (2299, 110.0),
            ],
        ),
    ])];
    run_case(
        "two aggregated chunks",
        aggr_case(
            vec![single_aggr_input(), second],
            500,
            Expect::Chunks(expected),
        ),
    );
}

// TestDownsample "two aggregated, overlapping chunks": an error.
#[test]
fn downsample_two_aggregated_overlapping_chunks() {
    let count = || {
        aggrs(vec![(
            AggrType::Count,
            vec![
                (199, 5.0),
                (299, 1.0),
                (399, 10.0),
                (400, 3.0),
                (499, 10.0),
                (699, 0.0),
                (999, 100.0),
            ],
        )])
    };
    run_case(
        "two aggregated, overlapping chunks",
        aggr_case(vec![count(), count()], 500, Expect::OverlapError),
    );
}

/// The expected output of "realistic ResLevel1 (5m) downsampled chunks with
/// from counter resets".
fn realistic_res_1h() -> Vec<Aggrs> {
    let t = 1587693590791;
    vec![aggrs(vec![
        (AggrType::Count, vec![(t, 236.0)]),
        (AggrType::Sum, vec![(t, 8.0151286e+07)]),
        (AggrType::Min, vec![(t, 75.0)]),
        (AggrType::Max, vec![(t, 496544.0)]),
        (
            AggrType::Counter,
            vec![(1587690005791, 461968.0), (t, 511500.0), (t, 14956.0)],
        ),
    ])]
}

// TestDownsample "realistic ResLevel1 (5m) downsampled chunks with from
// counter resets" (its input is upstream's inline copy of
// realisticChkDataWithCounterResetRes5m, checked identical).
#[test]
fn downsample_realistic_res_5m_aggregated_to_1h() {
    run_case(
        "realistic ResLevel1 (5m) downsampled chunks with from counter resets",
        aggr_case(res_5m(), RES_1H, Expect::Chunks(realistic_res_1h())),
    );
}

// TestDownsample "downsampling four, 120 sample chunks for 2x resolution
// should result in two chunks, but results in one." (thanos#2542).
#[test]
fn downsample_four_120_sample_chunks_2x_resolution() {
    let in_aggr: Vec<Aggrs> = (0..4i64)
        .map(|c| {
            let s = (0..120i64)
                .map(|i| (c * 120 + i, (c * 120 + i) as f64))
                .collect();
            aggrs(vec![(AggrType::Counter, s)])
        })
        .collect();
    let mut counter = vec![(0, 0.0)];
    for i in (0..480i64).step_by(2) {
        counter.push((1 + i, (1 + i) as f64));
    }
    counter.push((479, 479.0));
    run_case(
        "downsampling four, 120 sample chunks for 2x resolution",
        aggr_case(
            in_aggr,
            2,
            Expect::Chunks(vec![aggrs(vec![(AggrType::Counter, counter)])]),
        ),
    );
}

// ---------------------------------------------------------------------------
// TestDownsampleCounterBoundaryReset
// ---------------------------------------------------------------------------

fn counter_samples(chks: &[ChunkMeta]) -> Samples {
    let mut out = Vec::new();
    for c in chks {
        let it = AggrChunk::new(&c.chunk.data)
            .iter(AggrType::Counter)
            .unwrap()
            .unwrap();
        out.extend(drain(it));
    }
    out
}

fn counter_iterate(chks: &[ChunkMeta]) -> Samples {
    let its = chks
        .iter()
        .map(|c| {
            AggrChunk::new(&c.chunk.data)
                .iter(AggrType::Counter)
                .unwrap()
                .unwrap()
        })
        .collect();
    drain(CounterResetsIterator::new(its))
}

// TestDownsampleCounterBoundaryReset (thanos#1568). Upstream calls
// `downsampleRawLoop` with more chunks than samples (one chunk per window) and
// `downsampleAggrLoop` with 2 chunks (two input chunks each); the public API
// sizes chunks itself, so the input is split the same way and each part is
// downsampled on its own (each yields one chunk, as asserted).
#[test]
fn downsample_counter_boundary_reset() {
    let raw: Vec<Sample> = [
        (10, 1.0),
        (20, 3.0),
        (30, 5.0),
        (50, 1.0),
        (60, 8.0),
        (70, 10.0),
        (120, 1.0),
        (130, 18.0),
        (140, 20.0),
        (160, 21.0),
        (170, 38.0),
        (180, 40.0),
    ]
    .iter()
    .map(|&(t, v)| Sample { t, v })
    .collect();
    let raw_aggr_resolution = 50;
    let expected_raw_aggr_chunks = 4;
    let raw_counter_samples = vec![
        (10, 1.0),
        (30, 5.0),
        (30, 5.0),
        (50, 1.0),
        (70, 10.0),
        (70, 10.0),
        (120, 1.0),
        (140, 20.0),
        (140, 20.0),
        (160, 21.0),
        (180, 40.0),
        (180, 40.0),
    ];
    let raw_counter_iterate = vec![
        (10, 1.0),
        (30, 5.0),
        (50, 6.0),
        (70, 15.0),
        (120, 16.0),
        (140, 35.0),
        (160, 36.0),
        (180, 55.0),
    ];
    let aggr_aggr_resolution = 2 * 50;
    let aggr_chunks = 2;
    let aggr_counter_samples = vec![
        (10, 1.0),
        (70, 15.0),
        (70, 10.0),
        (120, 1.0),
        (180, 40.0),
        (180, 40.0),
    ];
    let aggr_counter_iterate = vec![(10, 1.0), (70, 15.0), (120, 16.0), (180, 55.0)];

    // downsampleRawLoop(raw, 50, len(raw)+1): batch size 1, each batch
    // extended to the end of its window.
    let mut cm = Vec::new();
    let mut rest = raw.as_slice();
    while !rest.is_empty() {
        let cur_w = rest[0].t - rest[0].t % raw_aggr_resolution + raw_aggr_resolution - 1;
        let j = rest.iter().take_while(|s| s.t <= cur_w).count();
        let out = downsample_raw(&rest[..j], raw_aggr_resolution).unwrap();
        assert_eq!(out.len(), 1, "one chunk per window");
        cm.extend(out);
        rest = &rest[j..];
    }
    assert_eq!(cm.len(), expected_raw_aggr_chunks);
    assert_valid_chunk_time(&cm);
    assert_samples_eq(
        "raw counter samples",
        &raw_counter_samples,
        &counter_samples(&cm),
    );
    assert_samples_eq(
        "raw counter iterate",
        &raw_counter_iterate,
        &counter_iterate(&cm),
    );

    // downsampleAggrLoop(rawAggrChunks, 100, 2): batch size 4/2 = 2 chunks.
    let mut buf = Vec::new();
    let mut acm = Vec::new();
    for part in cm.chunks(cm.len() / aggr_chunks) {
        let achks: Vec<AggrChunk<'_>> =
            part.iter().map(|c| AggrChunk::new(&c.chunk.data)).collect();
        let out = downsample_aggr(
            &achks,
            &mut buf,
            part[0].min_time,
            part[part.len() - 1].max_time,
            raw_aggr_resolution,
            aggr_aggr_resolution,
        )
        .unwrap();
        assert_eq!(out.len(), 1, "one chunk per part");
        acm.extend(out);
    }
    assert_eq!(acm.len(), aggr_chunks);
    assert_valid_chunk_time(&acm);
    assert_samples_eq(
        "aggr counter samples",
        &aggr_counter_samples,
        &counter_samples(&acm),
    );
    assert_samples_eq(
        "aggr counter iterate",
        &aggr_counter_iterate,
        &counter_iterate(&acm),
    );
}

// ---------------------------------------------------------------------------
// TestDownsampleAggrAndEmptyXORChunks, TestDownsampleAggrAndNonEmptyXORChunks
// ---------------------------------------------------------------------------

/// An XOR chunk in a downsampled block, with the meta times upstream gives it
/// (MaxInt64, MinInt64).
fn stray_xor_chunk(samples: &[(i64, f64)]) -> ChunkMeta {
    ChunkMeta {
        min_time: i64::MAX,
        max_time: i64::MIN,
        chunk: RawChunk::new(Encoding::Xor, xor_bytes(samples)),
    }
}

// TestDownsampleAggrAndEmptyXORChunks (thanos#5272): an empty XOR chunk in a
// 5m block is skipped. Upstream only checks that downsampling succeeds.
#[test]
fn downsample_aggr_and_empty_xor_chunks() {
    let chunks = vec![encode_test_aggr_series(&res_5m()[0]), stray_xor_chunk(&[])];
    let mut buf = Vec::new();
    let out = downsample_series(
        Ulid::nil(),
        &series_labels(),
        &chunks,
        300_000,
        3_600_000,
        &mut buf,
    )
    .unwrap();
    assert_valid_chunk_time(&out);
}

// TestDownsampleAggrAndNonEmptyXORChunks: a non-empty XOR chunk in a 5m
// block is downsampled to 5m first, then with the aggregate chunk.
#[test]
fn downsample_aggr_and_non_empty_xor_chunks() {
    let aggr = aggrs(vec![
        (
            AggrType::Count,
            vec![
                (1587690299999, 20.0),
                (1587690599999, 20.0),
                (1587690899999, 20.0),
            ],
        ),
        (
            AggrType::Sum,
            vec![
                (1587690299999, 9.276972e+06),
                (1587690599999, 9.359861e+06),
                (1587693590791, 255746.0),
            ],
        ),
        (
            AggrType::Min,
            vec![
                (1587690299999, 461968.0),
                (1587690599999, 466070.0),
                (1587690899999, 470131.0),
                (1587691199999, 474913.0),
            ],
        ),
        (
            AggrType::Max,
            vec![
                (1587690299999, 465870.0),
                (1587690599999, 469951.0),
                (1587690899999, 474726.0),
            ],
        ),
        (
            AggrType::Counter,
            vec![
                (1587690005791, 461968.0),
                (1587690299999, 465870.0),
                (1587690599999, 469951.0),
            ],
        ),
    ]);
    let chunks = vec![
        encode_test_aggr_series(&aggr),
        stray_xor_chunk(&[(1587690005794, 42.5)]),
    ];
    let mut buf = Vec::new();
    let out = downsample_series(
        Ulid::nil(),
        &series_labels(),
        &chunks,
        300_000,
        3_600_000,
        &mut buf,
    )
    .unwrap();
    assert_valid_chunk_time(&out);

    let t = 1587690005794;
    let expected = vec![aggrs(vec![
        (AggrType::Count, vec![(t, 20.0), (t, 20.0), (t, 21.0)]),
        (
            AggrType::Sum,
            vec![(t, 9.276972e+06), (t, 9.359861e+06), (t, 255788.5)],
        ),
        (
            AggrType::Min,
            vec![(t, 461968.0), (t, 466070.0), (t, 470131.0), (t, 42.5)],
        ),
        (
            AggrType::Max,
            vec![(t, 465870.0), (t, 469951.0), (t, 474726.0)],
        ),
        (
            AggrType::Counter,
            vec![
                (1587690005791, 461968.0),
                (1587690599999, 469951.0),
                (1587690599999, 469951.0),
            ],
        ),
    ])];
    let got: Vec<Aggrs> = out.iter().map(decode_aggr).collect();
    assert_aggrs_eq("aggr and non-empty XOR chunks", &expected, &got);
}

// ---------------------------------------------------------------------------
// Iterators: TestAverageChunkIterator, TestApplyCounterResetsIterator,
// TestCounterSeriesIteratorSeek*
// ---------------------------------------------------------------------------

// TestAverageChunkIterator.
#[test]
fn average_chunk_iterator() {
    let sum = xor_bytes(&[(100, 30.0), (200, 40.0), (300, 5.0), (400, -10.0)]);
    let cnt = xor_bytes(&[(100, 1.0), (200, 5.0), (300, 2.0), (400, 10.0)]);
    let exp = vec![(100, 30.0), (200, 8.0), (300, 2.5), (400, -1.0)];
    let x = AverageIterator::new(XorIterator::new(&cnt), XorIterator::new(&sum));
    assert_samples_eq("average", &exp, &drain(x));
}

/// Runs `ApplyCounterResetsSeriesIterator` over `chunks` and checks upstream's
/// monotonicity asserts as well.
fn apply_counter_resets(name: &str, chunks: &[Samples], expected: &[(i64, f64)]) {
    let encoded: Vec<Vec<u8>> = chunks.iter().map(|c| xor_bytes(c)).collect();
    let x = CounterResetsIterator::new(encoded.iter().map(|c| XorIterator::new(c)).collect());
    let res = drain(x);
    assert_samples_eq(name, expected, &res);
    for w in res.windows(2) {
        assert!(
            w[1].0 >= w[0].0,
            "{name}: sample time {:?} is not monotonically increasing. previous sample {:?} is older",
            w[1],
            w[0]
        );
        assert!(
            w[1].1 >= w[0].1,
            "{name}: sample value {:?} is not monotonically increasing. previous sample {:?} is larger",
            w[1],
            w[0]
        );
    }
}

// TestApplyCounterResetsIterator "series with stale marker".
#[test]
fn apply_counter_resets_series_with_stale_marker() {
    let chunks = vec![
        vec![
            (100, 10.0),
            (200, 20.0),
            (300, 10.0),
            (400, 20.0),
            (400, 5.0),
        ],
        // No reset, just downsampling added sample at the end.
        vec![
            (500, 10.0),
            (600, 20.0),
            (700, 30.0),
            (800, 40.0),
            (800, 10.0),
        ],
        // Actual reset.
        vec![(900, 5.0), (1000, 10.0), (1100, 15.0)],
        // No special last sample, no reset.
        vec![(1200, 20.0), (1250, stale()), (1300, 40.0)],
        // No special last sample, reset.
        vec![(1400, 30.0), (1500, 30.0), (1600, 50.0)],
    ];
    let expected = vec![
        (100, 10.0),
        (200, 20.0),
        (300, 30.0),
        (400, 40.0),
        (500, 45.0),
        (600, 55.0),
        (700, 65.0),
        (800, 75.0),
        (900, 80.0),
        (1000, 85.0),
        (1100, 90.0),
        (1200, 95.0),
        (1300, 115.0),
        (1400, 145.0),
        (1500, 145.0),
        (1600, 165.0),
    ];
    apply_counter_resets("series with stale marker", &chunks, &expected);
}

// TestApplyCounterResetsIterator "realistic raw data with 2 chunks that have
// one stale marker".
#[test]
fn apply_counter_resets_realistic_raw_data() {
    apply_counter_resets(
        "realistic raw data with 2 chunks that have one stale marker",
        &realistic_chk_data_with_stale_marker(),
        &realistic_chk_data_with_counter_resets_after_counter_series_iterating(),
    );
}

// TestApplyCounterResetsIterator "realistic raw data with many overlapping
// chunks with stale markers" (as when querying a StoreAPI with the same data).
#[test]
fn apply_counter_resets_realistic_many_overlapping_chunks() {
    let d = realistic_chk_data_with_stale_marker();
    let mut chunks = vec![d[0].clone(); 3];
    chunks.extend(vec![d[1].clone(); 9]);
    apply_counter_resets(
        "realistic raw data with many overlapping chunks with stale markers",
        &chunks,
        &realistic_chk_data_with_counter_resets_after_counter_series_iterating(),
    );
}

// TestApplyCounterResetsIterator "the same above input
// (realisticChkDataWithStaleMarker), but after 5m downsampling".
#[test]
fn apply_counter_resets_realistic_after_5m_downsampling() {
    let counter = res_5m()[0][AggrType::Counter as usize].clone().unwrap();
    let expected = vec![
        (1587690005791, 461968.0),
        (1587690299999, 465870.0),
        (1587690599999, 469951.0),
        (1587690899999, 474726.0),
        (1587691199999, 479368.0),
        (1587691499999, 483566.0),
        (1587691799999, 487787.0),
        (1587692099999, 492065.0),
        (1587692399999, 496245.0),
        (1587692699999, 498647.0),
        (1587692999999, 502554.0),
        (1587693299999, 506786.0),
        (1587693590791, 511500.0),
    ];
    apply_counter_resets(
        "the same above input (realisticChkDataWithStaleMarker), but after 5m downsampling",
        &[counter],
        &expected,
    );
}

fn seek_chunk() -> Vec<u8> {
    xor_bytes(&[
        (100, 10.0),
        (200, 20.0),
        (300, 10.0),
        (400, 20.0),
        (400, 5.0),
    ])
}

// TestCounterSeriesIteratorSeek.
#[test]
fn counter_series_iterator_seek() {
    let c = seek_chunk();
    let mut x = CounterResetsIterator::new(vec![XorIterator::new(&c)]);
    let mut res = vec![x
        .seek(150)
        .unwrap()
        .expect("Seek should return a float sample")];
    res.extend(drain(x));
    assert_samples_eq("seek", &[(200, 20.0), (300, 30.0), (400, 40.0)], &res);
}

// TestCounterSeriesIteratorSeekExtendTs.
#[test]
fn counter_series_iterator_seek_extend_ts() {
    let c = seek_chunk();
    let mut x = CounterResetsIterator::new(vec![XorIterator::new(&c)]);
    assert_eq!(x.seek(500).unwrap(), None, "Seek should return none");
}

// TestCounterSeriesIteratorSeekAfterNext. Upstream's Seek(50) after Next()
// stays on the current sample (100, 10), which At() then reads; our seek
// returns a sample not yet yielded, so the samples seen over Next, Seek(50)
// and the following Nexts are compared: exactly (100, 10), once.
#[test]
fn counter_series_iterator_seek_after_next() {
    let c = xor_bytes(&[(100, 10.0)]);
    let mut x = CounterResetsIterator::new(vec![XorIterator::new(&c)]);
    let mut res: Samples = x.next().unwrap().into_iter().collect();
    res.extend(x.seek(50).unwrap());
    res.extend(drain(x));
    assert_samples_eq("seek after next", &[(100, 10.0)], &res);
}

// ---------------------------------------------------------------------------
// Through blocks on disk: TestDownsample's realistic cases, chained
// ---------------------------------------------------------------------------

/// Writes a one-series block of `chunks` with the given Thanos resolution.
fn write_block(dir: &std::path::Path, chunks: &[ChunkMeta], resolution: i64) -> Meta {
    let lset = series_labels();
    let mut w = BlockWriter::create(dir, BlockWriterOptions::default()).unwrap();
    w.add_symbols(["__name__", "a"]).unwrap();
    w.add_series(&lset, chunks).unwrap();
    let bm = w.finish(None).unwrap().unwrap();
    let mut meta = Meta::from_block_meta(bm).unwrap();
    meta.thanos.downsample.resolution = resolution;
    meta.thanos.labels = BTreeMap::from([("replica".to_string(), "r1".to_string())]);
    meta.write_to_dir(&dir.join(meta.block.ulid.to_string()))
        .unwrap();
    meta
}

/// Downsamples the block of `meta` under `dir` and reads the result back as
/// upstream's test does: one series `{__name__="a"}`, its chunks' aggregates.
fn downsample_and_read(dir: &std::path::Path, meta: &Meta, resolution: i64) -> (Meta, Vec<Aggrs>) {
    let block = Block::open(&dir.join(meta.block.ulid.to_string())).unwrap();
    let new_meta = downsample_block(&block, meta, dir, resolution).unwrap();
    let new_dir = dir.join(new_meta.block.ulid.to_string());
    assert_eq!(Meta::read_from_dir(&new_dir).unwrap(), new_meta);
    assert_eq!(new_meta.thanos.downsample.resolution, resolution);
    assert_eq!(new_meta.thanos.labels, meta.thanos.labels);
    assert_eq!(
        (new_meta.block.min_time, new_meta.block.max_time),
        (meta.block.min_time, meta.block.max_time)
    );

    let out = Block::open(&new_dir).unwrap();
    let index = out.index();
    let mut postings = index.all_postings().unwrap();
    let mut series = Vec::new();
    while let Some(r) = postings.next() {
        series.push(index.series(r).unwrap());
    }
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].labels, series_labels());
    let chks: Vec<ChunkMeta> = series[0]
        .chunks
        .iter()
        .map(|c| ChunkMeta {
            min_time: c.min_time,
            max_time: c.max_time,
            chunk: out.chunk_reader().chunk(c.chunk_ref).unwrap(),
        })
        .collect();
    assert_valid_chunk_time(&chks);
    (new_meta, chks.iter().map(decode_aggr).collect())
}

// TestDownsample "realistic 15s interval raw chunks" through downsample_block,
// then its 5m block through downsample_block again, checked against
// "realistic ResLevel1 (5m) downsampled chunks with from counter resets"
// (upstream feeds that case the same aggregates in a hand-built chunk).
#[test]
fn downsample_block_realistic_raw_to_5m_to_1h() {
    let dir = tempfile::tempdir().unwrap();
    let raw: Vec<ChunkMeta> = realistic_chk_data_with_stale_marker()
        .iter()
        .map(|s| raw_chunk(s))
        .collect();
    let raw_meta = write_block(dir.path(), &raw, RES_RAW);

    let (meta_5m, got) = downsample_and_read(dir.path(), &raw_meta, RES_5M);
    assert_aggrs_eq("block raw -> 5m", &res_5m(), &got);

    let (_, got) = downsample_and_read(dir.path(), &meta_5m, RES_1H);
    assert_aggrs_eq("block 5m -> 1h", &realistic_res_1h(), &got);
}
