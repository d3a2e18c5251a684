//! Decodes arbitrary bytes as a chunked remote read response, whole and fed in
//! small pieces (as they arrive from the network).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = strata_remote::chunked::decode_frames(data, 1 << 20);
    let mut d = strata_remote::chunked::FrameDecoder::new(1 << 20);
    for piece in data.chunks(7) {
        d.push(piece);
        while let Ok(Some(_)) = d.next_frame() {}
    }
    let _ = d.finish();
});
