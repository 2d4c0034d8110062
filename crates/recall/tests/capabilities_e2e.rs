//! `recall doctor`, and what `recall run` does on a store without conditional writes
//! (s3rver, started by scripts/test-servers.sh as `RECALL_TEST_S3NOCAS_*`; it answers 200 to
//! `If-None-Match: *` on an existing key and to a stale `If-Match`, as Garage does).

mod e2e;

use e2e::{
    Backend, Env, Mode, assert_code, assert_contains, on_task, recall_unconfigured, skipped,
    start_daemon, stderr, stdout,
};

/// A fresh prefix on s3rver, used directly; `None` when `RECALL_TEST_SKIP` names s3nocas.
fn nocas_env(case: &str) -> Option<Env> {
    Some(Env::on(recall_testkit::backend::Backend::s3_nocas(
        "cli", case,
    )?))
}

/// Gives the case its own capability cache (`$XDG_CACHE_HOME/recall/capabilities`).
fn own_cache(env: &mut Env) -> std::path::PathBuf {
    let cache = env.dir().join("xdg-cache");
    env.vars
        .push(("XDG_CACHE_HOME".into(), cache.display().to_string()));
    cache.join("recall").join("capabilities")
}

fn run_args(serialize: bool) -> Vec<&'static str> {
    let mut args = on_task("run", "demo", "dev", "caps", "1");
    args.extend(["--input", "n:int=1", "--output", "o:file=out.txt"]);
    if serialize {
        args.push("--serialize");
    }
    args.extend([
        "--",
        "sh",
        "-c",
        "echo computed > out.txt; echo ran >> runs.log",
    ]);
    args
}

fn doctor_says_every_guarantee(mut env: Env) {
    own_cache(&mut env);
    let out = env.recall(&["doctor"]);
    assert_code(&out, 0);
    assert_contains(&stdout(&out), "with every guarantee");
    for check in [
        "URL",
        "credentials",
        "bucket",
        "read",
        "write",
        "delete",
        "descriptor",
        "create-if-absent",
        "replace-if-version-matches",
        "ranged GET",
        "multipart",
        "clock skew",
    ] {
        assert!(stdout(&out).contains(check), "{check}: {}", stdout(&out));
    }
    let out = env.recall(&["doctor", "--json"]);
    assert_code(&out, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["exit"], 0);
    assert_eq!(report["weaker_guarantees"], serde_json::json!([]));
    assert_eq!(report["checks"].as_array().map(Vec::len), Some(12));
}

#[test]
fn doctor_on_local_disk_reports_every_guarantee() {
    let env = Env::new(Backend::File, Mode::Direct, "doctor").unwrap();
    doctor_says_every_guarantee(env);
}

#[test]
fn doctor_on_moto_reports_every_guarantee() {
    let Some(env) = Env::new(Backend::S3, Mode::Direct, "doctor") else {
        return;
    };
    doctor_says_every_guarantee(env);
}

#[test]
fn doctor_without_a_store_is_bad_usage() {
    let out = recall_unconfigured(&["doctor"]);
    assert_code(&out, 2);
    assert_contains(&stderr(&out), "--store");
}

#[test]
fn doctor_on_s3rver_exits_1_naming_the_missing_guarantees() {
    let Some(mut env) = nocas_env("doctor") else {
        return;
    };
    own_cache(&mut env);
    let out = env.recall(&["doctor"]);
    assert_code(&out, 1);
    let text = stdout(&out);
    for expected in [
        "WARN  create-if-absent",
        "WARN  replace-if-version-matches",
        "ok    ranged GET",
        "weaker guarantees: exactly one manifest wins",
        "leases (--serialize is refused)",
    ] {
        assert_contains(&text, expected);
    }
    let out = env.recall(&["doctor", "--json"]);
    assert_code(&out, 1);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["exit"], 1);
}

#[test]
fn serialize_on_s3rver_is_refused_and_a_publish_says_what_it_is() {
    let Some(mut env) = nocas_env("serialize") else {
        return;
    };
    let cache = own_cache(&mut env);
    let out = env.recall(&run_args(true));
    assert_code(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("--serialize"), "{err}");
    assert!(err.contains(&env.store), "{err}");
    assert!(err.contains("create_if_absent"), "{err}");
    assert!(
        !env.dir().join("runs.log").exists(),
        "the command must not run"
    );
    // The probe result is cached for the store URL.
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);

    // Without --serialize it runs and publishes, but does not claim to be the one entry kept.
    let out = env.recall(&run_args(false));
    assert_code(&out, 0);
    let err = stderr(&out);
    assert!(err.contains("CACHE_POPULATED"), "{err}");
    assert!(
        err.contains("\"exactly one manifest wins\" does not hold"),
        "{err}"
    );
}

#[test]
fn a_cached_probe_result_is_used_without_probing() {
    let Some(mut env) = nocas_env("cached") else {
        return;
    };
    let cache = own_cache(&mut env);
    // Probe once (refused), then pretend the cached answer said "supported": a run that
    // trusts its cache does not probe again, so it is no longer refused.
    assert_code(&env.recall(&run_args(true)), 2);
    let file = std::fs::read_dir(&cache)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("\"supported\":false", "\"supported\":true"),
    )
    .unwrap();
    let out = env.recall(&run_args(true));
    assert_code(&out, 0);
    assert_contains(&stderr(&out), "CACHE_POPULATED");
}

#[test]
fn through_recalld_on_s3rver_serialize_is_refused_and_doctor_exits_1() {
    if skipped("daemon") {
        eprintln!("SKIPPED (RECALL_TEST_SKIP): daemon-mode case");
        return;
    }
    let Some(mut env) = nocas_env("daemon") else {
        return;
    };
    own_cache(&mut env);
    env.daemon = Some(start_daemon(&env.store, &env.vars));
    env.mode = Mode::Daemon;
    let out = env.recall(&run_args(true));
    assert_code(&out, 2);
    assert_contains(&stderr(&out), "create_if_absent");
    assert!(!env.dir().join("runs.log").exists());
    let out = env.recall(&run_args(false));
    assert_code(&out, 0);
    assert_contains(&stderr(&out), "\"exactly one manifest wins\" does not hold");
    let out = env.recall(&["doctor"]);
    assert_code(&out, 1);
    assert_contains(&stdout(&out), "WARN  create-if-absent");
}
