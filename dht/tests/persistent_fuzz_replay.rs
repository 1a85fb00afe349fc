//! Replays the committed `persistent_ops` fuzz corpus through the fuzz oracle
//! (`dht::hyperdht::fuzzing::persistent_ops`), plus a deterministic sweep of pseudo-random
//! inputs, so plain `cargo test` covers the store's operation sequences.

use std::path::Path;

#[test]
fn persistent_ops_corpus_replays_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/persistent_ops");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus dir") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read");
        dht::hyperdht::fuzzing::persistent_ops(&data);
        n += 1;
    }
    assert!(n >= 7, "corpus has {n} inputs");
}

#[test]
fn persistent_ops_survive_pseudo_random_inputs() {
    let mut x: u64 = 0x0bad_cafe_f00d_1234;
    for len in 0..400usize {
        let data: Vec<u8> = (0..len * 2)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        dht::hyperdht::fuzzing::persistent_ops(&data);
    }
}
