//! Replays the committed `dht_node` fuzz corpus through the fuzz oracle, plus a deterministic
//! sweep of pseudo-random inputs, so plain `cargo test` covers the request handler.

mod replay;

#[test]
fn dht_node_corpus_replays_cleanly() {
    replay::corpus("dht_node", 9, dht::rpc::fuzzing::dht_node);
}

#[test]
fn dht_node_survives_pseudo_random_inputs() {
    replay::pseudo_random(0x1234_5678_9abc_def0, 600, 3, dht::rpc::fuzzing::dht_node);
}
