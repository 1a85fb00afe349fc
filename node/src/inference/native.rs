//! The native backend: a llama-architecture GGUF run with candle on the CPU.
//!
//! Loading reads the GGUF header, checks `general.architecture` is `llama` (SmolLM2, TinyLlama,
//! Llama 3.x use candle's `quantized_llama`), loads the weights, and builds the tokenizer and the
//! chat template from the file's own metadata (or a `tokenizer.json` next to it).
//!
//! Generation: the whole prompt goes through the model in one forward pass (batched prefill),
//! then one token per pass, reusing the key/value cache inside the model. Each token is sampled
//! (argmax at temperature 0, else temperature with optional top-p, from a fixed seed) after a
//! repeat penalty over the last tokens; text is decoded incrementally and handed to a callback
//! only as complete UTF-8 that cannot turn out to be the start of a stop string. Generation ends
//! at an end-of-sequence token, a stop string (not included in the text) or `max_tokens`.
//!
//! candle's quantized llama keeps rotary tables for 4,096 positions (`MAX_SEQ_LEN`), so prompt
//! plus generated tokens are capped there even where a model advertises a longer context.

use std::fs::File;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::{self, ModelWeights};
use tokenizers::Tokenizer;

use super::chat::ChatTemplate;
use super::tokenizer::{self as gguf_tok, meta_str, meta_u32};

/// Positions candle's quantized llama supports (`quantized_llama::MAX_SEQ_LEN`).
pub const MAX_CONTEXT: usize = quantized_llama::MAX_SEQ_LEN;

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// The file could not be opened.
    #[error("cannot open model {}: {source}", path.display())]
    Open {
        /// The GGUF file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a readable GGUF (bad magic, truncated, ...).
    #[error("{} is not a usable GGUF model: {reason}", path.display())]
    Format {
        /// The GGUF file.
        path: PathBuf,
        /// What candle reported.
        reason: String,
    },
    /// An architecture we do not run.
    #[error("{}: architecture {arch:?} is not supported (llama only)", path.display())]
    Architecture {
        /// The GGUF file.
        path: PathBuf,
        /// `general.architecture`.
        arch: String,
    },
    /// The tokenizer.
    #[error("{}: {source}", path.display())]
    Tokenizer {
        /// The GGUF file.
        path: PathBuf,
        /// Why.
        source: super::tokenizer::TokenizerError,
    },
    /// Tokenising or detokenising failed.
    #[error("tokenizer failed: {0}")]
    Tokenize(String),
    /// The prompt does not fit the context.
    #[error("prompt too long: {tokens} tokens, the limit is {limit}")]
    PromptTooLong {
        /// Prompt tokens.
        tokens: usize,
        /// The most prompt tokens accepted.
        limit: usize,
    },
    /// The prompt tokenised to nothing (raw mode).
    #[error("empty prompt")]
    EmptyPrompt,
    /// A tensor operation failed.
    #[error("inference failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// How to generate.
#[derive(Debug, Clone, clap::Args)]
pub struct GenParams {
    /// Most tokens to generate.
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// Sampling temperature; 0 picks the most likely token.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f64,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches this.
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 299_792_458)]
    pub seed: u64,
    /// Stop before this text (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    /// Penalty for repeating one of the last `repeat_last_n` tokens (1 = none).
    #[arg(long, default_value_t = 1.1)]
    pub repeat_penalty: f32,
    /// How many recent tokens the repeat penalty looks at.
    #[arg(long, default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Use the prompt as it is, without the chat template.
    #[arg(long)]
    pub raw: bool,
}

impl Default for GenParams {
    fn default() -> Self {
        GenParams {
            max_tokens: 128,
            temperature: 0.7,
            top_p: None,
            seed: 299_792_458,
            stop: Vec::new(),
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            raw: false,
        }
    }
}

/// `model run` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The prompt (words are joined with spaces).
    #[arg(required = true)]
    pub prompt: Vec<String>,
    /// A GGUF file (default: `OPENGATEWAY_MODEL_PATH`, config `model_path`, else the built-in).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Sampling and limits.
    #[command(flatten)]
    pub params: GenParams,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model produced an end-of-sequence token.
    Eos,
    /// `max_tokens` were generated.
    Length,
    /// A stop string appeared.
    Stop,
    /// The caller asked to stop (e.g. its client went away).
    Cancelled,
}

/// The result of one generation.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The generated text (without the stop string).
    pub text: String,
    /// Tokens generated (the end-of-sequence token not counted).
    pub tokens: usize,
    /// Tokens in the prompt as run (template included).
    pub prompt_tokens: usize,
    /// Why it ended.
    pub finish: Finish,
    /// The model that ran.
    pub model: String,
    /// Time of the prompt's forward pass.
    pub prefill: Duration,
    /// From the start of the call to the first generated token.
    pub first_token: Duration,
    /// Time spent generating after the first token.
    pub decode: Duration,
}

/// A loaded model.
#[derive(Debug)]
pub struct NativeModel {
    weights: ModelWeights,
    tokenizer: Tokenizer,
    chat: ChatTemplate,
    eos: Vec<u32>,
    bos: Option<u32>,
    name: String,
    device: Device,
    load_time: Duration,
}

impl NativeModel {
    /// Loads a llama-architecture GGUF; the model is named after the file (without `.gguf`).
    pub fn load(path: &Path) -> Result<Self, NativeError> {
        let started = Instant::now();
        let format = |e: candle_core::Error| NativeError::Format {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let mut file = File::open(path).map_err(|source| NativeError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let content = gguf_file::Content::read(&mut file).map_err(format)?;
        let arch = meta_str(&content, "general.architecture").unwrap_or("");
        if arch != "llama" {
            return Err(NativeError::Architecture {
                path: path.to_path_buf(),
                arch: arch.to_owned(),
            });
        }
        let tokenizer = match tokenizer_json_beside(path) {
            Some(json) => Tokenizer::from_file(&json)
                .map_err(|e| NativeError::Tokenize(format!("{}: {e}", json.display())))?,
            None => gguf_tok::from_gguf(&content).map_err(|source| NativeError::Tokenizer {
                path: path.to_path_buf(),
                source,
            })?,
        };
        let chat = ChatTemplate::detect(meta_str(&content, "tokenizer.chat_template"));
        let mut eos: Vec<u32> = meta_u32(&content, "tokenizer.ggml.eos_token_id")
            .into_iter()
            .collect();
        for t in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>"] {
            if let Some(id) = tokenizer.token_to_id(t)
                && !eos.contains(&id)
            {
                eos.push(id);
            }
        }
        let add_bos = content
            .metadata
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(false);
        let bos = meta_u32(&content, "tokenizer.ggml.bos_token_id").filter(|_| add_bos);
        let device = Device::Cpu;
        let weights = ModelWeights::from_gguf(content, &mut file, &device).map_err(format)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".gguf").to_owned())
            .unwrap_or_else(|| "model".to_owned());
        Ok(NativeModel {
            weights,
            tokenizer,
            chat,
            eos,
            bos,
            name,
            device,
            load_time: started.elapsed(),
        })
    }

    /// The name reported in responses.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the model (e.g. to a product id).
    pub fn set_name(&mut self, name: impl Into<String>) {
        self.name = name.into();
    }

    /// How long [`NativeModel::load`] took.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// The chat template recognised in the file.
    pub fn chat_template(&self) -> &ChatTemplate {
        &self.chat
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The token ids the model runs for `prompt` (chat template applied unless `raw`).
    pub fn prompt_ids(&self, prompt: &str, raw: bool) -> Result<Vec<u32>, NativeError> {
        let text = if raw {
            prompt.to_owned()
        } else {
            self.chat.apply(prompt)
        };
        let enc = self
            .tokenizer
            .encode_fast(text, false)
            .map_err(|e| NativeError::Tokenize(e.to_string()))?;
        let mut ids = Vec::with_capacity(enc.get_ids().len() + 1);
        ids.extend(self.bos);
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// Generates a reply to `prompt`, calling `on_text` with each new piece of text.
    pub fn generate(
        &mut self,
        prompt: &str,
        params: &GenParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation, NativeError> {
        self.generate_with(prompt, params, &mut |s| {
            on_text(s);
            ControlFlow::Continue(())
        })
    }

    /// As [`NativeModel::generate`], but `on_text` can stop the generation by returning
    /// `Break`: no further token is computed and the result ends with [`Finish::Cancelled`].
    /// This is how a request whose client has gone away frees the model at once.
    pub fn generate_with(
        &mut self,
        prompt: &str,
        params: &GenParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, NativeError> {
        let started = Instant::now();
        let cancelled = std::cell::Cell::new(false);
        let mut on_text = |s: &str| {
            if !cancelled.get() && on_text(s).is_break() {
                cancelled.set(true);
            }
        };
        let on_text: &mut dyn FnMut(&str) = &mut on_text;
        let ids = self.prompt_ids(prompt, params.raw)?;
        if ids.is_empty() {
            return Err(NativeError::EmptyPrompt);
        }
        // Leave room for at least one generated token.
        let limit = MAX_CONTEXT - 1;
        if ids.len() > limit {
            return Err(NativeError::PromptTooLong {
                tokens: ids.len(),
                limit,
            });
        }
        let max_tokens = params.max_tokens.min(MAX_CONTEXT - ids.len());
        let sampling = if params.temperature <= 0.0 {
            Sampling::ArgMax
        } else {
            match params.top_p {
                Some(p) if p > 0.0 && p < 1.0 => Sampling::TopP {
                    p,
                    temperature: params.temperature,
                },
                _ => Sampling::All {
                    temperature: params.temperature,
                },
            }
        };
        let mut sampler = LogitsProcessor::from_sampling(params.seed, sampling);
        self.weights.clear_kv_cache();

        let input = Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?;
        let mut logits = self.weights.forward(&input, 0)?.squeeze(0)?;
        let prefill = started.elapsed();

        let mut out = TextStream::new(&params.stop);
        let mut generated: Vec<u32> = Vec::new();
        let mut first_token = None;
        let mut finish = Finish::Length;
        let mut decode_start = Instant::now();
        while generated.len() < max_tokens {
            let logits_f = logits.to_dtype(candle_core::DType::F32)?;
            let logits_f = if params.repeat_penalty == 1.0 || generated.is_empty() {
                logits_f
            } else {
                let from = generated.len().saturating_sub(params.repeat_last_n);
                candle_transformers::utils::apply_repeat_penalty(
                    &logits_f,
                    params.repeat_penalty,
                    generated.get(from..).unwrap_or_default(),
                )?
            };
            let next = sampler.sample(&logits_f)?;
            if first_token.is_none() {
                first_token = Some(started.elapsed());
                decode_start = Instant::now();
            }
            if self.eos.contains(&next) {
                finish = Finish::Eos;
                break;
            }
            generated.push(next);
            let piece = self.decode_piece(&generated, &mut out)?;
            if out.push(&piece, on_text) {
                finish = Finish::Stop;
                break;
            }
            if cancelled.get() {
                finish = Finish::Cancelled;
                break;
            }
            if generated.len() >= max_tokens {
                break;
            }
            let pos = ids.len() + generated.len() - 1;
            let input = Tensor::new(&[next], &self.device)?.unsqueeze(0)?;
            logits = self.weights.forward(&input, pos)?.squeeze(0)?;
        }
        out.finish(on_text);
        Ok(Generation {
            text: out.text,
            tokens: generated.len(),
            prompt_tokens: ids.len(),
            finish,
            model: self.name.clone(),
            prefill,
            first_token: first_token.unwrap_or(prefill),
            decode: decode_start.elapsed(),
        })
    }

    /// The new complete text after the last token of `ids` (empty while a character is
    /// incomplete), decoding only a short window of recent tokens.
    fn decode_piece(&self, ids: &[u32], st: &mut TextStream) -> Result<String, NativeError> {
        let dec = |s: &[u32]| {
            self.tokenizer
                .decode(s, true)
                .map_err(|e| NativeError::Tokenize(e.to_string()))
        };
        let prev = dec(ids.get(st.prev..st.cur).unwrap_or_default())?;
        let now = dec(ids.get(st.prev..).unwrap_or_default())?;
        if now.len() > prev.len() && !now.ends_with('\u{fffd}') {
            let piece = now.get(prev.len()..).unwrap_or_default().to_owned();
            st.prev = st.cur;
            st.cur = ids.len();
            Ok(piece)
        } else {
            Ok(String::new())
        }
    }
}

fn tokenizer_json_beside(gguf: &Path) -> Option<PathBuf> {
    let own = gguf.with_extension("tokenizer.json");
    if own.is_file() {
        return Some(own);
    }
    None
}

/// Accumulates generated text, holding back what might be the start of a stop string.
#[derive(Debug)]
struct TextStream {
    text: String,
    emitted: usize,
    stops: Vec<String>,
    /// Token window for incremental decoding.
    prev: usize,
    cur: usize,
}

impl TextStream {
    fn new(stops: &[String]) -> Self {
        TextStream {
            text: String::new(),
            emitted: 0,
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            prev: 0,
            cur: 0,
        }
    }

    /// Adds `piece`; returns true when a stop string was found (the text is cut before it).
    fn push(&mut self, piece: &str, on_text: &mut dyn FnMut(&str)) -> bool {
        if piece.is_empty() {
            return false;
        }
        // A stop string can start inside text already held back, never before `emitted`.
        let search_from = self.emitted;
        self.text.push_str(piece);
        let found = self
            .stops
            .iter()
            .filter_map(|s| {
                self.text
                    .get(search_from..)
                    .and_then(|t| t.find(s.as_str()))
                    .map(|i| i + search_from)
            })
            .min();
        if let Some(at) = found {
            self.text.truncate(at);
            self.flush_to(at, on_text);
            return true;
        }
        let hold = self
            .stops
            .iter()
            .map(|s| {
                (1..s.len())
                    .rev()
                    .find(|k| s.is_char_boundary(*k) && self.text.ends_with(&s[..*k]))
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0);
        let upto = self.text.len() - hold;
        self.flush_to(upto, on_text);
        false
    }

    fn flush_to(&mut self, upto: usize, on_text: &mut dyn FnMut(&str)) {
        if upto > self.emitted {
            if let Some(s) = self.text.get(self.emitted..upto) {
                on_text(s);
            }
            self.emitted = upto;
        }
    }

    fn finish(&mut self, on_text: &mut dyn FnMut(&str)) {
        self.flush_to(self.text.len(), on_text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, Vec<String>, bool) {
        let stops: Vec<String> = stops.iter().map(|s| (*s).to_owned()).collect();
        let mut st = TextStream::new(&stops);
        let mut got = Vec::new();
        let mut stopped = false;
        for p in pieces {
            if st.push(p, &mut |s| got.push(s.to_owned())) {
                stopped = true;
                break;
            }
        }
        st.finish(&mut |s| got.push(s.to_owned()));
        (st.text, got, stopped)
    }

    #[test]
    fn stop_string_split_across_pieces_is_never_emitted() {
        let (text, got, stopped) = run(
            &["\n\nUser:"],
            &["Hello", " world\n", "\nUs", "er:", " more"],
        );
        assert!(stopped);
        assert_eq!(text, "Hello world");
        assert_eq!(got.concat(), "Hello world");
        assert_eq!(got[0], "Hello");
    }

    #[test]
    fn held_back_prefix_is_released_when_it_is_not_a_stop() {
        let (text, got, stopped) = run(&["STOP"], &["ab S", "T", "x", "é"]);
        assert!(!stopped);
        assert_eq!(text, "ab STxé");
        assert_eq!(got.concat(), text);
        assert_eq!(got[0], "ab ");
    }
}
