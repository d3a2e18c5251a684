//! Scrape parse throughput on a node-exporter-like payload of ~5k samples: the
//! bare parser, and the whole append path (parse, cache lookup, staleness
//! tracking) into an appender that discards.

#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strata_model::textparse::{Entry, Format, Parser};
use strata_model::{labels, Labels};
use strata_scrape::{ScrapeCache, ScrapeOptions};
use strata_storage::{AppendError, Appender, CommitReport};

/// A fixed payload shaped like node_exporter's: HELP/TYPE per family, counters
/// and gauges with a few labels, histograms and summaries.
fn payload() -> (String, u64) {
    let mut s = String::new();
    let mut n = 0;
    for f in 0..120 {
        s += &format!("# HELP node_family_{f}_total Counter family number {f}.\n");
        s += &format!("# TYPE node_family_{f}_total counter\n");
        for cpu in 0..16 {
            for mode in ["idle", "user"] {
                s += &format!(
                    "node_family_{f}_total{{cpu=\"{cpu}\",mode=\"{mode}\"}} {}.{}\n",
                    f * 1000 + cpu,
                    cpu * 7
                );
                n += 1;
            }
        }
    }
    for h in 0..20 {
        s += &format!(
            "# HELP node_hist_{h}_seconds A histogram.\n# TYPE node_hist_{h}_seconds histogram\n"
        );
        for le in [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
        ] {
            s += &format!("node_hist_{h}_seconds_bucket{{device=\"sda\",le=\"{le}\"}} {h}\n");
            n += 1;
        }
        s += &format!("node_hist_{h}_seconds_sum{{device=\"sda\"}} 1.5e-3\nnode_hist_{h}_seconds_count{{device=\"sda\"}} 42\n");
        n += 2;
    }
    for g in 0..800 {
        s += &format!(
            "node_gauge_{}{{device=\"eth{}\"}} 1.7560473e+07\n",
            g / 8,
            g % 8
        );
        n += 1;
    }
    (s, n)
}

struct Discard;

impl Appender for Discard {
    fn append(&mut self, _: &Labels, _: i64, _: f64) -> Result<(), AppendError> {
        Ok(())
    }
    fn commit(self: Box<Self>) -> Result<CommitReport, AppendError> {
        Ok(CommitReport::default())
    }
    fn rollback(self: Box<Self>) {}
}

fn bench(c: &mut Criterion) {
    let (body, n) = payload();
    let mut g = c.benchmark_group("scrape_parse");
    g.throughput(Throughput::Elements(n));
    g.bench_function("parser_only", |b| {
        b.iter(|| {
            let mut p = Parser::new(body.as_bytes(), Format::PromText);
            let mut count = 0u64;
            while let Ok(Some(e)) = p.next() {
                if let Entry::Series(s) = e {
                    count += s.value.to_bits() & 1;
                }
            }
            count
        })
    });
    let opts = ScrapeOptions {
        target_labels: labels! {"job" => "node", "instance" => "localhost:9100"},
        honor_timestamps: true,
        ..ScrapeOptions::default()
    };
    let mut cache = ScrapeCache::new();
    let mut ts = 0;
    g.bench_function("append_steady_state", |b| {
        b.iter(|| {
            ts += 15_000;
            let mut app = Discard;
            cache
                .append(&mut app, body.as_bytes(), Format::PromText, ts, &opts)
                .map(|s| s.scraped)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
