//! Checks of blocks a sidecar shipped: the Thanos section of `meta.json`
//! against the local block, and `strata tools tsdb dump` of the bucket's
//! copy against `promtool tsdb dump` of the local one.

use std::path::Path;

use strata_objstore::Bucket;

/// One runtime for every bucket call of a test process: a bucket's HTTP
/// client keeps pooled connections whose tasks live on the runtime that
/// opened them, so a runtime per call would leave the next call waiting on a
/// dead connection until the read timeout.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// The `meta.json` of block `id` in the bucket.
pub fn meta(b: &Bucket, id: &str) -> serde_json::Value {
    let raw = rt().block_on(b.get(&format!("{id}/meta.json"))).unwrap();
    serde_json::from_slice(&raw).unwrap()
}

/// Checks the Thanos section of shipped block `id` against the local block
/// in `tsdb`: external labels, `source: sidecar`, resolution 0, and every
/// file's size in `meta.json` and in the bucket.
pub fn check_meta(b: &Bucket, tsdb: &Path, id: &str, labels: &[(&str, &str)]) {
    let m = meta(b, id);
    let t = &m["thanos"];
    let want: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    assert_eq!(t["labels"], serde_json::Value::Object(want), "{m}");
    assert_eq!(t["source"], "sidecar", "{m}");
    assert_eq!(t["downsample"]["resolution"], 0, "{m}");
    let files = t["files"].as_array().unwrap();
    let mut rels = Vec::new();
    for f in files {
        let rel = f["rel_path"].as_str().unwrap();
        rels.push(rel.to_string());
        if rel == "meta.json" {
            continue;
        }
        let local = std::fs::metadata(tsdb.join(id).join(rel)).unwrap().len();
        assert_eq!(f["size_bytes"].as_u64(), Some(local), "{rel} of {id}");
        let remote = rt().block_on(b.attributes(&format!("{id}/{rel}"))).unwrap();
        assert_eq!(remote.size, local, "{rel} of {id} in the bucket");
    }
    assert!(rels.contains(&"index".to_string()), "{rels:?}");
    assert!(rels.iter().any(|r| r.starts_with("chunks/")), "{rels:?}");
}

/// `strata tools tsdb dump` of the blocks downloaded from the bucket equals
/// `promtool tsdb dump` of the same local blocks.
pub fn check_dump(b: &Bucket, tsdb: &Path, ids: &[String]) {
    let work = tempfile::tempdir().unwrap();
    let (down, local) = (work.path().join("down"), work.path().join("local"));
    std::fs::create_dir_all(&down).unwrap();
    for id in ids {
        let ulid: ulid::Ulid = id.parse().unwrap();
        rt().block_on(strata_block::download_block(b, ulid, &down.join(id)))
            .unwrap();
        strata_testkit::copy_dir(&tsdb.join(id), &local.join(id));
    }
    let ours = super::strata_dump(&down);
    let theirs = strata_testkit::promtool_dump(&local);
    assert!(
        ours.lines().count() > 1000,
        "dump too small: {}",
        ours.len()
    );
    strata_testkit::assert_same_text(
        "promtool dump of local blocks",
        &theirs,
        "strata dump of shipped blocks",
        &ours,
    );
}
