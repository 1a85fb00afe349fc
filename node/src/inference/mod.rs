//! Answering prompts: the POC's `echo` and `ollama` backends, our native candle backend, the
//! model cache, and the bounded request queue in front of them.

pub mod backend;
pub mod cache;
pub mod chat;
pub mod cli;
pub mod native;
pub mod ollama;
pub mod queue;
pub mod request;
pub mod serve;
pub mod tokenizer;
