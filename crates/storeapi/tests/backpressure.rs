//! A slow client must not make the server read (and buffer) the whole result, and a
//! client that goes away must stop the server's work.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{stream, StreamExt};
use strata_chunkenc::{Encoding, RawChunk};
use strata_model::Labels;
use strata_storage::{
    ChunkMeta, ChunkSeries, ChunkSeriesStream, Frame, LabelRequest, Queryable, Result,
    SelectRequest, SourceInfo, WithWarnings,
};
use strata_storeapi::ServerOptions;

const SERIES: usize = 20_000;
const CHUNK_BYTES: usize = 1024;

/// Produces series lazily, counting how many the server pulled.
#[derive(Debug, Default)]
struct Endless {
    pulled: Arc<AtomicUsize>,
}

#[async_trait]
impl Queryable for Endless {
    async fn select(&self, _req: &SelectRequest) -> Result<ChunkSeriesStream> {
        let pulled = self.pulled.clone();
        let data = bytes::Bytes::from(vec![0x5au8; CHUNK_BYTES]);
        Ok(Box::pin(stream::iter(0..SERIES).map(move |i| {
            pulled.fetch_add(1, Ordering::SeqCst);
            Ok(Frame::Series(ChunkSeries::from_chunks(
                Labels::from_pairs([("__name__", format!("s{i:06}"))]),
                vec![ChunkMeta {
                    min_time: 0,
                    max_time: 1,
                    chunk: RawChunk::new(Encoding::Xor, data.clone()),
                }],
            )))
        })))
    }
    async fn label_names(&self, _: &LabelRequest) -> Result<WithWarnings<Vec<String>>> {
        Ok(WithWarnings::default())
    }
    async fn label_values(&self, _: &str, _: &LabelRequest) -> Result<WithWarnings<Vec<String>>> {
        Ok(WithWarnings::default())
    }
    fn info(&self) -> SourceInfo {
        SourceInfo::default()
    }
}

/// Polls `counter` until it stops moving (the server is blocked on flow control),
/// then returns its value. Bounded: at most 200 polls of 20 ms.
async fn settled(counter: &AtomicUsize) -> usize {
    let mut last = counter.load(Ordering::SeqCst);
    let mut still = 0;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = counter.load(Ordering::SeqCst);
        if now == last {
            still += 1;
            if still == 5 {
                break;
            }
        } else {
            still = 0;
            last = now;
        }
    }
    last
}

#[tokio::test]
async fn slow_consumer_bounds_server_reads_and_cancel_stops_them() {
    let src = Arc::new(Endless::default());
    let (_s, client) = common::pair(src.clone(), ServerOptions::default()).await;
    let mut stream = client
        .select(&SelectRequest::new(0, 1, vec![]))
        .await
        .unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert!(matches!(first, Frame::Series(_)));
    let held = settled(&src.pulled).await;
    eprintln!("server read {held} of {SERIES} series ahead of a stalled client");
    // Flow-control windows (4 MiB stream window on the client) + the server's frame
    // buffer: a few thousand 1 KiB series at most, far from all 20k (20 MiB).
    assert!(
        held < SERIES / 2,
        "server read {held} of {SERIES} series ahead of a stalled client"
    );
    assert!(held > 1, "{held}");

    // Reading on resumes the stream.
    for _ in 0..100 {
        stream.next().await.unwrap().unwrap();
    }
    // Dropping the stream cancels the call: the server stops pulling.
    drop(stream);
    let after = settled(&src.pulled).await;
    assert!(
        after < SERIES,
        "server kept reading after the client left: {after}"
    );
}
