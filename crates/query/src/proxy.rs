//! The fan-out over the endpoint set (Thanos `pkg/store/proxy.go`): prunes
//! endpoints by time range, external labels and `storeMatch[]`, calls the rest
//! concurrently with a deadline, merges their sorted streams, and turns a failed
//! endpoint into a warning (partial response) or an error.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use futures::stream::{self, StreamExt};
use strata_model::{Labels, Matcher};
use strata_storage::merge::merge_streams;
use strata_storage::{
    merge_sorted_strings, ChunkSeriesStream, Error, Frame, LabelRequest, Queryable, Result,
    SelectHints, SelectRequest, SourceInfo, WithWarnings,
};
use tracing::debug;

use crate::discovery::EndpointSpec;
use crate::endpoints::{EndpointSet, EndpointStatus};

/// Per-request behaviour of a [`Proxy`].
#[derive(Clone, Debug, Default)]
pub struct ProxyOptions {
    /// Partial response: `Some(true)` turns failed endpoints into warnings,
    /// `Some(false)` into errors; `None` follows each request's
    /// `partial_response` (for the StoreAPI server).
    pub partial_response: Option<bool>,
    /// Overrides the requests' `max_resolution_ms` when set.
    pub max_resolution_ms: Option<i64>,
    /// `storeMatch[]`: an endpoint is used only when one of these matcher sets
    /// matches its `__address__` (empty: all endpoints).
    pub store_matchers: Vec<Vec<Matcher>>,
    /// Deadline of each endpoint call until it answers, and of each wait for its
    /// next frame (`None`: none).
    pub timeout: Option<Duration>,
    /// Warnings added to every answer (e.g. about the replica labels).
    pub warnings: Vec<String>,
}

/// A [`Queryable`] over the endpoints of an [`EndpointSet`].
#[derive(Clone, Debug)]
pub struct Proxy {
    set: EndpointSet,
    opts: Arc<ProxyOptions>,
}

/// Whether an endpoint with external `label_sets` may hold series matching all of
/// `matchers` (Thanos `LabelSetsMatch`): no label sets, or one set none of whose
/// labels contradicts a matcher on the same name.
pub fn label_sets_match(matchers: &[Matcher], label_sets: &[Labels]) -> bool {
    if label_sets.is_empty() {
        return true;
    }
    label_sets.iter().any(|ls| {
        matchers.iter().all(|m| match ls.get(&m.name) {
            Some(v) => m.matches(v),
            None => true,
        })
    })
}

/// Whether `addr` passes `storeMatch[]` (any set matching `__address__`).
pub fn store_matches(addr: &str, sets: &[Vec<Matcher>]) -> bool {
    sets.is_empty()
        || sets.iter().any(|ms| {
            ms.iter().all(|m| {
                let v = if m.name == "__address__" { addr } else { "" };
                m.matches(v)
            })
        })
}

/// Functions that need two samples in their range (Thanos
/// `promqlFuncRequiresTwoSamples`).
const TWO_SAMPLE_FUNCS: [&str; 9] = [
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "predict_linear",
    "holt_winters",
    "double_exponential_smoothing",
];

/// The resolution a selection may read (Thanos
/// `maxResolutionFromSelectHints`): at most half the range of a function that
/// needs two samples in its range, so that e.g. `rate(x[1h])` reads 5m data even
/// when 1h data was allowed (one 1h sample per range has no rate).
pub fn max_resolution_from_hints(max_resolution_ms: i64, hints: &SelectHints) -> i64 {
    let two = hints
        .func
        .as_deref()
        .is_some_and(|f| TWO_SAMPLE_FUNCS.contains(&f));
    if hints.range_ms > 0 && two {
        max_resolution_ms.min(hints.range_ms / 2)
    } else {
        max_resolution_ms
    }
}

/// A failure of one endpoint, as a warning or an error.
fn endpoint_error(addr: &str, e: impl std::fmt::Display) -> String {
    format!("fetching from store {addr}: {e}")
}

enum Pick {
    Call(Box<EndpointStatus>),
    Unready(String),
}

impl Proxy {
    /// A proxy over `set` with per-request `opts`.
    pub fn new(set: EndpointSet, opts: ProxyOptions) -> Self {
        Self {
            set,
            opts: Arc::new(opts),
        }
    }

    /// The endpoints to call for `[mint, maxt]` and `matchers`, plus warnings for
    /// endpoints that were never reachable.
    fn pick(&self, mint: i64, maxt: i64, matchers: &[Matcher]) -> Vec<Pick> {
        let mut out = Vec::new();
        for e in self.set.active() {
            if !store_matches(&e.addr, &self.opts.store_matchers) {
                continue;
            }
            let Some(info) = &e.info else {
                // Addresses the user typed are reported; DNS-discovered ones that
                // never answered (e.g. an AAAA record nobody listens on) are only
                // logged by the endpoint set.
                if !matches!(e.spec, EndpointSpec::Static(_)) {
                    continue;
                }
                let why = e.last_error.clone().unwrap_or_default();
                out.push(Pick::Unready(endpoint_error(
                    &e.addr,
                    format!("endpoint is not ready: {why}"),
                )));
                continue;
            };
            let s = &info.source;
            if s.min_time > maxt || s.max_time < mint {
                debug!(address = %e.addr, "pruned: time range");
                continue;
            }
            if !label_sets_match(matchers, &s.label_sets) {
                debug!(address = %e.addr, "pruned: external labels");
                continue;
            }
            out.push(Pick::Call(Box::new(e)));
        }
        out
    }

    fn partial(&self, req_partial: bool) -> bool {
        self.opts.partial_response.unwrap_or(req_partial)
    }

    async fn with_timeout<T>(
        &self,
        addr: &str,
        f: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match self.opts.timeout {
            None => f.await,
            Some(t) => match tokio::time::timeout(t, f).await {
                Ok(r) => r,
                Err(_) => Err(Error::Unavailable(endpoint_error(
                    addr,
                    format!("no answer within {t:?}"),
                ))),
            },
        }
    }

    async fn labels(
        &self,
        req: &LabelRequest,
        name: Option<&str>,
    ) -> Result<WithWarnings<Vec<String>>> {
        let partial = self.partial(true);
        let mut warnings = self.opts.warnings.clone();
        let mut calls = Vec::new();
        for p in self.pick(req.min_time, req.max_time, &req.matchers) {
            match p {
                Pick::Unready(w) if partial => warnings.push(w),
                Pick::Unready(w) => return Err(Error::Unavailable(w)),
                Pick::Call(e) => calls.push(e),
            }
        }
        let results = join_all(calls.iter().map(|e| async move {
            let r = match name {
                Some(n) => {
                    self.with_timeout(&e.addr, e.client.label_values(n, req))
                        .await
                }
                None => self.with_timeout(&e.addr, e.client.label_names(req)).await,
            };
            (e.addr.clone(), r)
        }))
        .await;
        let mut lists = Vec::new();
        for (addr, r) in results {
            match r {
                Ok(v) => {
                    lists.push(v.value);
                    warnings.extend(v.warnings);
                }
                Err(e) if partial => warnings.push(endpoint_error(&addr, e)),
                Err(e) => return Err(Error::Unavailable(endpoint_error(&addr, e))),
            }
        }
        Ok(WithWarnings {
            value: merge_sorted_strings(lists, req.limit),
            warnings,
        })
    }
}

/// Ends `s` with a warning (partial) or an error when it fails, and fails it when a
/// frame takes longer than `timeout`.
fn guard(
    addr: String,
    s: ChunkSeriesStream,
    partial: bool,
    timeout: Option<Duration>,
) -> ChunkSeriesStream {
    Box::pin(stream::unfold(Some(s), move |st| {
        let addr = addr.clone();
        async move {
            let mut s = st?;
            let next = match timeout {
                None => s.next().await,
                Some(t) => match tokio::time::timeout(t, s.next()).await {
                    Ok(n) => n,
                    Err(_) => Some(Err(Error::Unavailable(format!("no data within {t:?}")))),
                },
            };
            match next {
                None => None,
                Some(Ok(f)) => Some((Ok(f), Some(s))),
                Some(Err(e)) if partial => {
                    Some((Ok(Frame::Warning(endpoint_error(&addr, e))), None))
                }
                Some(Err(e)) => Some((Err(Error::Unavailable(endpoint_error(&addr, e))), None)),
            }
        }
    }))
}

#[async_trait]
impl Queryable for Proxy {
    async fn select(&self, req: &SelectRequest) -> Result<ChunkSeriesStream> {
        let partial = self.partial(req.partial_response);
        let mut req = req.clone();
        req.partial_response = partial;
        if let Some(r) = self.opts.max_resolution_ms {
            req.max_resolution_ms = max_resolution_from_hints(r, &req.hints);
        }
        let mut warnings = self.opts.warnings.clone();
        let mut calls = Vec::new();
        for p in self.pick(req.min_time, req.max_time, &req.matchers) {
            match p {
                Pick::Unready(w) if partial => warnings.push(w),
                Pick::Unready(w) => return Err(Error::Unavailable(w)),
                Pick::Call(e) => calls.push(e),
            }
        }
        let req = &req;
        let results = join_all(calls.iter().map(|e| async move {
            (
                e.addr.clone(),
                self.with_timeout(&e.addr, e.client.select(req)).await,
            )
        }))
        .await;
        let mut streams: Vec<ChunkSeriesStream> = Vec::with_capacity(results.len() + 1);
        for (addr, r) in results {
            match r {
                Ok(s) => streams.push(guard(addr, s, partial, self.opts.timeout)),
                Err(e) if partial => warnings.push(endpoint_error(&addr, e)),
                Err(e) => return Err(Error::Unavailable(endpoint_error(&addr, e))),
            }
        }
        if !warnings.is_empty() {
            let w: Vec<Result<Frame>> = warnings
                .into_iter()
                .map(|w| Ok(Frame::Warning(w)))
                .collect();
            streams.push(Box::pin(stream::iter(w)));
        }
        Ok(merge_streams(streams))
    }

    async fn label_names(&self, req: &LabelRequest) -> Result<WithWarnings<Vec<String>>> {
        self.labels(req, None).await
    }

    async fn label_values(
        &self,
        name: &str,
        req: &LabelRequest,
    ) -> Result<WithWarnings<Vec<String>>> {
        self.labels(req, Some(name)).await
    }

    /// The union of the healthy endpoints' label sets and time ranges.
    fn info(&self) -> SourceInfo {
        let mut out = SourceInfo::default();
        for e in self.set.active() {
            let Some(i) = &e.info else { continue };
            out.min_time = out.min_time.min(i.source.min_time);
            out.max_time = out.max_time.max(i.source.max_time);
            for l in &i.source.label_sets {
                if !out.label_sets.contains(l) {
                    out.label_sets.push(l.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use strata_model::MatchType;

    use super::*;

    fn m(kind: MatchType, n: &str, v: &str) -> Matcher {
        Matcher::new(kind, n, v).unwrap()
    }

    /// Thanos' `maxResolutionFromSelectHints`.
    #[test]
    fn two_sample_functions_cap_resolution_at_half_their_range() {
        let h = |func: Option<&str>, range_ms: i64| SelectHints {
            func: func.map(String::from),
            range_ms,
            ..SelectHints::default()
        };
        let hour = 3_600_000;
        assert_eq!(
            max_resolution_from_hints(hour, &h(Some("rate"), hour)),
            hour / 2
        );
        assert_eq!(
            max_resolution_from_hints(hour, &h(Some("deriv"), 4 * hour)),
            hour
        );
        assert_eq!(
            max_resolution_from_hints(hour, &h(Some("max_over_time"), hour)),
            hour
        );
        assert_eq!(max_resolution_from_hints(hour, &h(Some("rate"), 0)), hour);
        assert_eq!(max_resolution_from_hints(hour, &h(None, hour)), hour);
        assert_eq!(max_resolution_from_hints(0, &h(Some("increase"), hour)), 0);
    }

    #[test]
    fn external_label_pruning() {
        let sets = [
            Labels::from_pairs([("cluster", "a"), ("replica", "0")]),
            Labels::from_pairs([("cluster", "b")]),
        ];
        assert!(label_sets_match(&[], &sets));
        assert!(label_sets_match(
            &[m(MatchType::Equal, "cluster", "b")],
            &sets
        ));
        assert!(!label_sets_match(
            &[m(MatchType::Equal, "cluster", "c")],
            &sets
        ));
        assert!(label_sets_match(
            &[
                m(MatchType::Equal, "__name__", "up"),
                m(MatchType::Regex, "cluster", "a|c")
            ],
            &sets
        ));
        assert!(!label_sets_match(
            &[
                m(MatchType::Equal, "cluster", "b"),
                m(MatchType::Equal, "replica", "0")
            ],
            &sets[..1]
        ));
        assert!(label_sets_match(
            &[m(MatchType::Equal, "cluster", "zz")],
            &[]
        ));
    }

    #[test]
    fn store_match_uses_address_only() {
        let sets = vec![vec![m(MatchType::Regex, "__address__", "127.0.0.1:1.*")]];
        assert!(store_matches("127.0.0.1:10", &sets));
        assert!(!store_matches("127.0.0.1:20", &sets));
        assert!(store_matches("x", &[]));
        let other = vec![vec![m(MatchType::Equal, "cluster", "a")]];
        assert!(!store_matches("127.0.0.1:10", &other));
    }
}
