//! The POC root: the directory of JSON files shared by the JS POC and this node.
//!
//! Location: `$OPENGATEWAY_POC_ROOT`, else `~/.opengateway-poc` (`opengateway scripts/cli.js`,
//! constant `POC_ROOT`). Files and their shapes, as the POC writes them:
//!
//! | file | shape |
//! |---|---|
//! | `config.json` | `{ "cluster_registry_url"?, "region"?, "cluster_id"?, "node_name"? }` (all strings) |
//! | `state.json` | `{ "clusters": [{"id"}], "nodePid": int or null, "supportedModels": [..], "runtime": {"backend", "model"} }` |
//! | `resources.json` | `{ "cpu_cores", "ram_gb", "gpu_vram_gb", "disk_gb" }` (also read: `cpu`, `ram`, `gpu`, `disk`) |
//! | `peers.json` | `{ "updated_at", "peers": [{ "peer_id", "node_name", "clusters", "connected_at", "last_seen_at" }] }` |
//! | `cluster-registry.json` | `{ "version": 1, "clusters": { region: { tier id: cluster id } } }` |
//!
//! Each document is kept as the JSON object that was read; edits change only the keys they are
//! about, so keys this node does not know (or that a user added) survive a rewrite, in their place.
//! A missing file reads as the POC's default (`getState`, `getConfig` in `cli.js`); a file that does
//! not parse, or a known field of the wrong type, is an error naming the file and the field.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::jsonfile::{FileError, js_truthy, read_json, read_object, write_json_atomic};

/// File names inside the POC root.
pub const CONFIG_FILE: &str = "config.json";
/// See [`CONFIG_FILE`].
pub const STATE_FILE: &str = "state.json";
/// See [`CONFIG_FILE`].
pub const RESOURCES_FILE: &str = "resources.json";
/// See [`CONFIG_FILE`].
pub const PEERS_FILE: &str = "peers.json";
/// See [`CONFIG_FILE`].
pub const REGISTRY_FILE: &str = "cluster-registry.json";

/// The POC root directory.
#[derive(Debug, Clone)]
pub struct PocRoot {
    dir: PathBuf,
}

impl PocRoot {
    /// The root at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PocRoot { dir: dir.into() }
    }

    /// The root named by `OPENGATEWAY_POC_ROOT` (when set and non-empty), else
    /// `$HOME/.opengateway-poc`, as `cli.js` resolves `POC_ROOT`.
    pub fn from_env_values(poc_root: Option<&str>, home: Option<&str>) -> Self {
        match poc_root.filter(|s| !s.is_empty()) {
            Some(r) => PocRoot::new(r),
            None => PocRoot::new(Path::new(home.unwrap_or("")).join(".opengateway-poc")),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of a file in the root.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Reads `config.json` (missing: an empty config).
    pub fn config(&self) -> Result<Config, FileError> {
        let path = self.file(CONFIG_FILE);
        let raw = read_object(&path)?.unwrap_or_default();
        for key in ["cluster_id", "node_name", "region", "cluster_registry_url"] {
            optional_string(&path, &raw, key)?;
        }
        if let Some(v) = raw.get("inference_queue_limit")
            && v.as_u64().is_none_or(|n| n < 1)
        {
            return Err(FileError::field(
                &path,
                "inference_queue_limit",
                "must be a whole number of at least 1",
            ));
        }
        optional_string(&path, &raw, "model_path")?;
        Ok(Config { raw })
    }

    /// Reads `state.json` (missing: the POC's default state).
    pub fn state(&self) -> Result<State, FileError> {
        let path = self.file(STATE_FILE);
        let raw = match read_object(&path)? {
            Some(m) => m,
            None => State::default_raw(),
        };
        let state = State { raw, path };
        state.validate()?;
        Ok(state)
    }

    /// Writes `state.json` atomically.
    pub fn save_state(&self, state: &State) -> Result<(), FileError> {
        write_json_atomic(&self.file(STATE_FILE), &state.raw)
    }

    /// Reads `resources.json`; `None` when it does not exist (not gauged yet).
    pub fn resources(&self) -> Result<Option<Resources>, FileError> {
        let path = self.file(RESOURCES_FILE);
        let Some(raw) = read_object(&path)? else {
            return Ok(None);
        };
        let mut values = [None; 4];
        for (slot, (main, alt)) in values.iter_mut().zip(Resources::KEYS) {
            // `r.cpu_cores ?? r.cpu`: the first key that is present and not null wins.
            for key in [main, alt] {
                match raw.get(key) {
                    None | Some(Value::Null) => continue,
                    Some(Value::Number(n)) => {
                        *slot = n.as_f64();
                        break;
                    }
                    Some(_) => return Err(FileError::field(&path, key, "must be a number")),
                }
            }
        }
        let [cpu, ram, gpu, disk] = values;
        Ok(Some(Resources {
            cpu,
            ram,
            gpu,
            disk,
            raw,
        }))
    }

    /// Reads `peers.json`; missing: no peers.
    pub fn peers(&self) -> Result<Vec<PeerEntry>, FileError> {
        let path = self.file(PEERS_FILE);
        let Some(raw) = read_object(&path)? else {
            return Ok(Vec::new());
        };
        let Some(peers) = raw.get("peers") else {
            return Ok(Vec::new());
        };
        let Value::Array(items) = peers else {
            return Err(FileError::field(&path, "peers", "must be an array"));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let Value::Object(p) = item else {
                return Err(FileError::field(
                    &path,
                    format!("peers[{i}]"),
                    "must be an object",
                ));
            };
            let clusters = match p.get("clusters") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(c)) => c.iter().map(crate::jsonfile::js_string).collect(),
                Some(_) => {
                    return Err(FileError::field(
                        &path,
                        format!("peers[{i}].clusters"),
                        "must be an array",
                    ));
                }
            };
            let text = |k: &str| {
                p.get(k)
                    .filter(|v| js_truthy(v))
                    .map(crate::jsonfile::js_string)
            };
            out.push(PeerEntry {
                peer_id: text("peer_id"),
                node_name: text("node_name"),
                clusters,
                last_seen_at: text("last_seen_at"),
            });
        }
        Ok(out)
    }

    /// Reads the local `cluster-registry.json`; `None` when it does not exist.
    pub fn registry(&self) -> Result<Option<crate::tiers::Registry>, FileError> {
        let path = self.file(REGISTRY_FILE);
        match read_json(&path)? {
            None => Ok(None),
            Some(v) => crate::tiers::Registry::from_value(&path, v).map(Some),
        }
    }
}

fn optional_string(path: &Path, raw: &Map<String, Value>, key: &str) -> Result<(), FileError> {
    match raw.get(key) {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(FileError::field(path, key, "must be a string")),
    }
}

/// `config.json`.
#[derive(Debug, Clone, Default)]
pub struct Config {
    raw: Map<String, Value>,
}

impl Config {
    fn text(&self, key: &str) -> Option<&str> {
        self.raw
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }
    /// `cluster_id`, when set and non-empty.
    pub fn cluster_id(&self) -> Option<&str> {
        self.text("cluster_id")
    }
    /// `node_name`, when set and non-empty.
    pub fn node_name(&self) -> Option<&str> {
        self.text("node_name")
    }
    /// `region`, when set and non-empty.
    pub fn region(&self) -> Option<&str> {
        self.text("region")
    }
    /// `cluster_registry_url`, when set and non-empty.
    pub fn cluster_registry_url(&self) -> Option<&str> {
        self.text("cluster_registry_url")
    }
    /// Our addition: `model_path`, a GGUF file for the native backend.
    pub fn model_path(&self) -> Option<&str> {
        self.text("model_path")
    }
    /// Our addition: `inference_queue_limit`, how many requests may wait for the backend.
    pub fn inference_queue_limit(&self) -> Option<usize> {
        self.raw
            .get("inference_queue_limit")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
    }
}

/// `state.json`, kept as the object that was read.
#[derive(Debug, Clone)]
pub struct State {
    raw: Map<String, Value>,
    path: PathBuf,
}

impl State {
    /// The state `cli.js getState` assumes when the file is missing.
    fn default_raw() -> Map<String, Value> {
        let Value::Object(m) =
            json!({ "clusters": [], "nodePid": null, "supportedModels": [], "runtime": {} })
        else {
            return Map::new();
        };
        m
    }

    fn validate(&self) -> Result<(), FileError> {
        let path = &self.path;
        match self.raw.get("clusters") {
            None => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let Value::Object(c) = item else {
                        return Err(FileError::field(
                            path,
                            format!("clusters[{i}]"),
                            "must be an object like {\"id\": \"...\"}",
                        ));
                    };
                    match c.get("id") {
                        Some(Value::String(_)) => {}
                        None | Some(Value::Null) => {
                            return Err(FileError::field(
                                path,
                                format!("clusters[{i}].id"),
                                "is missing",
                            ));
                        }
                        Some(_) => {
                            return Err(FileError::field(
                                path,
                                format!("clusters[{i}].id"),
                                "must be a string",
                            ));
                        }
                    }
                }
            }
            Some(_) => return Err(FileError::field(path, "clusters", "must be an array")),
        }
        match self.raw.get("nodePid") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_i64().is_some() => {}
            Some(_) => {
                return Err(FileError::field(
                    path,
                    "nodePid",
                    "must be an integer or null",
                ));
            }
        }
        match self.raw.get("supportedModels") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                if let Some(i) = items.iter().position(|v| !v.is_string()) {
                    return Err(FileError::field(
                        path,
                        format!("supportedModels[{i}]"),
                        "must be a string",
                    ));
                }
            }
            Some(_) => {
                return Err(FileError::field(
                    path,
                    "supportedModels",
                    "must be an array",
                ));
            }
        }
        match self.raw.get("runtime") {
            None | Some(Value::Null) => {}
            Some(Value::Object(r)) => {
                for key in ["backend", "model"] {
                    if !matches!(
                        r.get(key),
                        None | Some(Value::Null) | Some(Value::String(_))
                    ) {
                        return Err(FileError::field(
                            path,
                            format!("runtime.{key}"),
                            "must be a string",
                        ));
                    }
                }
            }
            Some(_) => return Err(FileError::field(path, "runtime", "must be an object")),
        }
        Ok(())
    }

    /// The connected cluster ids, in order.
    pub fn clusters(&self) -> Vec<String> {
        match self.raw.get("clusters") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|c| c.get("id").and_then(Value::as_str).map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Adds `{ "id": id }` at the end of `clusters` unless it is there. Returns whether it was added.
    pub fn connect(&mut self, id: &str) -> bool {
        if self.clusters().iter().any(|c| c == id) {
            return false;
        }
        let entry = json!({ "id": id });
        match self.raw.get_mut("clusters") {
            Some(Value::Array(items)) => items.push(entry),
            _ => {
                self.raw
                    .insert("clusters".to_owned(), Value::Array(vec![entry]));
            }
        }
        true
    }

    /// Removes every entry with this id from `clusters`, keeping the others unchanged. Returns
    /// whether any was removed.
    pub fn disconnect(&mut self, id: &str) -> bool {
        let Some(Value::Array(items)) = self.raw.get_mut("clusters") else {
            return false;
        };
        let before = items.len();
        items.retain(|c| c.get("id").and_then(Value::as_str) != Some(id));
        items.len() != before
    }

    /// `nodePid` when it is a non-zero integer (the POC tests it for truthiness).
    pub fn node_pid(&self) -> Option<i64> {
        self.raw
            .get("nodePid")
            .and_then(Value::as_i64)
            .filter(|p| *p != 0)
    }

    /// Sets `nodePid` (null for `None`).
    pub fn set_node_pid(&mut self, pid: Option<i64>) {
        self.raw
            .insert("nodePid".to_owned(), pid.map_or(Value::Null, Value::from));
    }

    /// `supportedModels`.
    pub fn supported_models(&self) -> Vec<String> {
        match self.raw.get("supportedModels") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// `runtime.backend` and `runtime.model` (each when a non-empty string).
    pub fn runtime(&self) -> (Option<String>, Option<String>) {
        let get = |k: &str| {
            self.raw
                .get("runtime")
                .and_then(|r| r.get(k))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        (get("backend"), get("model"))
    }
}

/// `resources.json`: whole GB (or cores) per resource; `None` where a key is absent.
#[derive(Debug, Clone)]
pub struct Resources {
    /// `cpu_cores` (or `cpu`).
    pub cpu: Option<f64>,
    /// `ram_gb` (or `ram`).
    pub ram: Option<f64>,
    /// `gpu_vram_gb` (or `gpu`).
    pub gpu: Option<f64>,
    /// `disk_gb` (or `disk`).
    pub disk: Option<f64>,
    raw: Map<String, Value>,
}

impl Resources {
    /// The key pairs the POC reads, primary first (`cli.js getEligibleTierIds`).
    pub const KEYS: [(&'static str, &'static str); 4] = [
        ("cpu_cores", "cpu"),
        ("ram_gb", "ram"),
        ("gpu_vram_gb", "gpu"),
        ("disk_gb", "disk"),
    ];

    /// The value of `key` or its alternative as the POC prints it (`?` when absent).
    pub fn display(&self, index: usize) -> String {
        let Some((main, alt)) = Self::KEYS.get(index) else {
            return "?".to_owned();
        };
        [main, alt]
            .iter()
            .find_map(|k| match self.raw.get(**k) {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => Some(crate::jsonfile::js_number(n)),
                Some(v) => Some(crate::jsonfile::js_string(v)),
            })
            .unwrap_or_else(|| "?".to_owned())
    }

    /// The object that was read (unknown keys included).
    pub fn raw(&self) -> &Map<String, Value> {
        &self.raw
    }
}

/// One entry of `peers.json`, as the `peers` command prints it.
#[derive(Debug, Clone)]
pub struct PeerEntry {
    /// `peer_id` (hex public key).
    pub peer_id: Option<String>,
    /// `node_name`.
    pub node_name: Option<String>,
    /// `clusters`.
    pub clusters: Vec<String>,
    /// `last_seen_at`.
    pub last_seen_at: Option<String>,
}

#[cfg(test)]
mod tests;
