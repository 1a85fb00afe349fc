use super::*;
use crate::config::PocRoot;

fn resources(body: &str) -> Resources {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("resources.json"), body).unwrap();
    PocRoot::new(d.path()).resources().unwrap().unwrap()
}

fn ids(body: &str) -> Vec<&'static str> {
    eligible(&resources(body)).iter().map(|t| t.id).collect()
}

#[test]
fn eligibility_follows_the_table() {
    assert_eq!(
        ids(r#"{"cpu_cores": 2, "ram_gb": 23, "gpu_vram_gb": 0, "disk_gb": 100}"#),
        [
            "SmolLM-360M",
            "Qwen2-0.5B",
            "SmolLM-1.7B",
            "TinyLlama-1.1B",
            "Phi-2-2.7B",
            "Llama-3.2-1.5B"
        ]
    );
    assert_eq!(
        ids(r#"{"cpu_cores": 1, "ram_gb": 1, "gpu_vram_gb": 0, "disk_gb": 1}"#),
        Vec::<&str>::new()
    );
    assert_eq!(ids(r#"{"cpu": 1, "ram": 1, "disk": 2}"#), ["SmolLM-360M"]);
    // GPU only matters for tiers that need one.
    let big = ids(r#"{"cpu_cores": 16, "ram_gb": 64, "gpu_vram_gb": 8, "disk_gb": 500}"#);
    assert!(big.contains(&"Llama-3.1-8B") && !big.contains(&"Llama-3.1-70B"));
    assert_eq!(
        ids(r#"{"cpu_cores": 16, "ram_gb": 64, "gpu_vram_gb": 48, "disk_gb": 500}"#).len(),
        10
    );
}

#[test]
fn region_order_and_registry_lookup() {
    assert_eq!(region(Some(""), Some("eu-west-1"), Some("x")), "eu-west-1");
    assert_eq!(region(None, None, None), DEFAULT_REGION);
    let v = serde_json::json!({"version": 1, "clusters": {"us-east-1": {
        "SmolLM-360M": " c-small ", "Qwen2-0.5B": "c-small", "SmolLM-1.7B": "", "TinyLlama-1.1B": "c-tiny"}}});
    let reg = Registry::from_value(Path::new("r.json"), v).unwrap();
    assert_eq!(
        reg.clusters_for(
            "us-east-1",
            &[
                "TinyLlama-1.1B",
                "SmolLM-360M",
                "Qwen2-0.5B",
                "SmolLM-1.7B",
                "Nope"
            ]
        ),
        ["c-tiny", "c-small"]
    );
    assert!(reg.clusters_for("eu-west-1", &["SmolLM-360M"]).is_empty());
}
