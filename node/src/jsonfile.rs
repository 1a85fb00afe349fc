//! Reading and writing the POC root's JSON files the way the JS POC does.
//!
//! The POC (`opengateway scripts/cli.js writeJson`, `scripts/poc-node.js writePeersFile`) writes
//! every file as `JSON.stringify(value, null, 2)` followed by one newline: two-space indentation,
//! `"key": value`, empty arrays and objects as `[]` and `{}`, keys in insertion order. We write the
//! same bytes, but atomically (a temporary file in the same directory, flushed, then renamed over
//! the target), so a crash never leaves a half-written file behind.
//!
//! Reading is stricter than the POC, which silently falls back to defaults on any parse error: a
//! file that exists but does not parse is an error naming the file and the position.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

/// Why a POC root file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read (other than not existing).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid JSON.
    #[error("{} is not valid JSON: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's account (line and column).
        source: serde_json::Error,
    },
    /// The file parses but a field has the wrong shape.
    #[error("{}: field `{field}` {problem}", path.display())]
    Field {
        /// The file.
        path: PathBuf,
        /// The field, as a path such as `clusters[1].id`.
        field: String,
        /// What is wrong with it, e.g. "must be a string".
        problem: String,
    },
    /// The file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl FileError {
    /// A field-shape error for `field` in `path`.
    pub fn field(path: &Path, field: impl Into<String>, problem: impl Into<String>) -> Self {
        FileError::Field {
            path: path.to_path_buf(),
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Reads `path` as JSON. `Ok(None)` when the file does not exist.
pub fn read_json(path: &Path) -> Result<Option<Value>, FileError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(FileError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| FileError::Parse {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads `path` as a JSON object. `Ok(None)` when the file does not exist; a value that is not an
/// object is a field error on the top level (`(root)`).
pub fn read_object(path: &Path) -> Result<Option<Map<String, Value>>, FileError> {
    match read_json(path)? {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(FileError::field(path, "(root)", "must be a JSON object")),
    }
}

/// Serialises `value` exactly like `JSON.stringify(value, null, 2) + '\n'`.
pub fn to_js_pretty<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"  ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    value.serialize(&mut ser)?;
    out.push(b'\n');
    Ok(out)
}

/// Writes `value` to `path` as [`to_js_pretty`] does, atomically: the bytes go to a temporary file
/// in the same directory, are flushed to disk, and the temporary file is renamed over `path`.
/// Missing parent directories are created (as the POC's `mkdirSync(..., { recursive: true })`).
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), FileError> {
    let werr = |source: std::io::Error| FileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let bytes = to_js_pretty(value).map_err(|e| werr(std::io::Error::other(e)))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(werr)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_owned());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(werr)?;
    tmp.write_all(&bytes).map_err(werr)?;
    // Temporary files are created owner-only; give the file the mode the old one had, or the
    // usual 0644 that Node's `writeFileSync` gives a new file under the common umask.
    let mode = fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(werr)?;
    tmp.as_file().sync_all().map_err(werr)?;
    tmp.persist(path).map_err(|e| werr(e.error))?;
    Ok(())
}

/// `String(value)` of JavaScript for a JSON value: strings as they are, `null` as `"null"`,
/// numbers and booleans as printed, arrays joined with `,` (with `null` elements empty) and
/// objects as `"[object Object]"`.
pub fn js_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => js_number(n),
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::Null => String::new(),
                other => js_string(other),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".to_owned(),
    }
}

/// A JSON number as JavaScript prints it (`2` rather than `2.0` for whole floats).
pub fn js_number(n: &serde_json::Number) -> String {
    if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
        if f.fract() == 0.0 && f.abs() < 1e21 {
            // Whole numbers print without a fraction in JS.
            return format!("{f:.0}");
        }
        return f.to_string();
    }
    n.to_string()
}

/// JavaScript truthiness of a JSON value (`""`, `0`, `false`, `null` are falsy).
pub fn js_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

#[cfg(test)]
mod tests;
