//! Rust `udxcat` <-> `udx-native` 1.21.3 under real kernel loss: a fresh network namespace
//! whose loopback drops 5 % of all packets (`iptables -A INPUT -m statistic --mode random
//! --probability 0.05 -j DROP`), 256 MiB each way, SHA-256 equal, clean END both ways.
//!
//! Needs root, `ip` (iproute2) and `iptables`; without them the test prints `SKIPPED: <why>`
//! and passes. `UDX_NETNS_REQUIRED=1` turns a skip into a failure (`scripts/test-all.sh` sets
//! it wherever the tools are present). All traffic stays on 127.0.0.1 inside the namespace the
//! test creates.
//!
//! The `udxcat` it runs is `$UDXCAT` when set (`scripts/test-all.sh` builds it in release and
//! sets it); otherwise the test builds it in release into its own target directory (found
//! from cargo's `CARGO_TARGET_TMPDIR`, not from the test binary's path).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::{Value, json};

const BYTES: u64 = 256 * 1024 * 1024;
const LOSS: &str = "0.05";

struct Netns(String);

impl Netns {
    fn create() -> Result<Netns, String> {
        if !is_root() {
            return Err("not running as root (network namespaces need CAP_SYS_ADMIN)".into());
        }
        for tool in ["ip", "iptables"] {
            if Command::new(tool).arg("--version").output().is_err() {
                return Err(format!("`{tool}` is not installed"));
            }
        }
        let name = format!("udx-loss-{}", std::process::id());
        run("ip", &["netns", "add", &name])?;
        let ns = Netns(name);
        ns.exec_ok(&["ip", "link", "set", "lo", "up"])?;
        ns.exec_ok(&[
            "iptables",
            "-A",
            "INPUT",
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            LOSS,
            "-j",
            "DROP",
        ])?;
        Ok(ns)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).args(args);
        c
    }

    fn exec_ok(&self, args: &[&str]) -> Result<(), String> {
        let out = self.cmd(args).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn dropped(&self) -> String {
        self.cmd(&["iptables", "-L", "INPUT", "-v", "-n"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn setup_or_skip() -> Option<Netns> {
    match Netns::create() {
        Ok(ns) => Some(ns),
        Err(why) => {
            assert!(
                std::env::var_os("UDX_NETNS_REQUIRED").is_none(),
                "namespace test required but unavailable: {why}"
            );
            eprintln!("SKIPPED: udx netns loss test: {why}");
            None
        }
    }
}

/// `$UDXCAT`, or `udxcat` built in release into this test's target directory.
fn udxcat() -> PathBuf {
    if let Some(p) = std::env::var_os("UDXCAT") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "UDXCAT={} does not exist", p.display());
        return p;
    }
    // CARGO_TARGET_TMPDIR is <target dir>/tmp, set by cargo for integration tests.
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR has a parent");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "-q", "-p", "udx", "--bin", "udxcat"])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building udxcat failed");
    target_dir.join("release/udxcat")
}

/// Waits (with a deadline) for `udxcat`'s `{"listening":...}` line on `stderr`, then collects
/// the rest of it in the background; join the handle for everything after that line.
fn wait_listening(stderr: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    let (tx, rx) = channel();
    let h = std::thread::spawn(move || {
        let mut r = BufReader::new(stderr);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            if line.contains("\"listening\"") {
                let _ = tx.send(());
                break;
            }
            line.clear();
        }
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        rest
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("udxcat printed its listening line");
    h
}

struct Js {
    child: Child,
    lines: Receiver<String>,
}

impl Js {
    fn spawn(ns: &Netns, cfg: Value) -> Js {
        let dir = interop_tests::ensure_js_installed().unwrap();
        let mut child = ns
            .cmd(&["node", "udx-peer.js", &cfg.to_string()])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Js { child, lines: rx }
    }

    fn send(&mut self, v: Value) {
        writeln!(self.child.stdin.as_mut().unwrap(), "{v}").unwrap();
    }

    fn wait_event(&mut self, name: &str, timeout: Duration) -> Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("JS: no {name} event: {e}"));
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["event"] == name
            {
                return v;
            }
        }
    }
}

impl Drop for Js {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills the child if the test fails before waiting for it.
struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    fn wait_with_output(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The last JSON line of udxcat's stderr that has `key`.
fn last_json_with(stderr: &[u8], key: &str) -> Value {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get(key).is_some())
        .unwrap_or_else(|| panic!("udxcat printed no JSON line with {key}"))
}

#[test]
fn udx_netns_5pct_kernel_loss_both_directions() {
    let Some(ns) = setup_or_skip() else { return };
    let udxcat = udxcat();
    let udxcat = udxcat.to_str().unwrap();

    // Rust -> JS
    let mut js = Js::spawn(&ns, json!({"id": 2, "port": 45002}));
    js.wait_event("listening", Duration::from_secs(30));
    js.send(json!({"cmd": "connect", "remoteId": 1, "port": 45001}));
    js.wait_event("connected", Duration::from_secs(10));
    let start = std::time::Instant::now();
    let out = ns
        .cmd(&[
            udxcat,
            "send",
            "--bind",
            "127.0.0.1:45001",
            "--id",
            "1",
            "--peer",
            "127.0.0.1:45002",
            "--peer-id",
            "2",
            "--bytes",
            &BYTES.to_string(),
        ])
        .output()
        .unwrap();
    let sent = last_json_with(&out.stderr, "sha256");
    assert!(
        out.status.success(),
        "udxcat send failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let end = js.wait_event("end", Duration::from_secs(60));
    assert_eq!(end["bytes"].as_u64(), Some(BYTES));
    assert_eq!(end["sha256"], sent["sha256"]);
    eprintln!(
        "rust->js {BYTES} bytes under {LOSS} loss in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    drop(js);

    // JS -> Rust
    let mut js = Js::spawn(&ns, json!({"id": 4, "port": 45004}));
    js.wait_event("listening", Duration::from_secs(30));
    js.send(json!({"cmd": "connect", "remoteId": 3, "port": 45003}));
    js.wait_event("connected", Duration::from_secs(10));
    let recv = ns
        .cmd(&[
            udxcat,
            "recv",
            "--bind",
            "127.0.0.1:45003",
            "--id",
            "3",
            "--peer",
            "127.0.0.1:45004",
            "--peer-id",
            "4",
            "--sink",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut recv = KillOnDrop(Some(recv));
    let stderr = recv.0.as_mut().and_then(|c| c.stderr.take()).unwrap();
    let stderr = wait_listening(stderr);
    let start = std::time::Instant::now();
    js.send(json!({"cmd": "send", "bytes": BYTES}));
    let sent = js.wait_event("sent", Duration::from_secs(600));
    let out = recv.wait_with_output();
    let stderr = stderr.join().unwrap();
    let got = last_json_with(&stderr, "sha256");
    // udx-native ended first and, like libudx, keeps no TIME_WAIT: if its ACK of our END is
    // the packet the 5 % rule drops, our END is never acknowledged (the peer has everything,
    // but we cannot know). Only that failure is tolerated, and it is printed.
    let text = String::from_utf8_lossy(&stderr);
    if !out.status.success() {
        assert!(
            text.contains("end: stream timed out"),
            "udxcat recv failed: {text}"
        );
        eprintln!("NOTE: JS's last ACK was lost and libudx does not linger: {text}");
    }
    assert_eq!(got["bytes"].as_u64(), Some(BYTES));
    assert_eq!(got["sha256"], sent["sha256"]);
    js.wait_event("close", Duration::from_secs(30));
    eprintln!(
        "js->rust {BYTES} bytes under {LOSS} loss in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    eprintln!("{}", ns.dropped());
}
