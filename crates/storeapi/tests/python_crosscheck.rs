//! Cross-check with an independent protobuf/gRPC implementation: Python's grpcio and
//! protobuf (Debian `python3-grpcio`, `python3-protobuf`) decode our server's
//! messages from descriptors built from the spec's field numbers
//! (`storeapi_decode.py`), and must see exactly what the data holds.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use strata_model::{Labels, MatchType, Matcher};
use strata_storage::{
    ChunkSeriesStream, Frame, LabelRequest, Queryable, Result, SelectRequest, SourceInfo,
    WithWarnings,
};
use strata_storeapi::{ComponentType, ServerOptions};
use strata_testkit::MemQueryable;

const PYTHON: &str = "/usr/bin/python3";
const HINT: &str = "apt-get install -y python3-grpcio python3-protobuf";

/// MemQueryable with external labels.
#[derive(Debug)]
struct WithLabels(MemQueryable, Labels);

#[async_trait]
impl Queryable for WithLabels {
    async fn select(&self, req: &SelectRequest) -> Result<ChunkSeriesStream> {
        self.0.select(req).await
    }
    async fn label_names(&self, req: &LabelRequest) -> Result<WithWarnings<Vec<String>>> {
        self.0.label_names(req).await
    }
    async fn label_values(&self, n: &str, req: &LabelRequest) -> Result<WithWarnings<Vec<String>>> {
        self.0.label_values(n, req).await
    }
    fn info(&self) -> SourceInfo {
        SourceInfo {
            label_sets: vec![self.1.clone()],
            ..self.0.info()
        }
    }
}

fn labels_json(l: &Labels) -> Value {
    Value::Object(
        l.iter()
            .map(|x| (x.name.clone(), Value::String(x.value.clone())))
            .collect(),
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn python_ready() {
    let out = Command::new(PYTHON)
        .args(["-c", "import grpc, google.protobuf"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {PYTHON}: {e}; install Python 3 and run: {HINT}"));
    assert!(
        out.status.success(),
        "Python gRPC/protobuf modules missing ({}); run: {HINT}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpc_decodes_what_the_data_holds() {
    python_ready();
    let mem = MemQueryable::from_series(strata_testkit::acceptance::acceptance_series());
    let ext = Labels::from_pairs([("cluster", "eu-1"), ("replica", "a")]);
    let src: Arc<dyn Queryable> = Arc::new(WithLabels(mem, ext.clone()));
    let server = common::start(src.clone(), ServerOptions::new(ComponentType::Store)).await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/storeapi_decode.py");
    let addr = server.addr.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(PYTHON)
            .arg(&script)
            .arg(&addr)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "storeapi_decode.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();

    // Info.
    let info = src.info();
    assert_eq!(
        got["info"],
        json!({
            "component_type": "store",
            "label_sets": [labels_json(&ext)],
            "has_store": true,
            "min_time": info.min_time,
            "max_time": info.max_time,
            "tsdb_infos": 1,
        })
    );

    // Every series and chunk, byte for byte.
    let req = SelectRequest::new(
        i64::MIN,
        i64::MAX,
        vec![Matcher::new(MatchType::Regex, "__name__", ".+").unwrap()],
    );
    let (frames, err) = common::collect(src.select(&req).await.unwrap()).await;
    assert!(err.is_none());
    let want: Vec<Value> = frames
        .iter()
        .map(|f| {
            let Frame::Series(s) = f else {
                panic!("warning")
            };
            json!({
                "labels": labels_json(&s.labels),
                "chunks": s.chunks().iter().map(|c| json!({
                    "min_time": c.min_time,
                    "max_time": c.max_time,
                    "raw": {"type": 0, "data": hex(&c.chunk.data), "hash": 0},
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    assert_eq!(want.len(), 13);
    assert_eq!(got["all"]["series"], Value::Array(want));
    assert_eq!(got["all"]["warnings"], json!([]));
    assert_eq!(got["all"]["frames"], 13);
    // Asked for batches of 5: the same series in at most ceil(13/5) frames.
    assert_eq!(got["batched"]["series"], got["all"]["series"]);
    let frames = got["batched"]["frames"].as_u64().unwrap();
    assert!((3..13).contains(&frames), "{frames} frames");
    assert!(got["all"].get("error").is_none());

    // up{instance!="b:1"}, labels only.
    assert_eq!(
        got["skip_chunks"]["series"],
        json!([
            {"labels": {"__name__": "up", "instance": "a:1", "job": "x"}, "chunks": []},
            {"labels": {"__name__": "up", "instance": "a:2", "job": "x"}, "chunks": []},
            {"labels": {"__name__": "up", "instance": "c:1"}, "chunks": []},
        ])
    );
    assert_eq!(got["bad_regex"]["error"]["code"], "INVALID_ARGUMENT");
    assert!(got["bad_regex"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("a(b"));
    assert_eq!(
        got["label_names"],
        json!(["__name__", "instance", "job", "room"])
    );
    assert_eq!(got["label_values"], json!(["b:1", "c:1"]));
}
