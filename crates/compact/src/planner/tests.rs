//! The cases of thanos `pkg/compact/planner_test.go`, with the same inputs and
//! expected plans, plus tests of what Strata adds around them.

use std::collections::HashMap;

use strata_block::meta::File;
use strata_block::ThanosMeta;
use strata_tsdb::meta::{BlockMeta, BlockStats, CompactionMeta};

use super::*;

/// The ranges of upstream's tests: `ExponentialBlockRanges` from 20.
const RANGES: [i64; 5] = [20, 60, 180, 540, 1620];

/// `ulid.MustNew(n, nil)`.
fn id(n: u64) -> Ulid {
    Ulid::from_parts(n, 0)
}

fn b(n: u64, min_time: i64, max_time: i64) -> Meta {
    Meta {
        block: BlockMeta {
            ulid: id(n),
            min_time,
            max_time,
            stats: BlockStats::default(),
            compaction: CompactionMeta::default(),
            version: 1,
            thanos: None,
        },
        thanos: ThanosMeta::default(),
    }
}

fn tomb(mut m: Meta, num_series: u64, num_tombstones: u64) -> Meta {
    m.block.stats.num_series = num_series;
    m.block.stats.num_tombstones = num_tombstones;
    m
}

/// A block whose meta.json records an index of `size_bytes`.
fn idx(mut m: Meta, size_bytes: i64) -> Meta {
    m.thanos.files.push(File {
        rel_path: INDEX_FILENAME.to_string(),
        size_bytes,
        hash: None,
    });
    m
}

fn set(ids: &[u64]) -> HashSet<Ulid> {
    ids.iter().map(|&n| id(n)).collect()
}

/// The input metas with these ids, in this order.
fn pick(metas: &[Meta], ids: &[u64]) -> Vec<Meta> {
    ids.iter()
        .map(|&n| {
            metas
                .iter()
                .find(|m| m.block.ulid == id(n))
                .cloned()
                .unwrap_or_else(|| panic!("no block {n} in the input"))
        })
        .collect()
}

struct Case {
    name: &'static str,
    metas: Vec<Meta>,
    no_compact: &'static [u64],
    expected: &'static [u64],
}

fn run_plan_cases(cases: &[Case]) {
    for c in cases {
        let got = plan(&c.metas, &RANGES, &set(c.no_compact));
        assert_eq!(got, pick(&c.metas, c.expected), "{}", c.name);
        // No exclusions: the index-size planner with an unreachable limit
        // plans the same.
        let limited =
            plan_with_index_limit(&c.metas, &RANGES, &set(c.no_compact), u64::MAX, |_| {
                Ok::<u64, ()>(1)
            })
            .unwrap();
        assert_eq!(limited.compact, got, "{} (index limit)", c.name);
        assert!(limited.mark_no_compact.is_empty(), "{}", c.name);
    }
}

/// `TestPlanners_Plan_Compatibility` (its `tsdbBasedPlanner` half).
#[test]
fn plan_compatibility() {
    run_plan_cases(&[
        Case {
            name: "Outside range",
            metas: vec![b(1, 0, 20)],
            no_compact: &[],
            expected: &[],
        },
        Case {
            name: "We should wait for four blocks of size 20 to appear before compacting.",
            metas: vec![b(1, 0, 20), b(2, 20, 40)],
            no_compact: &[],
            expected: &[],
        },
        Case {
            name: "We should wait for a next block of size 20 to appear before compacting \
                   the existing ones. We have three, but we ignore the fresh one from WAl",
            metas: vec![b(1, 0, 20), b(2, 20, 40), b(3, 40, 60)],
            no_compact: &[],
            expected: &[],
        },
        Case {
            name: "Block to fill the entire parent range appeared – should be compacted",
            metas: vec![b(1, 0, 20), b(2, 20, 40), b(3, 40, 60), b(4, 60, 80)],
            no_compact: &[],
            expected: &[1, 2, 3],
        },
        Case {
            name: "There are blocks to fill the entire 2nd parent range.",
            metas: vec![
                b(6, 0, 60),
                b(7, 60, 120),
                b(8, 120, 180),
                b(9, 180, 200),
                b(10, 200, 220),
            ],
            no_compact: &[],
            expected: &[6, 7, 8],
        },
        Case {
            name: "Block for the next parent range appeared with gap with size 20. Nothing will \
                   happen in the first one anymore but we ignore fresh one still, so no compaction",
            metas: vec![b(1, 0, 20), b(2, 20, 40), b(4, 60, 80)],
            no_compact: &[],
            expected: &[],
        },
        Case {
            name: "Block for the next parent range appeared, and we have a gap with size 20 \
                   between second and third block. We will not get this missed gap anymore and \
                   we should compact just these two.",
            metas: vec![b(1, 0, 20), b(2, 20, 40), b(4, 60, 80), b(5, 80, 100)],
            no_compact: &[],
            expected: &[1, 2],
        },
        Case {
            name: "We have 20, 20, 20, 60, 60 range blocks. '5' is marked as fresh one",
            metas: vec![
                b(1, 0, 20),
                b(2, 20, 40),
                b(3, 40, 60),
                b(4, 60, 120),
                b(5, 120, 180),
            ],
            no_compact: &[],
            expected: &[1, 2, 3],
        },
        Case {
            name: "There are blocks to fill the entire 2nd parent range, but there is a gap",
            metas: vec![b(6, 0, 60), b(8, 120, 180), b(9, 180, 200), b(10, 200, 220)],
            no_compact: &[],
            expected: &[6, 8],
        },
        Case {
            name: "We have 20, 60, 20, 60, 240 range blocks. We can compact 20 + 60 + 60",
            metas: vec![
                b(2, 20, 40),
                b(4, 60, 120),
                b(5, 960, 980), // Fresh one.
                b(6, 120, 180),
                b(7, 720, 960),
            ],
            no_compact: &[],
            expected: &[2, 4, 6],
        },
        Case {
            name:
                "Do not select large blocks that have many tombstones when there is no fresh block",
            metas: vec![tomb(b(1, 0, 540), 10, 3)],
            no_compact: &[],
            expected: &[],
        },
        Case {
            name: "Select large blocks that have many tombstones when fresh appears",
            metas: vec![tomb(b(1, 0, 540), 10, 3), b(2, 540, 560)],
            no_compact: &[],
            expected: &[1],
        },
        Case {
            name: "For small blocks, do not compact tombstones, even when fresh appears.",
            metas: vec![tomb(b(1, 0, 60), 10, 3), b(2, 60, 80)],
            no_compact: &[],
            expected: &[],
        },
        Case {
            name: "Regression test: we were stuck in a compact loop where we always recompacted \
                   the same block when tombstones and series counts were zero",
            metas: vec![tomb(b(1, 0, 540), 0, 0), b(2, 540, 560)],
            no_compact: &[],
            expected: &[],
        },
        Case {
            name: "Regression test: we were wrongly assuming that new block is fresh from WAL \
                   when its ULID is newest. We need to actually look on max time instead.",
            metas: vec![
                b(5, 0, 360),
                b(6, 540, 560), // Fresh one.
                b(7, 360, 420),
                b(8, 420, 540),
            ],
            no_compact: &[],
            expected: &[7, 8],
        },
        Case {
            name: "Overlapping blocks 1",
            metas: vec![b(1, 0, 20), b(2, 19, 40), b(3, 40, 60)],
            no_compact: &[],
            expected: &[1, 2],
        },
        Case {
            name: "Overlapping blocks 2",
            metas: vec![b(1, 0, 20), b(2, 20, 40), b(3, 30, 50)],
            no_compact: &[],
            expected: &[2, 3],
        },
        Case {
            name: "Overlapping blocks 3",
            metas: vec![b(1, 0, 20), b(2, 10, 40), b(3, 30, 50)],
            no_compact: &[],
            expected: &[1, 2, 3],
        },
        Case {
            name: "Overlapping blocks 4",
            metas: vec![b(5, 0, 360), b(6, 340, 560), b(7, 360, 420), b(8, 420, 540)],
            no_compact: &[],
            expected: &[5, 6, 7, 8],
        },
        Case {
            name: "Overlapping blocks 5",
            metas: vec![b(1, 0, 10), b(2, 9, 20), b(3, 30, 40), b(4, 39, 50)],
            no_compact: &[],
            expected: &[1, 2],
        },
    ]);
}

/// `TestRangeWithFailedCompactionWontGetSelected`: the second block's
/// compaction failed, so its range is never selected.
#[test]
fn range_with_failed_compaction_wont_get_selected() {
    let cases = [
        vec![b(1, 0, 20), b(2, 20, 40), b(3, 40, 60), b(4, 60, 80)],
        vec![b(1, 0, 20), b(2, 20, 40), b(4, 60, 80), b(5, 80, 100)],
        vec![
            b(1, 0, 20),
            b(2, 20, 40),
            b(3, 40, 60),
            b(4, 60, 120),
            b(5, 120, 180),
            b(6, 180, 200),
        ],
    ];
    for (i, mut metas) in cases.into_iter().enumerate() {
        // Without the failure, each of them compacts something.
        assert!(
            !plan(&metas, &RANGES, &HashSet::new()).is_empty(),
            "case {i}"
        );
        metas[1].block.compaction.failed = true;
        assert_eq!(
            plan(&metas, &RANGES, &HashSet::new()),
            Vec::<Meta>::new(),
            "case {i}"
        );
    }
}

fn fill_parent() -> Vec<Meta> {
    vec![b(1, 0, 20), b(2, 20, 40), b(3, 40, 60), b(4, 60, 80)]
}

fn twenty_sixty_240() -> Vec<Meta> {
    vec![
        b(2, 20, 40),
        b(4, 60, 120),
        b(5, 960, 980), // Fresh one.
        b(6, 120, 180),
        b(7, 720, 960),
    ]
}

/// `TestTSDBBasedPlanner_PlanWithNoCompactMarks`.
#[test]
fn plan_with_no_compact_marks() {
    run_plan_cases(&[
        Case {
            name: "Outside range and excluded",
            metas: vec![b(1, 0, 20)],
            no_compact: &[1],
            expected: &[],
        },
        Case {
            name: "Blocks to fill the entire parent, but with first one excluded.",
            metas: fill_parent(),
            no_compact: &[1],
            expected: &[2, 3],
        },
        Case {
            name: "Blocks to fill the entire parent, but with second one excluded.",
            metas: fill_parent(),
            no_compact: &[2],
            expected: &[],
        },
        Case {
            name: "Blocks to fill the entire parent, but with last one excluded.",
            metas: fill_parent(),
            no_compact: &[4],
            expected: &[1, 2, 3],
        },
        Case {
            name: "Blocks to fill the entire parent, but with last one fist excluded.",
            metas: fill_parent(),
            no_compact: &[1, 4],
            expected: &[2, 3],
        },
        Case {
            name: "Blocks to fill the entire parent, but with all of them excluded.",
            metas: fill_parent(),
            no_compact: &[1, 2, 3, 4],
            expected: &[],
        },
        Case {
            name: "Block for the next parent range appeared, and we have a gap with size 20 \
                   between second and third block. Second block is excluded.",
            metas: vec![b(1, 0, 20), b(2, 20, 40), b(4, 60, 80), b(5, 80, 100)],
            no_compact: &[2],
            expected: &[],
        },
        Case {
            name: "We have 20, 60, 20, 60, 240 range blocks. We could compact 20 + 60 + 60, \
                   but sixth 6th is excluded",
            metas: twenty_sixty_240(),
            no_compact: &[6],
            expected: &[2, 4],
        },
        Case {
            name: "We have 20, 60, 20, 60, 240 range blocks. We could compact 20 + 60 + 60, \
                   but 4th is excluded",
            metas: twenty_sixty_240(),
            no_compact: &[4],
            expected: &[],
        },
        Case {
            name: "Do not select large blocks that have many tombstones when fresh appears but \
                   are excluded",
            metas: vec![tomb(b(1, 0, 540), 10, 3), b(2, 540, 560)],
            no_compact: &[1],
            expected: &[],
        },
        Case {
            name: "Overlapping blocks 1, but one is excluded",
            metas: vec![b(1, 0, 20), b(2, 19, 40), b(3, 40, 60)],
            no_compact: &[1],
            expected: &[],
        },
    ]);
}

struct IndexCase {
    name: &'static str,
    /// (id, min time, max time, index size).
    blocks: &'static [(u64, i64, i64, i64)],
    expected: &'static [u64],
    /// Upstream counts the marks; these are the blocks behind that count.
    expected_marks: &'static [u64],
}

/// `TestLargeTotalIndexSizeFilter_Plan`: limit 100, so 85 with the headroom.
#[test]
fn large_total_index_size_filter() {
    let cases = [
        IndexCase {
            name: "Outside range and excluded",
            blocks: &[(1, 0, 20, 100)],
            expected: &[],
            expected_marks: &[],
        },
        IndexCase {
            name: "Blocks to fill the entire parent, but with first one too large.",
            blocks: &[
                (1, 0, 20, 41),
                (2, 20, 40, 30),
                (3, 40, 60, 30),
                (4, 60, 80, 30),
            ],
            expected: &[2, 3],
            expected_marks: &[1],
        },
        IndexCase {
            name: "Blocks to fill the entire parent, but with second one too large.",
            blocks: &[
                (1, 0, 20, 30),
                (2, 20, 40, 41),
                (3, 40, 60, 30),
                (4, 60, 80, 20),
            ],
            expected: &[],
            expected_marks: &[2],
        },
        IndexCase {
            name: "Blocks to fill the entire parent, but with last size exceeded (should not \
                   matter and not even marked).",
            blocks: &[
                (1, 0, 20, 10),
                (2, 20, 40, 10),
                (3, 40, 60, 10),
                (4, 60, 80, 90),
            ],
            expected: &[1, 2, 3],
            expected_marks: &[],
        },
        IndexCase {
            name: "Blocks to fill the entire parent, but with pre-last one and first too large.",
            blocks: &[
                (1, 0, 20, 90),
                (2, 20, 40, 30),
                (3, 40, 50, 30),
                (4, 50, 60, 90),
                (5, 60, 80, 90),
            ],
            expected: &[2, 3],
            expected_marks: &[1, 4],
        },
        IndexCase {
            name: "Block for the next parent range appeared, and we have a gap with size 20 \
                   between second and third block. Second block is excluded.",
            blocks: &[
                (1, 0, 20, 30),
                (2, 20, 40, 90),
                (4, 60, 80, 30),
                (5, 80, 100, 30),
            ],
            expected: &[],
            expected_marks: &[2],
        },
        IndexCase {
            name: "We have 20, 60, 20, 60, 240 range blocks. We could compact 20 + 60 + 60, \
                   but sixth 6th is excluded",
            blocks: &[
                (2, 20, 40, 30),
                (4, 60, 120, 30),
                (5, 960, 980, 30), // Fresh one.
                (6, 120, 180, 90),
                (7, 720, 960, 30),
            ],
            expected: &[2, 4],
            expected_marks: &[6],
        },
        IndexCase {
            name: "Overlapping blocks 1, but total is too large",
            blocks: &[(1, 0, 20, 90), (2, 19, 40, 30), (3, 40, 60, 30)],
            expected: &[],
            expected_marks: &[1],
        },
    ];
    let want_details = "largeTotalIndexSizeFilter: Total compacted block's index size could \
                        exceed: 100 with this block. See https://github.com/thanos-io/thanos/issues/1424";
    for c in &cases {
        let check = |out: &PlanOutcome, metas: &[Meta], how: &str| {
            assert_eq!(out.compact, pick(metas, c.expected), "{} ({how})", c.name);
            let marked: Vec<Ulid> = out.mark_no_compact.iter().map(|d| d.id).collect();
            let want: Vec<Ulid> = c.expected_marks.iter().map(|&n| id(n)).collect();
            assert_eq!(marked, want, "{} ({how})", c.name);
            for d in &out.mark_no_compact {
                assert_eq!(d.reason, reason::INDEX_SIZE_EXCEEDING);
                assert_eq!(d.details, want_details);
            }
        };

        // From meta: the bucket is never asked.
        let metas: Vec<Meta> = c
            .blocks
            .iter()
            .map(|&(n, min, max, size)| idx(b(n, min, max), size))
            .collect();
        let out = plan_with_index_limit(&metas, &RANGES, &HashSet::new(), 100, |m| {
            Err(format!("asked the bucket for {}", m.block.ulid))
        })
        .unwrap();
        check(&out, &metas, "from meta");

        // From the bucket: meta.json lists no index size.
        let sizes: HashMap<Ulid, u64> = c
            .blocks
            .iter()
            .map(|&(n, _, _, size)| (id(n), size as u64))
            .collect();
        let metas: Vec<Meta> = c
            .blocks
            .iter()
            .map(|&(n, min, max, _)| b(n, min, max))
            .collect();
        let mut asked = Vec::new();
        let out = plan_with_index_limit(&metas, &RANGES, &HashSet::new(), 100, |m| {
            asked.push(m.block.ulid);
            sizes.get(&m.block.ulid).copied().ok_or(())
        })
        .unwrap();
        check(&out, &metas, "from bkt");
        // Every block planned (and so every mark) had its size looked up.
        for d in &out.mark_no_compact {
            assert!(asked.contains(&d.id), "{}", c.name);
        }
    }
}

/// Thanos' threshold is `int64(float64(limit) * 0.85)`, reached at equality.
#[test]
fn index_limit_threshold_truncates_and_is_inclusive() {
    let metas = vec![
        idx(b(1, 0, 20), 28),
        idx(b(2, 20, 40), 28),
        idx(b(3, 40, 60), 29),
        idx(b(4, 60, 80), 1),
    ];
    let never = |_: &Meta| Err::<u64, ()>(());
    // 101 * 0.85 = 85.85 → 85 = 28 + 28 + 29: the biggest, 3, is marked.
    let out = plan_with_index_limit(&metas, &RANGES, &HashSet::new(), 101, never).unwrap();
    assert_eq!(out.compact, pick(&metas, &[1, 2]));
    assert_eq!(
        out.mark_no_compact.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![id(3)]
    );
    assert_eq!(
        out.mark_no_compact[0].to_mark().reason,
        reason::INDEX_SIZE_EXCEEDING
    );
    // Of equal indexes the first planned is marked.
    let metas3: Vec<Meta> = fill_parent().into_iter().map(|m| idx(m, 30)).collect();
    let out = plan_with_index_limit(&metas3, &RANGES, &HashSet::new(), 100, never).unwrap();
    assert_eq!(out.compact, pick(&metas3, &[2, 3]));
    assert_eq!(
        out.mark_no_compact.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![id(1)]
    );
    // 102 * 0.85 = 86.7 → 86 > 85.
    let out = plan_with_index_limit(&metas, &RANGES, &HashSet::new(), 102, never).unwrap();
    assert_eq!(out.compact, pick(&metas, &[1, 2, 3]));
    assert!(out.mark_no_compact.is_empty());
}

#[test]
fn index_limit_bucket_error_is_returned() {
    let metas = fill_parent();
    let err = plan_with_index_limit(&metas, &RANGES, &HashSet::new(), 100, |m| Err(m.block.ulid))
        .unwrap_err();
    assert_eq!(err, id(1));
    // Nothing planned: the bucket is not asked.
    let out = plan_with_index_limit(&metas[..2], &RANGES, &HashSet::new(), 100, |m| {
        Err(m.block.ulid)
    })
    .unwrap();
    assert!(out.is_empty());
}

#[test]
fn index_size_from_meta_needs_a_positive_size() {
    assert_eq!(index_size_from_meta(&b(1, 0, 20)), None);
    assert_eq!(index_size_from_meta(&idx(b(1, 0, 20), 0)), None);
    assert_eq!(index_size_from_meta(&idx(b(1, 0, 20), -5)), None);
    assert_eq!(index_size_from_meta(&idx(b(1, 0, 20), 7)), Some(7));
    // Go's loop keeps the last match.
    assert_eq!(index_size_from_meta(&idx(idx(b(1, 0, 20), 7), 9)), Some(9));
    let mut m = idx(b(1, 0, 20), 7);
    m.thanos.files.push(File {
        rel_path: "chunks/000001".into(),
        size_bytes: 100,
        hash: None,
    });
    assert_eq!(index_size_from_meta(&m), Some(7));
}

fn downsampled(mut m: Meta, resolution: i64) -> Meta {
    m.thanos.downsample.resolution = resolution;
    m
}

#[test]
fn vertical_compaction_marks_downsampled_overlapping_blocks() {
    let metas = vec![
        downsampled(b(1, 0, 20), 300_000),
        b(2, 10, 40),
        b(3, 30, 50),
    ];
    let ok = |_: &Meta| Ok::<u64, ()>(1);
    let out = plan_for_vertical_compaction(&metas, &RANGES, &HashSet::new(), 100, ok).unwrap();
    assert_eq!(out.compact, pick(&metas, &[2, 3]));
    assert_eq!(
        out.mark_no_compact,
        vec![NoCompactDecision {
            id: id(1),
            reason: reason::DOWNSAMPLE_VERTICAL_COMPACTION,
            details: "verticalCompactionDownsampleFilter: Downsampled block, see \
                      https://github.com/thanos-io/thanos/issues/6775"
                .into(),
        }]
    );
    // Without overlaps, downsampled blocks compact as usual.
    let metas: Vec<Meta> = fill_parent()
        .into_iter()
        .map(|m| downsampled(m, 300_000))
        .collect();
    let out = plan_for_vertical_compaction(&metas, &RANGES, &HashSet::new(), 100, ok).unwrap();
    assert_eq!(out.compact, pick(&metas, &[1, 2, 3]));
    assert!(out.mark_no_compact.is_empty());
}

#[test]
fn vertical_compaction_keeps_index_limit_marks() {
    // The index filter marks 1 (90 ≥ 85); 2 and 3 still overlap, 3 is
    // downsampled and marked; what is left compacts nothing.
    let metas = vec![
        idx(b(1, 0, 20), 90),
        idx(b(2, 10, 40), 10),
        downsampled(idx(b(3, 30, 50), 10), 300_000),
        idx(b(4, 50, 60), 10),
    ];
    let never = |_: &Meta| Err::<u64, ()>(());
    let out = plan_for_vertical_compaction(&metas, &RANGES, &HashSet::new(), 100, never).unwrap();
    let marks: Vec<(Ulid, &str)> = out
        .mark_no_compact
        .iter()
        .map(|d| (d.id, d.reason))
        .collect();
    assert_eq!(
        marks,
        vec![
            (id(1), reason::INDEX_SIZE_EXCEEDING),
            (id(3), reason::DOWNSAMPLE_VERTICAL_COMPACTION)
        ]
    );
    assert!(out.compact.is_empty());
}

#[test]
fn ranges_follow_the_max_compaction_level() {
    const H: i64 = 3_600_000;
    assert_eq!(DEFAULT_RANGES, [H, 2 * H, 8 * H, 48 * H, 336 * H]);
    assert_eq!(
        ranges_for_max_level(DEFAULT_MAX_COMPACTION_LEVEL).unwrap(),
        DEFAULT_RANGES.to_vec()
    );
    assert_eq!(ranges_for_max_level(0).unwrap(), vec![H]);
    assert_eq!(ranges_for_max_level(1).unwrap(), vec![H, 2 * H]);
    let err = ranges_for_max_level(5).unwrap_err();
    assert_eq!(err.to_string(), "level is bigger then default set of 5");
    assert_eq!(DEFAULT_MAX_INDEX_BYTES, 68_719_476_736);
}

#[test]
fn default_ranges_compact_two_hour_blocks_into_eight_hours() {
    const H: i64 = 3_600_000;
    let two_hours: Vec<Meta> = (0..5)
        .map(|i| b(i + 1, i as i64 * 2 * H, (i as i64 + 1) * 2 * H))
        .collect();
    assert_eq!(
        plan(&two_hours, &DEFAULT_RANGES, &HashSet::new()),
        pick(&two_hours, &[1, 2, 3, 4])
    );
    // With max level 1 (ranges [1h, 2h]) 2h blocks are final.
    let ranges = ranges_for_max_level(1).unwrap();
    assert!(plan(&two_hours, &ranges, &HashSet::new()).is_empty());
    // Tombstones: a block of at least 8h (ranges[5 / 2]) is rewritten alone.
    let metas = vec![tomb(b(1, 0, 8 * H), 100, 6), b(2, 8 * H, 10 * H)];
    assert_eq!(
        plan(&metas, &DEFAULT_RANGES, &HashSet::new()),
        pick(&metas, &[1])
    );
    // 5 / (100 + 1) is not above 5%, nor is 1 / (19 + 1).
    let metas = vec![tomb(b(1, 0, 8 * H), 100, 5), b(2, 8 * H, 10 * H)];
    assert!(plan(&metas, &DEFAULT_RANGES, &HashSet::new()).is_empty());
    let metas = vec![tomb(b(1, 0, 8 * H), 19, 1), b(2, 8 * H, 10 * H)];
    assert!(plan(&metas, &DEFAULT_RANGES, &HashSet::new()).is_empty());
    let metas = vec![tomb(b(1, 0, 8 * H), 18, 1), b(2, 8 * H, 10 * H)];
    assert_eq!(
        plan(&metas, &DEFAULT_RANGES, &HashSet::new()),
        pick(&metas, &[1])
    );
}

/// A marked newest block is still the newest: it is left out, and the block
/// before it may be rewritten for its tombstones.
#[test]
fn marked_newest_block_leaves_the_one_before_eligible() {
    let metas = vec![tomb(b(1, 0, 540), 10, 3), b(2, 540, 560)];
    assert_eq!(plan(&metas, &RANGES, &set(&[2])), pick(&metas, &[1]));
    // The newest block is never compacted by range, marked or not.
    assert!(plan(&fill_parent()[..3], &RANGES, &set(&[3])).is_empty());
}

#[test]
fn degenerate_inputs_plan_nothing() {
    assert!(plan(&[], &RANGES, &HashSet::new()).is_empty());
    assert!(plan(&fill_parent(), &[], &HashSet::new()).is_empty());
    let metas = vec![tomb(b(1, 0, 540), 10, 3), b(2, 540, 560)];
    assert!(plan(&metas, &[], &HashSet::new()).is_empty());
    assert!(plan(&fill_parent(), &[20, 0], &HashSet::new()).is_empty());
    let far = vec![
        b(1, i64::MIN, i64::MIN + 20),
        b(2, i64::MAX - 40, i64::MAX - 20),
    ];
    assert!(plan(&far, &RANGES, &HashSet::new()).is_empty());
}

#[test]
fn split_by_range_groups_aligned_blocks() {
    let metas = [
        b(1, 0, 10),
        b(2, 10, 20),
        b(3, 50, 60),
        b(4, 90, 100),
        b(5, 100, 140),
    ];
    let refs: Vec<&Meta> = metas.iter().collect();
    let groups: Vec<Vec<Ulid>> = split_by_range(&refs, 30)
        .into_iter()
        .map(|g| g.iter().map(|m| m.block.ulid).collect())
        .collect();
    // 100-140 spans two ranges of 30 and is skipped.
    assert_eq!(groups, vec![vec![id(1), id(2)], vec![id(3)], vec![id(4)]]);
    // Negative times align downwards.
    let metas = [b(1, -30, -20), b(2, -20, -1), b(3, -1, 5)];
    let refs: Vec<&Meta> = metas.iter().collect();
    let groups: Vec<Vec<Ulid>> = split_by_range(&refs, 30)
        .into_iter()
        .map(|g| g.iter().map(|m| m.block.ulid).collect())
        .collect();
    assert_eq!(groups, vec![vec![id(1), id(2)]]);
}
