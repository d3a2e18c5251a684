//! The seed corpus of the `remote_write` fuzz target (`fuzz/corpus/remote_write`):
//! `seed-valid-*` must decode and `seed-invalid-*` must not. Regenerate with
//! `STRATA_WRITE_FUZZ_SEEDS=1 cargo test -p strata-remote --test fuzz_seeds`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use prost::Message;
use strata_remote::prompb::{
    Exemplar, Histogram, HistogramCount, Label, MetricMetadata, Sample, TimeSeries, WriteRequest,
};
use strata_remote::{decode_write_request, snappy_encode};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/remote_write")
}

fn label(n: &str, v: &str) -> Label {
    Label {
        name: n.into(),
        value: v.into(),
    }
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let typical = WriteRequest {
        timeseries: (0..20)
            .map(|i| TimeSeries {
                labels: vec![
                    label("__name__", "http_requests_total"),
                    label("code", "200"),
                    label("instance", &format!("host-{i}:9090")),
                    label("job", "api"),
                ],
                samples: vec![Sample {
                    value: i as f64,
                    timestamp: 1_700_000_000_000 + i,
                }],
                ..TimeSeries::default()
            })
            .collect(),
        metadata: vec![],
    };
    let odd = WriteRequest {
        timeseries: vec![
            TimeSeries {
                labels: vec![label("job", "x"), label("__name__", "unsorted")],
                samples: vec![
                    Sample {
                        value: f64::NAN,
                        timestamp: 1,
                    },
                    Sample {
                        value: f64::from_bits(0x7ff0_0000_0000_0002),
                        timestamp: 2,
                    },
                    Sample {
                        value: -0.0,
                        timestamp: -5,
                    },
                ],
                exemplars: vec![Exemplar {
                    labels: vec![label("trace_id", "abc")],
                    value: 1.0,
                    timestamp: 1,
                }],
                ..TimeSeries::default()
            },
            TimeSeries {
                labels: vec![label("__name__", "dup"), label("a", "1"), label("a", "2")],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 1,
                }],
                ..TimeSeries::default()
            },
            TimeSeries {
                labels: vec![label("__name__", "hist")],
                histograms: vec![Histogram {
                    count: Some(HistogramCount::CountInt(3)),
                    schema: 3,
                    positive_deltas: vec![1, -1],
                    timestamp: 9,
                    ..Histogram::default()
                }],
                ..TimeSeries::default()
            },
        ],
        metadata: vec![MetricMetadata {
            r#type: 1,
            metric_family_name: "http_requests_total".into(),
            help: "Requests.".into(),
            unit: String::new(),
        }],
    };
    let typical_raw = typical.encode_to_vec();
    let typical_body = snappy_encode(&typical_raw);
    vec![
        ("seed-valid-typical", typical_body.clone()),
        ("seed-valid-odd", snappy_encode(&odd.encode_to_vec())),
        ("seed-valid-empty", snappy_encode(&[])),
        ("seed-invalid-not-snappy", b"\xff\x00garbage".to_vec()),
        (
            "seed-invalid-truncated-snappy",
            typical_body[..typical_body.len() / 2].to_vec(),
        ),
        (
            "seed-invalid-truncated-proto",
            snappy_encode(&typical_raw[..typical_raw.len() - 7]),
        ),
        (
            "seed-invalid-huge-length",
            vec![0x80, 0x80, 0x80, 0x80, 0x0f, 0x00],
        ),
    ]
}

#[test]
fn seed_corpus_is_current() {
    let dir = corpus_dir();
    let write = std::env::var_os("STRATA_WRITE_FUZZ_SEEDS").is_some();
    if write {
        std::fs::create_dir_all(&dir).unwrap();
    }
    for (name, bytes) in seeds() {
        let path = dir.join(name);
        if write {
            std::fs::write(&path, &bytes).unwrap();
        }
        let on_disk = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (regenerate, see the file docs)", path.display()));
        assert_eq!(on_disk, bytes, "{name} is stale (regenerate)");
        let decoded = decode_write_request(&on_disk);
        assert_eq!(
            decoded.is_ok(),
            name.starts_with("seed-valid"),
            "{name}: {decoded:?}"
        );
    }
}
