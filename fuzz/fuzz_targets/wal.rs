//! Reads arbitrary bytes as a WAL segment and decodes every record.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use strata_tsdb::wal::{decode, SegmentReader};

fuzz_target!(|data: &[u8]| {
    for last in [false, true] {
        let mut r = SegmentReader::from_bytes(Path::new("fuzz/wal"), data.to_vec(), last);
        for _ in 0..100_000 {
            match r.next_record() {
                Ok(Some(rec)) => {
                    let _ = decode(&rec);
                }
                _ => break,
            }
        }
    }
    let _ = decode(data);
});
