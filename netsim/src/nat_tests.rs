#![allow(clippy::disallowed_methods)] // an origin for virtual time

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::{Datagram, NatConfig, NatId, Net};

const PUBLIC: [u8; 4] = [20, 0, 0, 1];

fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}
fn sa(a: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(ip(a), port)
}
/// Inside hosts A and B.
fn a() -> SocketAddr {
    sa([192, 168, 1, 2], 5000)
}
fn b() -> SocketAddr {
    sa([192, 168, 1, 3], 6000)
}
/// Outside hosts.
fn r1() -> SocketAddr {
    sa([30, 0, 0, 1], 7000)
}
fn r2() -> SocketAddr {
    sa([30, 0, 0, 2], 7000)
}

fn site(seed: u64, cfg: NatConfig) -> (Net, NatId) {
    let mut net = Net::new(Instant::now(), seed);
    let inside = [a().ip(), b().ip()];
    let id = net.add_nat(ip(PUBLIC), &inside, cfg);
    (net, id)
}

fn drain(net: &mut Net) -> Vec<Datagram> {
    let mut out = Vec::new();
    while let Some(t) = net.next_delivery() {
        net.advance_to(t);
        while let Some(d) = net.poll_deliver() {
            out.push(d);
        }
    }
    out
}

/// Sends one datagram and returns what arrived.
fn one(net: &mut Net, from: SocketAddr, to: SocketAddr) -> Option<Datagram> {
    net.send(from, to, b"x");
    let mut got = drain(net);
    assert!(got.len() <= 1, "{got:?}");
    got.pop()
}

#[test]
fn consistent_nat_keeps_one_public_port_for_every_destination() {
    let (mut net, id) = site(1, NatConfig::consistent());
    let d1 = one(&mut net, a(), r1()).expect("outbound passes");
    let d2 = one(&mut net, a(), r2()).expect("outbound passes");
    assert_eq!(d1.from, d2.from, "endpoint-independent mapping");
    assert_eq!(
        d1.from,
        sa(PUBLIC, a().port()),
        "MASQUERADE keeps a free port"
    );
    // r1 replies: admitted and rewritten to the inside host.
    let back = one(&mut net, r1(), d1.from).expect("a reply passes");
    assert_eq!((back.from, back.to), (r1(), a()));
    // A host A never sent to is dropped, even on the mapped port.
    let stranger = sa([30, 0, 0, 9], 7000);
    assert_eq!(one(&mut net, stranger, d1.from), None);
    // So is r1 from another port (address-and-port-dependent filtering).
    assert_eq!(one(&mut net, sa([30, 0, 0, 1], 7001), d1.from), None);
    let c = net.nat_counters(id);
    assert_eq!(c.translations, 2);
    assert_eq!(c.outbound, 2);
    assert_eq!(c.inbound, 1);
    assert_eq!(c.unsolicited_dropped, 2);
}

#[test]
fn random_nat_gives_each_destination_its_own_port() {
    let (mut net, id) = site(2, NatConfig::random());
    let d1 = one(&mut net, a(), r1()).expect("outbound passes");
    let d2 = one(&mut net, a(), r2()).expect("outbound passes");
    assert_eq!(d1.from.ip(), ip(PUBLIC));
    assert_ne!(d1.from.port(), d2.from.port(), "a new port per destination");
    // Again to r1: the live flow keeps its port.
    assert_eq!(one(&mut net, a(), r1()).map(|d| d.from), Some(d1.from));
    // r1 is admitted on its own flow's port, not on r2's.
    assert_eq!(one(&mut net, r1(), d1.from).map(|d| d.to), Some(a()));
    assert_eq!(one(&mut net, r1(), d2.from), None);
    assert_eq!(net.nat_counters(id).translations, 2);
    assert_eq!(net.nat_counters(id).unsolicited_dropped, 1);
}

#[test]
fn random_ports_replay_from_the_seed() {
    let ports = |seed| {
        let (mut net, _) = site(seed, NatConfig::random());
        (1..=20u8)
            .map(|i| one(&mut net, a(), sa([30, 0, 1, i], 9)).map(|d| d.from.port()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ports(7), ports(7));
    assert_ne!(ports(7), ports(8));
}

#[test]
fn firewall_translates_nothing_and_admits_only_replies() {
    let host = sa(PUBLIC, 4000);
    let mut net = Net::new(Instant::now(), 3);
    let id = net.add_nat(host.ip(), &[], NatConfig::firewall());
    // Unsolicited: dropped.
    assert_eq!(one(&mut net, r1(), host), None);
    // The host opens a flow to r1: no translation.
    assert_eq!(one(&mut net, host, r1()).map(|d| d.from), Some(host));
    assert_eq!(one(&mut net, r1(), host).map(|d| d.to), Some(host));
    // r2 still cannot get in; nor r1 from another port.
    assert_eq!(one(&mut net, r2(), host), None);
    assert_eq!(one(&mut net, sa([30, 0, 0, 1], 1), host), None);
    let c = net.nat_counters(id);
    assert_eq!(
        (c.unsolicited_dropped, c.inbound, c.translations),
        (3, 1, 1)
    );
}

#[test]
fn hosts_of_one_site_talk_directly() {
    let (mut net, id) = site(4, NatConfig::consistent());
    let d = one(&mut net, a(), b()).expect("LAN traffic passes");
    assert_eq!((d.from, d.to), (a(), b()));
    assert_eq!(net.nat_counters(id), Default::default());
}

#[test]
fn private_addresses_are_unreachable_from_outside() {
    let (mut net, id) = site(5, NatConfig::consistent());
    one(&mut net, a(), r1()).expect("outbound passes");
    assert_eq!(one(&mut net, r1(), a()), None);
    assert_eq!(net.nat_counters(id).unroutable, 1);
}

/// A and B each open a flow to the outside, then reach each other through the box's public
/// address: with hairpinning, after both sent (the filter still applies); without, never.
fn hairpin(on: bool) -> (Option<Datagram>, crate::NatCounters) {
    let (mut net, id) = site(6, NatConfig::consistent().hairpin(on));
    one(&mut net, a(), r1());
    one(&mut net, b(), r1());
    let (pa, pb) = (sa(PUBLIC, a().port()), sa(PUBLIC, b().port()));
    // B -> A's public address: opens B's flow to P_A; A has no flow to P_B yet.
    assert_eq!(one(&mut net, b(), pa), None);
    // A -> B's public address: admitted by B's flow when hairpinning.
    (one(&mut net, a(), pb), net.nat_counters(id))
}

#[test]
fn hairpin_on_reaches_a_neighbour_through_the_public_address() {
    let (got, c) = hairpin(true);
    let d = got.expect("hairpinned");
    assert_eq!(
        d.from,
        sa(PUBLIC, a().port()),
        "the neighbour sees A's public address"
    );
    assert_eq!(d.to, b());
    assert_eq!((c.hairpinned, c.hairpin_dropped), (2, 0));
    assert_eq!(
        c.unsolicited_dropped, 1,
        "the first hairpinned datagram met no flow"
    );
}

#[test]
fn hairpin_off_drops_datagrams_to_the_own_public_address() {
    let (got, c) = hairpin(false);
    assert_eq!(got, None);
    assert_eq!((c.hairpinned, c.hairpin_dropped), (2, 2));
}

#[test]
fn flows_expire_after_the_mapping_timeout() {
    let t = Duration::from_secs(30);
    let (mut net, id) = site(9, NatConfig::random().mapping_timeout(t));
    let first = one(&mut net, a(), r1()).expect("outbound passes").from;
    // A reply inside the timeout passes and refreshes the flow.
    net.advance(Duration::from_secs(20));
    assert!(one(&mut net, r1(), first).is_some());
    net.advance(Duration::from_secs(20));
    assert!(
        one(&mut net, r1(), first).is_some(),
        "refreshed by the reply"
    );
    // Silence for the whole timeout: gone.
    net.advance(t);
    assert_eq!(one(&mut net, r1(), first), None);
    assert_eq!(net.nat_flows(id), 0);
    assert_eq!(net.nat_counters(id).expired, 1);
    // A new flow to the same host gets a new random port.
    let second = one(&mut net, a(), r1()).expect("outbound passes").from;
    assert_ne!(first, second);
}

#[test]
fn consistent_nat_gets_its_port_back_after_expiry() {
    let (mut net, id) = site(10, NatConfig::consistent());
    let first = one(&mut net, a(), r1()).expect("outbound").from;
    net.advance(crate::nat::DEFAULT_MAPPING_TIMEOUT);
    assert_eq!(one(&mut net, r1(), first), None);
    let second = one(&mut net, a(), r2()).expect("outbound").from;
    assert_eq!(first, second, "the inside port is free again and kept");
    assert_eq!(net.nat_counters(id).expired, 1);
}

#[test]
fn low_ttl_opens_the_flow_without_reaching_the_far_side() {
    let (mut net, id) = site(11, NatConfig::consistent());
    net.set_internet_hops(8);
    net.send_with_ttl(a(), r1(), &[0], 5);
    assert!(drain(&mut net).is_empty(), "TTL 5 dies between sites");
    assert_eq!(net.totals().ttl_expired, 1);
    let public = net
        .nat_public_address(id, a(), r1())
        .expect("the box created the flow");
    // The far side's datagram now finds the flow open.
    assert_eq!(one(&mut net, r1(), public).map(|d| d.to), Some(a()));
    // TTL 1 does not even leave the box, and creates no flow.
    net.send_with_ttl(a(), r2(), &[0], 1);
    assert_eq!(net.nat_public_address(id, a(), r2()), None);
    assert_eq!(net.nat_counters(id).ttl_expired, 1);
    // The default TTL crosses.
    assert!(one(&mut net, a(), r2()).is_some());
}

#[test]
fn a_full_table_refuses_new_flows() {
    let mut cfg = NatConfig::random();
    cfg.max_flows = 3;
    let (mut net, id) = site(12, cfg);
    for i in 1..=5u8 {
        net.send(a(), sa([30, 0, 2, i], 1), b"x");
    }
    assert_eq!(drain(&mut net).len(), 3);
    assert_eq!(net.nat_counters(id).table_full_dropped, 2);
    assert_eq!(net.nat_flows(id), 3);
}
