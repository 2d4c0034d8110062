//! Key material JSON that a second implementation of docs/KEY-SPEC.md disagreed on (issue 12,
//! items 15 to 20): each must be rejected with a message that names the field by its path and
//! shows the offending value (section 9), or accepted where the spec says so.

use std::path::Path;

use recall_key::KeyMaterial;

const HEAD: &str = r#""project":"p","domain":"d","task":"t","cache_version":"1""#;

fn parse(text: &str) -> Result<KeyMaterial, String> {
    KeyMaterial::from_json(text, Path::new("/nonexistent")).map_err(|e| e.to_string())
}

/// Key material with one more top-level field (or none: `extra` empty).
fn with(extra: &str) -> String {
    if extra.is_empty() {
        format!("{{{HEAD}}}")
    } else {
        format!("{{{HEAD},{extra}}}")
    }
}

/// Asserts rejection with a message containing every needle and no byte position.
fn rejected(text: &str, needles: &[&str]) {
    let err = match parse(text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e,
    };
    for needle in needles {
        assert!(
            err.contains(needle),
            "{text}\n  error {err:?}\n  should contain {needle:?}"
        );
    }
    assert!(
        !err.contains("line ") && !err.contains("column"),
        "{text}\n  error {err:?} gives a position instead of naming the field"
    );
}

/// Item 16: arrays where the spec says objects.
#[test]
fn arrays_are_not_objects() {
    rejected(
        r#"["proj","dev","wf.t","1.0"]"#,
        &[
            "top level",
            "expected an object",
            r#"["proj","dev","wf.t","1.0"]"#,
        ],
    );
    rejected(
        &with(r#""inputs":[["x","int",1,null,false]]"#),
        &[
            "inputs[0]",
            "expected an object",
            r#"["x","int",1,null,false]"#,
        ],
    );
    rejected(
        &with(r#""outputs":[["o","file"]]"#),
        &["outputs[0]", "expected an object", r#"["o","file"]"#],
    );
    rejected(
        &with(
            r#""inputs":[{"name":"x","type":"int","value":1}],"outputs":[{"name":"o","type":"int"},"o:int"]"#,
        ),
        &["outputs[1]", "expected an object", r#""o:int""#],
    );
}

/// Item 18: `"hash": null` is not "no hash" (only `salt` and `value` accept null).
#[test]
fn null_hash_is_an_error() {
    rejected(
        &with(r#""inputs":[{"name":"x","type":"int","value":1,"hash":null}]"#),
        &["inputs[0].hash", "got null"],
    );
    rejected(
        &with(r#""inputs":[{"name":"x","type":"int","hash":5}]"#),
        &["inputs[0].hash", "got a number: 5"],
    );
    // The spec's own nulls stay accepted.
    assert!(parse(&with(r#""salt":null"#)).is_ok());
    assert!(
        parse(&with(
            r#""inputs":[{"name":"x","type":"optional<int>","value":null}]"#
        ))
        .is_ok()
    );
    assert_eq!(
        parse(&with(r#""salt":null"#))
            .unwrap()
            .derive()
            .unwrap()
            .key,
        parse(&with("")).unwrap().derive().unwrap().key
    );
}

/// Item 20: every field given the wrong JSON kind is named, with the value, and no byte
/// position.
#[test]
fn wrong_kinds_name_the_field_and_value() {
    let wrong = ["null", "5", "true", "[]", r#"{"a":1}"#];
    for field in ["project", "domain", "task", "cache_version"] {
        for value in wrong {
            // The material with this one field replaced.
            let fields: Vec<String> = ["project", "domain", "task", "cache_version"]
                .iter()
                .map(|f| {
                    if *f == field {
                        format!(r#""{f}":{value}"#)
                    } else {
                        format!(r#""{f}":"x""#)
                    }
                })
                .collect();
            let text = format!("{{{}}}", fields.join(","));
            rejected(&text, &[field, "expected a string", value]);
        }
    }
    for value in ["5", "true", "[]", r#"{"a":1}"#] {
        rejected(
            &with(&format!(r#""salt":{value}"#)),
            &["salt", "expected a string or null", value],
        );
    }
    for field in ["inputs", "outputs"] {
        for value in ["null", "5", "\"x\"", "{}"] {
            rejected(
                &with(&format!(r#""{field}":{value}"#)),
                &[field, "expected an array", value],
            );
        }
    }
    for (input, needles) in [
        (
            r#"{"name":null,"type":"int","value":1}"#,
            &["inputs[0].name", "got null"][..],
        ),
        (
            r#"{"name":"x","type":7,"value":1}"#,
            &["inputs[0].type", "got a number: 7"],
        ),
        (
            r#"{"name":"x","type":"int","value":1,"ignore":null}"#,
            &["inputs[0].ignore", "got null"],
        ),
        (
            r#"{"name":"x","type":"int","value":1,"ignore":"true"}"#,
            &["inputs[0].ignore", r#""true""#],
        ),
        (
            r#"{"name":"x","type":"int","hash":[]}"#,
            &["inputs[0].hash", "got an array: []"],
        ),
        (
            r#"{"name":"x","type":"int","value":1,"vaule":2}"#,
            &["inputs[0].vaule", "unknown field"],
        ),
        (
            r#"{"type":"int","value":1}"#,
            &["inputs[0].name", "missing"],
        ),
        (r#"{"name":"x","value":1}"#, &["inputs[0].type", "missing"]),
        (
            r#"{"name":"x","type":"int","value":"1"}"#,
            &["input \"x\"", "\"1\""],
        ),
        (r#"null"#, &["inputs[0]", "expected an object, got null"]),
    ] {
        rejected(&with(&format!(r#""inputs":[{input}]"#)), needles);
    }
    for (output, needles) in [
        (
            r#"{"name":"o","type":null}"#,
            &["outputs[0].type", "got null"][..],
        ),
        (
            r#"{"name":5,"type":"int"}"#,
            &["outputs[0].name", "got a number: 5"],
        ),
        (
            r#"{"name":"o","type":"int","path":"x"}"#,
            &["outputs[0].path", "unknown field"],
        ),
    ] {
        rejected(&with(&format!(r#""outputs":[{output}]"#)), needles);
    }
    rejected(&with(r#""sal":"x""#), &["sal", "unknown field"]);
    rejected(
        r#"{"project":"p","domain":"d","task":"t"}"#,
        &["cache_version", "missing"],
    );
}

/// Item 20: duplicate keys, at the top, in an input object and deep inside a value, are named
/// by their path.
#[test]
fn duplicate_keys_are_named_by_their_path() {
    rejected(
        &format!(r#"{{{HEAD},"project":"q"}}"#),
        &["duplicate object key \"project\""],
    );
    rejected(
        &with(r#""inputs":[{"name":"x","name":"y","type":"int","value":1}]"#),
        &["inputs[0]", "duplicate object key \"name\""],
    );
    rejected(
        &with(r#""inputs":[{"name":"s","type":"struct","value":{"a":{"b":[1,{"c":1,"c":2}]}}}]"#),
        &["inputs[0].value.a.b[1]", "duplicate object key \"c\""],
    );
    rejected(
        &with(r#""inputs":[{"name":"m","type":"map<string,int>","value":{"k y":{},"k y":1}}]"#),
        &["inputs[0].value", "duplicate object key \"k y\""],
    );
}

/// Item 15: datetimes late in year 9999 (KEY-SPEC section 4.2 allows years 0000 to 9999).
#[test]
fn datetimes_late_in_9999_are_accepted() {
    for value in [
        "9999-12-31T00:00:00Z",
        "9999-12-31T23:59:59.999999999Z",
        "9999-12-31T23:59:59-23:59",
        "0000-01-01T00:00:00+23:59",
    ] {
        let text = with(&format!(
            r#""inputs":[{{"name":"t","type":"datetime","value":"{value}"}}]"#
        ));
        let material = parse(&text).unwrap_or_else(|e| panic!("{value}: {e}"));
        material.derive().unwrap();
    }
}

/// Item 17: an empty subdirectory whose name is not UTF-8 is an error (section 6).
#[cfg(target_os = "linux")]
#[test]
fn empty_non_utf8_subdirectory_is_an_error() {
    use std::os::unix::ffi::OsStrExt;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("d");
    std::fs::create_dir_all(dir.join(std::ffi::OsStr::from_bytes(b"\xff"))).unwrap();
    let text = with(r#""inputs":[{"name":"d","type":"dir","value":"d"}]"#);
    let material = KeyMaterial::from_json(&text, root.path()).unwrap();
    let err = material.derive().unwrap_err().to_string();
    assert!(
        err.contains("input \"d\"") && err.contains("not valid UTF-8"),
        "{err}"
    );
}
