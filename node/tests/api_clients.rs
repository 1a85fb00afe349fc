//! `opengateway api` against real clients: the official `openai` Python package (pinned, in a
//! virtual environment under target/ made by `scripts/api-test-venv.sh`), `prometheus_client`'s
//! text parser, curl, and Node's `fetch`; 64 concurrent streams against a queue of 8; and the
//! real built-in model streaming and stopping when its client leaves. These tests fail (never
//! skip) when python3, PyPI, curl or node is missing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

/// A running `opengateway api` on a free loopback port, stopped when dropped.
struct ApiNode {
    child: Child,
    base: String,
    _root: tempfile::TempDir,
}

impl ApiNode {
    fn start(env: &[(&str, &str)], args: &[&str]) -> ApiNode {
        let root = tempfile::tempdir().unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_opengateway"));
        c.args(["api", "--listen", "127.0.0.1:0"])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", root.path().join("home"))
            .env("OPENGATEWAY_MODEL_DIR", root.path().join("no-models"))
            .env("OPENGATEWAY_POC_ROOT", root.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).unwrap();
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        ApiNode {
            child,
            base,
            _root: root,
        }
    }

    fn echo(args: &[&str]) -> ApiNode {
        ApiNode::start(&[("POC_INFERENCE_BACKEND", "echo")], args)
    }
}

impl Drop for ApiNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/api")
        .join(name)
}

/// The venv's interpreter, made on first use.
fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let o = Command::new(repo().join("scripts/api-test-venv.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("scripts/api-test-venv.sh runs");
        assert!(
            o.status.success(),
            "scripts/api-test-venv.sh failed: the openai client tests need python3 with venv and PyPI"
        );
        PathBuf::from(String::from_utf8(o.stdout).unwrap().trim())
    })
    .clone()
}

fn run_ok(o: Output, what: &str) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{what} failed:\n{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    println!("{}", out.trim_end());
    out
}

fn client(node: &ApiNode, mode: &str) -> String {
    let o = Command::new(python())
        .arg(script("openai_client.py"))
        .args([node.base.as_str(), mode])
        .output()
        .unwrap();
    run_ok(o, &format!("openai_client.py {mode}"))
}

#[test]
fn openai_python_client_lists_chats_streams_and_gets_errors_and_metrics_parse() {
    let node = ApiNode::echo(&[]);
    client(&node, "echo");
}

#[test]
fn sixty_four_concurrent_streams_are_answered_in_full_or_refused_with_429() {
    let node = ApiNode::echo(&["--queue-limit", "8"]);
    let out = client(&node, "load");
    assert!(out.contains("64 concurrent streams"), "{out}");
}

fn curl(args: &[&str]) -> (String, String) {
    let o = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl is installed");
    assert!(o.status.success(), "curl {args:?}: {o:?}");
    let s = String::from_utf8(o.stdout).unwrap();
    let (body, code) = s.rsplit_once('\n').unwrap();
    (body.to_owned(), code.to_owned())
}

#[test]
fn curl_with_an_api_key() {
    let node = ApiNode::start(
        &[
            ("POC_INFERENCE_BACKEND", "echo"),
            ("OPENGATEWAY_API_KEY", "s3cret"),
        ],
        &[],
    );
    let url = |p: &str| format!("{}{p}", node.base);
    let (body, code) = curl(&[&url("/v1/models")]);
    assert_eq!(code, "401", "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    let (_, code) = curl(&["-H", "Authorization: Bearer wrong", &url("/metrics")]);
    assert_eq!(code, "401");
    let (body, code) = curl(&[&url("/health")]);
    assert_eq!(code, "200", "health needs no key: {body}");

    let auth = ["-H", "Authorization: Bearer s3cret"];
    let (body, code) = curl(&[
        auth[0],
        auth[1],
        &url("/v1/chat/completions"),
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"model":"echo","messages":[{"role":"user","content":"hi curl"}],"stop":["curl"]}"#,
    ]);
    assert_eq!(code, "200", "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "[echo] hi ");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");

    let (body, code) = curl(&[
        "-N",
        auth[0],
        auth[1],
        &url("/v1/completions"),
        "-d",
        r#"{"model":"echo","prompt":"a b","stream":true}"#,
    ]);
    assert_eq!(code, "200");
    let data: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{body}");
    let text: String = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .map(|v| v["choices"][0]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "[echo] a b");

    let (body, code) = curl(&[auth[0], auth[1], &url("/v1/completions"), "-d", "{not json"]);
    assert_eq!(code, "400", "{body}");
    let (_, code) = curl(&[auth[0], auth[1], &url("/v2/nothing")]);
    assert_eq!(code, "404");
}

#[test]
fn javascript_fetch_client_under_node() {
    let node = ApiNode::start(
        &[
            ("POC_INFERENCE_BACKEND", "echo"),
            ("NODE_NAME", "fetch-node"),
        ],
        &[],
    );
    let o = Command::new("node")
        .arg(script("fetch_client.mjs"))
        .arg(&node.base)
        .output()
        .expect("node is installed");
    run_ok(o, "fetch_client.mjs");
}

#[test]
fn real_model_streams_tokens_and_stops_when_the_client_leaves() {
    let model = node::inference::cache::ensure_builtin(&node::cli::Env::from_process())
        .unwrap_or_else(|e| panic!("{e}"));
    let node = ApiNode::start(
        &[
            ("POC_INFERENCE_BACKEND", "native"),
            ("OPENGATEWAY_MODEL_PATH", model.to_str().unwrap()),
        ],
        &[],
    );
    client(&node, "native");
}
