//! Choosing and running a backend for one request.
//!
//! `POC_INFERENCE_BACKEND` selects it, as in `opengateway scripts/poc-node.js`: `echo` answers
//! `[echo] <prompt>`; `ollama` asks Ollama and reports its failures; `auto` asks Ollama and
//! answers with the echo when that fails. We add `native` (the local GGUF model). When the
//! variable is unset the node uses `native` if a model file is present, else the POC's `auto`.
//!
//! The native model answers with at most `OPENGATEWAY_MAX_TOKENS` tokens (default 128).
//!
//! Model choice for Ollama follows the POC's `inferPrompt`: the requested model, else the first
//! supported tier (`POC_SUPPORTED_MODELS`); a model not supported (and not `OLLAMA_MODEL`) becomes
//! the first supported tier; the tier `SmolLM-360M` runs as `llama3.2:1b`; with nothing chosen,
//! `OLLAMA_MODEL`. Unlike the POC, the reply's `model` names what actually ran: the Ollama model
//! used, the native model's name, or `echo`.

use std::path::PathBuf;

use std::ops::ControlFlow;

use super::native::{Finish, GenParams, NativeError, NativeModel};
use super::ollama::{self, Ollama, OllamaError};
use super::request::{Completion, FinishReason, GenRequest, Input, echo_words};
use crate::cli::Env;

/// The backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Ollama, falling back to echo.
    Auto,
    /// Ollama only.
    Ollama,
    /// Echo.
    Echo,
    /// The local model.
    Native,
}

impl BackendKind {
    /// The name used in logs and `POC_INFERENCE_BACKEND`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Auto => "auto",
            BackendKind::Ollama => "ollama",
            BackendKind::Echo => "echo",
            BackendKind::Native => "native",
        }
    }
}

/// A backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Unknown `POC_INFERENCE_BACKEND`.
    #[error("POC_INFERENCE_BACKEND={0:?} is not one of auto, ollama, echo, native")]
    Unknown(String),
    /// `native` without a model file.
    #[error(
        "the native backend needs a model: run `opengateway model pull` or set OPENGATEWAY_MODEL_PATH"
    )]
    NoModel,
    /// The model did not load.
    #[error(transparent)]
    Load(#[from] NativeError),
}

/// Why one request failed (sent as `[error] <this>`).
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// Ollama.
    #[error(transparent)]
    Ollama(#[from] OllamaError),
    /// The native model.
    #[error(transparent)]
    Native(#[from] NativeError),
    /// The queue is full.
    #[error("busy: {waiting} requests are already waiting (queue limit {limit}); try again later")]
    QueueFull {
        /// Requests waiting.
        waiting: usize,
        /// The bound.
        limit: usize,
    },
    /// The worker is gone.
    #[error("the inference worker has stopped")]
    WorkerGone,
}

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The response text.
    pub text: String,
    /// The model that produced it.
    pub model: String,
    /// The backend that answered (`echo`, `ollama`, `native`), for the log line.
    pub backend: &'static str,
}

/// Something that answers prompts (the backend, or a test double).
pub trait Infer: Send {
    /// Answers one prompt.
    fn infer(&mut self, prompt: &str, model: Option<&str>) -> Result<Reply, InferError>;

    /// Answers one request, handing each new piece of text to `on_text` as it is generated;
    /// `on_text` returning `Break` stops the generation. The default answers through
    /// [`Infer::infer`] and hands over the whole text at once, counting echo words as tokens.
    fn complete(
        &mut self,
        req: &GenRequest,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Completion, InferError> {
        let reply = self.infer(&req.input.flat_text(), req.model.as_deref())?;
        let cancelled = !reply.text.is_empty() && on_text(&reply.text).is_break();
        Ok(Completion {
            prompt_tokens: echo_words(&req.input.flat_text()).len(),
            completion_tokens: echo_words(&reply.text).len(),
            text: reply.text,
            model: reply.model,
            backend: reply.backend,
            finish: if cancelled {
                FinishReason::Cancelled
            } else {
                FinishReason::Stop
            },
        })
    }
}

/// The configured backend.
#[derive(Debug)]
pub struct Backend {
    kind: BackendKind,
    ollama: Ollama,
    ollama_model: String,
    supported: Vec<String>,
    native: Option<NativeModel>,
    params: GenParams,
}

/// The native model file for this environment: `OPENGATEWAY_MODEL_PATH`, else config
/// `model_path`, else the built-in model in the cache when it is there.
pub fn model_path(env: &Env, config_path: Option<&str>) -> Option<PathBuf> {
    if let Some(p) = env.non_empty("OPENGATEWAY_MODEL_PATH").or(config_path) {
        return Some(PathBuf::from(p));
    }
    let p = super::cache::builtin_path(&super::cache::cache_dir(env));
    p.is_file().then_some(p)
}

impl Backend {
    /// Sets up the backend from the environment (loading the model for `native`).
    pub fn from_env(env: &Env, config_model_path: Option<&str>) -> Result<Self, BackendError> {
        let path = model_path(env, config_model_path);
        let kind = match env
            .non_empty("POC_INFERENCE_BACKEND")
            .map(str::to_ascii_lowercase)
        {
            None if path.is_some() => BackendKind::Native,
            None => BackendKind::Auto,
            Some(v) => match v.as_str() {
                "auto" => BackendKind::Auto,
                "ollama" => BackendKind::Ollama,
                "echo" => BackendKind::Echo,
                "native" => BackendKind::Native,
                _ => return Err(BackendError::Unknown(v)),
            },
        };
        let native = if kind == BackendKind::Native {
            let p = path.ok_or(BackendError::NoModel)?;
            let mut m = NativeModel::load(&p)?;
            if p.file_name().and_then(|n| n.to_str()) == Some(super::cache::BUILTIN.file_name) {
                m.set_name(super::cache::BUILTIN.name);
            }
            Some(m)
        } else {
            None
        };
        let supported = env
            .get("POC_SUPPORTED_MODELS")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Backend {
            kind,
            ollama: Ollama::new(env.non_empty("OLLAMA_URL").unwrap_or(ollama::DEFAULT_URL)),
            ollama_model: env
                .non_empty("OLLAMA_MODEL")
                .unwrap_or(ollama::DEFAULT_MODEL)
                .to_owned(),
            supported,
            native,
            params: GenParams {
                max_tokens: env
                    .non_empty("OPENGATEWAY_MAX_TOKENS")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(GenParams::default().max_tokens),
                ..GenParams::default()
            },
        })
    }

    /// The backend in use.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// Generation settings for the native model.
    pub fn set_params(&mut self, params: GenParams) {
        self.params = params;
    }

    /// The model ids this backend answers for: the native model's name, `echo`, or the Ollama
    /// model and the supported tiers.
    pub fn models(&self) -> Vec<String> {
        match self.kind {
            BackendKind::Echo => vec!["echo".to_owned()],
            BackendKind::Native => self
                .native
                .as_ref()
                .map(|m| vec![m.name().to_owned()])
                .unwrap_or_default(),
            BackendKind::Ollama | BackendKind::Auto => {
                let mut v = vec![self.ollama_model.clone()];
                for m in &self.supported {
                    if !v.contains(m) {
                        v.push(m.clone());
                    }
                }
                v
            }
        }
    }

    /// The generation settings for a request: the node's defaults, overridden by the request.
    pub fn params_for(&self, req: &GenRequest) -> GenParams {
        let s = &req.sampling;
        let mut p = self.params.clone();
        if let Some(v) = s.max_tokens {
            p.max_tokens = v;
        }
        if let Some(v) = s.temperature {
            p.temperature = v;
        }
        if s.top_p.is_some() {
            p.top_p = s.top_p;
        }
        if let Some(v) = s.seed {
            p.seed = v;
        }
        if !s.stop.is_empty() {
            p.stop = s.stop.clone();
        }
        p
    }

    /// The Ollama model the POC would run for a request naming `requested`.
    pub fn ollama_model_for(&self, requested: Option<&str>) -> String {
        let mut selected = requested.unwrap_or("").to_owned();
        if selected.is_empty()
            && let Some(first) = self.supported.first()
        {
            selected = first.clone();
        }
        if !self.supported.is_empty()
            && !selected.is_empty()
            && !self.supported.contains(&selected)
            && selected != self.ollama_model
        {
            selected = self.supported.first().cloned().unwrap_or_default();
        }
        if selected == "SmolLM-360M" {
            return "llama3.2:1b".to_owned();
        }
        if selected.is_empty() {
            return self.ollama_model.clone();
        }
        selected
    }
}

fn echo(prompt: &str) -> Reply {
    Reply {
        text: format!("[echo] {prompt}"),
        model: "echo".to_owned(),
        backend: "echo",
    }
}

impl Infer for Backend {
    fn infer(&mut self, prompt: &str, model: Option<&str>) -> Result<Reply, InferError> {
        match self.kind {
            BackendKind::Echo => Ok(echo(prompt)),
            BackendKind::Ollama | BackendKind::Auto => {
                let m = self.ollama_model_for(model);
                match self.ollama.generate(&m, prompt) {
                    Ok(text) => Ok(Reply {
                        text,
                        model: m,
                        backend: "ollama",
                    }),
                    Err(_) if self.kind == BackendKind::Auto => Ok(echo(prompt)),
                    Err(e) => Err(e.into()),
                }
            }
            BackendKind::Native => {
                let Some(native) = self.native.as_mut() else {
                    return Err(InferError::WorkerGone);
                };
                let g = native.generate(prompt, &self.params, &mut |_| {})?;
                Ok(Reply {
                    text: g.text.trim().to_owned(),
                    model: g.model,
                    backend: "native",
                })
            }
        }
    }

    fn complete(
        &mut self,
        req: &GenRequest,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Completion, InferError> {
        match self.kind {
            BackendKind::Echo => Ok(super::request::echo(req, on_text)),
            BackendKind::Native => {
                let mut params = self.params_for(req);
                let Some(native) = self.native.as_mut() else {
                    return Err(InferError::WorkerGone);
                };
                // A conversation goes through the model's chat template here; the completions
                // endpoint's prompt is used as it is.
                params.raw = true;
                let text = match &req.input {
                    Input::Chat(ms) => native.chat_template().apply_messages(ms),
                    Input::Raw(p) => p.clone(),
                };
                let g = native.generate_with(&text, &params, on_text)?;
                Ok(Completion {
                    text: g.text,
                    model: g.model,
                    backend: "native",
                    prompt_tokens: g.prompt_tokens,
                    completion_tokens: g.tokens,
                    finish: match g.finish {
                        Finish::Eos | Finish::Stop => FinishReason::Stop,
                        Finish::Length => FinishReason::Length,
                        Finish::Cancelled => FinishReason::Cancelled,
                    },
                })
            }
            BackendKind::Ollama | BackendKind::Auto => {
                let prompt = req.input.flat_text();
                let reply = self.infer(&prompt, req.model.as_deref())?;
                if reply.backend == "echo" {
                    return Ok(super::request::echo(req, on_text));
                }
                let cancelled = !reply.text.is_empty() && on_text(&reply.text).is_break();
                Ok(Completion {
                    prompt_tokens: echo_words(&prompt).len(),
                    completion_tokens: echo_words(&reply.text).len(),
                    text: reply.text,
                    model: reply.model,
                    backend: reply.backend,
                    finish: if cancelled {
                        FinishReason::Cancelled
                    } else {
                        FinishReason::Stop
                    },
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(pairs: &[(&str, &str)]) -> Backend {
        let mut v = vec![("OPENGATEWAY_MODEL_DIR", "/nonexistent-model-dir")];
        v.extend_from_slice(pairs);
        Backend::from_env(&Env::from_pairs(v), None).unwrap()
    }

    #[test]
    fn selection_and_echo() {
        assert_eq!(backend(&[]).kind(), BackendKind::Auto);
        let mut b = backend(&[("POC_INFERENCE_BACKEND", "ECHO")]);
        assert_eq!(b.infer("hi", None).unwrap(), echo("hi"));
        assert_eq!(b.infer("", Some("x")).unwrap().text, "[echo] ");
        let e = Backend::from_env(&Env::from_pairs([("POC_INFERENCE_BACKEND", "gpu")]), None)
            .unwrap_err();
        assert!(e.to_string().contains("\"gpu\""));
        let e = Backend::from_env(
            &Env::from_pairs([
                ("POC_INFERENCE_BACKEND", "native"),
                ("OPENGATEWAY_MODEL_DIR", "/nonexistent"),
            ]),
            None,
        )
        .unwrap_err();
        assert!(matches!(e, BackendError::NoModel));
    }

    #[test]
    fn poc_model_choice() {
        let b = backend(&[
            ("POC_SUPPORTED_MODELS", "SmolLM-360M, Qwen2-0.5B"),
            ("OLLAMA_MODEL", "om"),
        ]);
        assert_eq!(b.ollama_model_for(None), "llama3.2:1b");
        assert_eq!(b.ollama_model_for(Some("Qwen2-0.5B")), "Qwen2-0.5B");
        assert_eq!(b.ollama_model_for(Some("om")), "om");
        assert_eq!(b.ollama_model_for(Some("other")), "llama3.2:1b");
        let b = backend(&[]);
        assert_eq!(b.ollama_model_for(None), ollama::DEFAULT_MODEL);
        assert_eq!(b.ollama_model_for(Some("x:1b")), "x:1b");
    }

    #[test]
    fn auto_falls_back_to_echo_and_ollama_reports_the_failure() {
        // A port with nothing listening.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        let mut b = backend(&[("POC_INFERENCE_BACKEND", "auto"), ("OLLAMA_URL", &url)]);
        assert_eq!(b.infer("q", None).unwrap(), echo("q"));
        let mut b = backend(&[("POC_INFERENCE_BACKEND", "ollama"), ("OLLAMA_URL", &url)]);
        assert!(matches!(
            b.infer("q", None).unwrap_err(),
            InferError::Ollama(_)
        ));
    }
}
