//! End-to-end tests of `recall key`, running the built binary.

mod e2e;

use std::path::Path;
use std::process::{Command, Output};

use e2e::on_task;

fn recall(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recall"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run recall")
}

fn with(extra: &[&str]) -> Vec<String> {
    on_task("key", "flytesnacks", "development", "wf.square", "1.0")
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

fn run(extra: &[&str], cwd: &Path) -> Output {
    let args = with(extra);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    recall(&refs, cwd)
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn prints_a_64_hex_key_and_json_components() {
    let dir = tempfile::tempdir().unwrap();
    let plain = run(&["--input", "n:int=3", "--output", "o0:int"], dir.path());
    assert!(plain.status.success(), "{}", stderr(&plain));
    let key = stdout(&plain).trim().to_string();
    assert_eq!(key.len(), 64);
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );

    let json = run(
        &["--input", "n:int=3", "--output", "o0:int", "--json"],
        dir.path(),
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(v["key"], key);
    assert_eq!(v["spec_version"], 1);
    assert_eq!(v["inputs"]["n"]["type"], "int");
    assert_eq!(v["inputs"]["n"]["source"], "value");
    assert_eq!(v["outputs"]["o0"], "int");
    for field in ["signature_digest", "inputs_digest"] {
        assert_eq!(v[field].as_str().unwrap().len(), 64, "{field}");
    }
}

#[test]
fn flags_and_spec_file_give_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.csv"), "a,b\n1,2\n").unwrap();
    let flags = run(
        &[
            "--input",
            "data:file=@data.csv",
            "--input",
            "tags:list<string>=[\"x\",\"y\"]",
            "--input",
            "seed:int=7",
            "--ignore-input",
            "seed",
            "--salt",
            "s",
        ],
        dir.path(),
    );
    assert!(flags.status.success(), "{}", stderr(&flags));
    let spec = r#"{"project":"flytesnacks","domain":"development","task":"wf.square",
        "cache_version":"1.0","salt":"s","inputs":[
        {"name":"tags","type":"list<string>","value":["x","y"]},
        {"name":"seed","type":"int","ignore":true},
        {"name":"data","type":"file","value":"data.csv"}]}"#;
    let sub = dir.path().join("elsewhere");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(dir.path().join("material.json"), spec).unwrap();
    // Paths in a spec file resolve against the file's directory, not the working directory.
    let from_spec = recall(&["key", "--spec", "../material.json"], &sub);
    assert!(from_spec.status.success(), "{}", stderr(&from_spec));
    assert_eq!(stdout(&flags), stdout(&from_spec));
}

/// Issue 12 items 15 and 19: numbers beyond the binary64 range and datetimes late in year
/// 9999 give the same key in the flag form as in the JSON form (KEY-SPEC sections 4.2, 8).
#[test]
fn edge_values_agree_between_flags_and_spec_file() {
    let dir = tempfile::tempdir().unwrap();
    for (ty, literal, json) in [
        ("float", "1e400", "1e400"),
        ("float", "-1e400", "-1e400"),
        ("float", "1e400", "\"Infinity\""),
        ("float", "-1e-400", "-0"),
        (
            "datetime",
            "9999-12-31T00:00:00Z",
            "\"9999-12-31T00:00:00Z\"",
        ),
        (
            "datetime",
            "9999-12-31T23:59:59-23:59",
            "\"9999-12-31T23:59:59-23:59\"",
        ),
    ] {
        let flags = run(&["--input", &format!("x:{ty}={literal}")], dir.path());
        assert!(flags.status.success(), "{ty} {literal}: {}", stderr(&flags));
        let spec = format!(
            r#"{{"project":"flytesnacks","domain":"development","task":"wf.square",
               "cache_version":"1.0","inputs":[{{"name":"x","type":"{ty}","value":{json}}}]}}"#
        );
        std::fs::write(dir.path().join("material.json"), spec).unwrap();
        let from_spec = recall(&["key", "--spec", "material.json"], dir.path());
        assert!(from_spec.status.success(), "{json}: {}", stderr(&from_spec));
        assert_eq!(
            stdout(&flags),
            stdout(&from_spec),
            "{ty} {literal} vs {json}"
        );
    }
}

#[test]
fn file_content_not_path_decides_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a"), "same").unwrap();
    std::fs::write(dir.path().join("b"), "same").unwrap();
    std::fs::write(dir.path().join("c"), "other").unwrap();
    let key_of = |p: &str| stdout(&run(&["--input", &format!("f:file=@{p}")], dir.path()));
    assert_eq!(key_of("a"), key_of("b"));
    assert_ne!(key_of("a"), key_of("c"));
}

#[test]
fn bad_input_is_one_line_naming_field_and_value_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--input", "n:int=1.5"],
            "input \"n\" of type int: bad value \"1.5\"",
        ),
        (&["--input", "n:int=abc"], "bad value \"abc\""),
        (&["--input", "n:integer=1"], "invalid type \"integer\""),
        (
            &["--input", "n:int=1", "--input", "n:int=2"],
            "duplicate input \"n\"",
        ),
        (&["--input", ":int=1"], "invalid input name \"\""),
        (&["--input", "a/b:int=1"], "invalid input name \"a/b\""),
        (
            &["--input", "a\u{1}b:int=1"],
            "invalid input name \"a\\u{1}b\"",
        ),
        (
            &["--input", &format!("{}:int=1", "n".repeat(129))],
            "longer than 128 bytes",
        ),
        (
            &["--input", "f:file=@missing.txt"],
            "missing.txt: does not exist",
        ),
        (&["--input", "d:dir=@missing"], "missing: does not exist"),
        (
            &["--input", "n:int=1", "--ignore-input", "m"],
            "ignored input names \"m\"",
        ),
        (&["--input-hash", "n=zz"], "input hash for \"n\": \"zz\""),
        (
            &["--input", "nonsense"],
            "--input \"nonsense\": expected NAME:TYPE=VALUE",
        ),
        (&["--salt", ""], "invalid salt \"\""),
    ];
    for (extra, needle) in cases {
        let out = run(extra, dir.path());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(
            err.contains(needle),
            "{extra:?}: {err:?} should contain {needle:?}"
        );
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{extra:?}: one line: {err:?}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(stdout(&out).is_empty());
    }
    let out = recall(&on_task("key", "..", "d", "t", "1"), dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("invalid project \"..\""));
    let out = recall(&["key", "--spec", "nope.json"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--spec nope.json"),
        "{}",
        stderr(&out)
    );
}

/// Directory contents that cannot be hashed (root cannot bypass these, unlike permissions).
#[cfg(unix)]
#[test]
fn unhashable_directory_contents_are_reported_not_panicked() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    type MakeContents = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, MakeContents, &str)> = vec![
        (
            "fifo",
            Box::new(|d: &Path| {
                let ok = Command::new("mkfifo").arg(d.join("pipe")).status().unwrap();
                assert!(ok.success());
            }),
            "special file",
        ),
        (
            "dangling",
            Box::new(|d: &Path| std::os::unix::fs::symlink("gone", d.join("link")).unwrap()),
            "dangling symbolic link",
        ),
        (
            "non-utf8",
            Box::new(|d: &Path| {
                let name = std::ffi::OsStr::from_bytes(b"bad\xff");
                std::fs::write(d.join(name), "x").unwrap();
            }),
            "not valid UTF-8",
        ),
    ];
    for (name, make, needle) in cases {
        let sub = dir.path().join(name);
        std::fs::create_dir(&sub).unwrap();
        make(&sub);
        let out = run(&["--input", &format!("d:dir=@{name}")], dir.path());
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("input \"d\"") && err.contains(needle),
            "{name}: {err}"
        );
    }
}

#[test]
fn help_shows_an_example() {
    let dir = tempfile::tempdir().unwrap();
    let out = recall(&["key", "--help"], dir.path());
    assert!(out.status.success());
    assert!(stdout(&out).contains("recall key --project"));
}
