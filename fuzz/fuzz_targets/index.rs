//! Opens arbitrary bytes as a block index and walks everything it claims to hold.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use strata_model::{MatchType, Matcher};
use strata_tsdb::index::IndexReader;

fuzz_target!(|data: &[u8]| {
    let Ok(r) = IndexReader::from_bytes(Path::new("fuzz/index"), data.to_vec()) else {
        return;
    };
    for s in r.symbols().take(10_000) {
        if s.is_err() {
            break;
        }
    }
    for name in r.label_names().into_iter().take(100) {
        let _ = r.label_values(&name);
        if let Ok(m) = Matcher::new(MatchType::Regex, name.clone(), "a.*|b") {
            if let Ok(mut p) = r.postings_for_matchers(&[m]) {
                let mut n = 0;
                while let Some(x) = p.next() {
                    let _ = r.series(x);
                    n += 1;
                    if n > 1000 {
                        break;
                    }
                }
            }
        }
    }
    let all = r.all_postings();
    if let Ok(mut p) = all {
        let mut n = 0;
        while let Some(x) = p.next() {
            let _ = r.series(x);
            n += 1;
            if n > 1000 {
                break;
            }
        }
    };
});
