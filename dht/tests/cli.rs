//! The `hyperdht` binary: a bootstrap node and `--nodes 3 --persistent` against it, on
//! 127.0.0.1, with JS's output lines. Needs `--features cli`.
#![cfg(feature = "cli")]
// A test of a real process: it reads its output on a thread and picks a free port with a socket.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> (Kill, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hyperdht"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start hyperdht");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Kill(child), rx)
}

fn wait_for(rx: &mpsc::Receiver<String>, pat: &str, seen: &mut Vec<String>) {
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no line with {pat:?}; saw {seen:?}"));
        seen.push(line.clone());
        if line.contains(pat) {
            return;
        }
    }
}

#[test]
fn bootstrap_node_and_persistent_nodes_print_js_lines() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = port.to_string();
    let (_b, brx) = spawn(&["--bootstrap", "--host", "127.0.0.1", "--port", &p]);
    let mut seen = Vec::new();
    wait_for(
        &brx,
        &format!("Bootstrap node bound to {{ host: '127.0.0.1', family: 4, port: {port} }}"),
        &mut seen,
    );
    wait_for(
        &brx,
        "Fully started Hyperswarm DHT bootstrap node",
        &mut seen,
    );

    let boot = format!("127.0.0.1:{port}");
    let (_n, nrx) = spawn(&[
        "--bootstrap",
        &boot,
        "--nodes",
        "3",
        "--host",
        "127.0.0.1",
        "--persistent",
    ]);
    let mut seen = Vec::new();
    wait_for(&nrx, "Fully started 3 Hyperswarm DHT nodes", &mut seen);
    for i in 0..3 {
        assert!(
            seen.iter()
                .any(|l| l.starts_with(&format!("Node #{i} bound to {{ host: '127.0.0.1'"))),
            "{seen:?}"
        );
    }
    let mut persistent = seen.iter().filter(|l| l.contains("is persistent")).count();
    while persistent < 3 {
        wait_for(
            &nrx,
            "is persistent, joining remote routing tables",
            &mut seen,
        );
        persistent += 1;
    }
}
