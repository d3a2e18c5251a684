//! Label sets: sorted, deduplicated name/value pairs, cheap to clone and compare.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// The label name that carries the metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label: a name and a value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    /// The label name.
    pub name: String,
    /// The label value.
    pub value: String,
}

impl Label {
    /// A label from anything string-like.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// An immutable label set, sorted by name with unique names and no empty values.
///
/// Cloning is a reference-count increment. Ordering is Prometheus' `labels.Compare`:
/// pair by pair (name, then value), and a set that is a prefix of another sorts first.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels(Arc<[Label]>);

impl Labels {
    /// The empty label set.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Builds a label set from pairs in any order. Later duplicates of a name win;
    /// pairs with an empty value are dropped (Prometheus treats them as absent).
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut v: Vec<Label> = pairs.into_iter().map(|(n, v)| Label::new(n, v)).collect();
        Self::from_vec(std::mem::take(&mut v))
    }

    /// Builds a label set from labels in any order (see [`Labels::from_pairs`]).
    pub fn from_vec(mut v: Vec<Label>) -> Self {
        // Stable sort keeps insertion order among equal names; keep the last one.
        v.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<Label> = Vec::with_capacity(v.len());
        for l in v {
            if let Some(last) = out.last_mut() {
                if last.name == l.name {
                    *last = l;
                    continue;
                }
            }
            out.push(l);
        }
        out.retain(|l| !l.value.is_empty());
        Self(out.into())
    }

    /// Wraps labels already sorted by unique name without checking. Used by decoders
    /// that read sorted label sets (e.g. a block index); callers that cannot
    /// guarantee order should use [`Labels::from_vec`].
    pub fn from_sorted(v: Vec<Label>) -> Self {
        debug_assert!(v.windows(2).all(|w| w[0].name < w[1].name));
        Self(v.into())
    }

    /// Whether the labels are sorted by strictly increasing name.
    pub fn is_sorted(&self) -> bool {
        self.0.windows(2).all(|w| w[0].name < w[1].name)
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// The metric name (`__name__`), if present.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Whether a label called `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The labels as a slice, sorted by name.
    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    /// Iterates over the labels in name order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A builder seeded with these labels, to add, change or remove some.
    pub fn builder(&self) -> LabelsBuilder {
        LabelsBuilder {
            labels: self.0.to_vec(),
        }
    }

    /// The set without `__name__`.
    pub fn without_metric_name(&self) -> Labels {
        if !self.has(METRIC_NAME) {
            return self.clone();
        }
        let mut b = self.builder();
        b.del(METRIC_NAME);
        b.build()
    }

    /// Total bytes of all names and values (a cheap size estimate).
    pub fn byte_size(&self) -> usize {
        self.0.iter().map(|l| l.name.len() + l.value.len()).sum()
    }

    /// Compares two label sets like Prometheus' `labels.Compare`.
    pub fn compare(&self, other: &Labels) -> Ordering {
        compare_slices(&self.0, &other.0)
    }

    /// A stable 64-bit hash of the label set, equal to Prometheus' `Labels.Hash()`
    /// (xxHash64 over the `stringlabels` encoding: for each label, the uvarint
    /// length and bytes of the name, then of the value). Equal sets hash equal
    /// across processes and versions, and `limit_ratio` picks the series that
    /// Prometheus picks.
    pub fn stable_hash(&self) -> u64 {
        let mut stack = [0u8; 512];
        let need: usize = self
            .0
            .iter()
            .map(|l| l.name.len() + l.value.len() + 20)
            .sum();
        if need <= stack.len() {
            let mut n = 0;
            for l in self.0.iter() {
                for part in [l.name.as_bytes(), l.value.as_bytes()] {
                    n = put_uvarint(&mut stack, n, part.len());
                    stack[n..n + part.len()].copy_from_slice(part);
                    n += part.len();
                }
            }
            return xxhash_rust::xxh64::xxh64(&stack[..n], 0);
        }
        let mut h = xxhash_rust::xxh64::Xxh64::new(0);
        let mut len = [0u8; 10];
        for l in self.0.iter() {
            for part in [l.name.as_bytes(), l.value.as_bytes()] {
                let n = put_uvarint(&mut len, 0, part.len());
                h.update(&len[..n]);
                h.update(part);
            }
        }
        h.digest()
    }
}

/// Writes `v` as a uvarint at `buf[at..]` (which must have 10 bytes of room) and
/// returns the index after it.
fn put_uvarint(buf: &mut [u8], mut at: usize, v: usize) -> usize {
    let mut v = v as u64;
    while v >= 0x80 {
        buf[at] = (v as u8) | 0x80;
        v >>= 7;
        at += 1;
    }
    buf[at] = v as u8;
    at + 1
}

/// Compares label slices pair by pair; a prefix sorts first.
pub fn compare_slices(a: &[Label], b: &[Label]) -> Ordering {
    for (x, y) in a.iter().zip(b.iter()) {
        match x.name.cmp(&y.name) {
            Ordering::Equal => {}
            o => return o,
        }
        match x.value.cmp(&y.value) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    a.len().cmp(&b.len())
}

impl Ord for Labels {
    fn cmp(&self, other: &Self) -> Ordering {
        self.compare(other)
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Formats like Prometheus' `labels.String()`: `{a="1", b="2"}` with Go-quoted values.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(&l.name)?;
            f.write_str("=")?;
            f.write_str(&crate::gofmt::quote(&l.value))?;
        }
        f.write_str("}")
    }
}

/// Builds a [`Labels`] by setting and deleting names.
#[derive(Clone, Debug, Default)]
pub struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`; an empty value deletes the label.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let name = name.into();
        let value = value.into();
        match self.labels.iter_mut().find(|l| l.name == name) {
            Some(l) => l.value = value,
            None => self.labels.push(Label { name, value }),
        }
        self
    }

    /// Removes `name` if present.
    pub fn del(&mut self, name: &str) -> &mut Self {
        self.labels.retain(|l| l.name != name);
        self
    }

    /// Keeps only the labels whose name satisfies `keep`.
    pub fn retain(&mut self, mut keep: impl FnMut(&Label) -> bool) -> &mut Self {
        self.labels.retain(|l| keep(l));
        self
    }

    /// The current value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_str())
    }

    /// The finished, sorted label set.
    pub fn build(&self) -> Labels {
        Labels::from_vec(self.labels.clone())
    }
}

/// `labels!{"a" => "1", "b" => "2"}` builds a [`Labels`].
#[macro_export]
macro_rules! labels {
    ($($k:expr => $v:expr),* $(,)?) => {
        $crate::Labels::from_pairs([$(($k, $v)),*])
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_hash_is_xxhash_of_the_stringlabels_encoding() {
        let l = labels! {"__name__" => "up", "job" => "node"};
        let enc = b"\x08__name__\x02up\x03job\x04node";
        assert_eq!(l.stable_hash(), xxhash_rust::xxh64::xxh64(enc, 0));
        // Long sets take the streaming path and hash the same bytes.
        let long = "v".repeat(300);
        let big = Labels::from_pairs([("a", long.as_str()), ("b", long.as_str())]);
        let mut enc = vec![1, b'a', 0xac, 0x02];
        enc.extend_from_slice(long.as_bytes());
        enc.extend_from_slice(&[1, b'b', 0xac, 0x02]);
        enc.extend_from_slice(long.as_bytes());
        assert_eq!(big.stable_hash(), xxhash_rust::xxh64::xxh64(&enc, 0));
    }

    #[test]
    fn sorts_dedups_and_drops_empty() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", ""), ("a", "3")]);
        assert_eq!(l.to_string(), r#"{a="3", b="2"}"#);
        assert_eq!(l.get("b"), Some("2"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn compare_prefix_first() {
        let a = labels! {"a" => "1"};
        let b = labels! {"a" => "1", "b" => "0"};
        assert!(a < b);
        let c = labels! {"a" => "2"};
        assert!(b < c);
        let d = labels! {"__name__" => "z"};
        assert!(d < a);
    }

    #[test]
    fn builder_and_name_drop() {
        let l = labels! {"__name__" => "up", "job" => "x"};
        assert_eq!(l.without_metric_name(), labels! {"job" => "x"});
        let mut b = l.builder();
        b.set("job", "").set("z", "1");
        assert_eq!(b.build(), labels! {"__name__" => "up", "z" => "1"});
        assert_ne!(l.stable_hash(), b.build().stable_hash());
    }
}
