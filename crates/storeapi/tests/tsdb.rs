//! The StoreAPI over a TSDB `Db` read from block files: the acceptance suite, and
//! chunk bytes from the block's chunk segments arriving unchanged.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use strata_model::{Labels, MatchType, Matcher, Sample};
use strata_storage::{Frame, Queryable, SelectRequest};
use strata_storeapi::{ComponentType, ServerOptions};
use strata_tsdb::block::{BlockWriter, BlockWriterOptions};
use strata_tsdb::cut::ChunkCutter;
use strata_tsdb::Db;

/// Writes one block of `series`; `keep(i)` selects which samples go in.
fn write_block(dir: &Path, series: &[(Labels, Vec<Sample>)], keep: impl Fn(usize) -> bool) {
    let mut syms: Vec<String> = series
        .iter()
        .flat_map(|(l, _)| l.iter().flat_map(|x| [x.name.clone(), x.value.clone()]))
        .collect();
    syms.sort();
    syms.dedup();
    let mut w = BlockWriter::create(dir, BlockWriterOptions::default()).unwrap();
    w.add_symbols(syms.iter().map(String::as_str)).unwrap();
    for (l, s) in series {
        let mut c = ChunkCutter::new(7_200_000);
        for (i, x) in s.iter().enumerate() {
            if keep(i) {
                c.append(x.t, x.v).unwrap();
            }
        }
        w.add_series(l, &c.finish()).unwrap();
    }
    w.finish(None).unwrap();
}

#[tokio::test]
async fn db_over_storeapi_passes_acceptance() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    strata_testkit::queryable_acceptance(|series| async move {
        // Two overlapping blocks, so the Db merges at query time behind the server.
        write_block(&path, &series, |i| i % 2 == 0 || i < 10);
        write_block(&path, &series, |i| i % 2 == 1 || i < 10);
        let db: Arc<dyn Queryable> = Arc::new(Db::open(&path).unwrap());
        let (server, client) = common::pair(db, ServerOptions::new(ComponentType::Store)).await;
        tx.send(server).unwrap();
        Arc::new(client) as Arc<dyn Queryable>
    })
    .await;
    assert_eq!(rx.try_iter().count(), 1);
}

#[tokio::test]
async fn block_chunks_arrive_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let series = strata_testkit::acceptance::acceptance_series();
    write_block(dir.path(), &series, |_| true);
    let db = Db::open(dir.path())
        .unwrap()
        .with_external_labels(Labels::from_pairs([("cluster", "c1")]));
    let db: Arc<dyn Queryable> = Arc::new(db);
    let (_s, client) = common::pair(db.clone(), ServerOptions::new(ComponentType::Sidecar)).await;
    assert_eq!(client.info(), db.info());
    let req = SelectRequest::new(
        i64::MIN,
        i64::MAX,
        vec![Matcher::new(MatchType::Regex, "__name__", ".+").unwrap()],
    );
    let (local, e1) = common::collect(db.select(&req).await.unwrap()).await;
    let (remote, e2) = common::collect(client.select(&req).await.unwrap()).await;
    assert!(e1.is_none() && e2.is_none(), "{e1:?} {e2:?}");
    assert_eq!(local.len(), series.len());
    assert_eq!(remote.len(), local.len());
    for (a, b) in local.iter().zip(&remote) {
        let (Frame::Series(a), Frame::Series(b)) = (a, b) else {
            panic!("unexpected warning")
        };
        assert_eq!(a.labels, b.labels);
        assert!(!a.chunks().is_empty());
        assert_eq!(a.chunks(), b.chunks(), "{}", a.labels);
    }
}
