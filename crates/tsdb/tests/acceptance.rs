//! The shared Queryable acceptance suite against `Db`, with the data split over
//! overlapping blocks so query-time merging is exercised too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use strata_storage::Queryable;
use strata_tsdb::block::{BlockWriter, BlockWriterOptions};
use strata_tsdb::cut::ChunkCutter;
use strata_tsdb::Db;

#[tokio::test]
async fn db_passes_acceptance() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    strata_testkit::queryable_acceptance(|series| async move {
        // Block 1: every other sample; block 2: the rest plus an overlap of the first.
        for part in 0..2 {
            let mut syms: Vec<String> = series
                .iter()
                .flat_map(|(l, _)| l.iter().flat_map(|x| [x.name.clone(), x.value.clone()]))
                .collect();
            syms.sort();
            syms.dedup();
            let mut w = BlockWriter::create(&path, BlockWriterOptions::default()).unwrap();
            w.add_symbols(syms.iter().map(String::as_str)).unwrap();
            for (l, s) in &series {
                let mut c = ChunkCutter::new(7_200_000);
                for (i, x) in s.iter().enumerate() {
                    if i % 2 == part || i < 10 {
                        c.append(x.t, x.v).unwrap();
                    }
                }
                w.add_series(l, &c.finish()).unwrap();
            }
            w.finish(None).unwrap();
        }
        let db = Db::open(&path).unwrap();
        assert_eq!(db.blocks().len(), 2);
        Arc::new(db) as Arc<dyn Queryable>
    })
    .await;
}
