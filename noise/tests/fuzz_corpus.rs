//! Replays the committed seed corpora `fuzz/corpus/noise_*/` through the same checks the fuzz
//! targets run (`noise::fuzzing`), so a plain `cargo test` covers them without cargo-fuzz.

use std::path::PathBuf;

type Check = fn(&[u8]);

const TARGETS: &[(&str, Check)] = &[
    ("noise_handshake_message", noise::fuzzing::handshake_message),
    ("noise_frames", noise::fuzzing::frames),
    ("noise_simd", noise::fuzzing::simd),
];

#[test]
fn noise_fuzz_corpora_replay() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    for (name, check) in TARGETS {
        assert!(
            fuzz.join("fuzz_targets")
                .join(format!("{name}.rs"))
                .exists(),
            "{name}.rs missing"
        );
        let dir = fuzz.join("corpus").join(name);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            check(&std::fs::read(entry.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n >= 3, "corpus {name} has only {n} seeds");
    }
}

/// Regenerates the seed files (run with `--ignored`; the committed seeds come from it).
#[test]
#[ignore = "writes fuzz/corpus/noise_*/seed-*.bin"]
fn write_seed_corpora() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (k, (name, bytes)) in noise::fuzzing::seeds().into_iter().enumerate() {
        let dir = fuzz.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{k}.bin")), bytes).unwrap();
    }
}
