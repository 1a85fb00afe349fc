//! Replays the committed `holepunch_ops` fuzz corpus through the fuzz oracle
//! (`dht::hyperdht::holepunch::fuzzing::holepunch_ops`), plus a deterministic sweep of
//! pseudo-random inputs, so plain `cargo test` covers both punch machines' operation sequences.

mod replay;

#[test]
fn holepunch_ops_corpus_replays_cleanly() {
    replay::corpus(
        "holepunch_ops",
        6,
        dht::hyperdht::holepunch::fuzzing::holepunch_ops,
    );
}

#[test]
fn holepunch_ops_survive_pseudo_random_inputs() {
    replay::pseudo_random(
        0x5eed_f00d_0bad_cafe,
        400,
        2,
        dht::hyperdht::holepunch::fuzzing::holepunch_ops,
    );
}
