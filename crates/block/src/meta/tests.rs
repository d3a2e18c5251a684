use std::time::{Duration, UNIX_EPOCH};

use strata_tsdb::meta::{BlockStats, CompactionMeta};

use super::*;

fn sample_meta() -> Meta {
    let u: ulid::Ulid = "01M89M4019TEQQXC7RBVCP8DEY".parse().unwrap();
    Meta {
        block: BlockMeta {
            ulid: u,
            min_time: 1,
            max_time: 2,
            stats: BlockStats {
                num_samples: 3,
                ..Default::default()
            },
            compaction: CompactionMeta {
                level: 1,
                sources: vec![u],
                ..Default::default()
            },
            version: 1,
            thanos: None,
        },
        thanos: ThanosMeta {
            labels: [("replica".to_string(), "a".to_string())].into(),
            source: source::SIDECAR.into(),
            segment_files: vec!["000001".into()],
            files: vec![
                File {
                    rel_path: "chunks/000001".into(),
                    size_bytes: 10,
                    hash: None,
                },
                File {
                    rel_path: "meta.json".into(),
                    size_bytes: 0,
                    hash: None,
                },
            ],
            upload_time: "2024-01-02T03:04:05.5Z".into(),
            ..Default::default()
        },
    }
}

const EXPECTED: &str = "{\n\t\"ulid\": \"01M89M4019TEQQXC7RBVCP8DEY\",\n\t\"minTime\": 1,\n\t\"maxTime\": 2,\n\t\"stats\": {\n\t\t\"numSamples\": 3\n\t},\n\t\"compaction\": {\n\t\t\"level\": 1,\n\t\t\"sources\": [\n\t\t\t\"01M89M4019TEQQXC7RBVCP8DEY\"\n\t\t]\n\t},\n\t\"version\": 1,\n\t\"thanos\": {\n\t\t\"version\": 1,\n\t\t\"labels\": {\n\t\t\t\"replica\": \"a\"\n\t\t},\n\t\t\"downsample\": {\n\t\t\t\"resolution\": 0\n\t\t},\n\t\t\"source\": \"sidecar\",\n\t\t\"segment_files\": [\n\t\t\t\"000001\"\n\t\t],\n\t\t\"files\": [\n\t\t\t{\n\t\t\t\t\"rel_path\": \"chunks/000001\",\n\t\t\t\t\"size_bytes\": 10\n\t\t\t},\n\t\t\t{\n\t\t\t\t\"rel_path\": \"meta.json\"\n\t\t\t}\n\t\t],\n\t\t\"index_stats\": {},\n\t\t\"upload_time\": \"2024-01-02T03:04:05.5Z\"\n\t}\n}\n";

#[test]
fn thanos_layout() {
    let m = sample_meta();
    let s = String::from_utf8(m.to_json().unwrap()).unwrap();
    assert_eq!(s, EXPECTED);
    assert_eq!(Meta::from_json(s.as_bytes()).unwrap(), m);
}

#[test]
fn reads_prometheus_meta_without_thanos_section() {
    let d = tempfile::tempdir().unwrap();
    let m = sample_meta();
    m.block.write(d.path()).unwrap();
    let back = Meta::read_from_dir(d.path()).unwrap();
    assert_eq!(back.block, m.block);
    assert_eq!(back.thanos, ThanosMeta::default());
    assert_eq!(back.thanos.upload_time, ZERO_TIME);
    // A Thanos meta written to a directory reads back whole.
    m.write_to_dir(d.path()).unwrap();
    assert_eq!(Meta::read_from_dir(d.path()).unwrap(), m);
    assert_eq!(
        std::fs::read_to_string(d.path().join("meta.json")).unwrap(),
        EXPECTED
    );
}

#[test]
fn rejects_bad_versions() {
    let s = EXPECTED.replace(
        "\"version\": 1,\n\t\t\"labels\"",
        "\"version\": 2,\n\t\t\"labels\"",
    );
    let e = Meta::from_json(s.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("thanos meta version 2"), "{e}");
    let s = EXPECTED.replace(
        "\t\"version\": 1,\n\t\"thanos\"",
        "\t\"version\": 3,\n\t\"thanos\"",
    );
    let e = Meta::from_json(s.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("version 3"), "{e}");
    assert!(Meta::from_json(b"{").is_err());
}

#[test]
fn go_time_format() {
    assert_eq!(format_time(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    let t = UNIX_EPOCH + Duration::new(1_704_164_645, 500_000_000);
    assert_eq!(format_time(t), "2024-01-02T03:04:05.5Z");
    let t = UNIX_EPOCH + Duration::new(951_782_400, 123);
    assert_eq!(format_time(t), "2000-02-29T00:00:00.000000123Z");
}
