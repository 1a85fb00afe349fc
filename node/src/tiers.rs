//! Model tiers, eligibility and the cluster registry.
//!
//! The table and the rule come from `opengateway scripts/cli.js` (`TIERS`,
//! `getEligibleTierIds`): a machine is eligible for a tier when it has at least the tier's CPU
//! cores, RAM and disk; the GPU is checked only for tiers that need one (GPU minimum above 0). The
//! registry (`cluster-registry.json`, `deriveClusterIdsFromRegistry`) maps, per region, a tier id to
//! the cluster id that serves it; ids are trimmed, empty ones dropped, duplicates removed.

use std::path::Path;

use serde_json::Value;

use crate::config::Resources;
use crate::jsonfile::FileError;

/// One model tier: minimum CPU cores, RAM, GPU memory and disk (GB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    /// The tier id, e.g. `SmolLM-360M`.
    pub id: &'static str,
    /// Minimum logical CPUs.
    pub cpu: u32,
    /// Minimum RAM in GB.
    pub ram: u32,
    /// Minimum GPU memory in GB (0: no GPU needed).
    pub gpu: u32,
    /// Minimum available disk in GB.
    pub disk: u32,
}

const fn tier(id: &'static str, cpu: u32, ram: u32, gpu: u32, disk: u32) -> Tier {
    Tier {
        id,
        cpu,
        ram,
        gpu,
        disk,
    }
}

/// The POC's tier table, in its order (`cli.js TIERS`).
pub const TIERS: [Tier; 10] = [
    tier("SmolLM-360M", 1, 1, 0, 2),
    tier("Qwen2-0.5B", 1, 2, 0, 3),
    tier("SmolLM-1.7B", 1, 4, 0, 5),
    tier("TinyLlama-1.1B", 2, 1, 0, 2),
    tier("Phi-2-2.7B", 2, 2, 0, 3),
    tier("Llama-3.2-1.5B", 2, 4, 0, 5),
    tier("Llama-3.2-3B", 4, 8, 0, 20),
    tier("Llama-3.1-8B", 4, 12, 8, 30),
    tier("Llama-3.1-70B", 8, 32, 24, 150),
    tier("Llama-3.1-405B", 16, 64, 48, 500),
];

/// The region used when none is configured (`cli.js getNodeRegion`).
pub const DEFAULT_REGION: &str = "us-east-1";

/// The tiers these resources qualify for, in table order. An absent value counts as 0.
pub fn eligible(resources: &Resources) -> Vec<&'static Tier> {
    let cpu = resources.cpu.unwrap_or(0.0);
    let ram = resources.ram.unwrap_or(0.0);
    let gpu = resources.gpu.unwrap_or(0.0);
    let disk = resources.disk.unwrap_or(0.0);
    TIERS
        .iter()
        .filter(|t| {
            cpu >= f64::from(t.cpu)
                && ram >= f64::from(t.ram)
                && disk >= f64::from(t.disk)
                && (t.gpu == 0 || gpu >= f64::from(t.gpu))
        })
        .collect()
}

/// The node's region: `POC_REGION`, else `NODE_REGION`, else `config.region`, else `us-east-1`
/// (empty values skipped, as JavaScript's `||` does).
pub fn region(poc_region: Option<&str>, node_region: Option<&str>, config: Option<&str>) -> String {
    [poc_region, node_region, config]
        .into_iter()
        .flatten()
        .find(|s| !s.is_empty())
        .unwrap_or(DEFAULT_REGION)
        .to_owned()
}

/// `cluster-registry.json`.
#[derive(Debug, Clone)]
pub struct Registry {
    clusters: serde_json::Map<String, Value>,
}

impl Registry {
    /// Checks the shape `{ "clusters": { region: { tier: id } } }` of a parsed registry.
    pub fn from_value(path: &Path, value: Value) -> Result<Self, FileError> {
        let Value::Object(mut top) = value else {
            return Err(FileError::field(path, "(root)", "must be a JSON object"));
        };
        let Some(Value::Object(clusters)) = top.remove("clusters") else {
            return Err(FileError::field(
                path,
                "clusters",
                "must be an object of regions",
            ));
        };
        for (region, tiers) in &clusters {
            let Value::Object(tiers) = tiers else {
                return Err(FileError::field(
                    path,
                    format!("clusters.{region}"),
                    "must be an object of tier ids",
                ));
            };
            if let Some((tier, _)) = tiers.iter().find(|(_, v)| !v.is_string()) {
                return Err(FileError::field(
                    path,
                    format!("clusters.{region}.{tier}"),
                    "must be a string",
                ));
            }
        }
        Ok(Registry { clusters })
    }

    /// The cluster ids for `tiers` in `region`: looked up in tier order, trimmed, empty ones
    /// dropped, first occurrence kept.
    pub fn clusters_for(&self, region: &str, tiers: &[&str]) -> Vec<String> {
        let Some(Value::Object(map)) = self.clusters.get(region) else {
            return Vec::new();
        };
        let mut out: Vec<String> = Vec::new();
        for t in tiers {
            if let Some(id) = map.get(*t).and_then(Value::as_str).map(str::trim)
                && !id.is_empty()
                && !out.iter().any(|o| o == id)
            {
                out.push(id.to_owned());
            }
        }
        out
    }

    /// The regions, in file order.
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        self.clusters.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests;
