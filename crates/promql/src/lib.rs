//! PromQL evaluation with Prometheus 3.x semantics (mirrors `promql/`), on the
//! `promql-parser` crate's AST.
//!
//! The engine reads only through [`strata_storage::Queryable`], so the local TSDB,
//! the StoreAPI fan-out and the deduplicating querier plug in unchanged. Key types:
//! [`Engine`], [`EngineOptions`], [`QueryOptions`], [`Value`], [`QueryResult`],
//! [`Error`] (with the HTTP API's `errorType` for each variant).
//!
//! Evaluation fetches every selector's series once for the whole query window, then
//! evaluates all steps of a range query in one bottom-up pass (see [`engine`'s
//! design notes](https://prometheus.io/docs/prometheus/latest/querying/basics/)):
//! grouping keys, matching signatures and output label sets are computed once per
//! series, not once per step. Only float samples are supported: native histograms
//! yield a "not supported yet" execution error.

mod engine;
pub mod error;
pub mod parser;
#[doc(hidden)]
pub mod testing;
pub mod value;

pub use error::{Error, Result};
pub use parser::{format_query, parse};
pub use value::{QueryResult, Series, Value, VectorSample};

use std::sync::Arc;
use std::time::{Duration, Instant};

use promql_parser::parser::value::ValueType;
use promql_parser::parser::Expr;
use strata_model::Sample;
use strata_storage::Queryable;
use tokio::sync::Semaphore;

use engine::{is_absent, EvalSettings, Evaluator, Grid, Val};

/// Most steps a range query may have (Prometheus' API limit of 11,000 points per
/// series).
pub const MAX_RANGE_STEPS: i64 = 11_000;

/// Engine-wide settings; defaults are Prometheus' flag defaults.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// `--query.lookback-delta`, ms (default 5m).
    pub lookback_delta_ms: i64,
    /// `--query.max-samples`: samples one query may hold in memory at once.
    pub max_samples: usize,
    /// `--query.timeout`.
    pub timeout: Duration,
    /// `--query.max-concurrency`: queries evaluated at once; more wait.
    pub max_concurrency: usize,
    /// Step of subqueries written without one (`x[10m:]`), ms: Prometheus uses the
    /// configuration's `global.evaluation_interval` (default 1m).
    pub default_subquery_step_ms: i64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            max_concurrency: 20,
            default_subquery_step_ms: 60_000,
        }
    }
}

/// Per-query overrides (the HTTP API's `lookback_delta` and `timeout`).
#[derive(Clone, Debug, Default)]
pub struct QueryOptions {
    /// Overrides [`EngineOptions::lookback_delta_ms`] when set.
    pub lookback_delta_ms: Option<i64>,
    /// Overrides [`EngineOptions::timeout`] when set (the smaller one wins).
    pub timeout: Option<Duration>,
}

/// Evaluates PromQL.
#[derive(Debug)]
pub struct Engine {
    opts: EngineOptions,
    gate: Arc<Semaphore>,
}

impl Engine {
    /// An engine with the given options.
    pub fn new(opts: EngineOptions) -> Self {
        let permits = opts.max_concurrency.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            opts,
            gate: Arc::new(Semaphore::new(permits)),
        }
    }

    /// The engine's options.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `query` at `time_ms`.
    pub async fn instant_query(
        &self,
        q: Arc<dyn Queryable>,
        query: &str,
        time_ms: i64,
        opts: &QueryOptions,
    ) -> Result<QueryResult> {
        self.run(q, query, time_ms, time_ms, 0, opts).await
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms`; the result is
    /// always a matrix (or a parse/execution error).
    pub async fn range_query(
        &self,
        q: Arc<dyn Queryable>,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        opts: &QueryOptions,
    ) -> Result<QueryResult> {
        if step_ms <= 0 {
            return Err(Error::Parse(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if end_ms < start_ms {
            return Err(Error::Parse(
                "end timestamp must not be before start time".into(),
            ));
        }
        if (end_ms - start_ms) / step_ms >= MAX_RANGE_STEPS {
            return Err(Error::Parse(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
            ));
        }
        self.run(q, query, start_ms, end_ms, step_ms, opts).await
    }

    async fn run(
        &self,
        q: Arc<dyn Queryable>,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
        opts: &QueryOptions,
    ) -> Result<QueryResult> {
        let timeout = opts
            .timeout
            .map_or(self.opts.timeout, |t| t.min(self.opts.timeout));
        let started = Instant::now();
        let _permit = tokio::time::timeout(timeout, self.gate.acquire())
            .await
            .map_err(|_| Error::Timeout("query queue"))?
            .map_err(|_| Error::Canceled("query queue"))?;
        let expr = Arc::new(parse(query)?);
        let instant = step == 0;
        if !instant {
            match expr.value_type() {
                ValueType::Matrix => {
                    return Err(Error::Execution("invalid expression type \"range vector\" for range query, must be Scalar or instant Vector".into()))
                }
                ValueType::String => {
                    return Err(Error::Execution("invalid expression type \"string\" for range query, must be Scalar or instant Vector".into()))
                }
                _ => {}
            }
        }
        let lookback = match opts.lookback_delta_ms {
            Some(l) if l > 0 => l,
            _ => self.opts.lookback_delta_ms,
        };
        let remaining = timeout.saturating_sub(started.elapsed());
        let settings = EvalSettings {
            lookback_ms: lookback,
            max_samples: self.opts.max_samples,
            deadline: Instant::now() + remaining,
            query: Arc::from(query),
            query_step: step,
            query_start: start,
            query_end: end,
            default_subquery_step: self.opts.default_subquery_step_ms.max(1),
        };
        let work = async move {
            let fetched =
                engine::prepare(q.as_ref(), &expr, start, end, step.max(1), lookback).await?;
            let grid = Grid {
                start,
                step: step.max(1),
                n: if instant {
                    1
                } else {
                    ((end - start) / step + 1) as usize
                },
            };
            tokio::task::spawn_blocking(move || evaluate(&expr, grid, settings, &fetched, instant))
                .await
                .map_err(|e| Error::Execution(format!("evaluation failed: {e}")))?
        };
        tokio::time::timeout(remaining, work)
            .await
            .map_err(|_| Error::Timeout("query execution"))?
    }
}

fn evaluate(
    expr: &Expr,
    grid: Grid,
    settings: EvalSettings,
    fetched: &engine::Fetched,
    instant: bool,
) -> Result<QueryResult> {
    let mut ev = Evaluator::new(settings, fetched);
    let val = ev.eval(expr, grid)?;
    let mut warnings = fetched.warnings.clone();
    warnings.extend(ev.warnings);
    let value = if instant {
        instant_value(expr, val, grid.ts(0))
    } else {
        range_value(val, &grid)
    };
    Ok(QueryResult {
        value,
        warnings,
        infos: ev.infos,
    })
}

/// Whether the query's outermost operation decides the result order.
fn keeps_order(e: &Expr) -> bool {
    match e {
        Expr::Paren(p) => keeps_order(&p.expr),
        Expr::Call(c) => matches!(
            c.func.name,
            "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc"
        ),
        Expr::Aggregate(a) => {
            matches!(a.op.to_string().as_str(), "topk" | "bottomk")
        }
        _ => false,
    }
}

fn instant_value(expr: &Expr, val: Val, t: i64) -> Value {
    match val {
        Val::Scalar(v) => Value::Scalar {
            t,
            v: v.first().copied().unwrap_or(f64::NAN),
        },
        Val::Str(s) => Value::String { t, s },
        Val::Vector(ss) => {
            let mut out: Vec<VectorSample> = ss
                .into_iter()
                .filter_map(|s| {
                    let v = *s.vals.first()?;
                    (!is_absent(v)).then_some(VectorSample {
                        metric: s.labels,
                        t,
                        v,
                    })
                })
                .collect();
            if !keeps_order(expr) {
                out.sort_by(|a, b| a.metric.cmp(&b.metric));
            }
            Value::Vector(out)
        }
        Val::Matrix(ms) => {
            let mut out: Vec<Series> = ms
                .into_iter()
                .map(|s| Series {
                    metric: s.labels,
                    samples: s.samples,
                })
                .collect();
            out.sort_by(|a, b| a.metric.cmp(&b.metric));
            Value::Matrix(out)
        }
    }
}

fn range_value(val: Val, grid: &Grid) -> Value {
    let to_samples = |vals: &[f64]| -> Vec<Sample> {
        vals.iter()
            .enumerate()
            .filter(|(_, v)| !is_absent(**v))
            .map(|(i, v)| Sample::new(grid.ts(i), *v))
            .collect()
    };
    match val {
        Val::Scalar(v) => Value::Matrix(vec![Series {
            metric: strata_model::Labels::empty(),
            samples: to_samples(&v),
        }]),
        Val::Vector(ss) => {
            let mut out: Vec<Series> = ss
                .iter()
                .map(|s| Series {
                    metric: s.labels.clone(),
                    samples: to_samples(&s.vals),
                })
                .filter(|s| !s.samples.is_empty())
                .collect();
            out.sort_by(|a, b| a.metric.cmp(&b.metric));
            Value::Matrix(out)
        }
        Val::Str(_) | Val::Matrix(_) => Value::Matrix(Vec::new()),
    }
}
