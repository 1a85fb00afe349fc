//! A set of 32-bit sequence numbers kept as sorted, disjoint, non-adjacent half-open ranges.
//!
//! A receiver's out-of-order packets and a sender's SACKed packets come in long runs, so a
//! handful of ranges describes thousands of sequence numbers: building an ACK reads the first
//! [`MAX_SACKS`](super::packet::MAX_SACKS) ranges instead of scanning every sequence number
//! (libudx `src/udx.c send_ack` scans up to 65,536), and a SACK block costs only the packets it
//! newly covers. Sequence numbers wrap, so every value in one set must lie within 2^31 of every
//! other (both users keep theirs within the window past their cumulative ack); comparisons use
//! [`seq_lt`]. Lookups are binary searches; inserting a range that is neither an extension of
//! an existing one nor at either end moves the ranges after it (rare: it needs a new hole).

use std::collections::VecDeque;

use super::packet::seq_lt;

/// See the module docs.
#[derive(Debug, Clone, Default)]
pub(crate) struct SeqRanges {
    /// `(start, end)`, half-open, ascending in sequence space, never empty, never touching.
    ranges: VecDeque<(u32, u32)>,
}

fn le(a: u32, b: u32) -> bool {
    !seq_lt(b, a)
}

impl SeqRanges {
    /// Whether the set is empty.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of disjoint ranges.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Empties the set.
    pub(crate) fn clear(&mut self) {
        self.ranges.clear();
    }

    /// The ranges in ascending order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = (u32, u32)> + '_ {
        self.ranges.iter().copied()
    }

    /// The lowest range.
    pub(crate) fn first(&self) -> Option<(u32, u32)> {
        self.ranges.front().copied()
    }

    /// The highest range.
    pub(crate) fn last(&self) -> Option<(u32, u32)> {
        self.ranges.back().copied()
    }

    /// Whether `seq` is in the set.
    #[cfg(test)]
    pub(crate) fn contains(&self, seq: u32) -> bool {
        let i = self.ranges.partition_point(|&(_, e)| le(e, seq));
        self.ranges.get(i).is_some_and(|&(s, _)| le(s, seq))
    }

    /// Adds `start..end` (nothing if empty).
    pub(crate) fn insert(&mut self, start: u32, end: u32) {
        if !seq_lt(start, end) {
            return;
        }
        // First range that ends at or after `start`: it overlaps or touches the new one, or
        // lies wholly after it.
        let i = self.ranges.partition_point(|&(_, e)| seq_lt(e, start));
        // Ranges from i up to j overlap or touch start..end.
        let mut j = i;
        let (mut s, mut e) = (start, end);
        while let Some(&(rs, re)) = self.ranges.get(j) {
            if seq_lt(end, rs) {
                break;
            }
            if seq_lt(rs, s) {
                s = rs;
            }
            if seq_lt(e, re) {
                e = re;
            }
            j += 1;
        }
        match j - i {
            0 => self.ranges.insert(i, (s, e)),
            n => {
                if let Some(r) = self.ranges.get_mut(i) {
                    *r = (s, e);
                }
                if n > 1 {
                    self.ranges.drain(i + 1..j);
                }
            }
        }
    }

    /// Drops every value before `seq`.
    pub(crate) fn remove_below(&mut self, seq: u32) {
        while let Some(r) = self.ranges.front_mut() {
            if le(r.1, seq) {
                self.ranges.pop_front();
            } else {
                if seq_lt(r.0, seq) {
                    r.0 = seq;
                }
                return;
            }
        }
    }

    /// The first part of `from..to` not in the set, if any.
    pub(crate) fn first_gap(&self, from: u32, to: u32) -> Option<(u32, u32)> {
        if !seq_lt(from, to) {
            return None;
        }
        let i = self.ranges.partition_point(|&(_, e)| le(e, from));
        let mut from = from;
        if let Some(&(s, e)) = self.ranges.get(i) {
            if le(s, from) {
                // `from` is inside range i: the gap starts after it
                from = e;
                if !seq_lt(from, to) {
                    return None;
                }
                let next = self.ranges.get(i + 1).map(|&(s, _)| s);
                return Some((from, next.filter(|&s| seq_lt(s, to)).unwrap_or(to)));
            }
            return Some((from, if seq_lt(s, to) { s } else { to }));
        }
        Some((from, to))
    }
}
