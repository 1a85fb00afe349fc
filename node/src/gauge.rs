//! Measuring the machine for `resources.json` (Linux only, as in the POC).
//!
//! Mirrors `opengateway scripts/cli.js cmdGauge`: CPU = the number of `processor : N` lines of
//! `/proc/cpuinfo` (logical processors); RAM = `MemTotal` of `/proc/meminfo` floored to GiB; GPU =
//! the sum over all GPUs of `nvidia-smi --query-gpu=memory.total` (MiB) floored to GiB, 0 when
//! there is none; disk = the space *available* to unprivileged users on the filesystem holding the
//! POC root, floored to GiB. CPU, RAM and disk that come out as 0 are written as 1; the GPU stays 0.
//!
//! One difference: the POC asks `df` about the root itself, which fails (disk 1) when the root
//! does not exist yet; we ask about its nearest existing ancestor, the filesystem it will live on.

use std::path::Path;

use serde::Serialize;

/// A measured profile, in the field order the POC writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// Logical CPUs.
    pub cpu_cores: u64,
    /// RAM, whole GiB.
    pub ram_gb: u64,
    /// GPU memory, whole GiB (0 when none).
    pub gpu_vram_gb: u64,
    /// Available disk, whole GiB.
    pub disk_gb: u64,
}

impl Profile {
    /// The profile as Node's `console.log` prints the object.
    pub fn inspect(&self) -> String {
        format!(
            "{{ cpu_cores: {}, ram_gb: {}, gpu_vram_gb: {}, disk_gb: {} }}",
            self.cpu_cores, self.ram_gb, self.gpu_vram_gb, self.disk_gb
        )
    }
}

/// Why gauging failed.
#[derive(Debug, thiserror::Error)]
pub enum GaugeError {
    /// Not Linux.
    #[error("Gauge is Linux-only for this POC.")]
    NotLinux,
}

/// Counts `processor : N` lines.
pub fn count_processors(cpuinfo: &str) -> u64 {
    cpuinfo
        .lines()
        .filter(|l| {
            let Some(rest) = l.strip_prefix("processor") else {
                return false;
            };
            let Some(num) = rest.trim_start().strip_prefix(':') else {
                return false;
            };
            num.trim_start().starts_with(|c: char| c.is_ascii_digit())
        })
        .count() as u64
}

/// `MemTotal` in whole GiB (0 when absent).
pub fn mem_total_gib(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024 / 1024)
}

/// Sum of `nvidia-smi` memory lines (MiB) in whole GiB; unparsable lines are skipped.
pub fn gpu_total_gib(nvidia_smi_output: &str) -> u64 {
    let mib: u64 = nvidia_smi_output
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .sum();
    mib / 1024
}

fn gpu_gib() -> u64 {
    std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=memory.total", "--format=csv,noheader,nounits"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or(0, |o| gpu_total_gib(&String::from_utf8_lossy(&o.stdout)))
}

/// Available bytes on the filesystem of `path` (or its nearest existing ancestor), whole GiB.
pub fn disk_available_gib(path: &Path) -> u64 {
    let mut p = Some(path);
    while let Some(dir) = p {
        if dir.exists() {
            return rustix::fs::statvfs(dir).map_or(0, |s| {
                s.f_bavail.saturating_mul(s.f_frsize) / 1024 / 1024 / 1024
            });
        }
        p = dir.parent();
    }
    0
}

/// Measures this machine for a POC root at `root`.
pub fn measure(root: &Path) -> Result<Profile, GaugeError> {
    if !cfg!(target_os = "linux") {
        return Err(GaugeError::NotLinux);
    }
    let cpu = count_processors(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default());
    let ram = mem_total_gib(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
    let disk = disk_available_gib(root);
    Ok(Profile {
        cpu_cores: cpu.max(1),
        ram_gb: ram.max(1),
        gpu_vram_gb: gpu_gib(),
        disk_gb: disk.max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files_and_nvidia_smi() {
        let cpuinfo = "processor\t: 0\nvendor_id : x\nprocessor\t: 1\nmodel name\t: processor 9\n";
        assert_eq!(count_processors(cpuinfo), 2);
        assert_eq!(
            mem_total_gib("MemTotal:       24558000 kB\nMemFree: 1 kB\n"),
            23
        );
        assert_eq!(mem_total_gib("MemFree: 1 kB\n"), 0);
        assert_eq!(gpu_total_gib("81559\n81559\n"), 159);
        assert_eq!(gpu_total_gib(""), 0);
    }

    #[test]
    fn measures_this_machine_with_no_zero_cpu_ram_disk() {
        let dir = tempfile::tempdir().unwrap();
        let p = measure(&dir.path().join("not-yet")).unwrap();
        assert!(p.ram_gb >= 1 && p.disk_gb >= 1);
        // Logical processors are at least what this process may use.
        let usable = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        assert!(p.cpu_cores >= usable, "{} < {usable}", p.cpu_cores);
        // A root that does not exist yet is measured on its parent's filesystem.
        assert_eq!(p.disk_gb, disk_available_gib(dir.path()).max(1));
    }
}
