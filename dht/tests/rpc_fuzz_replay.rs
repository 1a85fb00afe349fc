//! Replays the committed `dht_node` fuzz corpus through the fuzz oracle, plus a deterministic
//! sweep of pseudo-random inputs, so plain `cargo test` covers the request handler.

use std::path::Path;

#[test]
fn dht_node_corpus_replays_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/dht_node");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus dir") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read");
        dht::rpc::fuzzing::dht_node(&data);
        n += 1;
    }
    assert!(n >= 9, "corpus has {n} inputs");
}

#[test]
fn dht_node_survives_pseudo_random_inputs() {
    let mut x: u64 = 0x1234_5678_9abc_def0;
    for len in 0..600usize {
        let data: Vec<u8> = (0..len * 3)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        dht::rpc::fuzzing::dht_node(&data);
    }
}
