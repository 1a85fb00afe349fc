//! OpenAI's request and response shapes, and its errors.
//!
//! Requests are read from a JSON value field by field, so every problem gets a sentence naming
//! the field (400, `invalid_request_error`); fields we do not use (`user`, `logprobs: false`,
//! `presence_penalty`, ...) are ignored, as OpenAI-compatible servers commonly do. Asking for
//! more than one choice (`n` > 1) is refused.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::inference::backend::InferError;
use crate::inference::chat::ChatMessage;
use crate::inference::native::NativeError;
use crate::inference::request::{Completion, GenRequest, Input, Sampling};

/// Most stop strings (OpenAI's limit).
pub const MAX_STOP: usize = 4;

/// An error answered in OpenAI's shape: `{"error":{"message","type","param","code"}}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The sentence shown to the person.
    pub message: String,
    /// OpenAI's `type`.
    pub kind: &'static str,
    /// OpenAI's `code`.
    pub code: Option<&'static str>,
    /// The field at fault.
    pub param: Option<String>,
    /// Our outcome label for the metrics.
    pub outcome: &'static str,
}

impl ApiError {
    /// 400: the body is wrong.
    pub fn bad_request(message: impl Into<String>, param: Option<&str>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            code: None,
            param: param.map(str::to_owned),
            outcome: "bad_request",
        }
    }

    /// 401: missing or wrong API key.
    pub fn unauthorized() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "Incorrect or missing API key: send `Authorization: Bearer <key>` with the key this node was started with.".into(),
            kind: "invalid_request_error",
            code: Some("invalid_api_key"),
            param: None,
            outcome: "unauthorized",
        }
    }

    /// 404: no such model here or in the cluster.
    pub fn model_not_found(model: &str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "The model `{model}` does not exist: neither this node nor a peer of its clusters serves it (GET /v1/models lists them)."
            ),
            kind: "invalid_request_error",
            code: Some("model_not_found"),
            param: Some("model".into()),
            outcome: "model_not_found",
        }
    }

    /// 503: a peer would be needed and none is reachable.
    pub fn no_peer(message: String) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message,
            kind: "server_error",
            code: Some("no_peer_available"),
            param: None,
            outcome: "no_peer",
        }
    }

    /// 404 for a path we do not serve.
    pub fn no_route(path: &str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("Unknown request URL: {path}."),
            kind: "invalid_request_error",
            code: Some("unknown_url"),
            param: None,
            outcome: "not_found",
        }
    }

    /// The error body.
    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl From<InferError> for ApiError {
    fn from(e: InferError) -> Self {
        match e {
            InferError::QueueFull { .. } => ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: format!("This node is busy: {e}."),
                kind: "requests",
                code: Some("rate_limit_exceeded"),
                param: None,
                outcome: "rate_limited",
            },
            InferError::Native(NativeError::PromptTooLong { .. } | NativeError::EmptyPrompt) => {
                ApiError {
                    code: Some("context_length_exceeded"),
                    ..ApiError::bad_request(e.to_string(), Some("messages"))
                }
            }
            other => ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("The backend failed: {other}"),
                kind: "server_error",
                code: None,
                param: None,
                outcome: "backend_error",
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// Which endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completions,
}

impl Endpoint {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Completions => "completions",
        }
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRequest {
    /// What to run.
    pub gen_request: GenRequest,
    /// The model id asked for.
    pub model: String,
    /// `stream: true`.
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
}

fn number(o: &Map<String, Value>, key: &str, min: f64, max: f64) -> Result<Option<f64>, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if (min..=max).contains(&x) => Ok(Some(x)),
            _ => Err(ApiError::bad_request(
                format!("`{key}` must be a number from {min} to {max}, got {v}."),
                Some(key),
            )),
        },
    }
}

fn text_content(v: &Value, i: usize) -> Result<String, ApiError> {
    let param = format!("messages[{i}].content");
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        // Content parts: only text parts can be run by a text model.
        Value::Array(parts) => {
            let mut s = String::new();
            for p in parts {
                match (p.get("type").and_then(Value::as_str), p.get("text")) {
                    (Some("text"), Some(Value::String(t))) => s.push_str(t),
                    _ => {
                        return Err(ApiError::bad_request(
                            format!("`{param}`: only parts of type `text` are supported."),
                            Some(&param),
                        ));
                    }
                }
            }
            Ok(s)
        }
        _ => Err(ApiError::bad_request(
            format!("`{param}` must be a string or an array of text parts."),
            Some(&param),
        )),
    }
}

/// Reads a request body for `endpoint`.
pub fn parse(endpoint: Endpoint, body: &[u8]) -> Result<ParsedRequest, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("The request body is not valid JSON: {e}."), None)
    })?;
    let Value::Object(o) = v else {
        return Err(ApiError::bad_request(
            "The request body must be a JSON object.",
            None,
        ));
    };
    let model = match o.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => {
            return Err(ApiError::bad_request(
                "`model` is required and must be a non-empty string.",
                Some("model"),
            ));
        }
    };
    let input = match endpoint {
        Endpoint::Chat => {
            let Some(Value::Array(ms)) = o.get("messages") else {
                return Err(ApiError::bad_request(
                    "`messages` is required and must be an array.",
                    Some("messages"),
                ));
            };
            if ms.is_empty() {
                return Err(ApiError::bad_request(
                    "`messages` must hold at least one message.",
                    Some("messages"),
                ));
            }
            let mut out = Vec::with_capacity(ms.len());
            for (i, m) in ms.iter().enumerate() {
                let role = match m.get("role").and_then(Value::as_str) {
                    Some("developer") => "system",
                    Some(r @ ("system" | "user" | "assistant")) => r,
                    _ => {
                        return Err(ApiError::bad_request(
                            format!(
                                "`messages[{i}].role` must be one of system, developer, user, assistant."
                            ),
                            Some(&format!("messages[{i}].role")),
                        ));
                    }
                };
                let content = text_content(m.get("content").unwrap_or(&Value::Null), i)?;
                out.push(ChatMessage::new(role, content));
            }
            Input::Chat(out)
        }
        Endpoint::Completions => match o.get("prompt") {
            Some(Value::String(p)) => Input::Raw(p.clone()),
            Some(Value::Array(a)) if a.len() == 1 && a.first().is_some_and(Value::is_string) => {
                Input::Raw(a.first().and_then(Value::as_str).unwrap_or("").to_owned())
            }
            _ => {
                return Err(ApiError::bad_request(
                    "`prompt` is required and must be a string (or an array of one string).",
                    Some("prompt"),
                ));
            }
        },
    };
    if let Some(n) = o.get("n").filter(|v| !v.is_null())
        && n.as_u64() != Some(1)
    {
        return Err(ApiError::bad_request(
            "Only `n` = 1 is supported.",
            Some("n"),
        ));
    }
    let max_key = if endpoint == Endpoint::Chat && o.contains_key("max_completion_tokens") {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    let max_tokens = match o.get(max_key) {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            None => {
                return Err(ApiError::bad_request(
                    format!("`{max_key}` must be a non-negative integer, got {v}."),
                    Some(max_key),
                ));
            }
        },
    };
    let temperature = number(&o, "temperature", 0.0, 2.0)?;
    let top_p = number(&o, "top_p", 0.0, 1.0)?;
    let seed = match o.get("seed") {
        None | Some(Value::Null) => None,
        Some(v) => match (v.as_u64(), v.as_i64()) {
            (Some(s), _) => Some(s),
            // A negative seed is still a seed: its two's-complement bits.
            (None, Some(s)) => Some(s as u64),
            _ => {
                return Err(ApiError::bad_request(
                    format!("`seed` must be an integer, got {v}."),
                    Some("seed"),
                ));
            }
        },
    };
    let stop = match o.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.len() <= MAX_STOP && a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(_) => {
            return Err(ApiError::bad_request(
                format!("`stop` must be a string or an array of at most {MAX_STOP} strings."),
                Some("stop"),
            ));
        }
    };
    let stream = match o.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(ApiError::bad_request(
                format!("`stream` must be a boolean, got {v}."),
                Some("stream"),
            ));
        }
    };
    let include_usage = o
        .get("stream_options")
        .and_then(|s| s.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(ParsedRequest {
        gen_request: GenRequest {
            input,
            model: Some(model.clone()),
            sampling: Sampling {
                max_tokens,
                temperature,
                top_p,
                seed,
                stop,
            },
        },
        model,
        stream,
        include_usage,
    })
}

/// `usage`.
pub fn usage(c: &Completion) -> Value {
    json!({
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "total_tokens": c.prompt_tokens + c.completion_tokens,
    })
}

/// Names of the answer object for an endpoint: (id prefix, object, chunk object).
fn names(endpoint: Endpoint) -> (&'static str, &'static str, &'static str) {
    match endpoint {
        Endpoint::Chat => ("chatcmpl-", "chat.completion", "chat.completion.chunk"),
        Endpoint::Completions => ("cmpl-", "text_completion", "text_completion"),
    }
}

/// The id of an answer.
pub fn answer_id(endpoint: Endpoint, n: u64) -> String {
    format!("{}{n:016x}", names(endpoint).0)
}

/// A whole (non-streamed) answer. `node` names the node that generated it (our addition).
pub fn full_answer(
    endpoint: Endpoint,
    id: &str,
    created: u64,
    c: &Completion,
    node: &str,
) -> Value {
    let choice = match endpoint {
        Endpoint::Chat => json!({
            "index": 0,
            "message": {"role": "assistant", "content": c.text},
            "logprobs": null,
            "finish_reason": c.finish.as_str(),
        }),
        Endpoint::Completions => json!({
            "index": 0,
            "text": c.text,
            "logprobs": null,
            "finish_reason": c.finish.as_str(),
        }),
    };
    json!({
        "id": id,
        "object": names(endpoint).1,
        "created": created,
        "model": c.model,
        "choices": [choice],
        "usage": usage(c),
        "system_fingerprint": null,
        "node": node,
    })
}

/// What every chunk of one streamed answer repeats.
#[derive(Debug, Clone)]
pub struct ChunkHead {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The answer id.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The model id.
    pub model: String,
    /// The node generating it (our addition).
    pub node: String,
}

impl ChunkHead {
    fn wrap(&self, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": names(self.endpoint).2,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "system_fingerprint": null,
            "node": self.node,
        })
    }

    /// One streamed chunk: `delta` text (chat: with the role on the `first` chunk), or the
    /// closing chunk with `finish_reason`.
    pub fn chunk(&self, delta: Option<&str>, first: bool, finish: Option<&str>) -> Value {
        let choice = match self.endpoint {
            Endpoint::Chat => {
                let mut d = Map::new();
                if first {
                    d.insert("role".into(), "assistant".into());
                }
                if let Some(t) = delta {
                    d.insert("content".into(), t.into());
                }
                json!({"index": 0, "delta": d, "logprobs": null, "finish_reason": finish})
            }
            Endpoint::Completions => json!({
                "index": 0,
                "text": delta.unwrap_or(""),
                "logprobs": null,
                "finish_reason": finish,
            }),
        };
        self.wrap(json!([choice]))
    }

    /// The usage chunk sent last when `stream_options.include_usage` is set (no choices).
    pub fn usage_chunk(&self, c: &Completion) -> Value {
        let mut v = self.wrap(json!([]));
        if let Some(o) = v.as_object_mut() {
            o.insert("usage".into(), usage(c));
        }
        v
    }
}

#[cfg(test)]
mod tests;
