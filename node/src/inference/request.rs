//! One generation request as the HTTP API and the streaming wire protocol see it: the input (a
//! conversation or a raw prompt), sampling settings, and the result with token counts; plus the
//! echo backend's streaming form.
//!
//! The echo backend has no tokenizer. It counts and streams *words*: each run of whitespace
//! together with the word after it is one token (`"[echo] hi there"` is `"[echo]"`, `" hi"`,
//! `" there"`), so its `usage`, `max_tokens` and streaming behave as a model's would, on text
//! that tests can predict.

use std::ops::ControlFlow;

use super::chat::ChatMessage;

/// What to generate from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A conversation; the backend applies its chat template.
    Chat(Vec<ChatMessage>),
    /// A prompt used as it is (the completions endpoint).
    Raw(String),
}

impl Input {
    /// A one-turn conversation: what a POC `inference_request` carries.
    pub fn user(prompt: impl Into<String>) -> Self {
        Input::Chat(vec![ChatMessage::new("user", prompt)])
    }

    /// The text a backend without a chat template answers: the prompt, the only message, or
    /// every message as `role: content` lines.
    pub fn flat_text(&self) -> String {
        match self {
            Input::Raw(p) => p.clone(),
            Input::Chat(ms) => match ms.as_slice() {
                [m] => m.content.clone(),
                _ => ms
                    .iter()
                    .map(|m| format!("{}: {}", m.role, m.content))
                    .collect::<Vec<_>>()
                    .join("\n"),
            },
        }
    }
}

/// Sampling settings a request may set; `None` keeps the node's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sampling {
    /// Most tokens to generate.
    pub max_tokens: Option<usize>,
    /// Temperature (0 = most likely token).
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Sampler seed.
    pub seed: Option<u64>,
    /// Stop before any of these.
    pub stop: Vec<String>,
}

/// One request to a backend.
#[derive(Debug, Clone, PartialEq)]
pub struct GenRequest {
    /// The input.
    pub input: Input,
    /// The model asked for, if any.
    pub model: Option<String>,
    /// Sampling.
    pub sampling: Sampling,
}

/// Why a generation ended, as OpenAI's `finish_reason` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// End of sequence or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The caller stopped it.
    Cancelled,
}

impl FinishReason {
    /// OpenAI's name (`stop`, `length`; a cancelled generation is never reported to a client).
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// A finished generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The whole text.
    pub text: String,
    /// The model that produced it.
    pub model: String,
    /// The backend that answered (`echo`, `ollama`, `native`).
    pub backend: &'static str,
    /// Tokens in the input as run.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Why it ended.
    pub finish: FinishReason,
}

/// The echo backend's words (see the module comment).
pub fn echo_words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word {
                out.push(&text[start..i]);
                start = i;
                in_word = false;
            }
        } else {
            in_word = true;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// The echo backend: answers `[echo] <input>` word by word, honouring `max_tokens` and `stop`
/// (the text is cut before the first stop string), and stops when `on_text` breaks.
pub fn echo(req: &GenRequest, on_text: &mut dyn FnMut(&str) -> ControlFlow<()>) -> Completion {
    let full = format!("[echo] {}", req.input.flat_text());
    let prompt_tokens = match &req.input {
        Input::Raw(p) => echo_words(p).len(),
        Input::Chat(ms) => ms.iter().map(|m| echo_words(&m.content).len()).sum(),
    };
    let (text, mut finish) = match req
        .sampling
        .stop
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| full.find(s.as_str()))
        .min()
    {
        Some(at) => (full.get(..at).unwrap_or_default(), FinishReason::Stop),
        None => (full.as_str(), FinishReason::Stop),
    };
    let max = req.sampling.max_tokens.unwrap_or(usize::MAX);
    let mut out = String::new();
    let mut n = 0;
    for w in echo_words(text) {
        if n == max {
            finish = FinishReason::Length;
            break;
        }
        out.push_str(w);
        n += 1;
        if on_text(w).is_break() {
            finish = FinishReason::Cancelled;
            break;
        }
    }
    Completion {
        text: out,
        model: "echo".to_owned(),
        backend: "echo",
        prompt_tokens,
        completion_tokens: n,
        finish,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(input: Input, max: Option<usize>, stop: &[&str]) -> GenRequest {
        GenRequest {
            input,
            model: None,
            sampling: Sampling {
                max_tokens: max,
                stop: stop.iter().map(|s| (*s).to_owned()).collect(),
                ..Sampling::default()
            },
        }
    }

    #[test]
    fn words_keep_their_leading_whitespace() {
        assert_eq!(echo_words("a  b\nc"), vec!["a", "  b", "\nc"]);
        assert_eq!(echo_words(" x "), vec![" x", " "]);
        assert!(echo_words("").is_empty());
    }

    #[test]
    fn echo_streams_counts_cuts_and_cancels() {
        let mut pieces = Vec::new();
        let c = echo(&req(Input::user("one two three"), None, &[]), &mut |s| {
            pieces.push(s.to_owned());
            ControlFlow::Continue(())
        });
        assert_eq!(c.text, "[echo] one two three");
        assert_eq!(pieces, vec!["[echo]", " one", " two", " three"]);
        assert_eq!((c.prompt_tokens, c.completion_tokens), (3, 4));
        assert_eq!(c.finish, FinishReason::Stop);

        let c = echo(&req(Input::Raw("a b c".into()), Some(2), &[]), &mut |_| {
            ControlFlow::Continue(())
        });
        assert_eq!(
            (c.text.as_str(), c.finish),
            ("[echo] a", FinishReason::Length)
        );

        let c = echo(
            &req(Input::Raw("a b STOP c".into()), None, &["STOP"]),
            &mut |_| ControlFlow::Continue(()),
        );
        assert_eq!(
            (c.text.as_str(), c.finish),
            ("[echo] a b ", FinishReason::Stop)
        );

        let mut seen = 0;
        let c = echo(&req(Input::Raw("a b c".into()), None, &[]), &mut |_| {
            seen += 1;
            if seen == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!((seen, c.finish), (2, FinishReason::Cancelled));
    }
}
