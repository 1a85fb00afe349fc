//! One running peer process: its own process group, its stdout read as JSON lines against
//! deadlines, the tail of its stderr kept for error reports.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{DriverError, KILL_AFTER, PeerImpl};

/// How much of a peer's stderr is kept for error reports.
const STDERR_TAIL: usize = 16 * 1024;

/// A running peer: its process group, its stdout lines and the tail of its stderr. Dropping it
/// kills the process group.
#[derive(Debug)]
pub struct PeerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<VecDeque<u8>>>,
    label: String,
    kill_at: Instant,
    exit: Option<Value>,
    /// Set once the leader's exit status was collected: from then on its pid, and so its process
    /// group id, may belong to someone else, and the group is never signalled again.
    reaped: bool,
}

impl PeerProcess {
    /// Starts `impl COMMAND ARGS… --max-seconds S --exit-on-stdin-close` in its own process
    /// group, with stdout and stderr captured.
    pub fn spawn(
        imp: &PeerImpl,
        command: &str,
        args: &[String],
        max_seconds: u64,
    ) -> Result<Self, DriverError> {
        let label = format!("{} {command}", imp.name);
        let mut child = Command::new(&imp.program)
            .args(&imp.args)
            .arg(command)
            .args(args)
            .args([
                "--max-seconds",
                &max_seconds.to_string(),
                "--exit-on-stdin-close",
            ])
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| DriverError::Spawn {
                peer: label.clone(),
                program: imp.program.display().to_string(),
                source,
            })?;
        let (tx, lines) = channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let tail = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let Ok(mut t) = tail.lock() else { break };
                    t.extend(buf.iter().take(n));
                    let excess = t.len().saturating_sub(STDERR_TAIL);
                    t.drain(..excess);
                }
            });
        }
        Ok(Self {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
            label,
            kill_at: Instant::now() + Duration::from_secs(max_seconds) + KILL_AFTER,
            exit: None,
            reaped: false,
        })
    }

    /// The process id (the process group id too).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The label used in messages (`js serve`).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The last bytes the peer wrote on stderr, as text.
    pub fn stderr_tail(&self) -> String {
        self.stderr
            .lock()
            .map(|t| String::from_utf8_lossy(&t.iter().copied().collect::<Vec<_>>()).into_owned())
            .unwrap_or_default()
    }

    /// The peer's resident set size from `/proc/PID/status`, in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        proc_status_kib(self.pid(), "VmRSS:").map(|k| k * 1024)
    }

    /// The `exit` line, once [`PeerProcess::next_event`] or [`PeerProcess::stop`] has read it.
    pub fn exit_line(&self) -> Option<&Value> {
        self.exit.as_ref()
    }

    /// The next JSON object the peer prints, waiting until `timeout` (and never past the kill
    /// deadline). An `error` event becomes [`DriverError::Peer`]; an `exit` event is kept for
    /// [`PeerProcess::exit_line`] and returned like any other.
    pub fn next_event(&mut self, what: &str, timeout: Duration) -> Result<Value, DriverError> {
        let deadline = (Instant::now() + timeout).min(self.kill_at);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let Ok(v) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    if !v.is_object() {
                        continue;
                    }
                    match v["event"].as_str() {
                        Some("error") => {
                            return Err(DriverError::Peer {
                                peer: self.label.clone(),
                                message: v["error"].as_str().unwrap_or("(no message)").to_owned(),
                            });
                        }
                        Some("exit") => self.exit = Some(v.clone()),
                        _ => {}
                    }
                    return Ok(v);
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(DriverError::Timeout {
                        peer: self.label.clone(),
                        what: what.to_owned(),
                        secs: timeout.as_secs_f64(),
                        stderr: self.stderr_tail(),
                    });
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.wait_status(Duration::from_secs(2));
                    return Err(DriverError::Ended {
                        peer: self.label.clone(),
                        what: what.to_owned(),
                        status: status.map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
                        stderr: self.stderr_tail(),
                    });
                }
            }
        }
    }

    /// Reads events until one whose `event` field is `event`; an `exit` before it is an error.
    pub fn expect_event(&mut self, event: &str, timeout: Duration) -> Result<Value, DriverError> {
        let deadline = Instant::now() + timeout;
        let what = format!("\"{event}\" event");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.next_event(&what, left)?;
            match v["event"].as_str() {
                Some(e) if e == event => return Ok(v),
                Some("exit") => {
                    let status = self.wait_status(Duration::from_secs(2));
                    return Err(DriverError::Ended {
                        peer: self.label.clone(),
                        what,
                        status: status.map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
                        stderr: self.stderr_tail(),
                    });
                }
                _ => {}
            }
        }
    }

    fn wait_status(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.reaped = true;
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to `timeout` for the peer to exit by itself (reading its `exit` line on the way)
    /// and returns its status; kills the process group when it does not.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus, DriverError> {
        let deadline = Instant::now() + timeout;
        while self.exit.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event("exit line", left) {
                Ok(_) | Err(DriverError::Peer { .. }) => {}
                Err(_) => break,
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match self.wait_status(left) {
            Some(s) => Ok(s),
            None => {
                self.kill_group();
                Err(DriverError::Timeout {
                    peer: self.label.clone(),
                    what: "exit".to_owned(),
                    secs: timeout.as_secs_f64(),
                    stderr: self.stderr_tail(),
                })
            }
        }
    }

    /// Asks the peer to stop (SIGTERM to its process group) and waits up to `timeout` for its
    /// exit; returns its `exit` line (`None` when it printed none).
    pub fn stop(&mut self, timeout: Duration) -> Result<Option<Value>, DriverError> {
        self.signal_group(rustix::process::Signal::TERM);
        self.wait(timeout)?;
        Ok(self.exit.clone())
    }

    /// Writes a line to the peer's stdin (an implementation may read commands there).
    pub fn write_stdin(&mut self, line: &str) -> std::io::Result<()> {
        match self.stdin.as_mut() {
            Some(s) => writeln!(s, "{line}"),
            None => Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
        }
    }

    fn signal_group(&self, sig: rustix::process::Signal) {
        if self.reaped {
            return;
        }
        let pid = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process_group(pid, sig);
        }
    }

    fn kill_group(&mut self) {
        self.signal_group(rustix::process::Signal::KILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaped = true;
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        self.stdin = None;
        // The group is signalled before the leader is reaped, while its id is still ours.
        self.kill_group();
    }
}

/// A field of `/proc/PID/status` given in KiB (`VmRSS:`, `VmHWM:`).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
