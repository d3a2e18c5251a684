//! Shared helpers: a server on a loopback port that stops when dropped, and small
//! test sources.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream;
use strata_chunkenc::{RawChunk, XorChunk};
use strata_model::{Labels, Sample};
use strata_storage::{
    ChunkMeta, ChunkSeries, ChunkSeriesStream, Frame, LabelRequest, Queryable, Result,
    SelectRequest, SourceInfo, WithWarnings,
};
use strata_storeapi::{serve, Client, ClientOptions, ServerOptions};
use tokio::sync::oneshot;

/// A running server; dropping it shuts the server down.
pub struct Server {
    pub addr: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<strata_storeapi::Result<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.abort();
    }
}

/// Serves `source` on 127.0.0.1 (port picked by the OS).
pub async fn start(source: Arc<dyn Queryable>, opts: ServerOptions) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(serve(listener, source, opts, async {
        let _ = rx.await;
    }));
    Server {
        addr,
        stop: Some(tx),
        task,
    }
}

/// A server plus a connected client.
pub async fn pair(source: Arc<dyn Queryable>, opts: ServerOptions) -> (Server, Client) {
    pair_with(source, opts, ClientOptions::default()).await
}

/// A server plus a client connected with `copts`.
pub async fn pair_with(
    source: Arc<dyn Queryable>,
    opts: ServerOptions,
    copts: ClientOptions,
) -> (Server, Client) {
    let s = start(source, opts).await;
    let c = Client::connect_with(&s.addr, copts).await.unwrap();
    (s, c)
}

/// XOR chunks of `n` samples each from `samples`.
pub fn chunks_of(samples: &[Sample], n: usize) -> Vec<ChunkMeta> {
    samples
        .chunks(n)
        .map(|part| {
            let mut a = XorChunk::new().appender();
            for s in part {
                a.append(s.t, s.v).unwrap();
            }
            ChunkMeta {
                min_time: part[0].t,
                max_time: part[part.len() - 1].t,
                chunk: RawChunk::from_xor(a.finish()),
            }
        })
        .collect()
}

/// A source that replays fixed frames (ignoring matchers), and answers label calls
/// with fixed values and warnings. Counts frames pulled from its streams.
#[derive(Debug, Default)]
pub struct Scripted {
    pub frames: Vec<std::result::Result<Frame, String>>,
    pub names: WithWarnings<Vec<String>>,
    pub info: Mutex<SourceInfo>,
    pub pulled: Arc<AtomicUsize>,
    pub last_select: Mutex<Option<SelectRequest>>,
    pub last_label: Mutex<Option<LabelRequest>>,
}

#[async_trait]
impl Queryable for Scripted {
    async fn select(&self, req: &SelectRequest) -> Result<ChunkSeriesStream> {
        *self.last_select.lock().unwrap() = Some(req.clone());
        let pulled = self.pulled.clone();
        let frames = self.frames.clone();
        Ok(Box::pin(stream::iter(frames).map(move |f| {
            pulled.fetch_add(1, Ordering::SeqCst);
            f.map_err(strata_storage::Error::Unavailable)
        })))
    }

    async fn label_names(&self, req: &LabelRequest) -> Result<WithWarnings<Vec<String>>> {
        *self.last_label.lock().unwrap() = Some(req.clone());
        Ok(self.names.clone())
    }

    async fn label_values(
        &self,
        _name: &str,
        req: &LabelRequest,
    ) -> Result<WithWarnings<Vec<String>>> {
        *self.last_label.lock().unwrap() = Some(req.clone());
        Ok(self.names.clone())
    }

    fn info(&self) -> SourceInfo {
        self.info.lock().unwrap().clone()
    }
}

use futures::StreamExt as _;

/// A series frame.
pub fn series(labels: &[(&str, &str)], chunks: Vec<ChunkMeta>) -> Frame {
    Frame::Series(ChunkSeries::from_chunks(
        Labels::from_pairs(labels.iter().copied()),
        chunks,
    ))
}

/// Collects a select stream; errors end it and are returned alongside.
pub async fn collect(mut s: ChunkSeriesStream) -> (Vec<Frame>, Option<strata_storage::Error>) {
    let mut out = Vec::new();
    while let Some(f) = s.next().await {
        match f {
            Ok(f) => out.push(f),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}
