//! Shared by the fuzz-corpus replay tests: run a fuzz oracle over a committed corpus and over a
//! deterministic sweep of pseudo-random inputs, so plain `cargo test` covers the target.

use std::path::Path;

/// Feeds every file of `fuzz/corpus/<target>` to `oracle`; fails when the corpus has fewer than
/// `min` inputs (a moved or emptied corpus must not pass silently).
pub(crate) fn corpus(target: &str, min: usize, oracle: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus dir") {
        let path = entry.expect("entry").path();
        oracle(&std::fs::read(&path).expect("read"));
        n += 1;
    }
    assert!(
        n >= min,
        "corpus {target} has {n} inputs, expected at least {min}"
    );
}

/// Feeds `count` xorshift inputs of lengths 0, `stride`, 2 x `stride`, ... to `oracle`.
pub(crate) fn pseudo_random(seed: u64, count: usize, stride: usize, oracle: fn(&[u8])) {
    let mut x = seed;
    for len in 0..count {
        let data: Vec<u8> = (0..len * stride)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        oracle(&data);
    }
}
