//! Shared decoding: bounded body reads, bounded snappy block decoding, and
//! conversions between prompb labels/matchers and Strata's model
//! (Prometheus `storage/remote/codec.go`).

use std::fmt::Write as _;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use strata_model::{Label, Labels, MatchType, Matcher};

use crate::error::{Error, Result};
use crate::prompb;

/// Upstream's limit for remote read and write bodies, compressed and decoded: 32 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Reads a request body of at most `limit` bytes.
///
/// # Errors
///
/// [`Error::BodyTooLarge`] past the limit, [`Error::Body`] when the connection fails.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes> {
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::Body(e.to_string()))?;
        if buf.len().saturating_add(chunk.len()) > limit {
            return Err(Error::BodyTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Decodes a snappy block whose decoded length is at most `limit` bytes; the
/// length is checked from the header before anything is allocated.
///
/// # Errors
///
/// [`Error::Snappy`] for corrupt data, [`Error::DecodedTooLarge`] past the limit.
pub fn snappy_decode(body: &[u8], limit: usize) -> Result<Vec<u8>> {
    let len = snap::raw::decompress_len(body)?;
    if len > limit {
        return Err(Error::DecodedTooLarge { len, limit });
    }
    let mut out = vec![0; len];
    let n = snap::raw::Decoder::new().decompress(body, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// Snappy block encoding (cannot fail for inputs below 4 GiB; larger inputs are
/// never built here, the limit being 32 MiB).
pub fn snappy_encode(data: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(data)
        .unwrap_or_default()
}

/// Sanity limits on series labels (0 disables a limit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelLimits {
    /// Labels per series.
    pub max_labels: usize,
    /// Bytes per label name.
    pub max_name_bytes: usize,
    /// Bytes per label value.
    pub max_value_bytes: usize,
}

impl Default for LabelLimits {
    /// Far above anything Prometheus produces: 1024 labels, 1 KiB names, 64 KiB values.
    fn default() -> Self {
        Self {
            max_labels: 1024,
            max_name_bytes: 1024,
            max_value_bytes: 64 * 1024,
        }
    }
}

fn over(limit: usize, n: usize) -> bool {
    limit > 0 && n > limit
}

/// Converts a series' labels to a sorted label set as Prometheus does (it sorts
/// them); labels with empty values are dropped, as absent.
///
/// # Errors
///
/// The reason, when a name is empty or repeated, `__name__` is missing or empty,
/// or a limit is exceeded.
pub(crate) fn labels_from_proto(
    labels: &mut [prompb::Label],
    limits: &LabelLimits,
) -> Result<Labels, String> {
    if over(limits.max_labels, labels.len()) {
        return Err(format!(
            "{} labels exceed the limit of {}",
            labels.len(),
            limits.max_labels
        ));
    }
    // Validate first, so that a rejected series keeps its labels for the message.
    let mut sorted = true;
    let mut prev: Option<&str> = None;
    for l in labels.iter() {
        if l.name.is_empty() {
            return Err("empty label name".into());
        }
        if over(limits.max_name_bytes, l.name.len()) {
            return Err(format!(
                "label name of {} bytes exceeds the limit of {}",
                l.name.len(),
                limits.max_name_bytes
            ));
        }
        if over(limits.max_value_bytes, l.value.len()) {
            return Err(format!(
                "value of label {:?} of {} bytes exceeds the limit of {}",
                l.name,
                l.value.len(),
                limits.max_value_bytes
            ));
        }
        if let Some(p) = prev {
            sorted &= p < l.name.as_str();
        }
        prev = Some(l.name.as_str());
    }
    let has_name = labels
        .iter()
        .any(|l| l.name == strata_model::METRIC_NAME && !l.value.is_empty());
    if sorted && !has_name {
        return Err("missing or empty metric name (__name__)".into());
    }
    let mut v: Vec<Label>;
    if sorted {
        // The common case (senders sort labels): move the decoded strings.
        v = labels
            .iter_mut()
            .filter(|l| !l.value.is_empty())
            .map(|l| Label {
                name: std::mem::take(&mut l.name),
                value: std::mem::take(&mut l.value),
            })
            .collect();
    } else {
        v = labels
            .iter()
            .map(|l| Label::new(l.name.as_str(), l.value.as_str()))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = v.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(format!("duplicate label name {:?}", w[0].name));
        }
        v.retain(|l| !l.value.is_empty());
        if !has_name {
            return Err("missing or empty metric name (__name__)".into());
        }
    }
    Ok(Labels::from_sorted(v))
}

/// A series' labels as sent, for error messages (at most ~256 bytes).
pub(crate) fn describe_labels(labels: &[prompb::Label]) -> String {
    let mut s = String::from("{");
    for (i, l) in labels.iter().enumerate() {
        if s.len() > 256 {
            s.push_str(", ...");
            break;
        }
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{}={:?}", l.name, l.value);
    }
    s.push('}');
    s
}

/// Labels to prompb labels.
pub fn labels_to_proto(labels: &Labels) -> Vec<prompb::Label> {
    labels
        .iter()
        .map(|l| prompb::Label {
            name: l.name.clone(),
            value: l.value.clone(),
        })
        .collect()
}

/// Merges sorted `primary` with sorted `secondary`, preferring `primary` on equal
/// names (Prometheus `MergeLabels`).
pub(crate) fn merge_labels(primary: &Labels, secondary: &Labels) -> Vec<prompb::Label> {
    let (p, s) = (primary.as_slice(), secondary.as_slice());
    let mut out = Vec::with_capacity(p.len() + s.len());
    let (mut i, mut j) = (0, 0);
    while let (Some(a), Some(b)) = (p.get(i), s.get(j)) {
        match a.name.cmp(&b.name) {
            std::cmp::Ordering::Less => {
                out.push(a);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend(p.get(i..).unwrap_or_default());
    out.extend(s.get(j..).unwrap_or_default());
    out.into_iter()
        .map(|l| prompb::Label {
            name: l.name.clone(),
            value: l.value.clone(),
        })
        .collect()
}

/// Converts remote read matchers, turning an equality matcher on an external label
/// with its value into `name=""`, as the storage does not hold external labels
/// (Prometheus `filterExtLabelsFromMatchers`).
///
/// # Errors
///
/// [`Error::InvalidMatcher`] for an unknown type or a bad regex.
pub(crate) fn matchers_from_proto(
    ms: &[prompb::LabelMatcher],
    external: &Labels,
) -> Result<Vec<Matcher>> {
    ms.iter()
        .map(|m| {
            let kind = match prompb::MatcherType::try_from(m.r#type) {
                Ok(prompb::MatcherType::Eq) => MatchType::Equal,
                Ok(prompb::MatcherType::Neq) => MatchType::NotEqual,
                Ok(prompb::MatcherType::Re) => MatchType::Regex,
                Ok(prompb::MatcherType::Nre) => MatchType::NotRegex,
                Err(_) => {
                    return Err(Error::InvalidMatcher(format!(
                        "unknown matcher type {} for label {:?}",
                        m.r#type, m.name
                    )))
                }
            };
            let value = if kind == MatchType::Equal && external.get(&m.name) == Some(&m.value) {
                ""
            } else {
                m.value.as_str()
            };
            Matcher::new(kind, m.name.as_str(), value)
                .map_err(|e| Error::InvalidMatcher(format!("{}: {e}", m.name)))
        })
        .collect()
}

/// Matchers to prompb matchers (for clients).
pub fn matchers_to_proto(ms: &[Matcher]) -> Vec<prompb::LabelMatcher> {
    ms.iter()
        .map(|m| prompb::LabelMatcher {
            r#type: match m.kind {
                MatchType::Equal => prompb::MatcherType::Eq,
                MatchType::NotEqual => prompb::MatcherType::Neq,
                MatchType::Regex => prompb::MatcherType::Re,
                MatchType::NotRegex => prompb::MatcherType::Nre,
            } as i32,
            name: m.name.clone(),
            value: m.value.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pl(pairs: &[(&str, &str)]) -> Vec<prompb::Label> {
        pairs
            .iter()
            .map(|(n, v)| prompb::Label {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect()
    }

    #[test]
    fn labels_are_sorted_and_validated() {
        let lim = LabelLimits::default();
        let l =
            labels_from_proto(&mut pl(&[("b", "2"), ("__name__", "m"), ("a", "")]), &lim).unwrap();
        assert_eq!(l, Labels::from_pairs([("__name__", "m"), ("b", "2")]));
        let e = labels_from_proto(&mut pl(&[("__name__", "m"), ("b", "1"), ("b", "2")]), &lim);
        assert!(e.unwrap_err().contains("duplicate label name \"b\""));
        let e = labels_from_proto(&mut pl(&[("b", "1"), ("__name__", "m"), ("b", "2")]), &lim);
        assert!(e.unwrap_err().contains("duplicate"));
        let e = labels_from_proto(&mut pl(&[("", "x"), ("__name__", "m")]), &lim);
        assert_eq!(e.unwrap_err(), "empty label name");
        let e = labels_from_proto(&mut pl(&[("a", "x")]), &lim);
        assert!(e.unwrap_err().contains("metric name"));
        let e = labels_from_proto(&mut pl(&[("__name__", "")]), &lim);
        assert!(e.unwrap_err().contains("metric name"));
        let small = LabelLimits {
            max_labels: 1,
            ..LabelLimits::default()
        };
        let e = labels_from_proto(&mut pl(&[("__name__", "m"), ("a", "1")]), &small);
        assert!(e.unwrap_err().contains("exceed the limit"));
    }

    #[test]
    fn merge_prefers_primary() {
        let p = Labels::from_pairs([("a", "1"), ("c", "3")]);
        let s = Labels::from_pairs([("a", "x"), ("b", "2"), ("d", "4")]);
        let got: Vec<(String, String)> = merge_labels(&p, &s)
            .into_iter()
            .map(|l| (l.name, l.value))
            .collect();
        let want = [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")];
        assert_eq!(
            got,
            want.map(|(a, b)| (a.to_owned(), b.to_owned())).to_vec()
        );
    }

    #[test]
    fn snappy_limits() {
        let data = vec![7u8; 1000];
        let enc = snappy_encode(&data);
        assert_eq!(snappy_decode(&enc, 1000).unwrap(), data);
        assert!(matches!(
            snappy_decode(&enc, 999),
            Err(Error::DecodedTooLarge {
                len: 1000,
                limit: 999
            })
        ));
        assert!(matches!(
            snappy_decode(b"\xff\xff", 10),
            Err(Error::Snappy(_))
        ));
        assert!(snappy_decode(&enc[..enc.len() - 1], 1000).is_err());
    }

    #[test]
    fn external_label_matchers_become_empty() {
        let ext = Labels::from_pairs([("region", "eu")]);
        let ms = vec![
            prompb::LabelMatcher {
                r#type: 0,
                name: "region".into(),
                value: "eu".into(),
            },
            prompb::LabelMatcher {
                r#type: 2,
                name: "job".into(),
                value: "a.*".into(),
            },
        ];
        let got = matchers_from_proto(&ms, &ext).unwrap();
        assert_eq!(got[0].value, "");
        assert_eq!(got[1].kind, MatchType::Regex);
        let bad = vec![prompb::LabelMatcher {
            r#type: 9,
            name: "x".into(),
            value: "y".into(),
        }];
        assert!(matches!(
            matchers_from_proto(&bad, &ext),
            Err(Error::InvalidMatcher(_))
        ));
    }
}
