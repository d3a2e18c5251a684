//! Resident memory of the head per series: 100k series of 4 labels, 60 samples
//! each, appended in batches of 2000 as remote write does.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use strata_model::Labels;

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let before = rss_kib();
    let labels: Vec<Labels> = (0..n)
        .map(|i| {
            Labels::from_pairs([
                ("__name__", "bench_ingest".to_string()),
                ("instance", format!("host-{}", i / 100)),
                ("job", "bench".to_string()),
                ("series", i.to_string()),
            ])
        })
        .collect();
    let head = strata_tsdb::head::Head::open(dir.path(), Default::default()).unwrap();
    for round in 0..60u64 {
        for chunk in labels.chunks(2000) {
            let mut app = head.appender();
            for (i, l) in chunk.iter().enumerate() {
                app.add(
                    l,
                    1_700_000_000_000 + round as i64 * 15_000,
                    (round * (1 + i as u64 % 7)) as f64,
                )
                .unwrap();
            }
            app.commit_samples().unwrap();
        }
        if round == 0 || round == 59 {
            println!(
                "round {round}: {:.0} B/series",
                (rss_kib() - before) as f64 * 1024.0 / n as f64
            );
        }
    }
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
