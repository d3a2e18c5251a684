//! Parses and evaluates arbitrary PromQL (instant and range queries) against a small
//! in-memory dataset: any input must yield a result or an error, never a panic,
//! a hang or unbounded memory.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use strata_promql::testing::TinyQueryable;
use strata_promql::{Engine, EngineOptions, QueryOptions};

struct Ctx {
    rt: tokio::runtime::Runtime,
    engine: Engine,
    data: Arc<TinyQueryable>,
}

fn ctx() -> &'static Ctx {
    static CTX: OnceLock<Ctx> = OnceLock::new();
    CTX.get_or_init(|| Ctx {
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime"),
        engine: Engine::new(EngineOptions {
            max_samples: 1_000_000,
            timeout: Duration::from_secs(2),
            ..EngineOptions::default()
        }),
        data: Arc::new(TinyQueryable::sample_data()),
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let c = ctx();
    let opts = QueryOptions::default();
    c.rt.block_on(async {
        let _ = c
            .engine
            .instant_query(c.data.clone(), query, 1_800_000, &opts)
            .await;
        let _ = c
            .engine
            .range_query(c.data.clone(), query, 0, 3_600_000, 60_000, &opts)
            .await;
    });
});
