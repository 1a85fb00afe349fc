//! `peer-bench --quick` (JS server × JS client at smoke sizes) runs to the end and prints its
//! whole table, every cell filled, so the benchmark cannot rot between measurements.

use std::process::Command;

#[test]
fn peer_bench_quick_prints_a_full_table() {
    interop_tests::ensure_js_installed().expect("JS packages");
    let o = Command::new(env!("CARGO_BIN_EXE_peer-bench"))
        .arg("--quick")
        .output()
        .expect("run peer-bench");
    let stdout = String::from_utf8(o.stdout).expect("UTF-8 table");
    assert!(
        o.status.success(),
        "peer-bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(
        rows[0], "| measurement | js server × js client |",
        "{stdout}"
    );
    // Header, then throughput, CPU, join, warm, cold, 2 rates, echo RTT, 2 RSS rows and TCP.
    assert_eq!(rows.len(), 12, "{stdout}");
    for row in &rows[1..] {
        let cells: Vec<&str> = row.split(" | ").collect();
        assert_eq!(cells.len(), 2, "{row}");
        let value = cells[1].trim_end_matches(" |");
        assert!(
            !value.is_empty() && !value.contains('-') && !value.contains("NaN"),
            "unfilled cell in {row}"
        );
        // No connect, rate or join test had a failed iteration.
        if row.contains("errors") {
            assert!(row.contains(", 0 errors)"), "{row}");
        }
    }
}
