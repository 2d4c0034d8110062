//! recalld as Flyte 2's CacheService, through a tonic client of recall-flyteidl's generated
//! code: the real binary over local disk and over the S3 test server (`RECALL_TEST_SKIP=s3`
//! skips that one, saying so). tests/python/test_flyte_cacheservice.py covers every case with
//! flyteidl2's own gRPC and Connect stubs; this checks the Rust side end to end.

mod common;

use common::{Backend, Daemon, Options};
use recall_flyteidl::RawLiteral;
use recall_flyteidl::cacheservice as pb;
use recall_flyteidl::cacheservice::v2 as pb2;
use recall_flyteidl::cacheservice::v2::cache_service_client::CacheServiceClient;
use tonic::Code;
use tonic::transport::Channel;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn identifier() -> Option<pb2::Identifier> {
    Some(pb2::Identifier {
        org: String::new(),
        project: "flytesnacks".into(),
        domain: "development".into(),
    })
}

async fn get(
    client: &mut CacheServiceClient<Channel>,
    key: &str,
) -> Result<pb::CachedOutput, tonic::Status> {
    let answer = client
        .get(pb2::GetCacheRequest {
            base_request: Some(pb::GetCacheRequest { key: key.into() }),
            identifier: identifier(),
        })
        .await?;
    Ok(answer.into_inner().output.expect("output"))
}

async fn put(
    client: &mut CacheServiceClient<Channel>,
    key: &str,
    output: pb::cached_output::Output,
) -> Result<(), tonic::Status> {
    put_with(client, key, output, None).await
}

/// A Put of `output` under `key` with `overwrite` settings.
async fn put_with(
    client: &mut CacheServiceClient<Channel>,
    key: &str,
    output: pb::cached_output::Output,
    overwrite: Option<pb::OverwriteOutput>,
) -> Result<(), tonic::Status> {
    client
        .put(pb2::PutCacheRequest {
            base_request: Some(pb::PutCacheRequest {
                key: key.into(),
                output: Some(pb::CachedOutput {
                    output: Some(output),
                    metadata: None,
                }),
                overwrite,
            }),
            identifier: identifier(),
        })
        .await?;
    Ok(())
}

/// recalld over `backend` serving the CacheService, with `flyte` appended to its `[flyte]`
/// settings, and a v2 client of it.
async fn start(backend: &Backend, flyte: &str) -> (Daemon, CacheServiceClient<Channel>) {
    let port = free_port();
    let options = Options {
        toml: format!("[flyte]\ncacheservice_listen = \"127.0.0.1:{port}\"\n{flyte}"),
        ..Options::default()
    };
    let daemon = Daemon::start(backend, &options);
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect to the cacheservice listener");
    (daemon, CacheServiceClient::new(channel))
}

async fn miss_put_hit(backend: &Backend) {
    let (_daemon, mut client) = start(backend, "").await;
    assert_eq!(
        get(&mut client, "k").await.unwrap_err().code(),
        Code::NotFound
    );
    // A LiteralMap {"o0": <bytes with an unknown field>} as raw bytes: kept byte for byte.
    let literals = RawLiteral::from_bytes(vec![
        0x0a, 0x08, 0x0a, 0x02, b'o', b'0', 0x12, 0x02, 0x42, 0x00,
    ]);
    put(
        &mut client,
        "k",
        pb::cached_output::Output::OutputLiterals(literals.clone()),
    )
    .await
    .expect("put");
    let hit = get(&mut client, "k").await.expect("hit");
    assert_eq!(
        hit.output,
        Some(pb::cached_output::Output::OutputLiterals(literals))
    );
    let again = put(
        &mut client,
        "k",
        pb::cached_output::Output::OutputUri("s3://b/o".into()),
    )
    .await;
    assert_eq!(again.unwrap_err().code(), Code::AlreadyExists);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_client_local_disk() {
    miss_put_hit(&Backend::local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_client_s3() {
    let Some(backend) = Backend::s3("recalld", "cacheservice").await else {
        return;
    };
    miss_put_hit(&backend).await;
}

/// `[flyte] cacheservice_insecure_no_auth`: Flyte 2's executor sends no token, so its
/// listener can take calls without one while `[[tokens]]` still guard the HTTP API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_cacheservice_listener_needs_no_token_while_http_stays_guarded() {
    let flyte = format!("cacheservice_insecure_no_auth = true\n{}", common::tokens());
    let (daemon, mut client) = start(&Backend::local(), &flyte).await;
    assert_eq!(
        get(&mut client, "open").await.unwrap_err().code(),
        Code::NotFound,
        "a Get without a token is answered, not refused"
    );
    let output = pb::cached_output::Output::OutputUri("s3://bucket/outputs/open".into());
    put(&mut client, "open", output.clone())
        .await
        .expect("a Put without a token");
    assert_eq!(
        get(&mut client, "open").await.expect("hit").output,
        Some(output)
    );
    let (status, _) = daemon.get("/v1/tasks/flytesnacks/development", None).await;
    assert_eq!(status, 401, "the HTTP API still wants a token");
}

/// Without the setting, the same listener refuses a call without a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cacheservice_listener_with_tokens_refuses_a_call_without_one() {
    let (_daemon, mut client) = start(&Backend::local(), &common::tokens()).await;
    assert_eq!(
        get(&mut client, "closed").await.unwrap_err().code(),
        Code::Unauthenticated
    );
}

/// A Put of `uri` under `key` that replaces any output, deleting the old one's object with
/// `delete_blob`.
async fn put_over(
    client: &mut CacheServiceClient<Channel>,
    key: &str,
    uri: &str,
    delete_blob: bool,
) -> Result<(), tonic::Status> {
    let overwrite = pb::OverwriteOutput {
        overwrite: true,
        delete_blob,
        max_age: None,
    };
    let output = pb::cached_output::Output::OutputUri(uri.into());
    put_with(client, key, output, Some(overwrite)).await
}

/// Issue 16: an overwrite with `delete_blob` deletes the old `output_uri` when it lies under
/// `[flyte] delete_blob_roots`, and leaves it otherwise (outside the roots, or without
/// `delete_blob`); the Put succeeds either way, and each outcome is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_blob_deletes_only_under_the_configured_roots() {
    let backend = Backend::local();
    let flyte = tempfile::tempdir().expect("temporary directory");
    let data = flyte.path().join("data");
    let elsewhere = flyte.path().join("elsewhere");
    for dir in [&data, &elsewhere] {
        std::fs::create_dir_all(dir.join("run")).expect("mkdir");
    }
    let object = |dir: &std::path::Path, name: &str| {
        let path = dir.join("run").join(name);
        std::fs::write(&path, b"outputs").expect("write output");
        (format!("file://{}", path.display()), path)
    };
    let roots = format!("delete_blob_roots = [\"file://{}/\"]\n", data.display());
    let (daemon, mut client) = start(&backend, &roots).await;

    // Under the root: the old object is deleted, the new one kept, the new URI served.
    let (first, first_path) = object(&data, "first.pb");
    let (second, second_path) = object(&data, "second.pb");
    put_over(&mut client, "in", &first, false)
        .await
        .expect("put");
    put_over(&mut client, "in", &second, true)
        .await
        .expect("overwrite");
    assert!(
        !first_path.exists(),
        "the replaced output should be deleted"
    );
    assert!(second_path.exists());
    assert_eq!(
        get(&mut client, "in").await.expect("hit").output,
        Some(pb::cached_output::Output::OutputUri(second.clone()))
    );
    // The same URI again: nothing to delete.
    put_over(&mut client, "in", &second, true)
        .await
        .expect("overwrite with the same URI");
    assert!(second_path.exists());
    // Without delete_blob: left.
    let (third, _) = object(&data, "third.pb");
    put_over(&mut client, "in", &third, false)
        .await
        .expect("overwrite without delete_blob");
    assert!(second_path.exists());

    // Outside the roots, or escaping one with "..": left, and the Put still succeeds. An old
    // object that is already gone: counted as deleted, the Put succeeds.
    let (outside, outside_path) = object(&elsewhere, "o.pb");
    let escaping = format!("file://{}/../elsewhere/run/o.pb", data.display());
    for (key, old) in [("out", &outside), ("esc", &escaping), ("gone", &first)] {
        put_over(&mut client, key, old, false).await.expect("put");
        put_over(&mut client, key, &third, true)
            .await
            .expect("overwrite with delete_blob");
        assert!(
            outside_path.exists(),
            "{old} is outside the roots: left alone"
        );
    }

    let series = |result: &str| format!("recall_flyte_blob_deletes_total{{result=\"{result}\"}}");
    assert_eq!(daemon.metric(&series("deleted")).await, 2.0);
    assert_eq!(daemon.metric(&series("left")).await, 2.0);
    assert_eq!(daemon.metric(&series("failed")).await, 0.0);
    let log = daemon.log();
    assert!(log.contains("lies under no delete root"), "{log}");
    assert!(log.contains("\"..\""), "{log}");
}

/// recalld refuses to start with a delete root that is malformed or overlaps its own store,
/// naming the setting and the value (from the file and from the environment).
#[test]
fn bad_delete_blob_roots_stop_start_up() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = dir.path().join("store");
    let store_url = format!("file://{}", store.display());
    let spool = dir.path().join("spool");
    let cases = [
        (
            format!("file://{}/", dir.path().display()),
            false,
            "overlaps recalld's own store",
        ),
        (
            format!("file://{}/outputs/", store.display()),
            true,
            "overlaps recalld's own store",
        ),
        ("s3://flyte-data/raw".to_string(), false, "must end in"),
        ("memory://x/".to_string(), true, "scheme \"memory\""),
    ];
    for (root, from_env, reason) in cases {
        let config = dir.path().join("recalld.toml");
        let mut text = format!("spool_dir = {:?}\n", spool.display().to_string());
        if !from_env {
            text.push_str(&format!("[flyte]\ndelete_blob_roots = [{root:?}]\n"));
        }
        std::fs::write(&config, text).expect("write config");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_recalld"));
        command
            .arg("--config")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0", "--store", &store_url])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (name, _) in std::env::vars() {
            if name.starts_with("RECALL_") {
                command.env_remove(name);
            }
        }
        if from_env {
            command.env("RECALL_FLYTE_DELETE_BLOB_ROOTS", &root);
        }
        let mut child = command.spawn().expect("start recalld");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("recalld started with delete root {root}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
            .expect("read stderr");
        assert!(!status.success(), "{root}: {stderr}");
        assert!(
            stderr.contains(&format!("setting flyte.delete_blob_roots = {root}: ")),
            "{root}: {stderr}"
        );
        assert!(stderr.contains(reason), "{root}: {stderr}");
    }
}
