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

/// Runs an operator command to its end: (exit code, stdout lines, stderr).
fn op(args: &[String]) -> (i32, Vec<String>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hyperdht"))
        .args(args)
        .output()
        .expect("run hyperdht");
    let stdout = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn operator_commands_put_get_announce_and_lookup_on_rust_storage_nodes() {
    let port = free_port();
    let p = port.to_string();
    let (_b, brx) = spawn(&["--bootstrap", "--host", "127.0.0.1", "--port", &p]);
    let mut seen = Vec::new();
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
        "4",
        "--host",
        "127.0.0.1",
        "--persistent",
    ]);
    for _ in 0..4 {
        wait_for(&nrx, "is persistent", &mut seen);
    }
    let net = ["--bootstrap", boot.as_str(), "--host", "127.0.0.1"];
    let with =
        |a: &[&str]| -> Vec<String> { a.iter().chain(net.iter()).map(|s| s.to_string()).collect() };

    // immutable put → get by the printed hash
    let (code, out, err) = op(&with(&["immutable-put", "a value"]));
    assert_eq!(code, 0, "{err}");
    let put = json(&out[0]);
    let h = put["hash"].as_str().unwrap().to_string();
    assert!(put["answered"].as_u64().unwrap() >= 1, "{put}");
    let (code, out, err) = op(&with(&["immutable-get", &h]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out[0])["value"], "a value");

    // mutable put → get by public key
    let seed = "11".repeat(32);
    let (code, out, err) = op(&with(&["mutable-put", "--seed", &seed, "--seq", "4", "m"]));
    assert_eq!(code, 0, "{err}");
    let pk = json(&out[0])["publicKey"].as_str().unwrap().to_string();
    let (code, out, err) = op(&with(&["mutable-get", &pk]));
    assert_eq!(code, 0, "{err}");
    let got = json(&out[0]);
    assert_eq!(
        (got["seq"].as_u64(), got["value"].as_str()),
        (Some(4), Some("m"))
    );

    // failures: one sentence on stderr, exit code 1
    let (code, out, err) = op(&with(&["immutable-get", &"ab".repeat(32)]));
    assert_eq!((code, out.len(), err.as_str()), (1, 0, "no record found"));
    let (code, _, err) = op(&with(&["mutable-get", "xyz"]));
    assert_eq!(
        (code, err.as_str()),
        (1, "public key must be 64 hex digits")
    );

    // announce stays until SIGTERM, then unannounces
    let aseed = "22".repeat(32);
    let mut child = Command::new(env!("CARGO_BIN_EXE_hyperdht"))
        .args(with(&["announce", "cli topic", "--seed", &aseed]))
        .stdout(Stdio::piped())
        .spawn()
        .expect("start announce");
    let stdout = child.stdout.take().unwrap();
    let (tx, arx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut child = Kill(child);
    wait_for(&arx, "\"type\":\"announced\"", &mut seen);
    let announced_key = json(seen.last().unwrap())["publicKey"]
        .as_str()
        .unwrap()
        .to_string();
    let keys = |seen: &mut Vec<String>| {
        let (code, out, err) = op(&with(&["lookup", "cli topic"]));
        assert_eq!(code, 0, "{err}");
        let done = json(out.last().expect("a summary line"));
        seen.extend(out);
        done["publicKeys"].as_array().unwrap().clone()
    };
    assert_eq!(
        keys(&mut seen),
        vec![serde_json::Value::from(announced_key)]
    );
    // a reader that goes away (`hyperdht lookup T | head -1`) ends the command quietly: exit 0,
    // nothing on stderr (`println!` would panic on the closed pipe)
    let mut lookup = Command::new(env!("CARGO_BIN_EXE_hyperdht"))
        .args(with(&["lookup", "cli topic"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lookup");
    drop(lookup.stdout.take());
    let out = lookup.wait_with_output().expect("lookup ends");
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        (Some(0), ""),
        "lookup into a closed pipe"
    );
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_for(&arx, "\"type\":\"unannounced\"", &mut seen);
    assert!(child.0.wait().unwrap().success());
    assert!(keys(&mut seen).is_empty(), "{seen:?}");
}

/// `listen --echo` on one process and `connect` on another: the key comes on the listener's
/// stderr, the connect pipes stdin through the echo back to stdout and says how it connected.
#[test]
fn listen_echo_and_connect_pipe_a_line_through() {
    use std::io::{Read, Write};
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = port.to_string();
    let boot = format!("127.0.0.1:{port}");
    let (_b, brx) = spawn(&["--bootstrap", "--host", "127.0.0.1", "--port", &p]);
    let mut seen = Vec::new();
    wait_for(&brx, "Fully started", &mut seen);
    let seed = "07".repeat(32);
    let mut listener = Command::new(env!("CARGO_BIN_EXE_hyperdht"))
        .args([
            "--bootstrap",
            &boot,
            "--host",
            "127.0.0.1",
            "listen",
            "--echo",
            "--seed",
            &seed,
        ])
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("start listen");
    let err = listener.stderr.take().expect("stderr");
    let _listener = Kill(listener);
    let (tx, lrx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lseen = Vec::new();
    wait_for(&lrx, "publicKey", &mut lseen);
    let v: serde_json::Value = serde_json::from_str(&lseen[lseen.len() - 1]).unwrap();
    let pk = v["publicKey"].as_str().unwrap().to_string();
    assert_eq!(pk.len(), 64);

    let mut c = Command::new(env!("CARGO_BIN_EXE_hyperdht"))
        .args(["--bootstrap", &boot, "--host", "127.0.0.1", "connect", &pk])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start connect");
    c.stdin
        .take()
        .unwrap()
        .write_all(b"through the dht\n")
        .unwrap();
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let mut err = String::new();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(c.wait().unwrap().success(), "{err}");
    assert_eq!(out, "through the dht\n");
    let v: serde_json::Value = serde_json::from_str(err.lines().next().unwrap()).unwrap();
    assert_eq!(v["connected"], "direct", "{err}");
    assert_eq!(v["remotePublicKey"], pk.as_str());
    assert!(v["ms"].as_u64().is_some());
    wait_for(&lrx, "connection", &mut lseen);
}
