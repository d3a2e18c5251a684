//! Coalescing of byte ranges into fewer ranged GETs (Thanos' gap-based
//! partitioner): ranges closer than `max_gap` are read as one.

/// A read covering several requested ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Part {
    /// Start offset.
    pub start: u64,
    /// End offset (exclusive).
    pub end: u64,
    /// Indices (into the input) of the ranges it covers.
    pub members: Vec<usize>,
}

/// Groups `ranges` (`[start, end)`, any order) into parts: sorted by start,
/// neighbours whose gap is at most `max_gap` are merged.
pub(crate) fn partition(ranges: &[(u64, u64)], max_gap: u64) -> Vec<Part> {
    let mut idx: Vec<usize> = (0..ranges.len()).collect();
    idx.sort_by_key(|&i| ranges[i]);
    let mut out: Vec<Part> = Vec::new();
    for i in idx {
        let (s, e) = ranges[i];
        match out.last_mut() {
            Some(p) if s <= p.end.saturating_add(max_gap) => {
                p.end = p.end.max(e);
                p.members.push(i);
            }
            _ => out.push(Part {
                start: s,
                end: e.max(s),
                members: vec![i],
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_close_ranges_only() {
        let r = [(100, 110), (0, 10), (15, 20), (1000, 1010)];
        let p = partition(&r, 10);
        assert_eq!(p.len(), 3);
        assert_eq!(
            (p[0].start, p[0].end, p[0].members.clone()),
            (0, 20, vec![1, 2])
        );
        assert_eq!((p[1].start, p[1].end), (100, 110));
        assert_eq!((p[2].start, p[2].end), (1000, 1010));
        assert_eq!(partition(&r, 1 << 20).len(), 1);
        assert!(partition(&[], 5).is_empty());
    }
}
