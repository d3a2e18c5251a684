//! The vocabulary every Strata crate shares: label sets, label matchers, samples,
//! and Go-compatible formatting of values (mirrors Prometheus `model/labels`,
//! `model/value`).
//!
//! Key types: [`Labels`] (sorted, `Arc`-shared), [`Matcher`] (with regex fast paths),
//! [`Sample`]. The exposition parsers live in [`textparse`], relabeling in
//! [`relabel`].

pub mod civil;
pub mod error;
pub mod gofmt;
mod labels;
mod matcher;
pub mod relabel;
mod sample;
pub mod selector;
pub mod textparse;

pub use error::{Error, Result};
pub use labels::{compare_slices, Label, Labels, LabelsBuilder, METRIC_NAME};
pub use matcher::{matches_all, metric_name_of, MatchType, Matcher};
pub use sample::{is_stale_nan, Sample, NORMAL_NAN_BITS, STALE_NAN_BITS};
