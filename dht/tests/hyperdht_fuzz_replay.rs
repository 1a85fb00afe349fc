//! Replays the committed `hyperdht_node` fuzz corpus through its oracle
//! (`dht::hyperdht::node_fuzzing::hyperdht_node`), plus a deterministic sweep of pseudo-random
//! scripts, so plain `cargo test` covers the HyperDHT node's client and server paths.

mod replay;

#[test]
fn hyperdht_node_corpus_replays_cleanly() {
    replay::corpus(
        "hyperdht_node",
        18,
        dht::hyperdht::node_fuzzing::hyperdht_node,
    );
}

#[test]
fn hyperdht_node_survives_pseudo_random_scripts() {
    replay::pseudo_random(
        0x6879_7065_7264_6874,
        120,
        4,
        dht::hyperdht::node_fuzzing::hyperdht_node,
    );
}
