//! Feeding the routing table from the network: NAT samples, `_addNodeFromNetwork`, `_addNode`,
//! and the full-row ping-and-replace (`_onfullrow`, `_repingAndSwap`).
//!
//! Contract: methods of the sans-IO [`Node`]; no I/O.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use super::api::Event;
use super::node::Node;
use super::requests::Owner;
use super::routing::{NodeId, TableNode};
use super::wire::InternalCommand;

impl Node {
    pub(crate) fn nat_add(&mut self, host: Ipv4Addr, port: u16) {
        let prev = (self.nat.host, self.nat.port);
        self.nat.add(host, port);
        if prev != (self.nat.host, self.nat.port) {
            let (host, port) = (self.nat.host, self.nat.port);
            self.emit_remote(Event::NatUpdate { host, port });
        }
    }

    pub(crate) fn sample_bootstrap_maybe(&mut self, from: SocketAddrV4, to: SocketAddrV4) {
        if self.non_persistent_samples.len() >= self.config.bootstrap.len().max(1) {
            return;
        }
        if self.non_persistent_samples.contains(&from) {
            return;
        }
        self.non_persistent_samples.push(from);
        self.nat_add(*to.ip(), to.port());
    }

    /// `_addNodeFromNetwork`.
    pub(crate) fn add_node_from_network(
        &mut self,
        now: Instant,
        sample: bool,
        from: SocketAddrV4,
        from_id: Option<NodeId>,
        to: SocketAddrV4,
    ) {
        let Some(id) = from_id else {
            self.sample_bootstrap_maybe(from, to);
            return;
        };
        let tick = self.maintenance.tick();
        if let Some(old) = self.table.get_mut(&id) {
            let mut nat = None;
            if sample
                && (old.sampled == 0
                    || tick.saturating_sub(old.sampled) >= super::maintenance::OLD_NODE)
            {
                old.to = Some(to);
                old.sampled = tick;
                nat = Some(to);
            }
            old.pinged = tick;
            old.seen = tick;
            self.table.touch(&id);
            if let Some(to) = nat {
                self.nat_add(*to.ip(), to.port());
            }
            return;
        }
        self.add_table_node(now, TableNode::new(id, from, Some(to)));
    }

    /// `_addNode`.
    pub(crate) fn add_table_node(&mut self, now: Instant, mut node: TableNode) {
        if node.id == *self.table.id() {
            return;
        }
        let tick = self.maintenance.tick();
        node.added = tick;
        node.pinged = tick;
        node.seen = tick;
        let id = node.id;
        let sample = node.to.filter(|_| node.sampled == 0);
        match self.table.add(node.clone()) {
            super::routing::AddOutcome::Full => {
                self.on_full_row(now, node);
            }
            _ => {
                if let Some(to) = sample {
                    if let Some(n) = self.table.get_mut(&id) {
                        n.sampled = tick;
                    }
                    self.nat_add(*to.ip(), to.port());
                }
            }
        }
    }

    pub(crate) fn remove_node(&mut self, id: &NodeId) {
        self.table.remove(id);
    }

    /// `_onfullrow`: maybe re-ping the row's oldest member and replace it with `newcomer`.
    pub(crate) fn on_full_row(&mut self, now: Instant, newcomer: TableNode) {
        if !self.bootstrapped || !self.maintenance.can_reping() {
            return;
        }
        let tick = self.maintenance.tick();
        let mut oldest: Option<&TableNode> = None;
        for n in self.table.row_nodes(&newcomer.id) {
            if n.pinged == tick {
                continue;
            }
            if oldest
                .is_none_or(|o| o.pinged > n.pinged || (o.pinged == n.pinged && o.added > n.added))
            {
                oldest = Some(n);
            }
        }
        let Some(o) = oldest else { return };
        if tick.saturating_sub(o.pinged) < super::maintenance::RECENT_NODE
            && tick.saturating_sub(o.added) > super::maintenance::OLD_NODE
        {
            return;
        }
        let (old, addr, last_seen) = (o.id, o.addr, o.seen);
        if let Some(n) = self.table.get_mut(&old) {
            n.pinged = tick;
        }
        self.maintenance.reping_started();
        let ok = self.internal_request(
            now,
            addr,
            InternalCommand::Ping,
            None,
            Owner::Reping {
                newcomer: Box::new(newcomer),
                old,
                last_seen,
            },
        );
        if !ok {
            self.maintenance.reping_ended();
        }
    }
}
