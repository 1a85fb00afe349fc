use super::*;

fn root() -> (tempfile::TempDir, PocRoot) {
    let d = tempfile::tempdir().unwrap();
    let r = PocRoot::new(d.path());
    (d, r)
}

#[test]
fn env_resolution() {
    assert_eq!(
        PocRoot::from_env_values(Some("/x"), Some("/h")).dir(),
        Path::new("/x")
    );
    assert_eq!(
        PocRoot::from_env_values(Some(""), Some("/h")).dir(),
        Path::new("/h/.opengateway-poc")
    );
}

#[test]
fn missing_state_is_the_poc_default_and_connect_writes_it() {
    let (_d, r) = root();
    let mut s = r.state().unwrap();
    assert!(s.clusters().is_empty());
    assert!(s.connect("c1"));
    assert!(!s.connect("c1"));
    r.save_state(&s).unwrap();
    assert_eq!(
        std::fs::read_to_string(r.file(STATE_FILE)).unwrap(),
        "{\n  \"clusters\": [\n    {\n      \"id\": \"c1\"\n    }\n  ],\n  \"nodePid\": null,\n  \"supportedModels\": [],\n  \"runtime\": {}\n}\n"
    );
}

#[test]
fn unknown_keys_survive_a_rewrite_in_place() {
    let (_d, r) = root();
    std::fs::write(
        r.file(STATE_FILE),
        r#"{"mine":{"a":[1,2]},"clusters":[{"id":"a","note":"keep"},{"id":"b"}],"nodePid":null,"zz":true}"#,
    )
    .unwrap();
    let mut s = r.state().unwrap();
    assert!(s.disconnect("b"));
    assert!(s.connect("c"));
    s.set_node_pid(Some(42));
    r.save_state(&s).unwrap();
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(r.file(STATE_FILE)).unwrap()).unwrap();
    let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["mine", "clusters", "nodePid", "zz"]);
    assert_eq!(
        v["clusters"],
        json!([{"id": "a", "note": "keep"}, {"id": "c"}])
    );
    assert_eq!(v["nodePid"], json!(42));
    assert_eq!(v["mine"], json!({"a": [1, 2]}));
}

#[test]
fn wrong_field_types_name_file_and_field() {
    let (_d, r) = root();
    let cases = [
        (STATE_FILE, r#"{"clusters": "a"}"#, "`clusters`"),
        (
            STATE_FILE,
            r#"{"clusters": [{"id": "a"}, {"name": "b"}]}"#,
            "`clusters[1].id`",
        ),
        (
            STATE_FILE,
            r#"{"clusters": [], "nodePid": "12"}"#,
            "`nodePid`",
        ),
        (
            STATE_FILE,
            r#"{"clusters": [], "runtime": {"backend": 1}}"#,
            "`runtime.backend`",
        ),
        (
            STATE_FILE,
            r#"{"clusters": [], "supportedModels": ["a", 2]}"#,
            "`supportedModels[1]`",
        ),
        (CONFIG_FILE, r#"{"region": 5}"#, "`region`"),
        (RESOURCES_FILE, r#"{"cpu_cores": "two"}"#, "`cpu_cores`"),
        (PEERS_FILE, r#"{"peers": {}}"#, "`peers`"),
        (
            REGISTRY_FILE,
            r#"{"version": 1, "clusters": {"eu": {"SmolLM-360M": 3}}}"#,
            "`clusters.eu.SmolLM-360M`",
        ),
    ];
    for (file, body, field) in cases {
        std::fs::write(r.file(file), body).unwrap();
        let err = match file {
            STATE_FILE => r.state().map(|_| ()),
            CONFIG_FILE => r.config().map(|_| ()),
            RESOURCES_FILE => r.resources().map(|_| ()),
            PEERS_FILE => r.peers().map(|_| ()),
            _ => r.registry().map(|_| ()),
        }
        .unwrap_err()
        .to_string();
        assert!(err.contains(file) && err.contains(field), "{file}: {err}");
        std::fs::remove_file(r.file(file)).unwrap();
    }
}

#[test]
fn resources_accept_the_short_keys() {
    let (_d, r) = root();
    std::fs::write(
        r.file(RESOURCES_FILE),
        r#"{"cpu": 4, "ram_gb": 8.0, "ram": 1, "disk": null}"#,
    )
    .unwrap();
    let res = r.resources().unwrap().unwrap();
    assert_eq!(
        (res.cpu, res.ram, res.gpu, res.disk),
        (Some(4.0), Some(8.0), None, None)
    );
    assert_eq!(res.display(1), "8");
    assert_eq!(res.display(3), "?");
}
