#![allow(clippy::disallowed_methods)] // an origin for virtual time

use super::*;

fn addr(p: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], p))
}

fn run(net: &mut Net, n: usize, size: usize) -> Vec<Datagram> {
    let (a, b) = (addr(1), addr(2));
    for i in 0..n {
        let mut d = vec![0u8; size];
        d[..8].copy_from_slice(&(i as u64).to_le_bytes());
        net.send(a, b, &d);
        net.advance(Duration::from_micros(100));
    }
    let mut out = Vec::new();
    while let Some(t) = net.next_delivery() {
        net.advance_to(t);
        while let Some(d) = net.poll_deliver() {
            out.push(d);
        }
    }
    out
}

fn ids(v: &[Datagram]) -> Vec<u64> {
    v.iter()
        .map(|d| u64::from_le_bytes(d.data[..8].try_into().unwrap()))
        .collect()
}

#[test]
fn clean_link_delivers_in_order_after_delay() {
    let start = Instant::now();
    let mut net = Net::new(start, 1);
    net.set_default_link(LinkConfig {
        delay: Duration::from_millis(10),
        ..Default::default()
    });
    let out = run(&mut net, 100, 64);
    assert_eq!(ids(&out), (0..100).collect::<Vec<_>>());
    assert_eq!(
        net.elapsed(),
        Duration::from_micros(9_900) + Duration::from_millis(10)
    );
}

#[test]
fn same_seed_same_outcome_and_loss_rate_close() {
    let cfg = LinkConfig {
        loss: Loss::Random(0.2),
        jitter: Duration::from_millis(5),
        duplicate: 0.05,
        ..Default::default()
    };
    let mk = |seed| {
        let mut n = Net::new(Instant::now(), seed);
        n.set_default_link(cfg.clone());
        n
    };
    let (mut n1, mut n2) = (mk(7), mk(7));
    let a = ids(&run(&mut n1, 10_000, 16));
    let b = ids(&run(&mut n2, 10_000, 16));
    assert_eq!(a, b);
    let c = n1.counters(addr(1), addr(2));
    assert!((1800..2200).contains(&c.lost), "lost {}", c.lost);
    assert!((350..650).contains(&c.duplicated), "dup {}", c.duplicated);
    let mut sorted = a.clone();
    sorted.sort();
    assert_ne!(a, sorted, "jitter must reorder");
}

#[test]
fn bursty_loss_has_average_rate_and_bursts() {
    let mut net = Net::new(Instant::now(), 3);
    net.set_default_link(LinkConfig {
        loss: Loss::bursty(0.1, 4.0),
        ..Default::default()
    });
    let got = ids(&run(&mut net, 20_000, 16));
    let lost = 20_000 - got.len();
    assert!((1500..2500).contains(&lost), "lost {lost}");
    // count gaps: mean burst should be well above 1
    let mut bursts = 0;
    let mut prev = None;
    for &i in &got {
        if let Some(p) = prev
            && i != p + 1
        {
            bursts += 1;
        }
        prev = Some(i);
    }
    let mean = lost as f64 / bursts as f64;
    assert!(mean > 2.5, "mean burst {mean}");
}

#[test]
fn mtu_and_blackhole_drop() {
    let mut net = Net::new(Instant::now(), 3);
    net.set_default_link(LinkConfig {
        mtu: Some(100),
        blackholes: vec![(Duration::from_millis(2), Duration::from_millis(4))],
        ..Default::default()
    });
    let out = run(&mut net, 60, 64);
    assert_eq!(out.len(), 40);
    let out = run(&mut net, 10, 101);
    assert!(out.is_empty());
    let c = net.counters(addr(1), addr(2));
    assert_eq!((c.blackholed, c.too_big), (20, 10));
}

#[test]
fn rate_limit_spaces_deliveries_and_tail_drops() {
    let mut net = Net::new(Instant::now(), 3);
    net.set_default_link(LinkConfig {
        rate: Some(1_000_000),
        queue_bytes: 10_000,
        ..Default::default()
    });
    let (a, b) = (addr(1), addr(2));
    for _ in 0..20 {
        net.send(a, b, &[0u8; 1000]);
    }
    let c = net.counters(a, b);
    assert_eq!(c.queue_dropped, 10);
    let mut times = Vec::new();
    while let Some(t) = net.next_delivery() {
        net.advance_to(t);
        while net.poll_deliver().is_some() {
            times.push(net.elapsed());
        }
    }
    assert_eq!(times.len(), 10);
    assert_eq!(times[9], Duration::from_millis(10));
}

#[test]
fn stateless_default_links_keep_no_per_link_state_but_count_totals() {
    let start = Instant::now();
    let mut net = Net::new(start, 7).with_stateless_default_links();
    net.set_default_link(LinkConfig {
        delay: Duration::from_millis(5),
        loss: Loss::Random(0.5),
        ..LinkConfig::default()
    });
    let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
    let b: SocketAddr = "10.0.0.2:1".parse().unwrap();
    for _ in 0..1000 {
        net.send(a, b, &[1, 2, 3]);
    }
    net.advance(Duration::from_millis(5));
    let mut got = 0;
    while net.poll_deliver().is_some() {
        got += 1;
    }
    let t = net.totals();
    assert_eq!(t.sent, 1000);
    assert_eq!(t.delivered, got);
    assert_eq!(t.lost + t.delivered, 1000);
    assert!((400..600).contains(&t.lost), "lost {}", t.lost);
    // Nothing was kept per link.
    assert_eq!(net.counters(a, b), Counters::default());
    // A configured link still keeps its own counters.
    net.set_link(a, b, LinkConfig::default());
    net.send(a, b, &[1]);
    assert_eq!(net.counters(a, b).sent, 1);
    assert_eq!(net.totals().sent, 1001);
}
