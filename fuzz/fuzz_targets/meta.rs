//! Parses arbitrary bytes as meta.json and as a tombstones file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("strata-fuzz-meta-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("meta.json"), data);
    if let Ok(m) = strata_tsdb::meta::BlockMeta::read(&dir) {
        let _ = m.to_json();
    }
    let _ = std::fs::write(dir.join("tombstones"), data);
    let _ = strata_tsdb::tombstones::Tombstones::read(&dir.join("tombstones"));
});
