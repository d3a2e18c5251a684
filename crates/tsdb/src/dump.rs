//! `tsdb dump`: every sample of a database as text, exactly like `promtool tsdb dump`
//! (`{labels} <%g value> <ms timestamp>` per line, series in label order).

use std::io::Write;

use futures::StreamExt;
use strata_model::gofmt::write_g;
use strata_model::Matcher;
use strata_storage::{Frame, Queryable, SelectRequest};

use crate::error::{Error, Result};

/// Writes every sample in `[mint, maxt]` of series matching `matchers` to `out`.
/// Returns the number of samples written.
pub async fn dump(
    q: &dyn Queryable,
    matchers: Vec<Matcher>,
    mint: i64,
    maxt: i64,
    out: &mut dyn Write,
) -> Result<u64> {
    let req = SelectRequest::new(mint, maxt, matchers);
    let mut s = q
        .select(&req)
        .await
        .map_err(|e| Error::Input(e.to_string()))?;
    let mut line = String::with_capacity(256);
    let mut n = 0u64;
    let io = |e| Error::io("<stdout>", e);
    while let Some(f) = s.next().await {
        let series = match f.map_err(|e| Error::Input(e.to_string()))? {
            Frame::Series(s) => s,
            Frame::Warning(_) => continue,
        };
        let prefix = series.labels.to_string();
        let mut it = series.samples();
        while let Some(smp) = it
            .next_sample()
            .map_err(|e| Error::Input(format!("series {prefix}: {e}")))?
        {
            if smp.t < mint || smp.t > maxt {
                continue;
            }
            line.clear();
            line.push_str(&prefix);
            line.push(' ');
            write_g(&mut line, smp.v);
            line.push(' ');
            line.push_str(&smp.t.to_string());
            line.push('\n');
            out.write_all(line.as_bytes()).map_err(io)?;
            n += 1;
        }
    }
    Ok(n)
}
