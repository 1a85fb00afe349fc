//! Replays one `udx_stream_ops` fuzz input (e.g. a crash artifact) outside cargo-fuzz:
//! `cargo run -p udx --example replay_ops -- fuzz/artifacts/udx_stream_ops/crash-...`.

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: replay_ops FILE");
        std::process::exit(2);
    };
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    udx::fuzzing::stream_ops(&data);
    eprintln!("{path}: ok");
}
