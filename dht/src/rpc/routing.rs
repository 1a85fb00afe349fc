//! The Kademlia routing table, as `kademlia-routing-table` 1.0.6 plus dht-rpc's time-ordered
//! node set (`time-ordered-set`).
//!
//! Contract: pure data structure, no I/O, no clock (ticks are passed in by the node). Bounded by
//! construction: 256 rows of at most `k` (JS default 20) entries each, so at most `256 * k` nodes.
//!
//! JS semantics kept: the row of an id is the number of leading bits it shares with the table id
//! (the table id itself maps to row 255); each row is sorted by id; adding to a full row fails
//! (the node then runs dht-rpc's ping-and-replace); `closest` walks rows from the target's row
//! down to row 0, then upwards, taking rows in id order (not an exact XOR sort).

use std::net::SocketAddrV4;

/// A 32-byte node id (`BLAKE2b(addr6)` for persistent nodes).
pub type NodeId = [u8; 32];

/// Number of rows: one per bit of the id (`id.length * 8` in JS).
pub const ROWS: usize = 256;

/// Default bucket size (`k = 20` in kademlia-routing-table).
pub const K: usize = 20;

/// A routing-table member with dht-rpc's bookkeeping (`dht-rpc/index.js` node objects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNode {
    /// The node id.
    pub id: NodeId,
    /// Its address.
    pub addr: SocketAddrV4,
    /// Our address as this node last reported it (NAT sample source).
    pub to: Option<SocketAddrV4>,
    /// Tick of the last NAT sample taken from this node (0 = never).
    pub sampled: u64,
    /// Tick it was added.
    pub added: u64,
    /// Tick of our last interaction with it.
    pub pinged: u64,
    /// Tick we last heard from it.
    pub seen: u64,
    /// DOWN_HINTs received about it.
    pub down_hints: u32,
    /// Position in the time-ordered set (larger = more recently refreshed).
    pub(crate) order: u64,
}

impl TableNode {
    /// A fresh entry for `addr` with id `id`; the ticks are set when it is added.
    pub fn new(id: NodeId, addr: SocketAddrV4, to: Option<SocketAddrV4>) -> Self {
        Self {
            id,
            addr,
            to,
            sampled: 0,
            added: 0,
            pinged: 0,
            seen: 0,
            down_hints: 0,
            order: 0,
        }
    }
}

/// Result of [`RoutingTable::add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// A new entry.
    Added,
    /// An entry with that id existed and was replaced.
    Replaced,
    /// The row is full (`row.emit('full')` in JS); nothing changed.
    Full,
}

/// The routing table (`kademlia-routing-table` `RoutingTable`) fused with dht-rpc's `nodes`
/// time-ordered set: every member has an `order` stamp, refreshed by [`RoutingTable::touch`].
#[derive(Debug, Clone)]
pub struct RoutingTable {
    id: NodeId,
    k: usize,
    rows: Vec<Vec<TableNode>>,
    size: usize,
    order: u64,
}

/// Row of `id` relative to `local`: shared leading bits, 255 for `id == local`.
pub fn row_of(local: &NodeId, id: &NodeId) -> usize {
    for (i, (a, b)) in id.iter().zip(local.iter()).enumerate() {
        if a != b {
            return i * 8 + (a ^ b).leading_zeros() as usize;
        }
    }
    ROWS - 1
}

/// XOR-distance order of `a` and `b` towards `target` (`Query._compare`).
pub fn cmp_distance(target: &NodeId, a: &NodeId, b: &NodeId) -> std::cmp::Ordering {
    for ((t, x), y) in target.iter().zip(a.iter()).zip(b.iter()) {
        if x != y {
            return (t ^ x).cmp(&(t ^ y));
        }
    }
    std::cmp::Ordering::Equal
}

impl RoutingTable {
    /// An empty table centred on `id` with bucket size `k`.
    pub fn new(id: NodeId, k: usize) -> Self {
        Self {
            id,
            k: k.max(1),
            rows: vec![Vec::new(); ROWS],
            size: 0,
            order: 0,
        }
    }

    /// The table's centre.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// Bucket size.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.size
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    fn row(&self, id: &NodeId) -> Option<&Vec<TableNode>> {
        self.rows.get(row_of(&self.id, id))
    }

    fn row_mut(&mut self, id: &NodeId) -> Option<&mut Vec<TableNode>> {
        let i = row_of(&self.id, id);
        self.rows.get_mut(i)
    }

    /// Adds `node` (or replaces the entry with its id) and makes it the latest of the
    /// time-ordered set. A full row leaves the table unchanged.
    pub fn add(&mut self, mut node: TableNode) -> AddOutcome {
        self.order += 1;
        node.order = self.order;
        let k = self.k;
        let Some(row) = self.row_mut(&node.id) else {
            return AddOutcome::Full;
        };
        match row.binary_search_by(|n| n.id.cmp(&node.id)) {
            Ok(i) => {
                if let Some(slot) = row.get_mut(i) {
                    *slot = node;
                }
                AddOutcome::Replaced
            }
            Err(_) if row.len() >= k => AddOutcome::Full,
            Err(i) => {
                row.insert(i, node);
                self.size += 1;
                AddOutcome::Added
            }
        }
    }

    /// Removes the entry with `id`.
    pub fn remove(&mut self, id: &NodeId) -> Option<TableNode> {
        let row = self.row_mut(id)?;
        let i = row.binary_search_by(|n| n.id.cmp(id)).ok()?;
        let n = row.remove(i);
        self.size -= 1;
        Some(n)
    }

    /// The entry with `id`.
    pub fn get(&self, id: &NodeId) -> Option<&TableNode> {
        let row = self.row(id)?;
        let i = row.binary_search_by(|n| n.id.cmp(id)).ok()?;
        row.get(i)
    }

    /// The entry with `id`, mutably.
    pub fn get_mut(&mut self, id: &NodeId) -> Option<&mut TableNode> {
        let row = self.row_mut(id)?;
        let i = row.binary_search_by(|n| n.id.cmp(id)).ok()?;
        row.get_mut(i)
    }

    /// Moves `id` to the latest end of the time-ordered set (`nodes.add(node)`).
    pub fn touch(&mut self, id: &NodeId) {
        self.order += 1;
        let o = self.order;
        if let Some(n) = self.get_mut(id) {
            n.order = o;
        }
    }

    /// The members of the row `id` falls in.
    pub fn row_nodes(&self, id: &NodeId) -> &[TableNode] {
        self.row(id).map(|r| r.as_slice()).unwrap_or(&[])
    }

    /// Up to `k` members near `target`, in JS's bucket order.
    pub fn closest(&self, target: &NodeId, k: usize) -> Vec<&TableNode> {
        let mut out = Vec::with_capacity(k.min(self.size));
        let d = row_of(&self.id, target);
        for i in (0..=d).rev().chain(d + 1..ROWS) {
            if out.len() >= k {
                break;
            }
            if let Some(row) = self.rows.get(i) {
                let missing = k.saturating_sub(out.len()).min(row.len());
                out.extend(row.iter().take(missing));
            }
        }
        out
    }

    /// The member at position `n` of the row-major order (`table.random()` with `n` chosen by the
    /// caller's RNG in `0..len()`).
    pub fn nth(&self, mut n: usize) -> Option<&TableNode> {
        for row in &self.rows {
            if n < row.len() {
                return row.get(n);
            }
            n -= row.len();
        }
        None
    }

    /// All members, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &TableNode> {
        self.rows.iter().flatten()
    }

    /// Members from oldest to latest in the time-ordered set.
    pub fn oldest_first(&self) -> Vec<&TableNode> {
        let mut v: Vec<&TableNode> = self.iter().collect();
        v.sort_by_key(|n| n.order);
        v
    }

    /// Members from latest to oldest (`dht.toArray()`).
    pub fn latest_first(&self) -> Vec<&TableNode> {
        let mut v = self.oldest_first();
        v.reverse();
        v
    }

    /// A new table centred on `id` holding as many of the members as fit (`_updateNetworkState`
    /// copying the table after an id change).
    pub fn recentre(&self, id: NodeId) -> Self {
        let mut t = Self::new(id, self.k);
        for n in self.oldest_first() {
            if n.id == id {
                continue;
            }
            let order = n.order;
            if t.add(n.clone()) != AddOutcome::Full
                && let Some(e) = t.get_mut(&n.id)
            {
                e.order = order;
            }
        }
        t.order = self.order;
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn node(b: u8, c: u8) -> TableNode {
        let mut id = [0u8; 32];
        id[0] = b;
        id[1] = c;
        TableNode::new(
            id,
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, u16::from(b)),
            None,
        )
    }

    #[test]
    fn row_index_counts_shared_bits() {
        let local = [0u8; 32];
        assert_eq!(row_of(&local, &local), 255);
        let mut id = [0u8; 32];
        id[0] = 0x80;
        assert_eq!(row_of(&local, &id), 0);
        id[0] = 0x01;
        assert_eq!(row_of(&local, &id), 7);
        id[0] = 0;
        id[1] = 0x40;
        assert_eq!(row_of(&local, &id), 9);
    }

    #[test]
    fn full_row_rejects_and_keeps_sorted() {
        let mut t = RoutingTable::new([0u8; 32], 2);
        assert_eq!(t.add(node(0x90, 1)), AddOutcome::Added);
        assert_eq!(t.add(node(0x80, 1)), AddOutcome::Added);
        assert_eq!(t.add(node(0xa0, 1)), AddOutcome::Full);
        assert_eq!(t.add(node(0x80, 1)), AddOutcome::Replaced);
        assert_eq!(t.len(), 2);
        let row = t.row_nodes(&node(0x80, 1).id);
        assert!(row[0].id < row[1].id);
    }

    #[test]
    fn closest_walks_down_then_up() {
        let mut t = RoutingTable::new([0u8; 32], 20);
        for b in [0x80u8, 0x40, 0x20, 0x10] {
            t.add(node(b, 0));
        }
        // target in row 1 (0x40..): rows 1, 0, then 2, 3
        let mut target = [0u8; 32];
        target[0] = 0x41;
        let c: Vec<u8> = t.closest(&target, 3).iter().map(|n| n.id[0]).collect();
        assert_eq!(c, vec![0x40, 0x80, 0x20]);
    }

    #[test]
    fn time_order_follows_touch() {
        let mut t = RoutingTable::new([0u8; 32], 20);
        t.add(node(0x80, 0));
        t.add(node(0x40, 0));
        t.touch(&node(0x80, 0).id);
        let l: Vec<u8> = t.latest_first().iter().map(|n| n.id[0]).collect();
        assert_eq!(l, vec![0x80, 0x40]);
    }
}
