//! The real OpenMetrics file of the shared `backfill-6h` fixture.

use std::io::Read;

use super::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/backfill-6h/input.om.txt.gz"
);

fn fixture() -> Vec<u8> {
    let gz = std::fs::read(FIXTURE).unwrap_or_else(|e| panic!("read {FIXTURE}: {e}"));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut out)
        .expect("gunzip fixture");
    out
}

#[test]
fn backfill_fixture() {
    let input = fixture();
    let mut p = Parser::new(&input, Format::OpenMetrics);
    let mut samples = 0usize;
    let mut metadata = 0usize;
    let mut first = None;
    let mut notice = None;
    let mut tags = None;
    let (mut nan, mut pos_inf, mut neg_inf) = (0, 0, 0);
    let mut families = Vec::new();
    while let Some(e) = p.next().unwrap() {
        match e {
            Entry::Series(s) => {
                samples += 1;
                if first.is_none() {
                    first = Some(render(&Entry::Series(s)));
                }
                assert!(s.timestamp_ms.is_some());
                if s.metric_name == "maintenance_notice" && notice.is_none() {
                    notice = s.labels.get("text").map(str::to_string);
                }
                if s.metric_name == "web_build_info" && tags.is_none() {
                    tags = s.labels.get("tags").map(str::to_string);
                }
                if s.value.is_nan() {
                    assert_eq!(s.value.to_bits(), crate::NORMAL_NAN_BITS);
                    nan += 1;
                } else if s.value == f64::INFINITY {
                    pos_inf += 1;
                } else if s.value == f64::NEG_INFINITY {
                    neg_inf += 1;
                }
            }
            Entry::Type { metric_family, .. } => {
                families.push(metric_family.to_string());
                metadata += 1;
            }
            Entry::Help { .. } | Entry::Unit { .. } => metadata += 1,
            Entry::Comment(_) => panic!("OpenMetrics has no comments"),
        }
    }
    assert_eq!(samples, 308_509);
    assert_eq!(metadata, 39);
    assert_eq!(
        first.as_deref(),
        Some(r#"up{instance="host-a:8080",job="web"} 1 @1704067200000"#)
    );
    let notice = notice.expect("maintenance_notice series");
    assert!(notice.contains('\n'), "{notice:?}");
    assert!(!notice.contains("\\n"), "{notice:?}");
    assert_eq!(tags.as_deref(), Some(r#"netgo,"quoted",C:\build\path"#));
    assert!(nan > 0 && pos_inf > 0 && neg_inf > 0);
    assert!(families
        .iter()
        .any(|f| f == "http_request_duration_seconds"));
}

#[test]
fn fixture_timestamps_are_exact() {
    // Fractional scrape times (multiples of 0.125 s) convert without drift.
    let input = fixture();
    let mut p = Parser::new(&input, Format::OpenMetrics);
    let mut fractional = 0;
    while let Some(e) = p.next().unwrap() {
        if let Entry::Series(s) = e {
            let ts = s.timestamp_ms.unwrap();
            assert_eq!(ts % 125, 0, "{ts}");
            if ts % 1000 != 0 {
                fractional += 1;
            }
        }
    }
    assert!(fractional > 0);
}

#[test]
fn fixture_prefix_as_prom_text() {
    // The same lines parse as the text format once timestamps are integers.
    let input = fixture();
    let head: Vec<&[u8]> = input.split(|&b| b == b'\n').take(50).collect();
    let mut text = Vec::new();
    for line in head {
        if line.starts_with(b"#") {
            text.extend_from_slice(line);
        } else {
            let s = std::str::from_utf8(line).unwrap();
            let (series, ts) = s.rsplit_once(' ').unwrap();
            let ms = lex::seconds_to_ms(ts).unwrap();
            text.extend_from_slice(format!("{series} {ms}").as_bytes());
        }
        text.push(b'\n');
    }
    let out = parse(&text, Format::PromText).unwrap();
    assert_eq!(out.len(), 50);
    assert_eq!(
        out[2],
        r#"up{instance="host-a:8080",job="web"} 1 @1704067200000"#
    );
    assert_eq!(
        out[9],
        r#"up{instance="host-a:8080",job="web"} 1 @1704067305250"#
    );
}
