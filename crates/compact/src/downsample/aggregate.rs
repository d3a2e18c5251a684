//! The aggregation core of downsampling, sample for sample as Thanos'
//! `pkg/compact/downsample/downsample.go` computes it: windows, batches,
//! the float aggregator and the aggregate-chunk builder.

use strata_chunkenc::{
    AggrChunk, AggrType, CounterResetsIterator, Encoding, RawChunk, SampleIterator, XorAppender,
    XorChunk, XorIterator,
};
use strata_model::{is_stale_nan, Sample};
use strata_storage::ChunkMeta;

use crate::error::{Error, Result};

/// The end timestamp of the window of width `r` that `t` falls into (windows
/// are `[from, to)`, so the end is the window's last millisecond). Wraps
/// around at the ends of the range as Go's arithmetic does (found by fuzzing:
/// corrupt timestamps must not panic).
pub fn current_window(t: i64, r: i64) -> i64 {
    t.wrapping_sub(t.wrapping_rem(r))
        .wrapping_add(r)
        .wrapping_sub(1)
}

/// The fraction of `[mint, maxt]` covered by `count` samples at `step`,
/// capped at 1.
fn range_fullness(mint: i64, maxt: i64, step: i64, count: usize) -> f64 {
    let f = count as f64 / (maxt.wrapping_sub(mint) as f64 / step as f64);
    if f > 1.0 {
        1.0
    } else {
        f
    }
}

/// How many chunks a downsampled series should get so that each holds at
/// most about 140 samples (Thanos' `targetChunkCount`).
pub fn target_chunk_count(mint: i64, maxt: i64, in_res: i64, out_res: i64, count: usize) -> usize {
    let max_samples = (maxt.wrapping_sub(mint) / out_res) as f64;
    // Go converts NaN and out-of-range floats to an arbitrary integer; every
    // such case ends in one chunk there as here.
    let exp = ((max_samples * range_fullness(mint, maxt, in_res, count)) as i64).wrapping_add(1);
    let mut x: i64 = 1;
    while exp / x > 140 {
        x += 1;
    }
    x as usize
}

/// Collects window statistics of a stream of values (Thanos' `floatAggregator`).
#[derive(Clone, Debug, Default)]
pub(crate) struct FloatAggregator {
    total: usize,
    count: usize,
    sum: f64,
    min: f64,
    max: f64,
    counter: f64,
    last: f64,
}

impl FloatAggregator {
    fn reset(&mut self) {
        self.count = 0;
        self.sum = 0.0;
        self.min = f64::MAX;
        self.max = -f64::MAX;
    }

    fn add(&mut self, v: f64) {
        if self.total > 0 {
            if v < self.last {
                self.counter += v;
            } else {
                self.counter += v - self.last;
            }
        } else {
            self.counter = v;
        }
        self.last = v;
        self.sum += v;
        self.count += 1;
        self.total += 1;
        if v < self.min {
            self.min = v;
        }
        if v > self.max {
            self.max = v;
        }
    }
}

/// Aggregates `data` into windows of `resolution` and calls `add` at each
/// window's end, with the window's stamp: its last millisecond, capped at the
/// batch's last timestamp. Returns the last stamp (Thanos' `downsampleBatch`).
fn downsample_batch(
    data: &[Sample],
    resolution: i64,
    aggr: &mut FloatAggregator,
    mut add: impl FnMut(i64, &FloatAggregator) -> Result<()>,
) -> Result<i64> {
    let mut next_t = -1i64;
    let last_t = data.last().map_or(-1, |s| s.t);
    for s in data {
        if s.t > next_t {
            if next_t != -1 {
                add(next_t, aggr)?;
            }
            aggr.reset();
            next_t = current_window(s.t, resolution).min(last_t);
        }
        aggr.add(s.v);
    }
    if aggr.total > 0 {
        add(next_t, aggr)?;
    }
    Ok(next_t)
}

/// Five optional XOR appenders, one per aggregate, and the range of stamps.
struct AggrChunkBuilder {
    mint: i64,
    maxt: i64,
    apps: [Option<XorAppender>; 5],
}

impl AggrChunkBuilder {
    fn empty() -> Self {
        Self {
            mint: i64::MAX,
            maxt: i64::MIN,
            apps: [None, None, None, None, None],
        }
    }

    fn all() -> Self {
        let mut b = Self::empty();
        for a in &mut b.apps {
            *a = Some(XorChunk::new().appender());
        }
        b
    }

    fn app(&mut self, t: AggrType) -> &mut XorAppender {
        self.apps[t as usize].get_or_insert_with(|| XorChunk::new().appender())
    }

    fn append(&mut self, at: AggrType, t: i64, v: f64) -> Result<()> {
        self.app(at).append(t, v)?;
        Ok(())
    }

    fn add(&mut self, t: i64, a: &FloatAggregator) -> Result<()> {
        self.mint = self.mint.min(t);
        self.maxt = self.maxt.max(t);
        self.append(AggrType::Sum, t, a.sum)?;
        self.append(AggrType::Min, t, a.min)?;
        self.append(AggrType::Max, t, a.max)?;
        self.append(AggrType::Count, t, a.count as f64)?;
        self.append(AggrType::Counter, t, a.counter)
    }

    fn encode(self) -> ChunkMeta {
        let bytes: Vec<Option<Vec<u8>>> = self
            .apps
            .into_iter()
            .map(|a| a.map(|a| a.finish().into_bytes()))
            .collect();
        let parts: [Option<(Encoding, &[u8])>; 5] = std::array::from_fn(|i| {
            bytes
                .get(i)
                .and_then(|b| b.as_deref())
                .map(|b| (Encoding::Xor, b))
        });
        ChunkMeta {
            min_time: self.mint,
            max_time: self.maxt,
            chunk: RawChunk::new(Encoding::Aggr, AggrChunk::encode(parts)),
        }
    }
}

/// One aggregate chunk from a batch of raw samples (no NaNs): the counter
/// sub-chunk starts with the first raw sample and ends with the last raw value
/// under the last stamp (Thanos' `downsampleFloatBatch`).
fn downsample_float_batch(batch: &[Sample], resolution: i64) -> Result<ChunkMeta> {
    let mut ab = AggrChunkBuilder::all();
    let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
        return Err(Error::InvalidAggrRange {
            mint: i64::MAX,
            maxt: i64::MIN,
        });
    };
    ab.append(AggrType::Counter, first.t, first.v)?;
    let last_t = downsample_batch(
        batch,
        resolution,
        &mut FloatAggregator::default(),
        |t, a| ab.add(t, a),
    )?;
    ab.append(AggrType::Counter, last_t, last.v)?;
    Ok(ab.encode())
}

/// Aggregate chunks for raw samples in time order (Thanos' `DownsampleRaw`):
/// batches of about equal size, extended to whole windows, NaNs (stale markers
/// included) dropped.
pub fn downsample_raw(data: &[Sample], resolution: i64) -> Result<Vec<ChunkMeta>> {
    let (Some(first), Some(last)) = (data.first(), data.last()) else {
        return Ok(Vec::new());
    };
    // Raw data is assumed to be scraped every minute: good enough to size chunks.
    let num_chunks = target_chunk_count(first.t, last.t, 60_000, resolution, data.len());
    let batch_size = data.len() / num_chunks + 1;
    let mut out = Vec::with_capacity(num_chunks);
    let mut rest = data;
    let mut batch: Vec<Sample> = Vec::new();
    while !rest.is_empty() {
        let mut j = batch_size.min(rest.len());
        let cur_w = current_window(rest[j - 1].t, resolution);
        while j < rest.len() && rest[j].t <= cur_w {
            j += 1;
        }
        batch.clear();
        batch.extend(rest[..j].iter().filter(|s| !s.v.is_nan()));
        rest = &rest[j..];
        if batch.is_empty() {
            continue;
        }
        out.push(downsample_float_batch(&batch, resolution)?);
    }
    Ok(out)
}

/// Appends the samples of an XOR iterator to `buf`, without stale markers and
/// without samples that go back in time (from 0: Thanos'
/// `expandXorChunkIterator`).
pub(crate) fn expand_xor(it: &mut impl SampleIterator, buf: &mut Vec<Sample>) -> Result<()> {
    let mut last_t = 0i64;
    while let Some((t, v)) = it.next()? {
        if is_stale_nan(v) {
            continue;
        }
        if t >= last_t {
            buf.push(Sample { t, v });
            last_t = t;
        }
    }
    Ok(())
}

fn sub_iter<'a>(c: &AggrChunk<'a>, at: AggrType) -> Result<Option<XorIterator<'a>>> {
    Ok(c.iter(at)?)
}

/// Re-aggregates one aggregate (count, sum, min or max) of `chks` into `ab`;
/// returns the stamps' range, `(0, 0)` when no chunk has the aggregate (as
/// Thanos' `genericAggregate` does).
fn generic_aggregate(
    at: AggrType,
    chks: &[AggrChunk<'_>],
    buf: &mut Vec<Sample>,
    ab: &mut AggrChunkBuilder,
    resolution: i64,
    f: impl Fn(&FloatAggregator) -> f64,
) -> Result<(i64, i64)> {
    buf.clear();
    for c in chks {
        if let Some(mut it) = sub_iter(c, at)? {
            expand_xor(&mut it, buf)?;
        }
    }
    if buf.is_empty() {
        return Ok((0, 0));
    }
    let (mut mint, mut maxt) = (i64::MAX, i64::MIN);
    let mut app = XorChunk::new().appender();
    downsample_batch(buf, resolution, &mut FloatAggregator::default(), |t, a| {
        mint = mint.min(t);
        maxt = maxt.max(t);
        app.append(t, f(a))?;
        Ok(())
    })?;
    ab.apps[at as usize] = Some(app);
    Ok((mint, maxt))
}

/// One aggregate chunk from several consecutive ones (Thanos'
/// `downsampleFloatAggrBatch`).
fn downsample_float_aggr_batch(
    chks: &[AggrChunk<'_>],
    buf: &mut Vec<Sample>,
    resolution: i64,
) -> Result<ChunkMeta> {
    let mut ab = AggrChunkBuilder::empty();
    let (mut mint, mut maxt) = (i64::MAX, i64::MIN);
    type Pick = fn(&FloatAggregator) -> f64;
    let plan: [(AggrType, Pick); 4] = [
        // Counts of already downsampled data add up.
        (AggrType::Count, |a| a.sum),
        (AggrType::Sum, |a| a.sum),
        (AggrType::Min, |a| a.min),
        (AggrType::Max, |a| a.max),
    ];
    for (at, f) in plan {
        let (lo, hi) = generic_aggregate(at, chks, buf, &mut ab, resolution, f)?;
        mint = mint.min(lo);
        maxt = maxt.max(hi);
    }

    let mut its = Vec::with_capacity(chks.len());
    for c in chks {
        if let Some(it) = sub_iter(c, AggrType::Counter)? {
            its.push(it);
        }
    }
    let mut it = CounterResetsIterator::new(its);
    buf.clear();
    expand_xor(&mut it, buf)?;
    if let Some(first) = buf.first().copied() {
        let mut app = XorChunk::new().appender();
        app.append(first.t, first.v)?;
        let last_t = downsample_batch(buf, resolution, &mut FloatAggregator::default(), |t, a| {
            mint = mint.min(t);
            maxt = maxt.max(t);
            app.append(t, a.counter)?;
            Ok(())
        })?;
        app.append(last_t, it.last_v())?;
        ab.apps[AggrType::Counter as usize] = Some(app);
    }
    ab.mint = mint;
    ab.maxt = maxt;
    Ok(ab.encode())
}

/// Downsamples consecutive aggregate chunks of one series, spanning
/// `[mint, maxt]` at `in_res`, to `out_res`, along chunk boundaries so that
/// each chunk's first and last raw counter values survive (Thanos'
/// `downsampleAggr` for float series).
pub fn downsample_aggr(
    chks: &[AggrChunk<'_>],
    buf: &mut Vec<Sample>,
    mint: i64,
    maxt: i64,
    in_res: i64,
    out_res: i64,
) -> Result<Vec<ChunkMeta>> {
    let mut num_samples = 0usize;
    for c in chks {
        // Thanos counts a chunk without a readable count aggregate as empty.
        num_samples += c.num_samples().unwrap_or(0);
    }
    let num_chunks = target_chunk_count(mint, maxt, in_res, out_res, num_samples);
    let batch_size = chks.len() / num_chunks;
    let mut out = Vec::with_capacity(num_chunks);
    let mut rest = chks;
    while !rest.is_empty() {
        let j = batch_size.min(rest.len());
        let (part, tail) = rest.split_at(j);
        rest = tail;
        if part.is_empty() {
            // Thanos would loop forever here; its range check fails first.
            return Err(Error::InvalidAggrRange {
                mint: i64::MAX,
                maxt: i64::MIN,
            });
        }
        let chk = downsample_float_aggr_batch(part, buf, out_res)?;
        if chk.min_time == i64::MAX || chk.max_time == i64::MIN {
            return Err(Error::InvalidAggrRange {
                mint: chk.min_time,
                maxt: chk.max_time,
            });
        }
        out.push(chk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_chunk_counts() {
        assert_eq!(current_window(20, 100), 99);
        assert_eq!(current_window(100, 100), 199);
        assert_eq!(current_window(0, 300_000), 299_999);
        // 2 days of 15 s samples at 5m: 576 windows, 5 chunks of ≤ 140.
        let two_days = 2 * 86_400_000;
        assert_eq!(target_chunk_count(0, two_days, 60_000, 300_000, 11_520), 5);
        assert_eq!(target_chunk_count(0, 0, 60_000, 300_000, 1), 1);
        assert_eq!(target_chunk_count(5, 5, 60_000, 300_000, 0), 1);
        // Found by fuzzing: timestamps at the ends of the range wrap, no panic.
        let _ = current_window(i64::MAX - 5, 300_000);
        let _ = current_window(i64::MIN + 5, 300_000);
        let _ = target_chunk_count(i64::MIN, i64::MAX, 60_000, 300_000, 3);
        let s = [
            Sample {
                t: i64::MAX - 1,
                v: 1.0,
            },
            Sample {
                t: i64::MAX,
                v: 2.0,
            },
        ];
        // Windows past the end of time wrap around: an error, not a panic.
        assert!(downsample_raw(&s, 300_000).is_err());
    }
}
