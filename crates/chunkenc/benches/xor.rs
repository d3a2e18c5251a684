//! XOR encode/decode throughput. `cargo bench -p strata-chunkenc --bench xor`.

#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strata_chunkenc::{SampleIterator, XorChunk, XorIterator};

/// Realistic samples: 15 s scrapes with jitter, a counter and a gauge.
fn samples(n: usize, counter: bool) -> Vec<(i64, f64)> {
    let mut t = 1_700_000_000_000i64;
    let mut v = 0.0f64;
    let mut x: u64 = 42;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            t += 15_000 + ((x >> 60) as i64) - 8;
            if counter {
                v += ((x >> 40) % 100) as f64;
            } else {
                v = ((x >> 20) % 10_000) as f64 / 100.0;
            }
            (t, v)
        })
        .collect()
}

fn chunks(samples: &[(i64, f64)]) -> Vec<Vec<u8>> {
    samples
        .chunks(120)
        .map(|c| {
            let mut a = XorChunk::new().appender();
            for (t, v) in c {
                a.append(*t, *v).expect("append");
            }
            a.finish().into_bytes()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    const N: usize = 120 * 1000;
    for (name, counter) in [("counter", true), ("gauge", false)] {
        let s = samples(N, counter);
        let cs = chunks(&s);
        let bytes: usize = cs.iter().map(Vec::len).sum();
        eprintln!("{name}: {:.3} bytes/sample", bytes as f64 / N as f64);
        let mut g = c.benchmark_group(format!("xor/{name}"));
        g.throughput(Throughput::Elements(N as u64));
        g.bench_function("encode", |b| b.iter(|| chunks(&s)));
        g.bench_function("decode", |b| {
            b.iter(|| {
                let mut sum = 0.0;
                for c in &cs {
                    let mut it = XorIterator::new(c);
                    while let Ok(Some((_, v))) = it.next() {
                        sum += v;
                    }
                }
                sum
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
