//! S3 settings a user of a self-hosted server gets wrong (issue 13): each is named in one
//! line, with the variable or bucket to fix, instead of an object that is "not found", an
//! error from the instance metadata address, or a silent success on the wrong bucket.

mod e2e;

use std::process::Command;

use e2e::{Backend, Env, Mode, assert_code, stderr, stdout};

/// The case's S3 store and its variables, or `None` when S3 is skipped on purpose.
fn s3(case: &str) -> Option<Env> {
    Env::new(Backend::S3, Mode::Direct, case)
}

/// The value of one of the case's variables.
fn var<'a>(env: &'a Env, name: &str) -> &'a str {
    env.vars
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{name} not set for the case"))
}

/// `recall --store URL ls` with the case's variables changed by `set` and `unset`, and no
/// AWS variable of the caller's own environment.
fn ls(env: &Env, url: &str, set: &[(&str, &str)], unset: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_recall"));
    command
        .args(["--store", url, "ls"])
        .current_dir(env.dir())
        .env_remove("RECALL_STORE")
        .env_remove("RECALL_DAEMON");
    for (name, _) in std::env::vars() {
        if name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    for (name, value) in &env.vars {
        if !unset.contains(&name.as_str()) {
            command.env(name, value);
        }
    }
    command.envs(set.iter().copied());
    command.output().expect("run recall")
}

/// With `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`, object_store sent requests for
/// `s3://BUCKET/team/x` to the plain endpoint, where the server took `team` for the bucket:
/// `recall ls` listed that other bucket and exited 0. An IP-address endpoint cannot carry the
/// bucket in its host name, so recall refuses, naming the variable and the endpoint.
#[test]
fn virtual_hosted_style_with_an_ip_endpoint_is_refused() {
    let Some(env) = s3("virtual-hosted") else {
        return;
    };
    let endpoint = var(&env, "AWS_ENDPOINT_URL").to_string();
    if !endpoint.contains("://127.0.0.1") {
        eprintln!("SKIPPED: the S3 test endpoint {endpoint} is not an IP address");
        return;
    }
    let url = format!("{}/team/x", env.store);
    let out = ls(
        &env,
        &url,
        &[("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "true")],
        &[],
    );
    assert_code(&out, 2);
    let err = stderr(&out);
    for needle in [
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
        &endpoint,
        &url,
        "path-style",
    ] {
        assert!(err.contains(needle), "{err:?} should name {needle:?}");
    }
    assert!(stdout(&out).is_empty());
    // Path-style (the default) on the same URL works.
    assert_code(&ls(&env, &url, &[], &[]), 0);
}

/// A bucket that does not exist is named, with the endpoint, instead of "Object at location
/// recall-store.json not found".
#[test]
fn a_missing_bucket_is_named() {
    let Some(env) = s3("missing-bucket") else {
        return;
    };
    let bucket = format!("recall-missing-{}", std::process::id());
    let out = ls(&env, &format!("s3://{bucket}/p"), &[], &[]);
    assert_code(&out, 3);
    let err = stderr(&out);
    let endpoint = var(&env, "AWS_ENDPOINT_URL");
    assert!(
        err.contains(&format!(
            "bucket {bucket:?} does not exist (endpoint {endpoint})"
        )),
        "{err}"
    );
    assert!(!err.contains("not found"), "{err}");
}

/// No credentials at all: recall says so and which variables to set, instead of an error from
/// the instance metadata address (here a closed local port, so nothing waits on a real one).
#[test]
fn missing_credentials_are_named() {
    let Some(env) = s3("no-credentials") else {
        return;
    };
    let closed = format!("http://127.0.0.1:{}", recall_testkit::recalld::free_port());
    let no_keys = [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ];
    for (set, detail) in [
        (
            vec![("AWS_EC2_METADATA_DISABLED", "true")],
            "AWS_EC2_METADATA_DISABLED".to_string(),
        ),
        (
            vec![("AWS_METADATA_ENDPOINT", closed.as_str())],
            format!("asking {closed} failed"),
        ),
    ] {
        let out = ls(&env, &env.store, &set, &no_keys);
        assert_code(&out, 3);
        let err = stderr(&out);
        for needle in [
            "no credentials",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            &detail,
        ] {
            assert!(err.contains(needle), "{err:?} should contain {needle:?}");
        }
    }
}
