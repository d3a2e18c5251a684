//! Decodes arbitrary bytes as an XOR chunk and as a Thanos aggregate chunk.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_chunkenc::{AggrChunk, AggrType, SampleIterator, XorAppender, XorIterator};

fuzz_target!(|data: &[u8]| {
    let mut it = XorIterator::new(data);
    let mut n = 0usize;
    let mut last = None;
    while let Ok(Some(s)) = it.next() {
        n += 1;
        last = Some(s);
    }
    assert!(n <= 65535);
    // Whatever decodes fully must resume into an appender without panicking.
    if last.is_some() {
        let _ = XorAppender::resume(data.to_vec());
    }
    let ag = AggrChunk::new(data);
    for t in [AggrType::Count, AggrType::Sum, AggrType::Min, AggrType::Max, AggrType::Counter] {
        if let Ok(Some(mut it)) = ag.iter(t) {
            for _ in 0..70_000 {
                match it.next() {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }
    }
});
