//! Like `head_memory`, but as the remote-write path does it: two threads, each
//! building fresh label sets per request (decode garbage) and committing batches.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use strata_model::Labels;

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let rounds: u64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(40);
    let dir = tempfile::tempdir().unwrap();
    let before = rss_kib();
    let head = strata_tsdb::head::Head::open(dir.path(), Default::default()).unwrap();
    for round in 0..rounds {
        std::thread::scope(|s| {
            for k in 0..2usize {
                let head = head.clone();
                s.spawn(move || {
                    let mut b = k;
                    while b * 2000 < n {
                        let mut app = head.appender();
                        for i in b * 2000..((b + 1) * 2000).min(n) {
                            let l = Labels::from_pairs([
                                ("__name__", "bench_ingest".to_string()),
                                ("instance", format!("host-{}", i / 100)),
                                ("job", "bench".to_string()),
                                ("series", i.to_string()),
                            ]);
                            app.add(
                                &l,
                                1_700_000_000_000 + round as i64 * 15_000,
                                (round * (1 + i as u64 % 7)) as f64,
                            )
                            .unwrap();
                        }
                        app.commit_samples().unwrap();
                        b += 2;
                    }
                });
            }
        });
        if round == 0 || round + 1 == rounds {
            println!(
                "round {round}: peak {:.0} B/series",
                (rss_kib() - before) as f64 * 1024.0 / n as f64
            );
        }
    }
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
