//! Runs both exposition parsers (Prometheus text and OpenMetrics) over arbitrary
//! bytes and drains them. The parsers must never panic, must stop, and every
//! error must be a located parse error.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_model::textparse::{Entry, Format, Parser};
use strata_model::Error;

fuzz_target!(|data: &[u8]| {
    let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
    for format in [Format::PromText, Format::OpenMetrics] {
        let mut parser = Parser::new(data, format);
        let mut entries = 0usize;
        loop {
            match parser.next() {
                Ok(Some(Entry::Series(s))) => {
                    let labels = s.to_labels();
                    assert_eq!(labels.metric_name(), Some(s.metric_name));
                    assert!(labels.len() <= s.labels.len() + 1);
                    for (name, value) in s.labels {
                        assert!(!name.is_empty());
                        assert_eq!(s.labels.get(name), Some(value));
                    }
                    if let Some(ex) = s.exemplar {
                        for (name, _) in ex.labels {
                            assert!(!name.is_empty());
                        }
                    }
                }
                Ok(Some(Entry::Comment(c))) => {
                    assert_eq!(format, Format::PromText);
                    assert!(c.starts_with(b"#"));
                }
                Ok(Some(Entry::Unit { .. })) => assert_eq!(format, Format::OpenMetrics),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(Error::Parse { line, col, msg }) => {
                    assert!(line >= 1 && line <= lines + 1, "line {line} of {lines}");
                    assert!(col >= 1);
                    assert!(!msg.is_empty());
                    break;
                }
                Err(e) => panic!("unexpected error kind: {e}"),
            }
            entries += 1;
            assert!(entries <= lines, "more entries than lines");
        }
        // Exhausted parsers stay exhausted.
        assert!(matches!(parser.next(), Ok(None)));
    }
});
