//! Per-request source selection: the Thanos querier's API parameters (`dedup`,
//! `partial_response`, `replicaLabels[]`, `max_source_resolution`, `storeMatch[]`;
//! Thanos `pkg/api/query/v1.go`) handed to a [`SourceSelector`] that returns the
//! [`Queryable`] to answer one request from. Without a selector (`strata server`)
//! the API keeps its fixed source and ignores these parameters, as Prometheus does.
//! The selector also picks the default lookback delta of each query, since
//! downsampled data needs a longer one.

use std::sync::Arc;

use strata_model::Matcher;
use strata_storage::Queryable;

use crate::error::{Error, Result};
use crate::params::{parse_duration_ns, parse_matchers, Form};

/// `max_source_resolution` as given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxSourceResolution {
    /// `auto`: step/5.
    Auto,
    /// A duration, ms (0: raw data only).
    Ms(i64),
}

/// The Thanos parameters of one request; `None` means "not given" (the selector's
/// configured default applies).
#[derive(Clone, Debug, Default)]
pub struct SourceParams {
    /// `dedup`.
    pub dedup: Option<bool>,
    /// `partial_response`.
    pub partial_response: Option<bool>,
    /// `replicaLabels[]` (`None` when absent).
    pub replica_labels: Option<Vec<String>>,
    /// `max_source_resolution`.
    pub max_source_resolution: Option<MaxSourceResolution>,
    /// `storeMatch[]` selectors (one matcher set per alternative).
    pub store_matchers: Vec<Vec<Matcher>>,
    /// The range query's step, ms (0 for instant queries and metadata calls).
    pub step_ms: i64,
}

/// Picks the source of each request (the querier's proxy, deduplicated or not).
pub trait SourceSelector: Send + Sync + 'static {
    /// The source for a request with `params`; an error is returned to the user.
    fn source(&self, params: &SourceParams) -> Result<Arc<dyn Queryable>>;
    /// The lookback delta, ms, of a query with `params` when the request gives
    /// none (`lookback_delta`); `None`: the engine's default. The querier grows
    /// it with `max_source_resolution` (Thanos `LookbackDeltaFactory`).
    fn lookback_delta_ms(&self, _params: &SourceParams) -> Option<i64> {
        None
    }
    /// The `data` of `/api/v1/stores` (a JSON object), when the selector has
    /// endpoints to show.
    fn stores_json(&self) -> Option<String> {
        None
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(name: &str, v: &str) -> Result<Option<bool>> {
    match v {
        "" => Ok(None),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Some(true)),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Some(false)),
        _ => Err(Error::invalid_param(
            name,
            format!("strconv.ParseBool: parsing {v:?}: invalid syntax"),
        )),
    }
}

impl SourceParams {
    /// Reads the Thanos parameters of `form`; `step_ms` is the range step (0 for
    /// instant queries).
    pub fn from_form(form: &Form, step_ms: i64) -> Result<Self> {
        let dedup = parse_bool("dedup", form.value("dedup"))?;
        let partial_response = parse_bool("partial_response", form.value("partial_response"))?;
        let rl = form.values("replicaLabels[]");
        let replica_labels = if rl.is_empty() {
            None
        } else {
            Some(
                rl.iter()
                    .flat_map(|v| v.split(','))
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            )
        };
        let msr = form.value("max_source_resolution");
        let max_source_resolution = match msr {
            "" => None,
            "auto" => Some(MaxSourceResolution::Auto),
            v => {
                let ns = parse_duration_ns(v)
                    .map_err(|e| Error::invalid_param("max_source_resolution", e))?;
                if ns < 0 {
                    return Err(Error::invalid_param(
                        "max_source_resolution",
                        "negative max_source_resolution is not accepted. Try a positive integer",
                    ));
                }
                Some(MaxSourceResolution::Ms(ns / 1_000_000))
            }
        };
        let sm = form.values("storeMatch[]");
        let store_matchers = if sm.is_empty() {
            Vec::new()
        } else {
            parse_matchers(&sm).map_err(|e| Error::invalid_param("storeMatch[]", e))?
        };
        Ok(Self {
            dedup,
            partial_response,
            replica_labels,
            max_source_resolution,
            store_matchers,
            step_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_thanos_params() {
        let p = SourceParams::from_form(
            &Form::from_pairs([
                ("dedup", "false"),
                ("partial_response", "1"),
                ("replicaLabels[]", "a,b"),
                ("replicaLabels[]", "c"),
                ("max_source_resolution", "5m"),
                ("storeMatch[]", r#"{__address__=~"x.*"}"#),
            ]),
            3000,
        )
        .unwrap();
        assert_eq!(p.dedup, Some(false));
        assert_eq!(p.partial_response, Some(true));
        assert_eq!(p.replica_labels.unwrap(), ["a", "b", "c"]);
        assert_eq!(
            p.max_source_resolution,
            Some(MaxSourceResolution::Ms(300_000))
        );
        assert_eq!(p.store_matchers.len(), 1);
        assert_eq!(p.step_ms, 3000);
        let p = SourceParams::from_form(&Form::default(), 0).unwrap();
        assert!(p.dedup.is_none() && p.replica_labels.is_none());
        let p = SourceParams::from_form(&Form::from_pairs([("max_source_resolution", "auto")]), 0)
            .unwrap();
        assert_eq!(p.max_source_resolution, Some(MaxSourceResolution::Auto));
        for (k, v) in [
            ("dedup", "yes"),
            ("max_source_resolution", "-1"),
            ("max_source_resolution", "x"),
            ("storeMatch[]", "{"),
        ] {
            let e = SourceParams::from_form(&Form::from_pairs([(k, v)]), 0).unwrap_err();
            assert!(e.message.contains(k), "{k}: {}", e.message);
        }
    }
}
