//! Harness that runs real JS peers, from the pinned npm packages in `interop-tests/js/`, for
//! live tests of the Rust stack on 127.0.0.1.
//!
//! - [`ensure_js_installed`] runs `npm ci` in `js/` once when `node_modules` is missing or older
//!   than `package-lock.json` (a file lock keeps parallel test processes from racing).
//! - [`JsProcess`] starts `node js/<script>` and reads the JSON lines it prints on stdout. The
//!   child is killed when the handle is dropped, and every script of ours also exits by itself
//!   when its stdin closes, so a test process that dies leaves no JS peer behind.
//! - [`Testnet`] starts `js/testnet.js`: a `hyperdht/testnet` of N nodes bound to 127.0.0.1.
//! - [`peer_driver`] starts any implementation of the peer interface (the JS `js/swarm-peer.js`,
//!   the Rust `swarm-peer`) in a server or client seat and reads its results.
//! - [`records`]: Rust storage nodes and client operations for the HyperDHT record tests.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use serde_json::Value;

pub mod peer_driver;
pub mod records;

/// Errors of the harness. Tests unwrap them; the message says what to fix.
#[derive(Debug)]
pub struct HarnessError(pub String);

impl std::fmt::Display for HarnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HarnessError {}

fn err(msg: impl Into<String>) -> HarnessError {
    HarnessError(msg.into())
}

/// The folder holding the pinned JS packages and our JS peer scripts.
pub fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Installs the pinned JS packages with `npm ci` unless they are already installed and up to date.
pub fn ensure_js_installed() -> Result<PathBuf, HarnessError> {
    let dir = js_dir();
    let lock_path = dir.join(".install.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| err(format!("cannot create {}: {e}", lock_path.display())))?;
    lock.lock()
        .map_err(|e| err(format!("cannot lock {}: {e}", lock_path.display())))?;

    let marker = dir.join("node_modules/.package-lock.json");
    let lockfile = dir.join("package-lock.json");
    let fresh = match (std::fs::metadata(&marker), std::fs::metadata(&lockfile)) {
        (Ok(m), Ok(l)) => match (m.modified(), l.modified()) {
            (Ok(m), Ok(l)) => m >= l,
            _ => false,
        },
        _ => false,
    };
    if !fresh {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .output()
            .map_err(|e| err(format!("cannot run npm (is Node.js installed?): {e}")))?;
        if !out.status.success() {
            return Err(err(format!(
                "npm ci in {} failed: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
    }
    drop(lock);
    Ok(dir)
}

/// A running `node` child process speaking JSON lines on stdout.
#[derive(Debug)]
pub struct JsProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    name: String,
}

impl JsProcess {
    /// Starts `node js/<script> <args…>` after making sure the packages are installed.
    pub fn spawn(script: &str, args: &[&str]) -> Result<Self, HarnessError> {
        let dir = ensure_js_installed()?;
        let mut child = Command::new("node")
            .arg(dir.join(script))
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| err(format!("cannot start node {script}: {e}")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| err("child has no stdout"))?;
        let stdin = child.stdin.take();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            stdin,
            lines: rx,
            name: script.to_string(),
        })
    }

    /// Waits up to `timeout` for the next stdout line that parses as JSON.
    /// Lines that are not JSON are echoed to stderr and skipped.
    pub fn next_json(&mut self, timeout: Duration) -> Result<Value, HarnessError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => match serde_json::from_str(&line) {
                    Ok(v) => return Ok(v),
                    Err(_) => eprintln!("[{}] {line}", self.name),
                },
                Err(RecvTimeoutError::Timeout) => {
                    return Err(err(format!(
                        "{}: no JSON line within {timeout:?}",
                        self.name
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait().ok().flatten();
                    return Err(err(format!("{} exited ({status:?})", self.name)));
                }
            }
        }
    }

    /// Sends one JSON line to the script's stdin.
    pub fn send_json(&mut self, v: &Value) -> Result<(), HarnessError> {
        let stdin = self.stdin.as_mut().ok_or_else(|| err("stdin closed"))?;
        writeln!(stdin, "{v}").map_err(|e| err(format!("{}: write failed: {e}", self.name)))
    }

    /// Closes stdin (our scripts exit on that) and waits up to `timeout` for a clean exit,
    /// killing the process after that. Returns whether it exited by itself with status 0.
    pub fn finish(mut self, timeout: Duration) -> bool {
        self.stdin = None;
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for JsProcess {
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JS `hyperdht/testnet` of N nodes bound to 127.0.0.1, in a child process.
#[derive(Debug)]
pub struct Testnet {
    /// The bootstrap address (the testnet's first node).
    pub bootstrap: SocketAddrV4,
    /// Every node's bound address, the bootstrap node first.
    pub nodes: Vec<SocketAddrV4>,
    /// Each node's id as JS reports it (hex), `None` while the node is ephemeral.
    pub ids: Vec<Option<String>>,
    /// The child process; dropping the testnet kills it.
    pub process: JsProcess,
}

impl Testnet {
    /// Starts a testnet of `size` nodes (use 4 or more: the first node stays ephemeral).
    pub fn start(size: usize) -> Result<Self, HarnessError> {
        let mut process = JsProcess::spawn("testnet.js", &[&size.to_string()])?;
        let ready = process.next_json(Duration::from_secs(60))?;
        let parse = |v: &Value| -> Result<SocketAddrV4, HarnessError> {
            let host = v["host"]
                .as_str()
                .ok_or_else(|| err("address without host"))?;
            let port = v["port"]
                .as_u64()
                .ok_or_else(|| err("address without port"))?;
            format!("{host}:{port}")
                .parse()
                .map_err(|e| err(format!("bad address {host}:{port}: {e}")))
        };
        let bootstrap = parse(&ready["bootstrap"])?;
        let nodes = ready["nodes"]
            .as_array()
            .ok_or_else(|| err("testnet.js printed no nodes"))?
            .iter()
            .map(parse)
            .collect::<Result<Vec<_>, _>>()?;
        let ids = ready["nodes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|n| n["id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            bootstrap,
            nodes,
            ids,
            process,
        })
    }
}
