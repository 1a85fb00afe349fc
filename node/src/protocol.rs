//! The NDJSON messages POC nodes exchange on a connection, and a bounded line decoder.
//!
//! Every message is one JSON object on one `\n`-terminated UTF-8 line
//! (`opengateway scripts/poc-node.js setupConnection`, `send`). The POC's reading rules, which we
//! keep: empty (whitespace-only) lines and lines that do not parse are ignored; `peer_hello`
//! updates the peer's name and clusters; an `inference_request` is served only when both
//! `request_id` and `prompt` are present and not null (of any JSON type; an empty prompt is
//! fine), and its `request_id` is echoed back unchanged; a failure is answered with a `response`
//! starting `[error] ` and no `model`.
//!
//! Our addition, streaming: a request with `"stream": true` is answered by a Rust node with
//! `{"type":"inference_chunk","request_id","delta","index"}` lines (index 0, 1, ... in order,
//! the deltas concatenated being the text) before the usual `inference_response`, which still
//! carries the whole text. A POC node ignores the field and sends only the final response, and
//! a POC client ignores the chunk lines (it reads only `inference_response`), so both directions
//! keep working with POC nodes. Only the JSON value `true` asks for streaming.
//!
//! The POC buffers a line of any length; we bound a line at [`MAX_LINE`] bytes and drop longer
//! lines without holding them in memory.

use serde::Serialize;
use serde_json::Value;

use crate::jsonfile::js_string;

/// Longest line kept: 1 MiB (the POC has no bound).
pub const MAX_LINE: usize = 1 << 20;

/// A message read from a peer.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// `{"type":"peer_hello", "node_name", "clusters", "supported_models"}`.
    PeerHello {
        /// `String(node_name)` when truthy.
        node_name: Option<String>,
        /// When `clusters` is an array: each `String(c).trim()`, empty ones dropped, deduplicated.
        clusters: Option<Vec<String>>,
    },
    /// `{"type":"inference_request", "request_id", "prompt", "model"?}`.
    InferenceRequest(InferenceRequest),
}

/// A request to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct InferenceRequest {
    /// Echoed back exactly, whatever its JSON type.
    pub request_id: Value,
    /// `String(prompt)`.
    pub prompt: String,
    /// The model asked for, when a non-empty string.
    pub model: Option<String>,
    /// `"stream": true`: answer with `inference_chunk` lines before the response.
    pub stream: bool,
}

/// Parses one line; `None` for anything the POC ignores.
pub fn parse_line(line: &[u8]) -> Option<Incoming> {
    // The POC decodes the stream as UTF-8 with replacement characters before parsing.
    let text = String::from_utf8_lossy(line);
    if text.trim().is_empty() {
        return None;
    }
    let Ok(Value::Object(msg)) = serde_json::from_str::<Value>(&text) else {
        return None;
    };
    match msg.get("type").and_then(Value::as_str) {
        Some("peer_hello") => {
            let node_name = msg
                .get("node_name")
                .filter(|v| crate::jsonfile::js_truthy(v))
                .map(js_string);
            let clusters = msg.get("clusters").and_then(Value::as_array).map(|cs| {
                let mut out: Vec<String> = Vec::new();
                for c in cs {
                    let s = js_string(c).trim().to_owned();
                    if !s.is_empty() && !out.contains(&s) {
                        out.push(s);
                    }
                }
                out
            });
            Some(Incoming::PeerHello {
                node_name,
                clusters,
            })
        }
        Some("inference_request") => {
            let request_id = msg.get("request_id").filter(|v| !v.is_null())?.clone();
            let prompt = js_string(msg.get("prompt").filter(|v| !v.is_null())?);
            let model = msg
                .get("model")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            let stream = msg.get("stream") == Some(&Value::Bool(true));
            Some(Incoming::InferenceRequest(InferenceRequest {
                request_id,
                prompt,
                model,
                stream,
            }))
        }
        _ => None,
    }
}

#[derive(Serialize)]
struct PeerHello<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    node_name: &'a str,
    clusters: &'a [String],
    supported_models: &'a [String],
}

#[derive(Serialize)]
struct InferenceResponse<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    request_id: &'a Value,
    response: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
}

#[derive(Serialize)]
struct InferenceChunk<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    request_id: &'a Value,
    delta: &'a str,
    index: u64,
}

fn line<T: Serialize>(v: &T) -> String {
    // Serialising these plain structs cannot fail; an empty line would be ignored by peers.
    let mut s = serde_json::to_string(v).unwrap_or_default();
    s.push('\n');
    s
}

/// The `peer_hello` line a node sends when a connection opens.
pub fn peer_hello(node_name: &str, clusters: &[String], supported_models: &[String]) -> String {
    line(&PeerHello {
        kind: "peer_hello",
        node_name,
        clusters,
        supported_models,
    })
}

/// A successful `inference_response` line.
pub fn inference_response(request_id: &Value, response: &str, model: &str) -> String {
    line(&InferenceResponse {
        kind: "inference_response",
        request_id,
        response,
        model: Some(model),
    })
}

/// One `inference_chunk` line of a streamed answer: the `index`-th piece (from 0) of the text.
pub fn inference_chunk(request_id: &Value, delta: &str, index: u64) -> String {
    line(&InferenceChunk {
        kind: "inference_chunk",
        request_id,
        delta,
        index,
    })
}

/// A request as a line, as a client sends it (`stream` written only when true).
pub fn inference_request(
    request_id: &Value,
    prompt: &str,
    model: Option<&str>,
    stream: bool,
) -> String {
    let mut v = serde_json::json!({
        "type": "inference_request",
        "request_id": request_id,
        "prompt": prompt,
    });
    if let Some(obj) = v.as_object_mut() {
        if let Some(m) = model {
            obj.insert("model".to_owned(), Value::from(m));
        }
        if stream {
            obj.insert("stream".to_owned(), Value::Bool(true));
        }
    }
    line(&v)
}

/// A failed `inference_response` line: `response` is `[error] <message>`, no `model`.
pub fn error_response(request_id: &Value, message: &str) -> String {
    line(&InferenceResponse {
        kind: "inference_response",
        request_id,
        response: &format!("[error] {message}"),
        model: None,
    })
}

/// Splits a byte stream into lines, bounded: a line longer than its limit is dropped as it
/// streams past (only the bytes of the current chunk are ever held beyond the limit).
#[derive(Debug)]
pub struct LineDecoder {
    buf: Vec<u8>,
    max: usize,
    discarding: bool,
    dropped: u64,
}

impl Default for LineDecoder {
    fn default() -> Self {
        LineDecoder::new(MAX_LINE)
    }
}

impl LineDecoder {
    /// A decoder that keeps lines of at most `max` bytes (without the `\n`).
    pub fn new(max: usize) -> Self {
        LineDecoder {
            buf: Vec::new(),
            max,
            discarding: false,
            dropped: 0,
        }
    }

    /// How many over-long lines were dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes held for the unfinished line.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds `chunk`; calls `on_line` with every complete line (without its `\n`).
    pub fn feed(&mut self, mut chunk: &[u8], mut on_line: impl FnMut(&[u8])) {
        while !chunk.is_empty() {
            let nl = chunk.iter().position(|b| *b == b'\n');
            let (part, rest, complete) = match nl {
                Some(i) => (&chunk[..i], &chunk[i + 1..], true),
                None => (chunk, &chunk[chunk.len()..], false),
            };
            chunk = rest;
            if self.discarding {
                if complete {
                    self.discarding = false;
                }
                continue;
            }
            if self.buf.len() + part.len() > self.max {
                self.buf = Vec::new();
                self.dropped += 1;
                self.discarding = !complete;
                continue;
            }
            if complete {
                if self.buf.is_empty() {
                    on_line(part);
                } else {
                    self.buf.extend_from_slice(part);
                    on_line(&self.buf);
                    self.buf.clear();
                }
            } else {
                self.buf.extend_from_slice(part);
            }
        }
    }
}

#[cfg(test)]
mod tests;
