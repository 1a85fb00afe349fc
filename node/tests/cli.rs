//! The `opengateway` binary against temporary POC roots, including one written in the JS POC's
//! exact format (`opengateway scripts/install.sh`, `scripts/cli.js`, `scripts/poc-node.js`).

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn og(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_opengateway"));
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", root.join("home"))
        .env("OPENGATEWAY_MODEL_DIR", root.join("no-models"))
        .env("OPENGATEWAY_POC_ROOT", root);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}
fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// A pid above Linux's largest (`pid_max` <= 2^22), so no process has it.
const DEAD_PID: &str = "2147483647";

/// A POC root as the JS POC leaves it after `install.sh`, `gauge`, `connect` and `start`.
fn js_root(dir: &Path) {
    fs::write(
        dir.join("config.json"),
        "{\n  \"cluster_registry_url\": \"https://raw.githubusercontent.com/neumerance/opengateway/main/scripts/cluster-registry.json\",\n  \"region\": \"us-east-1\"\n}\n",
    )
    .unwrap();
    fs::write(
        dir.join("state.json"),
        format!("{{\n  \"clusters\": [\n    {{\n      \"id\": \"cluster-us-east-1-smollm-360m\"\n    }},\n    {{\n      \"id\": \"gatewayai-poc\"\n    }}\n  ],\n  \"nodePid\": {DEAD_PID},\n  \"supportedModels\": [\n    \"SmolLM-360M\",\n    \"Qwen2-0.5B\"\n  ],\n  \"runtime\": {{\n    \"backend\": \"ollama\",\n    \"model\": \"llama3.2:1b\"\n  }}\n}}\n"),
    )
    .unwrap();
    fs::write(
        dir.join("resources.json"),
        "{\n  \"cpu_cores\": 2,\n  \"ram_gb\": 3,\n  \"gpu_vram_gb\": 0,\n  \"disk_gb\": 40\n}\n",
    )
    .unwrap();
    fs::write(
        dir.join("peers.json"),
        "{\n  \"updated_at\": \"2026-01-05T10:00:03.120Z\",\n  \"peers\": [\n    {\n      \"peer_id\": \"a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90\",\n      \"node_name\": \"alice\",\n      \"clusters\": [\n        \"gatewayai-poc\"\n      ],\n      \"connected_at\": \"2026-01-05T10:00:00.000Z\",\n      \"last_seen_at\": \"2026-01-05T10:00:01.500Z\"\n    },\n    {\n      \"peer_id\": \"ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\",\n      \"node_name\": \"unknown\",\n      \"clusters\": [\n        \"cluster-us-east-1-smollm-360m\"\n      ],\n      \"connected_at\": \"2026-01-05T10:00:02.000Z\",\n      \"last_seen_at\": \"2026-01-05T10:00:02.000Z\"\n    }\n  ]\n}\n",
    )
    .unwrap();
}

#[test]
fn js_poc_root_is_read_unchanged() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    js_root(r);
    let before: Vec<_> = ["config.json", "state.json", "resources.json", "peers.json"]
        .iter()
        .map(|f| fs::read(r.join(f)).unwrap())
        .collect();

    let o = og(r, &["status"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "POC root:     {}\nNode:         not running\nNode name:    (auto)\nClusters:     cluster-us-east-1-smollm-360m, gatewayai-poc\nRuntime:      ollama (llama3.2:1b)\nModels:       SmolLM-360M, Qwen2-0.5B\n",
            r.display()
        )
    );
    let o = og(r, &["clusters"], &[]);
    assert_eq!(stdout(&o), "cluster-us-east-1-smollm-360m\ngatewayai-poc\n");
    let o = og(r, &["resources"], &[]);
    assert_eq!(
        stdout(&o),
        "CPU cores:    2\nRAM (GB):     3\nGPU VRAM (GB): 0\nDisk (GB):    40\n"
    );
    let o = og(r, &["eligible"], &[]);
    assert_eq!(
        stdout(&o),
        "SmolLM-360M\nQwen2-0.5B\nTinyLlama-1.1B\nPhi-2-2.7B\n"
    );
    let o = og(r, &["peers"], &[]);
    assert_eq!(
        stdout(&o),
        "Peers in cluster-us-east-1-smollm-360m (1):\n- ffeeddccbbaa9988 (unknown) last_seen=2026-01-05T10:00:02.000Z\n"
    );
    let o = og(r, &["peers", "gatewayai-poc"], &[]);
    assert_eq!(
        stdout(&o),
        "Peers in gatewayai-poc (1):\n- a1b2c3d4e5f60718 (alice) last_seen=2026-01-05T10:00:01.500Z\n"
    );
    let o = og(r, &["peers", "elsewhere"], &[]);
    assert_eq!(stdout(&o), "Not connected to elsewhere\n");

    // Reading changed nothing.
    for (f, b) in ["config.json", "state.json", "resources.json", "peers.json"]
        .iter()
        .zip(before)
    {
        assert_eq!(fs::read(r.join(f)).unwrap(), b, "{f} changed");
    }
}

#[test]
fn connect_and_disconnect_rewrite_state_as_the_poc_does() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    // What install.sh writes.
    fs::write(r.join("state.json"), "{\"clusters\":[],\"nodePid\":null}\n").unwrap();
    let o = og(r, &["connect", "gatewayai-poc"], &[]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o),
        "Connected to gatewayai-poc . Run \"opengateway start\" to join the cluster.\n"
    );
    assert_eq!(
        fs::read_to_string(r.join("state.json")).unwrap(),
        "{\n  \"clusters\": [\n    {\n      \"id\": \"gatewayai-poc\"\n    }\n  ],\n  \"nodePid\": null\n}\n"
    );
    assert_eq!(
        stdout(&og(r, &["join", "gatewayai-poc"], &[])),
        "Already connected to gatewayai-poc\n"
    );
    assert_eq!(
        stdout(&og(r, &["join", "b"], &[])),
        "Connected to b . Run \"opengateway start\" to join the cluster.\n"
    );
    assert_eq!(stdout(&og(r, &["clusters"], &[])), "gatewayai-poc\nb\n");
    assert_eq!(
        stdout(&og(r, &["leave", "gatewayai-poc"], &[])),
        "Disconnected from gatewayai-poc\n"
    );
    assert_eq!(
        stdout(&og(r, &["disconnect", "zzz"], &[])),
        "Not connected to zzz\n"
    );
    assert_eq!(
        stdout(&og(r, &["disconnect", "b"], &[])),
        "Disconnected from b\n"
    );
    assert_eq!(
        stdout(&og(r, &["clusters"], &[])),
        "No clusters connected. Use: opengateway connect <cluster-id>\n"
    );
    // A fresh root: the POC's default state with the new cluster.
    let d2 = tempfile::tempdir().unwrap();
    og(d2.path(), &["connect", "x"], &[]);
    assert_eq!(
        fs::read_to_string(d2.path().join("state.json")).unwrap(),
        "{\n  \"clusters\": [\n    {\n      \"id\": \"x\"\n    }\n  ],\n  \"nodePid\": null,\n  \"supportedModels\": [],\n  \"runtime\": {}\n}\n"
    );
}

#[test]
fn usage_errors_exit_1() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    let o = og(r, &["frobnicate"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("Usage: opengateway <command> [args]\n"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());
    let o = og(r, &[], &[]);
    assert_eq!(o.status.code(), Some(1));
    let o = og(r, &["connect"], &[]);
    assert_eq!(
        (o.status.code(), stderr(&o).as_str()),
        (Some(1), "Usage: opengateway connect <cluster-id>\n")
    );
    let o = og(r, &["leave"], &[]);
    assert_eq!(
        (o.status.code(), stderr(&o).as_str()),
        (Some(1), "Usage: opengateway disconnect <cluster-id>\n")
    );
    for cmd in ["start", "restart", "prompt"] {
        let o = og(
            r,
            &[cmd, "hello"][..if cmd == "prompt" { 2 } else { 1 }],
            &[],
        );
        assert_eq!(o.status.code(), Some(1), "{cmd}");
        assert!(
            stderr(&o).contains("needs the swarm layer"),
            "{cmd}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn corrupt_files_name_file_and_field() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    fs::write(r.join("state.json"), "{\"clusters\": [{\"id\": 7}]}").unwrap();
    let o = og(r, &["status"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("state.json") && e.contains("clusters[0].id") && e.contains("must be a string"),
        "{e}"
    );
    fs::write(r.join("state.json"), "{\"clusters\": [").unwrap();
    let e = stderr(&og(r, &["connect", "x"], &[]));
    assert!(
        e.contains("state.json is not valid JSON") && e.contains("line 1"),
        "{e}"
    );
    // The corrupt file was not replaced.
    assert_eq!(
        fs::read_to_string(r.join("state.json")).unwrap(),
        "{\"clusters\": ["
    );
    fs::write(r.join("resources.json"), "{\"ram_gb\": \"lots\"}").unwrap();
    let o = og(r, &["eligible"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("resources.json: field `ram_gb` must be a number"),
        "{}",
        stderr(&o)
    );
    fs::write(r.join("state.json"), "{\"clusters\": [{\"id\": \"c\"}]}").unwrap();
    fs::write(r.join("peers.json"), "{\"peers\": [{\"clusters\": \"c\"}]}").unwrap();
    let e = stderr(&og(r, &["peers", "c"], &[]));
    assert!(
        e.contains("peers.json: field `peers[0].clusters` must be an array"),
        "{e}"
    );
}

#[test]
fn gauge_writes_resources_and_keeps_user_keys() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path().join("root");
    let o = og(&r, &["gauge"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = fs::read_to_string(r.join("resources.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["cpu_cores", "ram_gb", "gpu_vram_gb", "disk_gb"]);
    assert!(v["cpu_cores"].as_u64().unwrap() >= 1 && v["disk_gb"].as_u64().unwrap() >= 1);
    let out = stdout(&o);
    assert!(
        out.starts_with(&format!(
            "Gauged: {{ cpu_cores: {}, ram_gb: {},",
            v["cpu_cores"], v["ram_gb"]
        )),
        "{out}"
    );
    assert!(
        out.ends_with(&format!("Wrote {}\n", r.join("resources.json").display())),
        "{out}"
    );
    fs::write(
        r.join("resources.json"),
        "{\"note\": \"mine\", \"cpu_cores\": 999}",
    )
    .unwrap();
    og(&r, &["gauge"], &[]);
    let v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(r.join("resources.json")).unwrap()).unwrap();
    assert_eq!(v["note"], "mine");
    assert_ne!(v["cpu_cores"], 999);
}

#[test]
fn stop_signals_the_recorded_pid_and_clears_stale_ones() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    let mut child = Command::new("sleep").arg("60").spawn().unwrap();
    fs::write(
        r.join("state.json"),
        format!("{{\"clusters\":[],\"nodePid\":{},\"keep\":1}}", child.id()),
    )
    .unwrap();
    let st = stdout(&og(r, &["status"], &[]));
    assert!(
        st.contains(&format!("Node:         running (pid {})", child.id())),
        "{st}"
    );
    let o = og(r, &["stop"], &[]);
    assert_eq!(stdout(&o), format!("Stopped node (pid {}).\n", child.id()));
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(15));
    assert_eq!(
        fs::read_to_string(r.join("state.json")).unwrap(),
        "{\n  \"clusters\": [],\n  \"nodePid\": null,\n  \"keep\": 1\n}\n"
    );
    assert_eq!(stdout(&og(r, &["stop"], &[])), "Node is not running.\n");
    fs::write(
        r.join("state.json"),
        format!("{{\"clusters\":[],\"nodePid\":{DEAD_PID}}}"),
    )
    .unwrap();
    assert_eq!(
        stdout(&og(r, &["stop"], &[])),
        "Node process not found. Cleared stale pid.\n"
    );
}

#[test]
fn topic_schemes() {
    let d = tempfile::tempdir().unwrap();
    let padded = format!("{}{}\n", hex::encode("gatewayai-poc"), "00".repeat(19));
    let sha_line = {
        use sha2::Digest;
        format!("{}\n", hex::encode(sha2::Sha256::digest(b"gatewayai-poc")))
    };
    // The default joins both schemes, the padded topic first.
    let o = og(d.path(), &["topic", "gatewayai-poc"], &[]);
    assert_eq!(stdout(&o), format!("{padded}{sha_line}"));
    let o = og(
        d.path(),
        &["topic", "gatewayai-poc", "--topic-scheme", "padded"],
        &[],
    );
    assert_eq!(stdout(&o), padded);
    let o = og(
        d.path(),
        &["topic", "gatewayai-poc", "--topic-scheme", "sha256"],
        &[],
    );
    assert_eq!(stdout(&o), sha_line);
    let o = og(
        d.path(),
        &["topic", "gatewayai-poc"],
        &[("OPENGATEWAY_TOPIC_SCHEME", "both")],
    );
    assert_eq!(stdout(&o), format!("{padded}{sha_line}"));
    let o = og(
        d.path(),
        &["topic", "x"],
        &[("OPENGATEWAY_TOPIC_SCHEME", "md5")],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("OPENGATEWAY_TOPIC_SCHEME"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn stdio_answers_requests_in_order_and_ignores_bad_lines() {
    let d = tempfile::tempdir().unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_opengateway"))
        .arg("stdio")
        .env_clear()
        .env("OPENGATEWAY_POC_ROOT", d.path())
        .env("OPENGATEWAY_MODEL_DIR", d.path().join("none"))
        .env("POC_INFERENCE_BACKEND", "echo")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let mut input = Vec::new();
        input.extend_from_slice(
            b"{\"type\":\"inference_request\",\"request_id\":\"r1\",\"prompt\":\"one\"}\n",
        );
        input.extend_from_slice(
            b"not json\n\n{\"type\":\"inference_request\",\"prompt\":\"no id\"}\n",
        );
        input.extend_from_slice(b"{\"type\":\"inference_request\",\"request_id\":");
        input.extend(std::iter::repeat_n(b'9', 10 << 20));
        input.extend_from_slice(b",\"prompt\":\"huge\"}\n");
        input.extend_from_slice(b"{\"type\":\"peer_hello\",\"node_name\":\"n\"}\n");
        input.extend_from_slice(
            b"{\"type\":\"inference_request\",\"request_id\":{\"k\":[2]},\"prompt\":22}\n",
        );
        stdin.write_all(&input).unwrap();
    });
    writer.join().unwrap();
    let out = c.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "{\"type\":\"inference_response\",\"request_id\":\"r1\",\"response\":\"[echo] one\",\"model\":\"echo\"}\n\
         {\"type\":\"inference_response\",\"request_id\":{\"k\":[2]},\"response\":\"[echo] 22\",\"model\":\"echo\"}\n"
    );
    assert!(
        stderr(&out).contains("dropped 1 line(s) longer than 1 MiB"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn stdio_streams_chunks_when_asked_and_stays_poc_shaped_otherwise() {
    let d = tempfile::tempdir().unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_opengateway"))
        .arg("stdio")
        .env_clear()
        .env("OPENGATEWAY_POC_ROOT", d.path())
        .env("OPENGATEWAY_MODEL_DIR", d.path().join("none"))
        .env("POC_INFERENCE_BACKEND", "echo")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(
            b"{\"type\":\"inference_request\",\"request_id\":\"s\",\"prompt\":\"a b\",\"stream\":true}\n\
              {\"type\":\"inference_request\",\"request_id\":\"p\",\"prompt\":\"c\",\"stream\":false}\n",
        )
        .unwrap();
    let out = c.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "{\"type\":\"inference_chunk\",\"request_id\":\"s\",\"delta\":\"[echo]\",\"index\":0}\n\
         {\"type\":\"inference_chunk\",\"request_id\":\"s\",\"delta\":\" a\",\"index\":1}\n\
         {\"type\":\"inference_chunk\",\"request_id\":\"s\",\"delta\":\" b\",\"index\":2}\n\
         {\"type\":\"inference_response\",\"request_id\":\"s\",\"response\":\"[echo] a b\",\"model\":\"echo\"}\n\
         {\"type\":\"inference_response\",\"request_id\":\"p\",\"response\":\"[echo] c\",\"model\":\"echo\"}\n"
    );
}
