#![allow(clippy::unwrap_used)]
//! `strata tools bucket` against FILESYSTEM buckets in temp dirs: blocks made
//! by `strata tools tsdb create-blocks-from openmetrics` or with
//! `BlockWriter`, uploaded with `upload-blocks`, then listed, inspected,
//! verified (and repaired), marked, cleaned, retained, downsampled,
//! rewritten (checked with promtool) and replicated. Bad input must fail
//! with a clear error, never a panic.

mod api_util;

use std::process::Command;

use serde_json::Value;

use api_util::bucket::{
    backfill, dir_names, fail, fs_yaml, ls, meta, ok, promtool_dump, series_text, upload,
    write_block,
};

#[test]
fn upload_ls_inspect_and_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    let obj = fs_yaml(&bucket);
    // 3h from 2024-01-01T00:00:00Z: two 2h blocks.
    let text = series_text("up", "job=\"a\"", 1_704_067_200, 3 * 3600, 60) + "# EOF\n";
    let blocks = backfill(tmp.path(), &text, "2h");
    let local = dir_names(&blocks);
    assert_eq!(local.len(), 2);

    fail(&[
        "upload-blocks",
        "--objstore.config",
        &obj,
        "--path",
        blocks.to_str().unwrap(),
    ]);
    let se = fail(&[
        "upload-blocks",
        "--objstore.config",
        &obj,
        "--path",
        blocks.to_str().unwrap(),
        "--label",
        "cluster=a",
    ]);
    assert!(se.contains("cluster=a"), "{se}");
    upload(&blocks, &obj, "cluster=\"a\"");
    assert_eq!(ls(&obj), local, "ls lists the uploaded blocks by ULID");
    let m = meta(&bucket, &local[0]);
    assert_eq!(m["thanos"]["source"], "bucket.upload");
    assert_eq!(m["thanos"]["labels"]["cluster"], "a");
    // Uploading again uploads nothing (thanos.shipper.json).
    let (_, se) = ok(&[
        "upload-blocks",
        "--objstore.config",
        &obj,
        "--path",
        blocks.to_str().unwrap(),
        "--label",
        "cluster=\"a\"",
    ]);
    assert!(se.contains("uploaded=0"), "{se}");

    let (wide, _) = ok(&["ls", "--objstore.config", &obj, "-o", "wide"]);
    let lines: Vec<&str> = wide.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0],
        format!("{} -- 2024-01-01T00:00:00Z - 2024-01-01T01:59:00Z Diff: 1h59m0s, Compaction: 1, Downsample: 0, Source: bucket.upload", local[0])
    );
    let (json, _) = ok(&["--objstore.config", &obj, "ls", "--output=json"]);
    let metas: Vec<Value> = serde_json::Deserializer::from_str(&json)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect();
    assert_eq!(metas.len(), 2);
    assert_eq!(metas[1]["ulid"], local[1].as_str());
    assert_eq!(metas[1]["thanos"]["labels"]["cluster"], "a");
    assert!(
        json.contains("\n\t\"ulid\""),
        "tab-indented like Go's encoder"
    );
    let (late, _) = ok(&[
        "ls",
        "--objstore.config",
        &obj,
        "--min-time",
        "2024-01-01T02:30:00Z",
    ]);
    assert_eq!(late.trim(), local[1]);

    let (table, _) = ok(&["inspect", "--objstore.config", &obj]);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 4, "{table}");
    assert!(
        rows[0].starts_with("|            ULID            |"),
        "{table}"
    );
    assert!(rows[1].starts_with("|----"), "{table}");
    assert!(
        rows[2].contains(&local[0]) && rows[2].contains("cluster=a") && rows[2].contains("| 120 "),
        "{table}"
    );
    let (csv, _) = ok(&[
        "inspect",
        "--objstore.config",
        &obj,
        "--output=csv",
        "--sort-by",
        "UNTIL",
    ]);
    let csv: Vec<&str> = csv.lines().collect();
    assert_eq!(csv[0], "ULID,FROM,UNTIL,RANGE,UNTIL-DOWN,#SERIES,#SAMPLES,#CHUNKS,COMP-LEVEL,COMP-FAILED,LABELS,RESOLUTION,SOURCE");
    assert_eq!(
        csv[1],
        format!("{},2024-01-01T00:00:00Z,2024-01-01T01:59:00Z,1h59m0.001s,38h0m59.999s,1,120,1,1,false,cluster=a,0s,bucket.upload", local[0])
    );
    let (tsv, _) = ok(&[
        "inspect",
        "--objstore.config",
        &obj,
        "--output=tsv",
        "-l",
        "cluster=\"b\"",
    ]);
    assert_eq!(
        tsv.lines().count(),
        1,
        "selector matches nothing: header only"
    );
    assert!(tsv.contains("ULID\tFROM"));

    // Bad input: clear errors naming the thing, no panic.
    let se = fail(&[
        "ls",
        "--objstore.config",
        "type: FILESYSTEM\nconfig:\n  directoryy: /x\n",
    ]);
    assert!(se.contains("objstore.config"), "{se}");
    let se = fail(&["ls"]);
    assert!(se.contains("--objstore.config"), "{se}");
    let se = fail(&["ls", "--objstore.config", &obj, "-o", "{{.ULID}}"]);
    assert!(se.contains("--output"), "{se}");
    let se = fail(&["inspect", "--objstore.config", &obj, "--sort-by", "NOPE"]);
    assert!(se.contains("NOPE"), "{se}");
}

#[test]
fn mark_remove_cleanup_and_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    let obj = fs_yaml(&bucket);
    // 2020: old enough for any retention.
    let text = series_text("up", "job=\"a\"", 1_577_836_800, 3 * 3600, 60) + "# EOF\n";
    let blocks = backfill(tmp.path(), &text, "2h");
    upload(&blocks, &obj, "cluster=\"a\"");
    let ids = ls(&obj);
    let (a, b) = (ids[0].as_str(), ids[1].as_str());

    let se = fail(&[
        "mark",
        "--objstore.config",
        &obj,
        "--id",
        a,
        "--marker",
        "no-compact-mark.json",
    ]);
    assert!(se.contains("--details"), "{se}");
    let se = fail(&[
        "mark",
        "--objstore.config",
        &obj,
        "--id",
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "--marker",
        "deletion-mark.json",
        "--details",
        "x",
    ]);
    assert!(
        se.contains("01ARZ3NDEKTSV4RRFFQ69G5FAV") && se.contains("not found"),
        "{se}"
    );
    let se = fail(&[
        "mark",
        "--objstore.config",
        &obj,
        "--id",
        "nope",
        "--marker",
        "deletion-mark.json",
        "--details",
        "x",
    ]);
    assert!(se.contains("\"nope\""), "{se}");
    ok(&[
        "mark",
        "--objstore.config",
        &obj,
        "--id",
        a,
        "--marker",
        "no-compact-mark.json",
        "--details",
        "by hand",
    ]);
    let nc: Value = serde_json::from_slice(
        &std::fs::read(bucket.join(a).join("no-compact-mark.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (
            nc["reason"].as_str(),
            nc["details"].as_str(),
            nc["version"].as_i64()
        ),
        (Some("manual"), Some("by hand"), Some(1))
    );
    ok(&[
        "mark",
        "--objstore.config",
        &obj,
        "--id",
        a,
        "--marker",
        "no-compact-mark.json",
        "--remove",
    ]);
    assert!(!bucket.join(a).join("no-compact-mark.json").exists());
    ok(&[
        "mark",
        "--objstore.config",
        &obj,
        "--id",
        a,
        "--id",
        b,
        "--marker",
        "deletion-mark.json",
        "--details",
        "test",
    ]);
    let (so, _) = ok(&["ls", "--objstore.config", &obj, "--exclude-delete"]);
    assert_eq!(so, "", "both blocks are marked");
    ok(&[
        "mark",
        "--objstore.config",
        &obj,
        "--id",
        a,
        "--id",
        b,
        "--marker",
        "deletion-mark.json",
        "--remove",
    ]);
    assert_eq!(
        ok(&["ls", "--objstore.config", &obj, "--exclude-delete"])
            .0
            .lines()
            .count(),
        2
    );

    // Retention marks both old blocks; the marks are fresh, so the default
    // 48h delete delay keeps them; 0s deletes them.
    let se = fail(&[
        "retention",
        "--objstore.config",
        &obj,
        "--retention.resolution-raw",
        "1x",
    ]);
    assert!(se.contains("retention.resolution-raw"), "{se}");
    ok(&[
        "retention",
        "--objstore.config",
        &obj,
        "--retention.resolution-raw=30d",
        "--consistency-delay=0s",
    ]);
    assert!(bucket.join(a).join("deletion-mark.json").exists());
    assert!(bucket.join(b).join("deletion-mark.json").exists());
    // A partial upload of 2020, and one in progress now.
    let old_partial = bucket.join("01DXF2B6Q0HVT2DXYNJZ3TXYQW");
    let new_partial = bucket.join(ulid::Ulid::new().to_string());
    for p in [&old_partial, &new_partial] {
        std::fs::create_dir_all(p.join("chunks")).unwrap();
        std::fs::write(p.join("chunks/000001"), b"x").unwrap();
    }
    let st = Command::new("touch")
        .args(["-d", "2020-01-01"])
        .arg(old_partial.join("chunks/000001"))
        .status()
        .unwrap();
    assert!(st.success());
    ok(&["cleanup", "--objstore.config", &obj]);
    assert_eq!(ls(&obj).len(), 2, "marks younger than --delete-delay");
    assert!(
        !old_partial.join("chunks/000001").exists(),
        "aborted partial upload deleted"
    );
    assert!(
        new_partial.join("chunks/000001").exists(),
        "fresh partial upload kept"
    );
    ok(&["cleanup", "--objstore.config", &obj, "--delete-delay=0s"]);
    assert!(ls(&obj).is_empty());
    assert!(!bucket.join(a).join("meta.json").exists());
}

#[test]
fn downsample_a_40h_block() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    let obj = fs_yaml(&bucket);
    // 41h of 1-minute samples inside one 54h-aligned block (backfill
    // ranges are 2h, 6h, 18h, 54h).
    let start = 8745 * 194_400;
    let text = series_text("up", "job=\"a\"", start, 41 * 3600, 60) + "# EOF\n";
    let blocks = backfill(tmp.path(), &text, "54h");
    assert_eq!(dir_names(&blocks).len(), 1);
    upload(&blocks, &obj, "cluster=\"a\"");
    let raw = ls(&obj);
    let data = tmp.path().join("data");
    let (_, se) = ok(&[
        "downsample",
        "--objstore.config",
        &obj,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(se.contains("downsampling iterations done"), "{se}");
    let (wide, _) = ok(&["ls", "--objstore.config", &obj, "-o", "wide"]);
    assert_eq!(wide.lines().count(), 2, "{wide}");
    let down: Vec<&str> = wide
        .lines()
        .filter(|l| l.contains("Downsample: 300000"))
        .collect();
    assert_eq!(down.len(), 1, "{wide}");
    assert!(down[0].contains("Source: compactor"), "{wide}");
    let id = &down[0][..26];
    let m = meta(&bucket, id);
    assert_eq!(m["compaction"]["sources"][0], raw[0].as_str());
    // A second pass finds nothing to do.
    ok(&[
        "downsample",
        "--objstore.config",
        &obj,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(ls(&obj).len(), 2);
}

#[test]
fn verify_overlaps_and_repair_index() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    let backup = tmp.path().join("backup");
    let obj = fs_yaml(&bucket);
    let bobj = fs_yaml(&backup);
    let (ga, gb) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&ga).unwrap();
    std::fs::create_dir_all(&gb).unwrap();
    // Group a: two overlapping blocks.
    let o1 = write_block(&ga, &[("up", vec![vec![1000, 5000, 9000]])], (0, 20_000));
    let o2 = write_block(&ga, &[("up", vec![vec![12_000, 25_000]])], (10_000, 30_000));
    // Group b: a chunk completely outside the block's range, and an index
    // that cannot be read.
    let outside = write_block(
        &gb,
        &[
            ("down", vec![vec![1000, 2000]]),
            ("up", vec![vec![1000, 2000], vec![50_000, 60_000]]),
        ],
        (0, 20_000),
    );
    let broken = write_block(
        &gb,
        &[("up", vec![vec![100_000, 101_000]])],
        (100_000, 120_000),
    );
    upload(&ga, &obj, "cluster=\"a\"");
    upload(&gb, &obj, "cluster=\"b\"");
    let idx = bucket.join(&broken).join("index");
    let mut b = std::fs::read(&idx).unwrap();
    let n = b.len();
    for x in &mut b[n - 20..] {
        *x ^= 0xff;
    }
    std::fs::write(&idx, b).unwrap();

    let (_, se) = ok(&["verify", "--objstore.config", &obj]);
    let overlap: Vec<&str> = se
        .lines()
        .filter(|l| l.contains("found overlapped blocks"))
        .collect();
    assert_eq!(overlap.len(), 1, "{se}");
    assert!(overlap[0].contains(&o1) && overlap[0].contains(&o2), "{se}");
    let issue = |id: &str| {
        se.lines()
            .any(|l| l.contains("detected issue") && l.contains(id))
    };
    assert!(issue(&outside) && issue(&broken), "{se}");
    assert!(!issue(&o1) && !issue(&o2), "{se}");
    assert!(
        se.contains("found 1 chunks completely outside the block time range"),
        "{se}"
    );

    let se = fail(&["verify", "--objstore.config", &obj, "-r", "--id", &outside]);
    assert!(se.contains("backup"), "{se}");
    let se = fail(&[
        "verify",
        "--objstore.config",
        &obj,
        "--id",
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",
    ]);
    assert!(se.contains("01ARZ3NDEKTSV4RRFFQ69G5FAV"), "{se}");
    let se = fail(&["verify", "--objstore.config", &obj, "-i", "nope"]);
    assert!(se.contains("nope"), "{se}");

    // Repair: the outsider chunk goes, the broken block is backed up and deleted.
    let (_, se) = ok(&[
        "verify",
        "--objstore.config",
        &obj,
        "--objstore-backup.config",
        &bobj,
        "-r",
        "-i",
        "index_known_issues",
        "--id",
        &outside,
    ]);
    assert!(se.contains("all good, continuing"), "{se}");
    assert!(
        !bucket.join(&outside).join("meta.json").exists(),
        "repaired block deleted"
    );
    assert!(
        backup.join(&outside).join("meta.json").exists(),
        "and backed up first"
    );
    let now = ls(&obj);
    assert_eq!(now.len(), 4, "{now:?}");
    let new_id = now
        .iter()
        .find(|id| ![&o1, &o2, &broken].contains(id))
        .unwrap();
    let m = meta(&bucket, new_id);
    assert_eq!(m["thanos"]["source"], "bucket.repair");
    assert_eq!(m["thanos"]["labels"]["cluster"], "b");
    assert_eq!(
        (m["minTime"].as_i64(), m["maxTime"].as_i64()),
        (Some(0), Some(20_000))
    );
    assert_eq!(m["stats"]["numChunks"], 2);
    let (_, se) = ok(&[
        "verify",
        "--objstore.config",
        &obj,
        "-i",
        "index_known_issues",
        "--id",
        new_id,
    ]);
    assert!(
        !se.contains("detected issue") && se.contains("no issue"),
        "{se}"
    );
    // An unreadable index is reported, not repaired.
    let (_, se) = ok(&[
        "verify",
        "--objstore.config",
        &obj,
        "--objstore-backup.config",
        &bobj,
        "-r",
        "-i",
        "index_known_issues",
        "--id",
        &broken,
    ]);
    assert!(se.contains("could not repair"), "{se}");
    assert!(bucket.join(&broken).join("meta.json").exists());
}

#[test]
fn rewrite_deletes_and_relabels() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    let obj = fs_yaml(&bucket);
    let start = 1_704_067_200;
    let text = series_text("m_total", "a=\"1\"", start, 600, 60)
        + &series_text("m_total", "a=\"2\"", start + 30, 600, 60)
        + &series_text("gone", "x=\"y\"", start, 600, 60)
        + "# EOF\n";
    let blocks = backfill(tmp.path(), &text, "2h");
    upload(&blocks, &obj, "cluster=\"a\"");
    let old = ls(&obj).remove(0);
    let del = "- matchers: '{__name__=\"gone\"}'\n";
    let work = tmp.path().join("work");
    let wd = work.to_str().unwrap();

    let (_, se) = ok(&[
        "rewrite",
        "--objstore.config",
        &obj,
        "--id",
        &old,
        "--tmp.dir",
        wd,
        &format!("--rewrite.to-delete-config={del}"),
    ]);
    assert!(
        se.contains(r#"Deleted {__name__="gone", x="y"} [{1704067200000 1704067740000}]"#),
        "dry run prints the changes:\n{se}"
    );
    assert_eq!(ls(&obj), vec![old.clone()], "a dry run changes nothing");

    let se = fail(&[
        "rewrite",
        "--objstore.config",
        &obj,
        "--id",
        &old,
        "--rewrite.to-delete-config=- matchers: '{__name__=~\"(\"}'\n",
    ]);
    assert!(se.contains("parse metric selector"), "{se}");
    let se = fail(&[
        "rewrite",
        "--objstore.config",
        &obj,
        "--id",
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        &format!("--rewrite.to-delete-config={del}"),
    ]);
    assert!(se.contains("01ARZ3NDEKTSV4RRFFQ69G5FAV"), "{se}");
    let se = fail(&["rewrite", "--objstore.config", &obj, "--id", &old]);
    assert!(
        se.contains("rewrite configuration should be provided"),
        "{se}"
    );

    ok(&[
        "rewrite",
        "--objstore.config",
        &obj,
        "--id",
        &old,
        "--tmp.dir",
        wd,
        &format!("--rewrite.to-delete-config={del}"),
        "--no-dry-run",
        "--delete-blocks",
    ]);
    let ids = ls(&obj);
    assert_eq!(ids.len(), 2);
    let new = ids.iter().find(|i| **i != old).unwrap().clone();
    assert!(
        bucket.join(&old).join("deletion-mark.json").exists(),
        "--delete-blocks marks the source"
    );
    let m = meta(&bucket, &new);
    assert_eq!(m["thanos"]["source"], "bucket.rewrite");
    assert_eq!(m["thanos"]["rewrites"][0]["sources"][0], old.as_str());
    assert_eq!(
        m["thanos"]["rewrites"][0]["deletions_applied"][0]["matchers"][0]["Value"],
        "gone"
    );
    assert_eq!(m["compaction"]["sources"][0], new.as_str());
    assert_eq!(m["stats"]["numSeries"], 2);
    let dump = promtool_dump(&bucket.join(&new), &tmp.path().join("db1"));
    assert!(!dump.contains("gone"), "{dump}");
    assert_eq!(
        dump.lines()
            .filter(|l| l.starts_with("{__name__=\"m_total\", a=\"1\"}"))
            .count(),
        10,
        "{dump}"
    );
    assert_eq!(dump.lines().count(), 20, "{dump}");

    // Relabelling: dropping `a` merges both series into one.
    let relabel = "- action: labeldrop\n  regex: a\n";
    ok(&[
        "rewrite",
        "--objstore.config",
        &obj,
        "--id",
        &new,
        "--tmp.dir",
        wd,
        &format!("--rewrite.to-relabel-config={relabel}"),
        "--dry-run=false",
    ]);
    let newest = ls(&obj)
        .into_iter()
        .find(|i| *i != old && *i != new)
        .unwrap();
    let m = meta(&bucket, &newest);
    assert_eq!(m["stats"]["numSeries"], 1);
    assert_eq!(m["thanos"]["rewrites"].as_array().unwrap().len(), 2);
    assert!(
        !bucket.join(&new).join("deletion-mark.json").exists(),
        "no --delete-blocks"
    );
    let dump = promtool_dump(&bucket.join(&newest), &tmp.path().join("db2"));
    assert_eq!(
        dump.lines()
            .filter(|l| l.starts_with("{__name__=\"m_total\"}"))
            .count(),
        20,
        "{dump}"
    );
}

#[test]
fn replicate_between_buckets() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    let (sobj, dobj) = (fs_yaml(&src), fs_yaml(&dst));
    for (i, cluster) in ["a", "b"].iter().enumerate() {
        let d = tmp.path().join(cluster);
        std::fs::create_dir_all(&d).unwrap();
        let text =
            series_text("up", "job=\"a\"", 1_704_067_200 + i as i64 * 7200, 3600, 60) + "# EOF\n";
        let blocks = backfill(&d, &text, "2h");
        upload(&blocks, &sobj, &format!("cluster=\"{cluster}\""));
    }
    let all = ls(&sobj);
    assert_eq!(all.len(), 2);
    let se = fail(&[
        "replicate",
        "--objstore.config",
        &sobj,
        "--objstore-to.config",
        &dobj,
        "--matcher",
        "{cluster=~\"(\"}",
        "--single-run",
    ]);
    assert!(se.contains("--matcher"), "{se}");
    let se = fail(&["replicate", "--objstore.config", &sobj, "--single-run"]);
    assert!(se.contains("--objstore-to.config"), "{se}");

    let (_, se) = ok(&[
        "replicate",
        "--objstore.config",
        &sobj,
        "--objstore-to.config",
        &dobj,
        "--matcher",
        "cluster=\"a\"",
        "--single-run",
    ]);
    assert!(se.contains("replicated=1"), "{se}");
    let copied = ls(&dobj);
    assert_eq!(copied.len(), 1);
    assert_eq!(meta(&dst, &copied[0])["thanos"]["labels"]["cluster"], "a");
    for f in ["meta.json", "index", "chunks/000001"] {
        assert_eq!(
            std::fs::read(src.join(&copied[0]).join(f)).unwrap(),
            std::fs::read(dst.join(&copied[0]).join(f)).unwrap(),
            "{f}"
        );
    }
    let (_, se) = ok(&[
        "replicate",
        "--objstore.config",
        &sobj,
        "--objstore-to.config",
        &dobj,
        "--single-run",
    ]);
    assert!(
        se.contains("replicated=1"),
        "only the missing block is copied:\n{se}"
    );
    assert_eq!(ls(&dobj), all);
    let (_, se) = ok(&[
        "replicate",
        "--objstore.config",
        &sobj,
        "--objstore-to.config",
        &dobj,
        "--single-run",
        "--resolution",
        "5m",
    ]);
    assert!(se.contains("candidates=0"), "{se}");
}
