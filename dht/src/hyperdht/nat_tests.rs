use super::*;

fn sa(host: [u8; 4], port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(host), port)
}
fn node(i: u8) -> SocketAddrV4 {
    sa([20, 0, 0, i], 49737)
}

/// Feeds reflexive addresses from distinct nodes; returns the verdict after each.
fn feed(nat: &mut NatAnalyzer, seen: &[SocketAddrV4]) -> Vec<Firewall> {
    seen.iter()
        .enumerate()
        .map(|(i, a)| {
            nat.add(*a, node(i as u8 + 1));
            nat.firewall()
        })
        .collect()
}

#[test]
fn one_port_three_times_is_consistent_and_resolves_at_once() {
    let mut nat = NatAnalyzer::new(true);
    let me = sa([30, 0, 0, 1], 4000);
    let v = feed(&mut nat, &[me, me, me]);
    assert_eq!(
        v,
        [Firewall::Unknown, Firewall::Unknown, Firewall::Consistent]
    );
    assert!(nat.is_resolved());
    assert_eq!(nat.addresses(), Some(&[me][..]));
}

#[test]
fn a_new_port_every_time_is_random_and_resolves_at_four_samples() {
    let mut nat = NatAnalyzer::new(true);
    let seen: Vec<_> = (1..=4).map(|p| sa([30, 0, 0, 1], 4000 + p)).collect();
    let v = feed(&mut nat, &seen[..3]);
    assert_eq!(v[2], Firewall::Random);
    assert!(!nat.is_resolved(), "RANDOM waits for all four samples");
    feed_one(&mut nat, seen[3], node(9));
    assert!(nat.is_resolved());
    assert_eq!(nat.addresses(), Some(&[sa([30, 0, 0, 1], 0)][..]));
}

fn feed_one(nat: &mut NatAnalyzer, a: SocketAddrV4, from: SocketAddrV4) {
    nat.add(a, from);
}

#[test]
fn a_port_seen_twice_on_one_host_becomes_random_after_the_fourth_sample() {
    let mut nat = NatAnalyzer::new(true);
    let h = [30, 0, 0, 1];
    let v = feed(&mut nat, &[sa(h, 1), sa(h, 1), sa(h, 2), sa(h, 3)]);
    assert_eq!(
        v,
        [
            Firewall::Unknown,
            Firewall::Unknown,
            Firewall::Unknown,
            Firewall::Random
        ]
    );
}

#[test]
fn two_hosts_each_seen_twice_are_consistent() {
    let mut nat = NatAnalyzer::new(true);
    let (a, b) = (sa([30, 0, 0, 1], 1), sa([30, 0, 0, 2], 7));
    let v = feed(&mut nat, &[a, b, a, b]);
    assert_eq!(v[2], Firewall::Unknown);
    assert_eq!(v[3], Firewall::Consistent);
    assert_eq!(nat.addresses(), Some(&[a, b][..]));
}

#[test]
fn two_hits_and_no_rule_waits_for_a_fifth_sample() {
    let mut nat = NatAnalyzer::new(true);
    let (a, b, c, d) = (
        sa([30, 0, 0, 1], 1),
        sa([30, 0, 0, 2], 7),
        sa([30, 0, 0, 3], 7),
        sa([30, 0, 0, 4], 7),
    );
    let v = feed(&mut nat, &[a, a, b, c, d]);
    assert_eq!(v[3], Firewall::Unknown, "max 2, several hosts, 4 samples");
    assert_eq!(v[4], Firewall::Random, "more than 4 samples");
}

#[test]
fn not_firewalled_is_open_from_the_first_sample() {
    let mut nat = NatAnalyzer::new(false);
    assert_eq!(nat.firewall(), Firewall::Open);
    nat.add(sa([30, 0, 0, 1], 1), node(1));
    assert_eq!(nat.firewall(), Firewall::Open);
    assert!(nat.is_resolved());
    nat.set_firewalled(true);
    assert_eq!(
        nat.firewall(),
        Firewall::Unknown,
        "too few samples for a verdict"
    );
}

#[test]
fn one_sample_per_source_and_frozen_verdicts_stay() {
    let mut nat = NatAnalyzer::new(true);
    let me = sa([30, 0, 0, 1], 4000);
    for _ in 0..5 {
        nat.add(me, node(1));
    }
    assert_eq!(nat.sampled(), 1);
    nat.freeze();
    nat.add(me, node(2));
    nat.add(me, node(3));
    assert_eq!(nat.firewall(), Firewall::Unknown, "frozen");
    nat.unfreeze();
    assert_eq!(nat.firewall(), Firewall::Consistent);
}

#[test]
fn sources_are_bounded() {
    let mut nat = NatAnalyzer::new(true);
    for i in 0..(MAX_VISITED as u32 + 50) {
        let from = SocketAddrV4::new(Ipv4Addr::from(0x1400_0000 + i), 1);
        nat.add(sa([30, 0, 0, 1], (i % 60_000) as u16 + 1), from);
    }
    assert_eq!(nat.sampled(), MAX_VISITED);
}

#[test]
fn sampling_skips_the_newest_five_of_a_large_table_and_walks_twice() {
    let nodes: Vec<_> = (1..=20).map(node).collect();
    let mut nat = NatAnalyzer::new(true);
    let first = nat.start_sampling(&nodes, 20);
    assert_eq!(first, nodes[5..9].to_vec());
    // All four fail: the second walk pings the next four.
    let mut second = Vec::new();
    for _ in 0..4 {
        second.extend(nat.on_ping_failed());
    }
    assert_eq!(second, nodes[9..13].to_vec());
    assert!(!nat.is_resolved());
    // Those fail too: no third walk; the analysis gives up without a verdict.
    let mut third = Vec::new();
    for _ in 0..4 {
        third.extend(nat.on_ping_failed());
    }
    assert!(third.is_empty());
    assert!(nat.is_resolved());
    assert_eq!(nat.firewall(), Firewall::Unknown);
}

#[test]
fn sampling_a_small_table_uses_every_node_and_resolves_on_a_verdict() {
    let nodes: Vec<_> = (1..=4).map(node).collect();
    let mut nat = NatAnalyzer::new(true);
    assert_eq!(nat.start_sampling(&nodes, 4), nodes);
    let me = sa([30, 0, 0, 1], 4000);
    for n in &nodes[..3] {
        assert!(nat.on_pong(me, *n).is_empty());
    }
    assert!(nat.is_resolved());
    assert_eq!(nat.firewall(), Firewall::Consistent);
}

#[test]
fn sampling_an_empty_table_retries_once_then_resolves() {
    let mut nat = NatAnalyzer::new(true);
    assert!(nat.start_sampling(&[], 0).is_empty());
    assert!(nat.is_resolved());
}
