use super::*;
use serde_json::json;

#[test]
fn pretty_output_matches_js_stringify() {
    let v =
        json!({"clusters": [{"id": "a"}], "nodePid": null, "supportedModels": [], "runtime": {}});
    let s = String::from_utf8(to_js_pretty(&v).unwrap()).unwrap();
    // Byte-for-byte what `JSON.stringify(v, null, 2) + '\n'` prints in Node.
    assert_eq!(
        s,
        "{\n  \"clusters\": [\n    {\n      \"id\": \"a\"\n    }\n  ],\n  \"nodePid\": null,\n  \"supportedModels\": [],\n  \"runtime\": {}\n}\n"
    );
}

#[test]
fn atomic_write_replaces_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sub").join("x.json");
    write_json_atomic(&p, &json!({"a": 1})).unwrap();
    write_json_atomic(&p, &json!({"a": 2})).unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\n  \"a\": 2\n}\n");
    let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("x.json")]);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o644
    );
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    write_json_atomic(&p, &json!({"a": 3})).unwrap();
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn js_string_conversions() {
    assert_eq!(js_string(&json!("x")), "x");
    assert_eq!(js_string(&json!(5)), "5");
    assert_eq!(js_string(&json!(2.0)), "2");
    assert_eq!(js_string(&json!(2.5)), "2.5");
    assert_eq!(js_string(&json!(true)), "true");
    assert_eq!(js_string(&json!([1, null, "a"])), "1,,a");
    assert_eq!(js_string(&json!({"a": 1})), "[object Object]");
    assert!(!js_truthy(&json!("")));
    assert!(!js_truthy(&json!(0)));
    assert!(js_truthy(&json!("0")));
}

#[test]
fn parse_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("state.json");
    std::fs::write(&p, "{\"clusters\": [").unwrap();
    let e = read_object(&p).unwrap_err().to_string();
    assert!(
        e.contains("state.json") && e.contains("not valid JSON"),
        "{e}"
    );
    std::fs::write(&p, "[1]").unwrap();
    let e = read_object(&p).unwrap_err().to_string();
    assert!(e.contains("state.json") && e.contains("(root)"), "{e}");
    assert!(
        read_object(&dir.path().join("missing.json"))
            .unwrap()
            .is_none()
    );
}
