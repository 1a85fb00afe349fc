//! The POC's `ollama` backend: one blocking HTTP/1.1 request to a local Ollama server.
//!
//! As `opengateway scripts/poc-node.js inferWithOllama`/`postJson` do: `POST {OLLAMA_URL}/api/generate`
//! with the JSON body `{"model", "prompt", "stream": false}`, a 45 s timeout, any status outside
//! 2xx an error `HTTP <status>: <body>`, a body whose `response` is not a string an error "Ollama
//! returned no response", and the reply trimmed. `OLLAMA_URL` defaults to
//! `http://127.0.0.1:11434`, `OLLAMA_MODEL` to `llama3.2:1b`.
//!
//! Our client speaks plain `http://` only (Ollama listens on plain HTTP); it sends
//! `Connection: close`, reads the response to its end (at most [`MAX_BODY`] bytes) and accepts
//! `Content-Length` or chunked bodies.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The POC's request timeout.
pub const TIMEOUT: Duration = Duration::from_secs(45);
/// Default server.
pub const DEFAULT_URL: &str = "http://127.0.0.1:11434";
/// Default model.
pub const DEFAULT_MODEL: &str = "llama3.2:1b";
/// Largest response read: 16 MiB (the POC has no bound).
pub const MAX_BODY: usize = 16 << 20;

/// Why an Ollama request failed.
#[derive(Debug, thiserror::Error)]
pub enum OllamaError {
    /// The URL cannot be used.
    #[error("bad OLLAMA_URL {0:?}: {1}")]
    Url(String, &'static str),
    /// Connecting, writing or reading failed.
    #[error("ollama at {url}: {source}")]
    Io {
        /// The server.
        url: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// No answer within the timeout.
    #[error("request timeout")]
    Timeout,
    /// The response is not HTTP we understand.
    #[error("ollama sent a malformed HTTP response: {0}")]
    Http(&'static str),
    /// Status outside 2xx.
    #[error("HTTP {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// The body.
        body: String,
    },
    /// The body has no `response` string.
    #[error("Ollama returned no response")]
    NoResponse,
}

/// An Ollama server.
#[derive(Debug, Clone)]
pub struct Ollama {
    base: String,
    timeout: Duration,
}

impl Ollama {
    /// A client for `base` (e.g. `http://127.0.0.1:11434`).
    pub fn new(base: impl Into<String>) -> Self {
        Ollama {
            base: base.into(),
            timeout: TIMEOUT,
        }
    }

    /// Changes the timeout (tests).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Generates with `model`; returns the trimmed reply.
    pub fn generate(&self, model: &str, prompt: &str) -> Result<String, OllamaError> {
        let body = serde_json::json!({ "model": model, "prompt": prompt, "stream": false });
        let url = format!("{}/api/generate", self.base);
        let (status, body) = self.post(&url, body.to_string().as_bytes())?;
        if !(200..300).contains(&status) {
            return Err(OllamaError::Status {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| OllamaError::NoResponse)?;
        match v.get("response").and_then(serde_json::Value::as_str) {
            Some(s) => Ok(s.trim().to_owned()),
            None => Err(OllamaError::NoResponse),
        }
    }

    fn post(&self, url: &str, payload: &[u8]) -> Result<(u16, Vec<u8>), OllamaError> {
        let deadline = Instant::now() + self.timeout;
        let (host, port, path) = split_url(url)?;
        let io = |source: std::io::Error| {
            if matches!(
                source.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                OllamaError::Timeout
            } else {
                OllamaError::Io {
                    url: url.to_owned(),
                    source,
                }
            }
        };
        let addrs: Vec<_> = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(io)?
            .collect();
        let mut last = None;
        let mut stream = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(mut stream) = stream else {
            return Err(io(last.unwrap_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
            })));
        };
        let remaining = || {
            deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or(OllamaError::Timeout)
        };
        stream.set_write_timeout(Some(remaining()?)).map_err(io)?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            payload.len()
        );
        stream.write_all(head.as_bytes()).map_err(io)?;
        stream.write_all(payload).map_err(io)?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            stream.set_read_timeout(Some(remaining()?)).map_err(io)?;
            let n = stream.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            raw.extend_from_slice(buf.get(..n).unwrap_or_default());
            if raw.len() > MAX_BODY {
                return Err(OllamaError::Http("response larger than 16 MiB"));
            }
            if response_complete(&raw) {
                break;
            }
        }
        parse_response(&raw)
    }
}

/// `http://host[:port]/path` → parts.
fn split_url(url: &str) -> Result<(String, u16, String), OllamaError> {
    let bad = |why| OllamaError::Url(url.to_owned(), why);
    let rest = match url.strip_prefix("http://") {
        Some(r) => r,
        None if url.starts_with("https://") => {
            return Err(bad(
                "https is not supported by the built-in client; use http",
            ));
        }
        None => return Err(bad("must start with http://")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h, p.parse::<u16>().map_err(|_| bad("bad port"))?)
        }
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok((host.to_owned(), port, path.to_owned()))
}

fn header_end(raw: &[u8]) -> Option<usize> {
    raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn headers(raw: &[u8], end: usize) -> (Option<usize>, bool) {
    let text = String::from_utf8_lossy(raw.get(..end).unwrap_or_default()).to_ascii_lowercase();
    let len = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok());
    let chunked = text
        .lines()
        .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
    (len, chunked)
}

fn response_complete(raw: &[u8]) -> bool {
    let Some(end) = header_end(raw) else {
        return false;
    };
    match headers(raw, end) {
        (_, true) => dechunk(raw.get(end..).unwrap_or_default()).is_some(),
        (Some(len), false) => raw.len() >= end + len,
        (None, false) => false,
    }
}

/// Decodes a complete chunked body; `None` while incomplete or malformed.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n")?;
        let size_line = std::str::from_utf8(body.get(..eol)?).ok()?;
        let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
        body = body.get(eol + 2..)?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), OllamaError> {
    let end = header_end(raw).ok_or(OllamaError::Http("no header end"))?;
    let status_line = raw
        .split(|b| *b == b'\n')
        .next()
        .ok_or(OllamaError::Http("no status line"))?;
    let status = std::str::from_utf8(status_line)
        .ok()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or(OllamaError::Http("bad status line"))?;
    let body = raw.get(end..).unwrap_or_default();
    let body = match headers(raw, end) {
        (_, true) => dechunk(body).ok_or(OllamaError::Http("bad chunked body"))?,
        (Some(len), false) => body
            .get(..len)
            .ok_or(OllamaError::Http("body shorter than Content-Length"))?
            .to_vec(),
        (None, false) => body.to_vec(),
    };
    Ok((status, body))
}

#[cfg(test)]
mod tests;
