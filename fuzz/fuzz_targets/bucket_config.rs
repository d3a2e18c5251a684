//! Parses arbitrary text as Thanos objstore YAML (and builds the store it
//! describes), and arbitrary bytes as a bucket block's Thanos meta.json.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cfg) = strata_objstore::BucketConfig::parse(text) {
            // FILESYSTEM would create directories: only build the cloud stores.
            if !matches!(cfg.provider, strata_objstore::ProviderConfig::Filesystem(_)) {
                let _ = cfg.build_store();
            }
            let _ = cfg.part_size();
        }
    }
    if let Ok(meta) = strata_block::Meta::from_json(data) {
        let _ = meta.to_json();
    }
});
