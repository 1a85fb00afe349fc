//! The harness itself: a JS testnet starts, reports its nodes, and goes away when dropped.

use interop_tests::Testnet;

#[test]
fn testnet_starts_and_reports_its_nodes() {
    let net = Testnet::start(4).expect("JS testnet");
    assert_eq!(net.nodes.len(), 4);
    assert_eq!(net.nodes[0], net.bootstrap);
    for n in &net.nodes {
        assert!(n.ip().is_loopback(), "{n} is not on loopback");
        assert_ne!(n.port(), 0);
    }
    assert!(
        net.process.finish(std::time::Duration::from_secs(10)),
        "testnet.js did not exit cleanly"
    );
}
