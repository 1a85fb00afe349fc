use std::collections::BTreeSet;

use proptest::prelude::*;

use super::range_set::SeqRanges;

/// Values as offsets from `base`, so the model can be an ordinary ordered set.
fn model_ranges(model: &BTreeSet<u32>, base: u32) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &v in model {
        match out.last_mut() {
            Some(r) if r.1 == v => r.1 = v + 1,
            _ => out.push((v, v + 1)),
        }
    }
    out.into_iter()
        .map(|(s, e)| (base.wrapping_add(s), base.wrapping_add(e)))
        .collect()
}

fn model_first_gap(model: &BTreeSet<u32>, from: u32, to: u32) -> Option<(u32, u32)> {
    let start = (from..to).find(|v| !model.contains(v))?;
    let end = (start..to).find(|v| model.contains(v)).unwrap_or(to);
    Some((start, end))
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u32, u32),
    RemoveBelow(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..300, 0u32..40).prop_map(|(s, l)| Op::Insert(s, s + l)),
        1 => (0u32..300).prop_map(Op::RemoveBelow),
    ]
}

proptest! {
    /// Against a plain set, across the 2^32 wrap: the same members, merged into maximal ranges,
    /// and the same gaps.
    #[test]
    fn matches_a_plain_set(
        base in prop_oneof![Just(0u32), Just(u32::MAX - 150), any::<u32>()],
        ops in proptest::collection::vec(op(), 0..60),
        probes in proptest::collection::vec((0u32..320, 0u32..60), 8),
    ) {
        let mut set = SeqRanges::default();
        let mut model = BTreeSet::new();
        let mut floor = 0u32;
        for op in ops {
            match op {
                Op::Insert(s, e) => {
                    let s = s.max(floor);
                    let e = e.max(s);
                    set.insert(base.wrapping_add(s), base.wrapping_add(e));
                    model.extend(s..e);
                }
                Op::RemoveBelow(v) => {
                    let v = v.max(floor);
                    floor = v;
                    set.remove_below(base.wrapping_add(v));
                    model.retain(|&x| x >= v);
                }
            }
            let got: Vec<_> = set.iter().collect();
            prop_assert_eq!(&got, &model_ranges(&model, base));
            prop_assert_eq!(set.len(), got.len());
            prop_assert_eq!(set.is_empty(), model.is_empty());
        }
        for (from, len) in probes {
            let from = from.max(floor);
            let to = from + len;
            prop_assert_eq!(set.contains(base.wrapping_add(from)), model.contains(&from));
            let want = model_first_gap(&model, from, to)
                .map(|(s, e)| (base.wrapping_add(s), base.wrapping_add(e)));
            prop_assert_eq!(set.first_gap(base.wrapping_add(from), base.wrapping_add(to)), want);
        }
    }
}

#[test]
fn merges_neighbours_and_fills_holes() {
    let mut set = SeqRanges::default();
    set.insert(10, 12);
    set.insert(14, 16);
    set.insert(20, 21);
    assert_eq!(
        set.iter().collect::<Vec<_>>(),
        [(10, 12), (14, 16), (20, 21)]
    );
    // touching ranges merge; one insert may swallow several
    set.insert(12, 14);
    assert_eq!(set.iter().collect::<Vec<_>>(), [(10, 16), (20, 21)]);
    set.insert(5, 30);
    assert_eq!(set.iter().collect::<Vec<_>>(), [(5, 30)]);
    assert_eq!(set.first_gap(0, 40), Some((0, 5)));
    assert_eq!(set.first_gap(7, 40), Some((30, 40)));
    assert_eq!(set.first_gap(7, 29), None);
    set.remove_below(29);
    assert_eq!(set.iter().collect::<Vec<_>>(), [(29, 30)]);
    set.remove_below(30);
    assert!(set.is_empty());
}
