//! Index-headers (Thanos' binary format) built around arbitrary symbol and
//! postings offset tables, parsed and looked up by the store gateway.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strata_store::fuzzing::parse_index_header(data));
