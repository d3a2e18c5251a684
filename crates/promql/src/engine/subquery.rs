//! Subqueries: the inner expression is evaluated once over its own aligned grid,
//! then every outer step reads its window of the inner results.

use promql_parser::parser::SubqueryExpr;
use strata_model::Sample;

use super::selector::{RangeInput, RangeSrc};
use super::{at_ms, duration_ms, offset_ms, Evaluator, Grid, RangeSeries, Val};
use crate::{Error, Result};

/// Most inner steps a subquery may evaluate.
const MAX_SUBQUERY_STEPS: i64 = 11_000_000;

impl<'a> Evaluator<'a> {
    /// Evaluates a subquery's inner expression for the outer grid.
    pub(crate) fn subquery_input(
        &mut self,
        sq: &SubqueryExpr,
        outer: &Grid,
    ) -> Result<RangeInput<'a>> {
        let off = offset_ms(&sq.offset)?;
        let at = at_ms(&sq.at, self.settings.query_start, self.settings.query_end)?;
        let range = duration_ms(&sq.range)?;
        let step = match &sq.step {
            Some(d) => duration_ms(d)?,
            None => self.settings.default_subquery_step,
        };
        if step <= 0 {
            return Err(Error::Execution(
                "subquery step must be greater than zero".into(),
            ));
        }
        let (s, e) = match at {
            Some(t) => (t - off, t - off),
            None => (outer.start - off, outer.end() - off),
        };
        let lo = s - range;
        // Smallest multiple of step at or after lo.
        let mut start = lo.div_euclid(step) * step;
        if start < lo {
            start += step;
        }
        let n = if e >= start {
            (e - start) / step + 1
        } else {
            0
        };
        if n > MAX_SUBQUERY_STEPS {
            return Err(Error::Execution(format!(
                "subquery would evaluate {n} steps, more than the {MAX_SUBQUERY_STEPS} allowed"
            )));
        }
        let mut series = Vec::new();
        if n > 0 {
            let grid = Grid {
                start,
                step,
                n: n as usize,
            };
            let v = self.eval_vector(&sq.expr, grid).map_err(|e| match e {
                Error::Execution(m) if m.starts_with("expected instant vector") => {
                    Error::Execution("subquery is only allowed on instant vector".into())
                }
                other => other,
            })?;
            for ss in v {
                let samples: Vec<Sample> = ss
                    .vals
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| !super::is_absent(**v))
                    .map(|(i, v)| Sample::new(grid.ts(i), *v))
                    .collect();
                if !samples.is_empty() {
                    series.push(RangeSeries {
                        labels: ss.labels,
                        samples,
                    });
                }
            }
        }
        Ok(RangeInput {
            src: RangeSrc::Owned(series),
            range_ms: range,
            offset_ms: off,
            at_ms: at,
        })
    }

    /// A subquery as an instant query's (matrix) result.
    pub(crate) fn eval_subquery_matrix(&mut self, sq: &SubqueryExpr, t: i64) -> Result<Val> {
        let grid = Grid {
            start: t,
            step: 1,
            n: 1,
        };
        let input = self.subquery_input(sq, &grid)?;
        let end = input.window_end(&grid, 0);
        let start = end - input.range_ms;
        let mut out = Vec::new();
        let RangeSrc::Owned(series) = input.src else {
            return Ok(Val::Matrix(out));
        };
        for s in series {
            let samples: Vec<Sample> = s
                .samples
                .into_iter()
                .filter(|x| x.t > start && x.t <= end)
                .collect();
            if !samples.is_empty() {
                out.push(RangeSeries {
                    labels: s.labels,
                    samples,
                });
            }
        }
        Ok(Val::Matrix(out))
    }
}
