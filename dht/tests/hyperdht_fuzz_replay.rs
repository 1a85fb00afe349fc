//! Replays the committed `hyperdht_node` fuzz corpus through the fuzz oracle
//! (`dht::hyperdht::fuzzing::hyperdht_node`), plus a deterministic sweep of pseudo-random
//! inputs, so plain `cargo test` covers a HyperDHT node's datagram, reply and operation paths.

mod replay;

#[test]
fn hyperdht_node_corpus_replays_cleanly() {
    replay::corpus("hyperdht_node", 4, dht::hyperdht::fuzzing::hyperdht_node);
}

#[test]
fn hyperdht_node_survives_pseudo_random_inputs() {
    replay::pseudo_random(
        0x5eed_4444_dead_beef,
        300,
        3,
        dht::hyperdht::fuzzing::hyperdht_node,
    );
}
