//! Replays the committed fuzz seed corpora (`fuzz/corpus/<target>/`) through the same checks
//! the fuzz targets run, so every `cargo test` exercises them without cargo-fuzz.

use std::path::PathBuf;

#[test]
fn codec_fuzz_corpora_replay() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut total = 0;
    for (name, check) in dht::fuzzing::TARGETS {
        let target = fuzz.join("fuzz_targets").join(format!("{name}.rs"));
        assert!(
            target.exists(),
            "fuzz target file {} is missing",
            target.display()
        );
        let dir = fuzz.join("corpus").join(name);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {} missing: {e}", dir.display()));
        let mut n = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            check(&data);
            n += 1;
        }
        assert!(n > 0, "corpus {name} is empty");
        total += n;
    }
    eprintln!("replayed {total} corpus inputs");
}
