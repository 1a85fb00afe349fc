//! Building a `tokenizers::Tokenizer` from a GGUF file's metadata.
//!
//! GGUF files carry their tokenizer as metadata (`tokenizer.ggml.*`, as llama.cpp writes them):
//! the token strings (id = position), their types (1 normal, 2 unknown, 3 control, 4 user
//! defined, 6 byte), the BPE merges as `"left right"` strings, and `tokenizer.ggml.pre`, the name
//! of the pre-tokenizer. We support `tokenizer.ggml.model = gpt2` (byte-level BPE: SmolLM2, Qwen,
//! Llama 3): a BPE model from tokens and merges, byte-level pre-tokenisation and decoding; for
//! `pre` = `smollm`, `starcoder`, `refact` digits are split one by one first (as llama.cpp does),
//! for `llama-bpe`, `qwen2` and similar the text is split with llama.cpp's regex for that family.
//! Control tokens become special added tokens (so `<|im_start|>` encodes to one id and is skipped
//! when decoding); user-defined tokens become plain added tokens.
//!
//! Other tokenizer models (SentencePiece `llama`) need a `tokenizer.json` next to the GGUF.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

/// Why no tokenizer could be built.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A metadata key is missing or has the wrong type.
    #[error("GGUF metadata `{0}` is missing or malformed")]
    Metadata(&'static str),
    /// A tokenizer model we cannot build from metadata.
    #[error(
        "GGUF tokenizer model {0:?} is not supported from metadata; put a tokenizer.json next to the GGUF file"
    )]
    Unsupported(String),
    /// The tokenizers crate refused the pieces.
    #[error("cannot build the tokenizer: {0}")]
    Build(String),
}

fn strings<'a>(c: &'a Content, key: &'static str) -> Result<Vec<&'a str>, TokenizerError> {
    let v = c
        .metadata
        .get(key)
        .and_then(|v| v.to_vec().ok())
        .ok_or(TokenizerError::Metadata(key))?;
    v.iter()
        .map(|x| {
            x.to_string()
                .map(String::as_str)
                .map_err(|_| TokenizerError::Metadata(key))
        })
        .collect()
}

/// A metadata string value.
pub fn meta_str<'a>(c: &'a Content, key: &str) -> Option<&'a str> {
    c.metadata
        .get(key)
        .and_then(|v| v.to_string().ok())
        .map(String::as_str)
}

/// A metadata integer value.
pub fn meta_u32(c: &Content, key: &str) -> Option<u32> {
    c.metadata.get(key).and_then(|v| match v {
        Value::U32(x) => Some(*x),
        Value::I32(x) => u32::try_from(*x).ok(),
        Value::U64(x) => u32::try_from(*x).ok(),
        Value::I64(x) => u32::try_from(*x).ok(),
        _ => None,
    })
}

/// llama.cpp's split regex for Llama 3 (`llama-bpe`).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// llama.cpp's split regex for Qwen 2 (`qwen2`): digits one by one.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Builds the tokenizer described by the GGUF metadata.
pub fn from_gguf(c: &Content) -> Result<Tokenizer, TokenizerError> {
    let model = meta_str(c, "tokenizer.ggml.model")
        .ok_or(TokenizerError::Metadata("tokenizer.ggml.model"))?;
    if model != "gpt2" {
        return Err(TokenizerError::Unsupported(model.to_owned()));
    }
    let tokens = strings(c, "tokenizer.ggml.tokens")?;
    let merges = strings(c, "tokenizer.ggml.merges")?;
    let types: Vec<i64> = match c.metadata.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|_| TokenizerError::Metadata("tokenizer.ggml.token_type"))?
            .iter()
            .map(|t| t.to_i32().map(i64::from).unwrap_or(1))
            .collect(),
        None => Vec::new(),
    };
    let mut vocab: HashMap<String, u32> = HashMap::with_capacity(tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        let id = u32::try_from(i).map_err(|_| TokenizerError::Metadata("tokenizer.ggml.tokens"))?;
        vocab.entry((*t).to_owned()).or_insert(id);
    }
    let merges: Vec<(String, String)> = merges
        .iter()
        .filter_map(|m| m.split_once(' '))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(
            vocab
                .into_iter()
                .collect::<tokenizers::models::bpe::Vocab>(),
            merges,
        )
        .build()
        .map_err(|e| TokenizerError::Build(e.to_string()))?;
    let mut tok = Tokenizer::new(bpe);
    let byte_level = ByteLevel::new(false, true, true);
    let pre = meta_str(c, "tokenizer.ggml.pre").unwrap_or("default");
    let split = |re: &str| -> Result<Split, TokenizerError> {
        Split::new(
            SplitPattern::Regex(re.to_owned()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| TokenizerError::Build(e.to_string()))
    };
    match pre {
        "smollm" | "starcoder" | "refact" => {
            tok.with_pre_tokenizer(Some(Sequence::new(vec![
                Digits::new(true).into(),
                byte_level.into(),
            ])));
        }
        "llama-bpe" | "llama3" | "smaug-bpe" => {
            tok.with_pre_tokenizer(Some(Sequence::new(vec![
                split(LLAMA3_SPLIT)?.into(),
                ByteLevel::new(false, true, false).into(),
            ])));
        }
        "qwen2" | "deepseek-r1-qwen" => {
            tok.with_pre_tokenizer(Some(Sequence::new(vec![
                split(QWEN2_SPLIT)?.into(),
                ByteLevel::new(false, true, false).into(),
            ])));
        }
        _ => {
            tok.with_pre_tokenizer(Some(byte_level));
        }
    }
    tok.with_decoder(Some(ByteLevel::default()));
    let mut special = Vec::new();
    let mut plain = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        match types.get(i) {
            Some(3) => special.push(AddedToken::from((*t).to_owned(), true)),
            Some(4) => plain.push(AddedToken::from((*t).to_owned(), false)),
            _ => {}
        }
    }
    tok.add_special_tokens(special)
        .map_err(|e| TokenizerError::Build(e.to_string()))?;
    tok.add_tokens(plain)
        .map_err(|e| TokenizerError::Build(e.to_string()))?;
    Ok(tok)
}
