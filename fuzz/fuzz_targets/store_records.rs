//! Series entries, chunk records and postings lists as the store gateway reads
//! them from a bucket (or a cache), raw and inside valid checksums.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strata_store::fuzzing::decode_records(data));
