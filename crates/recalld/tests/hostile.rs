//! recalld under hostile or careless clients (issue 12, items 4, 9, 10, 11, 13): the real
//! binary over a local-disk store, spoken to over raw TCP where a well-behaved HTTP client
//! would not do what is tested.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ADMIN, ALPHA_READ, Backend, Daemon, Material, Options, lease_request, tokens};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for something that should happen within a second or two; only a
/// daemon that never does it (the bug) reaches this.
const PATIENCE: Duration = Duration::from_secs(20);

/// A daemon over a fresh local-disk store, with `toml` appended to its configuration (the
/// store lives as long as the backend returned with it).
fn local_daemon(toml: &str) -> (Backend, Daemon) {
    let backend = Backend::local();
    let daemon = Daemon::start(&backend, &Options::toml(toml));
    (backend, daemon)
}

/// `host:port` of a daemon.
fn address(d: &Daemon) -> String {
    d.base.trim_start_matches("http://").to_string()
}

/// Reads what the server sends until it closes the connection or `PATIENCE` passes; `None`
/// when it neither answered nor closed in that time.
async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&received).into()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// The head of a multipart publish announcing a body of `length` bytes, and the start of its
/// `material` part.
fn publish_head(token: Option<&str>, length: u64) -> String {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!(
        "POST /v1/entries HTTP/1.1\r\nHost: test\r\n{auth}\
         Content-Type: multipart/form-data; boundary=BOUNDARY\r\nContent-Length: {length}\r\n\r\n\
         --BOUNDARY\r\nContent-Disposition: form-data; name=\"material\"\r\n\r\n"
    )
}

/// Item 9: a publish without a token that can write is refused from its headers, before
/// recalld reads the (here 4 GiB) body; before the fix it read the whole material part first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_without_a_write_token_is_refused_before_its_body() {
    let (_store, d) = local_daemon(&tokens());
    for (token, expected) in [
        (None, "HTTP/1.1 401"),
        (Some("not-a-token-at-all"), "HTTP/1.1 401"),
        (Some(ALPHA_READ), "HTTP/1.1 403"),
    ] {
        let mut stream = TcpStream::connect(address(&d)).await.unwrap();
        stream
            .write_all(publish_head(token, 4 << 30).as_bytes())
            .await
            .unwrap();
        stream.write_all(&vec![b'x'; 64 * 1024]).await.unwrap();
        let answer = read_until_closed(&mut stream)
            .await
            .unwrap_or_else(|| panic!("no answer before the body was sent ({token:?})"));
        assert!(answer.starts_with(expected), "{token:?}: {answer}");
    }
    // The refusals cost no memory worth speaking of.
    let rss = rss_kib(d.pid());
    assert!(rss < 512 * 1024, "recalld RSS {rss} KiB");
}

/// The resident set of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Item 9: the material part is held in memory only up to `limits.max_material_bytes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_material_part_over_the_limit_is_refused() {
    let (_store, d) = local_daemon("[limits]\nmax_material_bytes = 1024\n");
    let m = Material::new(&d, "alpha", "wf.big", 1, &["o"]).await;
    let mut padded = m.clone();
    padded.json["inputs"][0]["name"] = json!("n".repeat(2000));
    let (status, body) = d.publish(&padded, &[("o", vec![1])], "", None).await;
    assert_eq!(status, 413, "{body}");
    let message = body["error"].as_str().unwrap_or("");
    assert!(
        message.contains("limits.max_material_bytes") && message.contains("1024"),
        "{body}"
    );
    // Material under the limit still publishes.
    let (status, body) = d.publish(&m, &[("o", vec![1])], "", None).await;
    assert_eq!(status, 201, "{body}");
}

/// Item 11: an entry with more outputs than `limits.max_outputs` is refused, naming the limit
/// and the count, before any output is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_with_too_many_outputs_is_refused() {
    let (_store, d) = local_daemon("[limits]\nmax_outputs = 3\n");
    let m = Material::new(&d, "alpha", "wf.wide", 1, &["a", "b", "c", "d"]).await;
    let outputs: Vec<(&str, Vec<u8>)> =
        ["a", "b", "c", "d"].iter().map(|n| (*n, vec![1])).collect();
    let (status, body) = d.publish(&m, &outputs, "", None).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"].as_str().unwrap_or("");
    assert!(
        message.contains("4 outputs") && message.contains("limits.max_outputs = 3"),
        "{body}"
    );
    assert_eq!(d.lookup(&m, None).await.0, 404);
    let three = Material::new(&d, "alpha", "wf.wide", 1, &["a", "b", "c"]).await;
    let (status, body) = d.publish(&three, &outputs[..3], "", None).await;
    assert_eq!(status, 201, "{body}");
}

/// Item 11: a manifest over `limits.max_manifest_bytes` is refused and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_whose_manifest_is_too_large_is_refused() {
    let (_store, d) = local_daemon("[limits]\nmax_manifest_bytes = 4096\n");
    // Two outputs of 3000 bytes are both inlined: about 6 KB of manifest.
    let m = Material::new(&d, "alpha", "wf.inline", 1, &["a", "b"]).await;
    let outputs = [("a", vec![1u8; 3000]), ("b", vec![2u8; 3000])];
    let (status, body) = d.publish(&m, &outputs, "", None).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"].as_str().unwrap_or("");
    assert!(
        message.contains("limits.max_manifest_bytes = 4096"),
        "{body}"
    );
    assert_eq!(d.lookup(&m, None).await.0, 404);
    let (status, body) = d
        .publish(&m, &[("a", vec![1]), ("b", vec![2])], "", None)
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Item 11: an entry written (by another writer) with more outputs than the reader limit is
/// a miss through recalld, never a hit it decodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_over_the_reader_limit_is_a_miss() {
    let backend = Backend::local();
    let count = recall_store::MAX_MANIFEST_OUTPUTS + 1;
    let names: Vec<String> = (0..count).map(|i| format!("o{i}")).collect();
    let material = json!({
        "project": "alpha",
        "domain": "development",
        "task": "wf.huge",
        "cache_version": "1.0",
        "inputs": [],
        "outputs": names.iter().map(|n| json!({ "name": n, "type": "file" })).collect::<Vec<_>>(),
    });
    let derived = common::derive(&material);
    let store = recall_store::Store::open(&backend.url()).await.unwrap();
    let outputs: Vec<recall_store::Output> = names
        .iter()
        .map(|n| recall_store::Output::bytes(n.clone(), vec![7u8]))
        .collect();
    let outcome = store
        .publish(&derived, &outputs, &recall_store::PublishOptions::default())
        .await
        .unwrap();
    assert!(outcome.is_published());

    let d = Daemon::start(&backend, &Options::default());
    let path = format!("/v1/entries/alpha/development/{}", derived.key.to_hex());
    let (status, body) = d.get(&path, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (404, Some("CACHE_MISS")),
        "{body}"
    );
    assert_eq!(body["reason"], "undecodable", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("{count} outputs")),
        "{body}"
    );
}

/// Item 10: a connection that sends no request is closed after the header-read timeout,
/// and so is a kept-alive connection after its last response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_header_read_timeout() {
    let (_store, d) = local_daemon("[timeouts]\nheader_read_secs = 1\n");
    let mut silent = TcpStream::connect(address(&d)).await.unwrap();
    let answer = read_until_closed(&mut silent)
        .await
        .expect("a silent connection is still open");
    assert!(!answer.contains("200 OK"), "{answer}");

    let mut kept = TcpStream::connect(address(&d)).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut kept)
        .await
        .expect("an idle kept-alive connection is still open");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A head sent one byte at a time, too slowly, is cut off as well.
    let mut slow = TcpStream::connect(address(&d)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let answer = read_until_closed(&mut slow)
        .await
        .expect("a half-sent head is still being waited for");
    assert!(!answer.contains("200 OK"), "{answer}");
}

/// Item 10: a request body that stops arriving fails after the body-idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_fails_after_the_idle_timeout() {
    let (_store, d) = local_daemon("[timeouts]\nbody_idle_secs = 1\n");
    let mut stream = TcpStream::connect(address(&d)).await.unwrap();
    stream
        .write_all(publish_head(None, 100_000).as_bytes())
        .await
        .unwrap();
    stream.write_all(b"{\"project\":").await.unwrap();
    let answer = read_until_closed(&mut stream)
        .await
        .expect("a stalled body is still being waited for");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

/// Item 10: idle connections beyond the limit do not keep `/healthz` from answering, even
/// when together they would exhaust recalld's file descriptors (which, before the limit,
/// left new connections unaccepted in the listen queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_beyond_the_limit_do_not_starve_healthz() {
    let backend = Backend::local();
    let d = Daemon::start(
        &backend,
        &Options {
            toml: "max_connections = 64\n[timeouts]\nheader_read_secs = 600\n".into(),
            open_files: Some(256),
            ..Options::default()
        },
    );
    let mut idle = Vec::new();
    for _ in 0..400 {
        idle.push(TcpStream::connect(address(&d)).await.unwrap());
    }
    let client = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let response = client
        .get(d.url("/healthz"))
        .send()
        .await
        .expect("/healthz did not answer behind 400 idle connections");
    assert_eq!(response.status().as_u16(), 200);
    // The daemon is still serving normally.
    let (status, _) = d.get("/readyz", None).await;
    assert_eq!(status, 200);
    drop(idle);
}

/// Item 10: SIGTERM with half-sent requests (a head, a body) exits within the shutdown
/// deadline instead of waiting for them forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_half_sent_requests_exits_within_the_deadline() {
    let (_store, mut d) = local_daemon(
        "[timeouts]\nshutdown_secs = 1\nheader_read_secs = 600\nbody_idle_secs = 600\n",
    );
    let mut head = TcpStream::connect(address(&d)).await.unwrap();
    head.write_all(b"POST /v1/keys HTTP/1.1\r\nHost: test\r\n")
        .await
        .unwrap();
    let mut body = TcpStream::connect(address(&d)).await.unwrap();
    body.write_all(publish_head(None, 100_000).as_bytes())
        .await
        .unwrap();
    body.write_all(b"{\"project\":").await.unwrap();
    // Both requests have reached the daemon: a request after them is answered.
    assert_eq!(d.get("/healthz", None).await.0, 200);
    d.terminate();
    let status = d
        .wait_exit(PATIENCE)
        .expect("recalld still running after SIGTERM with half-sent requests");
    assert!(status.success(), "{status:?}");
    drop((head, body));
}

/// Item 13: a lease heartbeat over `limits.max_heartbeat_secs` is refused (not clamped),
/// naming the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_heartbeat_over_the_maximum_is_refused() {
    let (_store, d) = local_daemon("[limits]\nmax_heartbeat_secs = 60\n");
    let m = Material::new(&d, "alpha", "wf.lease", 1, &["o"]).await;
    let path = m.lease_path();
    let (status, body) = d.post(&path, &lease_request("w", 61), None).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"].as_str().unwrap_or("");
    assert!(
        message.contains("61") && message.contains("limits.max_heartbeat_secs"),
        "{body}"
    );
    let (status, body) = d.post(&path, &lease_request("w", 60), None).await;
    assert_eq!(
        (status, body["granted"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert_eq!(body["heartbeat_ms"], 60_000);
}

/// Item 4: a spool directory other users can reach stops start-up with a message naming it.
#[test]
fn a_spool_directory_open_to_others_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let spool = recall_testkit::dir_with_mode(dir.path(), "spool", 0o777);
    let config = dir.path().join("recalld.toml");
    std::fs::write(
        &config,
        format!("spool_dir = {:?}\n", spool.display().to_string()),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_recalld"));
    command
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--store"])
        .arg(format!("file://{}", dir.path().join("store").display()))
        .stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("RECALL_") && !name.starts_with("RECALL_TEST_") {
            command.env_remove(name);
        }
    }
    let output = command.output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&spool.display().to_string()) && stderr.contains("0777"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("listening"), "{stdout}");
}

/// Item 4: the default spool is private to recalld's user (under $RECALL_HOME here), not a
/// shared directory in the system temp.
#[test]
fn the_default_spool_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let mut command = Command::new(env!("CARGO_BIN_EXE_recalld"));
    command
        .args(["--listen", "127.0.0.1:0", "--store", "memory://"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("RECALL_") && !name.starts_with("RECALL_TEST_") {
            command.env_remove(name);
        }
    }
    command.env("RECALL_HOME", &home);
    let mut child = command.spawn().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("listening"), "{line}");
    let mode = std::fs::metadata(home.join("spool"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

/// Item 9: publishes through a token that may write still work, and the unauthenticated
/// refusal leaves the daemon serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_token_still_publishes() {
    let (_store, d) = local_daemon(&tokens());
    let m = Material::new(&d, "alpha", "wf.ok", 1, &["o"]).await;
    let (status, body): (u16, Value) = d.publish(&m, &[("o", vec![3])], "", Some(ADMIN)).await;
    assert_eq!(status, 201, "{body}");
}

/// Item 4: the store names and checks a spooled upload by the digest recalld computed from
/// the bytes it received; a file changed after that (another user swapping a spooled
/// upload) fails the publish instead of being stored under the victim's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spooled_upload_changed_after_it_was_received_is_not_published() {
    use recall_store::{Output, OutputData, PublishOptions, Store, StoreError};

    let backend = Backend::local();
    let store = Store::open(&backend.url()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // One inlined output and one stored as a blob.
    for (case, size) in [("inline", 100usize), ("blob", 100_000)] {
        let material = json!({
            "project": "alpha",
            "domain": "development",
            "task": format!("wf.swap.{case}"),
            "cache_version": "1.0",
            "inputs": [],
            "outputs": [{ "name": "o", "type": "file" }],
        });
        let derived = common::derive(&material);
        let received = common::bytes(size, 1);
        let path = dir.path().join(case);
        // The file now holds other bytes of the same length than those received.
        std::fs::write(&path, common::bytes(size, 2)).unwrap();
        let output = Output {
            name: "o".into(),
            data: OutputData::Received {
                path: path.clone(),
                digest: recall_key::Digest::of_content(&received),
                size: size as u64,
            },
        };
        let result = store
            .publish(&derived, &[output], &PublishOptions::default())
            .await;
        assert!(
            matches!(result, Err(StoreError::OutputChanged { .. })),
            "{case}: {result:?}"
        );
        let entry = recall_store::EntryRef::of(&derived).unwrap();
        assert!(store.lookup(&entry).await.unwrap().is_miss(), "{case}");

        // The bytes received, unchanged, publish under their digest.
        std::fs::write(&path, &received).unwrap();
        let output = Output {
            name: "o".into(),
            data: OutputData::Received {
                path,
                digest: recall_key::Digest::of_content(&received),
                size: size as u64,
            },
        };
        let outcome = store
            .publish(&derived, &[output], &PublishOptions::default())
            .await
            .unwrap();
        assert!(outcome.is_published(), "{case}");
    }
}
