//! Compaction groups (Thanos' `DefaultGrouper`): blocks with the same
//! resolution and external labels (replica labels already removed) hold the
//! same series and may be compacted together; different groups never mix.

use std::collections::{BTreeMap, HashMap};

use strata_block::Meta;
use strata_model::{Label, Labels};
use ulid::Ulid;

/// Thanos' group key: `<resolution>@<hash of the external labels>`.
pub fn group_key(resolution: i64, labels: &Labels) -> String {
    format!("{resolution}@{}", labels.stable_hash())
}

/// One compaction group.
#[derive(Clone, Debug)]
pub struct Group {
    /// `<resolution>@<labels hash>`.
    pub key: String,
    /// The group's external labels (without replica labels).
    pub labels: BTreeMap<String, String>,
    /// Resolution, ms.
    pub resolution: i64,
    /// The blocks, sorted by min time (then ULID).
    pub metas: Vec<Meta>,
}

impl Group {
    /// The labels as a sorted label set.
    pub fn label_set(&self) -> Labels {
        labels_of(&self.labels)
    }

    /// A readable name: `<resolution>@{labels}`.
    pub fn name(&self) -> String {
        format!("{}@{}", self.resolution, self.label_set())
    }

    /// The block ids.
    pub fn ids(&self) -> Vec<Ulid> {
        self.metas.iter().map(|m| m.block.ulid).collect()
    }
}

/// External labels as a sorted label set.
pub fn labels_of(l: &BTreeMap<String, String>) -> Labels {
    Labels::from_vec(
        l.iter()
            .map(|(k, v)| Label::new(k.clone(), v.clone()))
            .collect(),
    )
}

/// Groups `metas` by resolution and external labels; groups sorted by key.
pub fn groups<'a>(metas: impl IntoIterator<Item = &'a Meta>) -> Vec<Group> {
    let mut by_key: HashMap<String, Group> = HashMap::new();
    for m in metas {
        let res = m.thanos.downsample.resolution;
        let key = group_key(res, &labels_of(&m.thanos.labels));
        by_key
            .entry(key.clone())
            .or_insert_with(|| Group {
                key,
                labels: m.thanos.labels.clone(),
                resolution: res,
                metas: Vec::new(),
            })
            .metas
            .push(m.clone());
    }
    let mut out: Vec<Group> = by_key.into_values().collect();
    for g in &mut out {
        g.metas.sort_by_key(|m| (m.block.min_time, m.block.ulid));
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// Pairs of overlapping blocks (Prometheus' `OverlappingBlocks`, simplified to
/// what the compactor reports): each entry names a block and one it overlaps.
pub fn overlaps(metas: &[Meta]) -> Vec<(Ulid, Ulid)> {
    let mut sorted: Vec<&Meta> = metas.iter().collect();
    sorted.sort_by_key(|m| m.block.min_time);
    let mut out = Vec::new();
    for (i, a) in sorted.iter().enumerate() {
        for b in sorted.iter().skip(i + 1) {
            if b.block.min_time >= a.block.max_time {
                break;
            }
            out.push((a.block.ulid, b.block.ulid));
        }
    }
    out
}
