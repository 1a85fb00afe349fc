//! Replays every committed fuzz corpus file of `fuzz/corpus/udx_*` through the same check
//! function the fuzz target runs.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_file() {
            let data = std::fs::read(&path).unwrap();
            eprintln!("replaying {}", path.display());
            check(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn udx_packet_corpus_replays() {
    assert!(replay("udx_packet", udx::fuzzing::packet_roundtrip) > 0);
}

#[test]
fn udx_stream_ops_corpus_replays() {
    assert!(replay("udx_stream_ops", udx::fuzzing::stream_ops) > 0);
}
