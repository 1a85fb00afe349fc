//! Replays the committed `persistent_ops` fuzz corpus through the fuzz oracle
//! (`dht::hyperdht::fuzzing::persistent_ops`), plus a deterministic sweep of pseudo-random
//! inputs, so plain `cargo test` covers the store's operation sequences.

mod replay;

#[test]
fn persistent_ops_corpus_replays_cleanly() {
    replay::corpus("persistent_ops", 7, dht::hyperdht::fuzzing::persistent_ops);
}

#[test]
fn persistent_ops_survive_pseudo_random_inputs() {
    replay::pseudo_random(
        0x0bad_cafe_f00d_1234,
        400,
        2,
        dht::hyperdht::fuzzing::persistent_ops,
    );
}
