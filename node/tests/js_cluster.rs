//! A cluster of three JS OpenGateway nodes (the project's own `interop-tests/js/og-node.js` over
//! the pinned `hyperswarm`) on a JS HyperDHT testnet: NodeA serves the asked model, NodeC's POC
//! root sends the prompt, and the answer comes back from NodeA. Every POC root the JS nodes write
//! (`state.json` from their `connect`, `peers.json` from the running nodes) is read by the Rust
//! `opengateway status`, `clusters` and `peers` commands.
//!
//! The nodes use different topic schemes: NodeA joins both, NodeB only the SHA-256 topic, NodeC
//! only the padded one, so A meets B and C and B never meets C.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use interop_tests::{Testnet, ensure_js_installed};

const CLUSTER: &str = "og-js-cluster-test";
const MODEL: &str = "SmolLM2-135M-Instruct";

fn og(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opengateway"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", root.join("home"))
        .env("OPENGATEWAY_MODEL_DIR", root.join("no-models"))
        .env("OPENGATEWAY_POC_ROOT", root)
        .output()
        .unwrap()
}

fn og_stdout(root: &Path, args: &[&str]) -> String {
    let o = og(root, args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "opengateway {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// `node og-node.js ARGS` with a POC root and the testnet as its network.
fn js(root: &Path, bootstrap: &str, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let dir = ensure_js_installed().expect("JS packages");
    let mut c = Command::new("node");
    c.arg(dir.join("og-node.js"))
        .args(args)
        .current_dir(&dir)
        .env("OPENGATEWAY_POC_ROOT", root)
        .env("OPENGATEWAY_BOOTSTRAP", bootstrap)
        .env("OPENGATEWAY_HOST", "127.0.0.1")
        .env_remove("POC_CLUSTER_ID")
        .env_remove("POC_CLUSTER_IDS")
        .env_remove("OPENGATEWAY_TOPIC_SCHEME");
    for (k, v) in envs {
        c.env(k, v);
    }
    c
}

/// A running JS node; killed when dropped.
struct JsNode {
    name: &'static str,
    root: PathBuf,
    child: Child,
}

impl JsNode {
    fn start(name: &'static str, root: &Path, bootstrap: &str, envs: &[(&str, &str)]) -> Self {
        fs::create_dir_all(root.join("logs")).unwrap();
        // Daemon output goes where the POC's `start` puts it.
        let log = fs::File::create(root.join("logs/node.out.log")).unwrap();
        let mut envs = envs.to_vec();
        envs.extend([("NODE_NAME", name), ("POC_INFERENCE_BACKEND", "echo")]);
        let child = js(root, bootstrap, &["run", "--record-pid"], &envs)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node og-node.js run");
        Self {
            name,
            root: root.to_owned(),
            child,
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.root.join("logs/node.out.log")).unwrap_or_default()
    }

    /// SIGTERM, as `opengateway stop` sends it; returns whether it exited 0 in time.
    fn terminate(&mut self) -> bool {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for JsNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `opengateway peers CLUSTER` on `root` until it names exactly `names`, or panics at the
/// deadline with the last output.
fn wait_for_peers(node: &JsNode, names: &[&str], deadline: Instant) -> String {
    loop {
        let out = og_stdout(&node.root, &["peers", CLUSTER]);
        let mut seen: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("- ")?.split_once(" (")?.1.split_once(')'))
            .map(|(name, _)| name)
            .collect();
        seen.sort_unstable();
        if seen == names {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{}: `opengateway peers` never named {names:?}; last output:\n{out}\nits log:\n{}",
            node.name,
            node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn js_cluster_answers_a_prompt_and_its_poc_roots_read_in_rust() {
    let net = Testnet::start(4).expect("JS testnet");
    let bootstrap = net.bootstrap.to_string();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (ra, rb, rc) = (dirs[0].path(), dirs[1].path(), dirs[2].path());

    // The JS node's `connect` writes state.json; Rust reads it.
    for r in [ra, rb, rc] {
        let o = js(r, &bootstrap, &["connect", CLUSTER], &[])
            .output()
            .unwrap();
        assert!(o.status.success());
        assert_eq!(
            String::from_utf8(o.stdout).unwrap(),
            format!("Connected to {CLUSTER} . Run \"opengateway start\" to join the cluster.\n")
        );
        assert_eq!(og_stdout(r, &["clusters"]), format!("{CLUSTER}\n"));
    }

    let mut a = JsNode::start("NodeA", ra, &bootstrap, &[("POC_SUPPORTED_MODELS", MODEL)]);
    let b = JsNode::start(
        "NodeB",
        rb,
        &bootstrap,
        &[
            ("POC_SUPPORTED_MODELS", "Qwen2-0.5B"),
            ("OPENGATEWAY_TOPIC_SCHEME", "sha256"),
        ],
    );
    let c = JsNode::start(
        "NodeC",
        rc,
        &bootstrap,
        &[
            ("POC_SUPPORTED_MODELS", "Qwen2-0.5B"),
            ("OPENGATEWAY_TOPIC_SCHEME", "padded"),
        ],
    );

    // Every peer greeted: the names come from peer_hello, the clusters from its list.
    let deadline = Instant::now() + Duration::from_secs(30);
    let peers_a = wait_for_peers(&a, &["NodeB", "NodeC"], deadline);
    assert!(
        peers_a.starts_with(&format!("Peers in {CLUSTER} (2):\n")),
        "{peers_a}"
    );
    wait_for_peers(&b, &["NodeA"], deadline);
    wait_for_peers(&c, &["NodeA"], deadline);

    // `--record-pid` recorded what the POC's `start` records; Rust sees a running node.
    let status = og_stdout(ra, &["status"]);
    assert!(
        status.contains(&format!("Node:         running (pid {})\n", a.child.id())),
        "{status}"
    );
    assert!(
        status.contains(&format!("Clusters:     {CLUSTER}\n")),
        "{status}"
    );
    assert!(
        status.contains("Runtime:      echo (llama3.2:1b)\n"),
        "{status}"
    );
    assert!(
        status.contains(&format!("Models:       {MODEL}\n")),
        "{status}"
    );

    // NodeC's root prompts for A's model: only A is asked and only A answers.
    let o = js(
        rc,
        &bootstrap,
        &["prompt", "What is 2+2?", "--model", MODEL],
        &[],
    )
    .output()
    .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "prompt failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        "[echo] What is 2+2?\n"
    );
    assert_eq!(a.log().matches("[request] ").count(), 1, "{}", a.log());
    assert!(a.log().contains(" -> echo\n"));
    assert!(!b.log().contains("[request] "), "{}", b.log());
    assert!(!c.log().contains("[request] "), "{}", c.log());

    // SIGTERM: A empties its peers.json and exits 0; B drops A; Rust sees A stopped.
    assert!(a.terminate(), "NodeA did not exit 0 on SIGTERM");
    let peers_json = fs::read_to_string(ra.join("peers.json")).unwrap();
    assert!(peers_json.contains("\"peers\": []"), "{peers_json}");
    assert_eq!(
        og_stdout(ra, &["peers", CLUSTER]),
        format!("No peers currently visible in {CLUSTER}\n")
    );
    let status = og_stdout(ra, &["status"]);
    assert!(status.contains("Node:         not running\n"), "{status}");
    wait_for_peers(&b, &[], Instant::now() + Duration::from_secs(30));
    drop((b, c, net));
}

/// What `og-probe.js` reports: the node's hello and every response, in order.
fn probe(bootstrap: &str, cluster: &str) -> serde_json::Value {
    let dir = ensure_js_installed().expect("JS packages");
    let o = Command::new("node")
        .arg(dir.join("og-probe.js"))
        .arg(cluster)
        .current_dir(&dir)
        .env("OPENGATEWAY_BOOTSTRAP", bootstrap)
        .output()
        .unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        o.status.success(),
        "og-probe.js failed: {text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(text.trim()).unwrap()
}

#[test]
fn js_node_tolerates_bad_input_as_the_poc_does() {
    let net = Testnet::start(4).expect("JS testnet");
    let bootstrap = net.bootstrap.to_string();
    let dir = tempfile::tempdir().unwrap();
    let node = JsNode::start(
        "NodeA",
        dir.path(),
        &bootstrap,
        &[("POC_CLUSTER_ID", CLUSTER), ("POC_SUPPORTED_MODELS", MODEL)],
    );
    let r = probe(&bootstrap, CLUSTER);
    assert_eq!(
        r["hello"],
        serde_json::json!({
            "type": "peer_hello",
            "node_name": "NodeA",
            "clusters": [CLUSTER],
            "supported_models": [MODEL],
        })
    );
    // Empty, unparsable and non-object lines, requests without (or with null) request_id or
    // prompt, unknown types and the 2 MiB line got nothing; the three good requests got their
    // request_id back unchanged, whatever its JSON type.
    let responses = r["responses"].as_array().unwrap();
    let ids: Vec<_> = responses.iter().map(|m| &m["request_id"]).collect();
    assert_eq!(
        ids,
        [
            &serde_json::json!(42),
            &serde_json::json!({ "nested": [1, "two"] }),
            &serde_json::json!("last"),
        ],
        "{responses:?}"
    );
    assert_eq!(responses[0]["response"], "[echo] ");
    assert_eq!(responses[1]["response"], "[echo] object id");
    assert_eq!(responses[2]["response"], "[echo] done?");
    assert!(responses.iter().all(|m| m["type"] == "inference_response"));
    // The node is still up and serving after all that.
    assert_eq!(
        node.log().matches("[request] ").count(),
        3,
        "{}",
        node.log()
    );
    drop((node, net));
}
