//! Lazy postings iterators: series refs in ascending order, combined by
//! intersection, union and difference without materialising lists.

/// An ascending iterator of series refs.
pub trait Postings: Send {
    /// The next ref, or `None` at the end.
    fn next(&mut self) -> Option<u32>;
    /// Advances to the first ref `>= v` (possibly the current one) and returns it.
    fn seek(&mut self, v: u32) -> Option<u32>;
    /// The current ref (after `next`/`seek` returned `Some`).
    fn at(&self) -> u32;
}

/// A boxed postings iterator.
pub type BoxPostings<'a> = Box<dyn Postings + 'a>;

/// A postings list read in place: a slice of big-endian u32 refs.
pub struct PostingsList<'a> {
    data: &'a [u8],
    /// Index of the next ref to read.
    i: usize,
    cur: u32,
}

impl<'a> PostingsList<'a> {
    /// Refs encoded as consecutive big-endian u32 (length must be a multiple of 4).
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, i: 0, cur: 0 }
    }

    fn len(&self) -> usize {
        self.data.len() / 4
    }

    #[inline]
    fn get(&self, i: usize) -> u32 {
        let b = &self.data[i * 4..i * 4 + 4];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl Postings for PostingsList<'_> {
    fn next(&mut self) -> Option<u32> {
        if self.i >= self.len() {
            return None;
        }
        self.cur = self.get(self.i);
        self.i += 1;
        Some(self.cur)
    }

    fn seek(&mut self, v: u32) -> Option<u32> {
        if self.i > 0 && self.cur >= v {
            return Some(self.cur);
        }
        // Binary search in the remaining refs.
        let (mut lo, mut hi) = (self.i, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid) < v {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        self.i = lo;
        self.next()
    }

    fn at(&self) -> u32 {
        self.cur
    }
}

/// Postings from an owned sorted vector.
pub struct VecPostings {
    v: Vec<u32>,
    i: usize,
}

impl VecPostings {
    /// From refs sorted ascending.
    pub fn new(v: Vec<u32>) -> Self {
        Self { v, i: 0 }
    }
}

impl Postings for VecPostings {
    fn next(&mut self) -> Option<u32> {
        let r = self.v.get(self.i).copied();
        if r.is_some() {
            self.i += 1;
        }
        r
    }
    fn seek(&mut self, v: u32) -> Option<u32> {
        if self.i > 0 && self.v[self.i - 1] >= v {
            return Some(self.v[self.i - 1]);
        }
        let rest = &self.v[self.i..];
        let k = rest.partition_point(|x| *x < v);
        self.i += k;
        self.next()
    }
    fn at(&self) -> u32 {
        self.i
            .checked_sub(1)
            .and_then(|i| self.v.get(i))
            .copied()
            .unwrap_or(0)
    }
}

/// No refs.
pub fn empty<'a>() -> BoxPostings<'a> {
    Box::new(VecPostings::new(Vec::new()))
}

struct Intersect<'a> {
    its: Vec<BoxPostings<'a>>,
    cur: u32,
}

impl Postings for Intersect<'_> {
    fn next(&mut self) -> Option<u32> {
        let first = self.its.first_mut()?.next()?;
        self.align(first)
    }
    fn seek(&mut self, v: u32) -> Option<u32> {
        let first = self.its.first_mut()?.seek(v)?;
        self.align(first)
    }
    fn at(&self) -> u32 {
        self.cur
    }
}

impl Intersect<'_> {
    fn align(&mut self, mut target: u32) -> Option<u32> {
        'outer: loop {
            for it in self.its.iter_mut() {
                let got = it.seek(target)?;
                if got > target {
                    target = got;
                    continue 'outer;
                }
            }
            self.cur = target;
            return Some(target);
        }
    }
}

/// Refs present in every iterator.
pub fn intersect<'a>(mut its: Vec<BoxPostings<'a>>) -> BoxPostings<'a> {
    match its.len() {
        0 => empty(),
        1 => its.pop().unwrap_or_else(empty),
        _ => Box::new(Intersect { its, cur: 0 }),
    }
}

struct Merge<'a> {
    /// Iterators with their current head; exhausted ones are removed.
    heads: Vec<(u32, BoxPostings<'a>)>,
    started: bool,
    cur: u32,
}

impl Postings for Merge<'_> {
    fn next(&mut self) -> Option<u32> {
        if !self.started {
            self.started = true;
            let its = std::mem::take(&mut self.heads);
            for (_, mut it) in its {
                if let Some(v) = it.next() {
                    self.heads.push((v, it));
                }
            }
        } else {
            // Advance every iterator sitting on the current value.
            let cur = self.cur;
            let mut i = 0;
            while i < self.heads.len() {
                if self.heads[i].0 == cur {
                    match self.heads[i].1.next() {
                        Some(v) => {
                            self.heads[i].0 = v;
                            i += 1;
                        }
                        None => {
                            self.heads.swap_remove(i);
                        }
                    }
                } else {
                    i += 1;
                }
            }
        }
        let m = self.heads.iter().map(|h| h.0).min()?;
        self.cur = m;
        Some(m)
    }

    fn seek(&mut self, v: u32) -> Option<u32> {
        if self.started && self.cur >= v && !self.heads.is_empty() {
            return Some(self.cur);
        }
        self.started = true;
        let its = std::mem::take(&mut self.heads);
        for (h, mut it) in its {
            let nv = if h >= v && h != 0 {
                Some(h)
            } else {
                it.seek(v)
            };
            if let Some(nv) = nv {
                self.heads.push((nv, it));
            }
        }
        let m = self.heads.iter().map(|h| h.0).min()?;
        self.cur = m;
        Some(m)
    }

    fn at(&self) -> u32 {
        self.cur
    }
}

/// Refs present in any iterator.
pub fn merge<'a>(mut its: Vec<BoxPostings<'a>>) -> BoxPostings<'a> {
    match its.len() {
        0 => empty(),
        1 => its.pop().unwrap_or_else(empty),
        _ => Box::new(Merge {
            heads: its.into_iter().map(|it| (0, it)).collect(),
            started: false,
            cur: 0,
        }),
    }
}

struct Without<'a> {
    full: BoxPostings<'a>,
    drop: BoxPostings<'a>,
    drop_head: Option<u32>,
    drop_started: bool,
    cur: u32,
}

impl Without<'_> {
    fn skip_dropped(&mut self, mut v: Option<u32>) -> Option<u32> {
        loop {
            let x = v?;
            let d = if self.drop_started {
                match self.drop_head {
                    Some(h) if h >= x => Some(h),
                    Some(_) => self.drop.seek(x),
                    None => None,
                }
            } else {
                self.drop_started = true;
                self.drop.seek(x)
            };
            self.drop_head = d;
            if d == Some(x) {
                v = self.full.next();
                continue;
            }
            self.cur = x;
            return Some(x);
        }
    }
}

impl Postings for Without<'_> {
    fn next(&mut self) -> Option<u32> {
        let v = self.full.next();
        self.skip_dropped(v)
    }
    fn seek(&mut self, v: u32) -> Option<u32> {
        let x = self.full.seek(v);
        self.skip_dropped(x)
    }
    fn at(&self) -> u32 {
        self.cur
    }
}

/// Refs of `full` that are not in `drop`.
pub fn without<'a>(full: BoxPostings<'a>, drop: BoxPostings<'a>) -> BoxPostings<'a> {
    Box::new(Without {
        full,
        drop,
        drop_head: None,
        drop_started: false,
        cur: 0,
    })
}

/// Drains a postings iterator into a vector.
pub fn collect(mut p: BoxPostings<'_>) -> Vec<u32> {
    let mut out = Vec::new();
    while let Some(v) = p.next() {
        out.push(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vp(v: &[u32]) -> BoxPostings<'static> {
        Box::new(VecPostings::new(v.to_vec()))
    }

    #[test]
    fn list_seek() {
        let bytes: Vec<u8> = [1u32, 5, 9, 13]
            .iter()
            .flat_map(|x| x.to_be_bytes())
            .collect();
        let mut l = PostingsList::new(&bytes);
        assert_eq!(l.seek(6), Some(9));
        assert_eq!(l.seek(2), Some(9));
        assert_eq!(l.next(), Some(13));
        assert_eq!(l.next(), None);
    }

    #[test]
    fn combinators() {
        let i = intersect(vec![
            vp(&[1, 2, 3, 5, 8]),
            vp(&[2, 3, 4, 8, 9]),
            vp(&[0, 2, 8]),
        ]);
        assert_eq!(collect(i), vec![2, 8]);
        let m = merge(vec![vp(&[1, 4]), vp(&[0, 4, 7]), vp(&[])]);
        assert_eq!(collect(m), vec![0, 1, 4, 7]);
        let w = without(vp(&[1, 2, 3, 4, 5]), vp(&[0, 2, 5, 6]));
        assert_eq!(collect(w), vec![1, 3, 4]);
        let mut m = merge(vec![vp(&[1, 4, 9]), vp(&[0, 4, 7])]);
        assert_eq!(m.seek(5), Some(7));
        assert_eq!(m.next(), Some(9));
        let mut w = without(vp(&[1, 2, 3, 4, 5]), vp(&[3]));
        assert_eq!(w.seek(3), Some(4));
    }

    proptest::proptest! {
        #[test]
        fn combinators_match_sets(a in proptest::collection::btree_set(0u32..200, 0..60),
                                  b in proptest::collection::btree_set(0u32..200, 0..60),
                                  s in 0u32..200) {
            let av: Vec<u32> = a.iter().copied().collect();
            let bv: Vec<u32> = b.iter().copied().collect();
            let inter: Vec<u32> = a.intersection(&b).copied().collect();
            let uni: Vec<u32> = a.union(&b).copied().collect();
            let diff: Vec<u32> = a.difference(&b).copied().collect();
            proptest::prop_assert_eq!(collect(intersect(vec![vp(&av), vp(&bv)])), inter.clone());
            proptest::prop_assert_eq!(collect(merge(vec![vp(&av), vp(&bv)])), uni.clone());
            proptest::prop_assert_eq!(collect(without(vp(&av), vp(&bv))), diff.clone());
            let mut m = merge(vec![vp(&av), vp(&bv)]);
            proptest::prop_assert_eq!(m.seek(s), uni.iter().copied().find(|x| *x >= s));
            let mut i = intersect(vec![vp(&av), vp(&bv)]);
            proptest::prop_assert_eq!(i.seek(s), inter.iter().copied().find(|x| *x >= s));
            let mut w = without(vp(&av), vp(&bv));
            proptest::prop_assert_eq!(w.seek(s), diff.iter().copied().find(|x| *x >= s));
        }
    }
}
