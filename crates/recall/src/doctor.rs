//! `recall doctor`: checks, one line each and in order, whether recall can use a store (or a
//! recalld) and with which guarantees, with a fix for each failure.
//!
//! Exit status: 0 when recall runs with every guarantee, 1 when it runs with weaker ones
//! (named), 2 on bad usage, 3 when it cannot run.

use std::future::Future;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use recall_store::{
    Capabilities, DESCRIPTOR, LAYOUT_VERSION, Store, StoreConfig, open_url, system_time_ms,
};
use serde::Serialize;
use serde_json::{Value as JsonValue, json};

use crate::cli::{DoctorArgs, GlobalArgs};
use crate::error::{CliError, EXIT_STORAGE};
use crate::timeouts::parse_duration;

/// Exit status when recall runs, with weaker guarantees.
pub const EXIT_WEAKER: u8 = 1;
/// Clock skew against the store beyond which leases are affected (docs/LAYOUT.md 9.5).
const SKEW_LIMIT: Duration = Duration::from_secs(60);

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// recall runs, with a weaker guarantee (or a setting worth a look).
    Warn,
    /// recall cannot run.
    Fail,
    /// Not tried, because an earlier check failed.
    Skipped,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// How it ended.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about a warning or failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The guarantees that are weaker because of it (a warning that makes the exit 1).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weakens: Vec<String>,
}

/// The checks made so far.
#[derive(Default)]
struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn ok(&mut self, name: &'static str, detail: impl Into<String>) {
        self.push(name, Status::Ok, detail.into(), None, Vec::new());
    }

    fn fail(&mut self, name: &'static str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(
            name,
            Status::Fail,
            detail.into(),
            Some(fix.into()),
            Vec::new(),
        );
    }

    /// A warning; `weakens` names the guarantees lost (any makes the exit status 1).
    fn warn(
        &mut self,
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
        weakens: &[&str],
    ) {
        let weakens = weakens.iter().map(|w| w.to_string()).collect();
        self.push(name, Status::Warn, detail.into(), Some(fix.into()), weakens);
    }

    fn skip(&mut self, names: &[&'static str]) {
        for name in names {
            self.push(
                name,
                Status::Skipped,
                "an earlier check failed".into(),
                None,
                Vec::new(),
            );
        }
    }

    fn push(
        &mut self,
        name: &'static str,
        status: Status,
        detail: String,
        fix: Option<String>,
        weakens: Vec<String>,
    ) {
        self.checks.push(Check {
            name,
            status,
            detail,
            fix,
            weakens,
        });
    }

    fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }

    fn weaker(&self) -> Vec<String> {
        let mut weaker: Vec<String> = Vec::new();
        for w in self.checks.iter().flat_map(|c| c.weakens.iter()) {
            if !weaker.contains(w) {
                weaker.push(w.clone());
            }
        }
        weaker
    }

    fn exit(&self) -> u8 {
        if self.failed() {
            EXIT_STORAGE
        } else if self.weaker().is_empty() {
            0
        } else {
            EXIT_WEAKER
        }
    }

    fn capability_lines(&mut self, capabilities: &Capabilities) {
        let c = capabilities;
        let line =
            |report: &mut Report, name, check: &recall_store::CapabilityCheck, weakens: &[&str]| {
                if check.supported {
                    report.ok(name, check.detail.clone());
                } else {
                    report.warn(
                        name,
                        check.detail.clone(),
                        "use a server that honours conditional writes (AWS S3, MinIO, Azure, GCS, \
                     local disk); on this one run without --serialize and without concurrent \
                     publishers of one key",
                        weakens,
                    );
                }
            };
        line(
            self,
            "create-if-absent",
            &c.create_if_absent,
            &[
                "exactly one manifest wins",
                "leases (--serialize is refused)",
            ],
        );
        line(
            self,
            "replace-if-version-matches",
            &c.replace_if_version_matches,
            &["leases (--serialize is refused)", "nondeterminism records"],
        );
        if c.ranged_get.supported {
            self.ok("ranged GET", c.ranged_get.detail.clone());
        } else {
            self.warn(
                "ranged GET",
                c.ranged_get.detail.clone(),
                "readers that fetch parts of blobs need ranged GETs; use another server",
                &["ranged reads of blobs"],
            );
        }
    }

    fn print(&self, target: &str, json_output: bool) -> Result<(), CliError> {
        let exit = self.exit();
        let weaker = self.weaker();
        if json_output {
            let value = json!({
                "target": target,
                "checks": self.checks,
                "weaker_guarantees": weaker,
                "exit": exit,
            });
            let text =
                serde_json::to_string_pretty(&value).map_err(|e| CliError::Usage(e.to_string()))?;
            println!("{text}");
            return Ok(());
        }
        for check in &self.checks {
            let status = match check.status {
                Status::Ok => "ok",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
                Status::Skipped => "skip",
            };
            println!("{status:<5} {:<27} {}", check.name, check.detail);
            if let Some(fix) = &check.fix {
                println!("{:<34}fix: {fix}", "");
            }
        }
        match exit {
            0 => println!("recall can use {target} with every guarantee"),
            EXIT_WEAKER => println!(
                "recall can use {target}, with weaker guarantees: {}",
                weaker.join("; ")
            ),
            _ => println!("recall cannot use {target}: see the FAIL lines above"),
        }
        Ok(())
    }
}

/// `recall doctor`: checks `--store` or `--daemon`; returns the exit status.
pub async fn doctor(global: &GlobalArgs, args: DoctorArgs) -> Result<u8, CliError> {
    let timeout = parse_duration("--storage-timeout", &global.storage_timeout)?;
    let (report, target) = match (&global.store, &global.daemon) {
        (Some(_), Some(_)) => {
            return Err(CliError::Usage(
                "doctor: give either --store or --daemon, not both".into(),
            ));
        }
        (Some(url), None) => (check_store(url, timeout).await?, url.clone()),
        (None, Some(url)) => (check_daemon(url, timeout).await?, url.clone()),
        (None, None) => {
            return Err(CliError::Usage(
                "doctor: give --store URL (e.g. s3://bucket/prefix) or --daemon URL".into(),
            ));
        }
    };
    report.print(&target, args.json)?;
    Ok(report.exit())
}

/// Runs `work` within `limit`; a timeout is an error text.
async fn within<T, E: std::fmt::Display>(
    limit: Duration,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The URL line: what the URL means, and for S3 which endpoint and addressing style.
fn url_line(report: &mut Report, url: &str, root: &str) -> Result<(), CliError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| CliError::Usage(format!("--store {url:?}: {e}")))?;
    let bucket = parsed.host_str().unwrap_or_default().to_string();
    let prefix = if root.is_empty() {
        "the bucket's top".to_string()
    } else {
        format!("prefix {root:?}")
    };
    match parsed.scheme() {
        "file" => report.ok("URL", format!("local directory {}", parsed.path())),
        "memory" => report.ok(
            "URL",
            "in-process memory (tests only: nothing outlives recall)",
        ),
        "s3" => {
            let endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
                .iter()
                .find_map(|name| env(name).map(|v| format!("{v} (from {name})")));
            let virtual_hosted = env("AWS_VIRTUAL_HOSTED_STYLE_REQUEST")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let style = if virtual_hosted {
                "virtual-hosted-style (AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true)"
            } else {
                "path-style"
            };
            let detail = format!(
                "S3 bucket {bucket:?}, {prefix}, endpoint {}, {style} requests",
                endpoint.as_deref().unwrap_or("AWS (no AWS_ENDPOINT_URL)")
            );
            if virtual_hosted && endpoint.is_some() {
                report.warn(
                    "URL",
                    detail,
                    "virtual-hosted-style puts the bucket into the endpoint's host name, which \
                     most self-hosted servers do not serve; unset \
                     AWS_VIRTUAL_HOSTED_STYLE_REQUEST unless your server needs it",
                    &[],
                );
            } else {
                report.ok("URL", detail);
            }
        }
        "gs" => report.ok("URL", format!("GCS bucket {bucket:?}, {prefix}")),
        "az" => report.ok("URL", format!("Azure container {bucket:?}, {prefix}")),
        _ => {}
    }
    Ok(())
}

/// Where credentials come from, as far as the environment tells.
fn credentials_line(report: &mut Report, scheme: &str) {
    let has = |name: &str| env(name).is_some();
    match scheme {
        "file" | "memory" => report.ok("credentials", "none needed"),
        "s3" => {
            let (id, secret) = (has("AWS_ACCESS_KEY_ID"), has("AWS_SECRET_ACCESS_KEY"));
            let profile = has("AWS_PROFILE")
                || env("HOME").is_some_and(|home| {
                    std::path::Path::new(&home)
                        .join(".aws/credentials")
                        .is_file()
                });
            if id && secret {
                let token = if has("AWS_SESSION_TOKEN") {
                    " and AWS_SESSION_TOKEN"
                } else {
                    ""
                };
                report.ok(
                    "credentials",
                    format!(
                        "from the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY{token}"
                    ),
                );
            } else if id != secret {
                let (set, unset) = if id {
                    ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
                } else {
                    ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
                };
                report.fail(
                    "credentials",
                    format!("{set} is set but {unset} is not"),
                    format!("export {unset} too"),
                );
            } else if has("AWS_WEB_IDENTITY_TOKEN_FILE") {
                report.ok("credentials", "web identity (AWS_WEB_IDENTITY_TOKEN_FILE)");
            } else if has("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                || has("AWS_CONTAINER_CREDENTIALS_FULL_URI")
            {
                report.ok("credentials", "the container credentials endpoint (ECS)");
            } else {
                let detail = if profile {
                    "none in the environment; an AWS profile exists (AWS_PROFILE or \
                     ~/.aws/credentials), but recall does not read profiles. It will ask the \
                     instance metadata service, which only EC2/EKS machines answer"
                } else {
                    "none in the environment: recall will ask the instance metadata service, \
                     which only EC2/EKS machines answer"
                };
                report.warn(
                    "credentials",
                    detail,
                    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (for a profile: eval \
                     \"$(aws configure export-credentials --format env)\")",
                    &[],
                );
            }
        }
        "az" => credentials_from(
            report,
            &[
                "AZURE_STORAGE_ACCOUNT_KEY",
                "AZURE_STORAGE_ACCESS_KEY",
                "AZURE_STORAGE_SAS_KEY",
                "AZURE_STORAGE_TOKEN",
                "AZURE_CLIENT_SECRET",
                "AZURE_FEDERATED_TOKEN_FILE",
                "AZURE_STORAGE_USE_EMULATOR",
            ],
            "none in the environment: recall will try a managed identity",
            "set AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY (or another AZURE_* \
             credential)",
        ),
        "gs" => credentials_from(
            report,
            &[
                "GOOGLE_SERVICE_ACCOUNT",
                "GOOGLE_SERVICE_ACCOUNT_PATH",
                "GOOGLE_SERVICE_ACCOUNT_KEY",
                "GOOGLE_APPLICATION_CREDENTIALS",
            ],
            "none in the environment: recall will ask the GCE metadata server",
            "set GOOGLE_APPLICATION_CREDENTIALS to a service account key file",
        ),
        _ => {}
    }
}

/// The credentials line of a backend whose credentials are any of the variables `names`: ok
/// naming those set, else a warning saying what recall falls back to (`none`) and `fix`.
fn credentials_from(report: &mut Report, names: &[&str], none: &str, fix: &str) {
    let found: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| env(name).is_some())
        .collect();
    if found.is_empty() {
        report.warn("credentials", none, fix, &[]);
    } else {
        report.ok(
            "credentials",
            format!("from the environment: {}", found.join(", ")),
        );
    }
}

/// The fix for an error of the first request, from what the server said.
fn first_request_failure(bucket: &str, err: &str) -> (String, String) {
    let lower = err.to_ascii_lowercase();
    if lower.contains("169.254.169.254") {
        (
            format!("no credentials: recall asked the instance metadata service ({err})"),
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
        )
    } else if lower.contains("nosuchbucket")
        || lower.contains("bucket does not exist")
        || lower.contains("containernotfound")
    {
        (
            format!("bucket {bucket:?} does not exist ({err})"),
            format!("create it (e.g. `aws s3 mb s3://{bucket}`) or correct the URL"),
        )
    } else if lower.contains("accessdenied")
        || lower.contains("403")
        || lower.contains("forbidden")
        || lower.contains("invalidaccesskeyid")
        || lower.contains("signaturedoesnotmatch")
    {
        (
            format!("access denied: {err}"),
            "check the credentials, and grant list, get, put and delete on the store root \
             (docs/LAYOUT.md section 10)"
                .into(),
        )
    } else {
        (
            format!("the store did not answer: {err}"),
            "check the endpoint (AWS_ENDPOINT_URL), the network and that the server runs".into(),
        )
    }
}

async fn check_store(url: &str, timeout: Duration) -> Result<Report, CliError> {
    let mut report = Report::default();
    let backend = open_url(url).map_err(|e| CliError::Usage(format!("--store: {e}")))?;
    url_line(&mut report, url, &backend.root)?;
    let scheme = url.split(':').next().unwrap_or_default();
    credentials_line(&mut report, scheme);
    let bucket = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let store = Store::open_unverified(url, StoreConfig::default())?;
    let later = [
        "read",
        "write",
        "delete",
        "descriptor",
        "create-if-absent",
        "replace-if-version-matches",
        "ranged GET",
        "multipart",
        "clock skew",
    ];

    // Bucket: one listing of the root.
    match within(timeout, store.list_root()).await {
        Ok(_) if bucket.is_empty() => report.ok("bucket", "the store root answers a listing"),
        Ok(_) => report.ok("bucket", format!("{bucket:?} answers a listing")),
        Err(err) => {
            let (detail, fix) = first_request_failure(&bucket, &err);
            report.fail("bucket", detail, fix);
            report.skip(&later);
            return Ok(report);
        }
    }

    // Read: a GET of an object that does not exist must say "not found".
    match within(timeout, store.scratch("absent").get()).await {
        Ok(None) => report.ok("read", "a GET answers (a missing object reads as missing)"),
        Ok(Some(_)) => report.ok("read", "a GET answers"),
        Err(err) => {
            let (detail, fix) = first_request_failure(&bucket, &err);
            report.fail("read", detail, fix);
            report.skip(&later[1..]);
            return Ok(report);
        }
    }

    // Write, then delete, one scratch object under probe/.
    let scratch = store.scratch("doctor");
    let before = system_time_ms(SystemTime::now());
    let written = within(timeout, scratch.put(Bytes::from_static(b"recall doctor"))).await;
    let after = system_time_ms(SystemTime::now());
    if let Err(err) = written {
        let (detail, fix) = first_request_failure(&bucket, &err);
        report.fail("write", detail, fix);
        report.skip(&later[2..]);
        return Ok(report);
    }
    report.ok(
        "write",
        format!("a PUT under {}/ succeeded", recall_store::PROBE_PREFIX),
    );
    let modified = within(timeout, scratch.modified_ms()).await.ok().flatten();
    match within(timeout, scratch.delete()).await {
        Ok(()) => match within(timeout, scratch.modified_ms()).await {
            Ok(None) => report.ok("delete", "a DELETE removed it"),
            _ => report.fail(
                "delete",
                "a DELETE answered, but the object is still there",
                "recall's eviction and GC need working deletes; use another server",
            ),
        },
        Err(err) => report.fail(
            "delete",
            format!("a DELETE failed: {err}"),
            "grant delete on the store root (eviction, GC and broken entries need it)",
        ),
    }

    descriptor_line(&mut report, &store, timeout).await;

    match store.probe_capabilities(timeout).await {
        Ok(capabilities) => {
            report.capability_lines(&capabilities);
            crate::capabilities::remember(&crate::capabilities::target(url), &capabilities);
        }
        Err(err) => {
            for name in [
                "create-if-absent",
                "replace-if-version-matches",
                "ranged GET",
            ] {
                report.fail(
                    name,
                    format!("the probe failed: {err}"),
                    "see the write and delete lines; the probe writes under probe/",
                );
            }
        }
    }

    multipart_line(&mut report, &store, timeout).await;

    match modified {
        Some(at) => {
            let skew_ms = if at < before - 1000 {
                at - before
            } else if at > after + 1000 {
                at - after
            } else {
                0
            };
            let skew = Duration::from_millis(skew_ms.unsigned_abs());
            let detail = format!(
                "the store's Last-Modified of the object just written is {} s {} this \
                 machine's clock (1 s resolution; object_store does not expose the Date header)",
                skew.as_secs(),
                if skew_ms < 0 { "behind" } else { "ahead of" }
            );
            if skew > SKEW_LIMIT {
                report.warn(
                    "clock skew",
                    detail,
                    "synchronise this machine's clock (NTP)",
                    &["lease expiry (shortened or lengthened by the skew)"],
                );
            } else {
                report.ok("clock skew", detail);
            }
        }
        None => report.ok(
            "clock skew",
            "not measured: the store gave no Last-Modified time",
        ),
    }
    Ok(report)
}

async fn descriptor_line(report: &mut Report, store: &Store, timeout: Duration) {
    let body = match within(timeout, store.read_descriptor_bytes()).await {
        Ok(Some(body)) => body,
        Ok(None) => {
            report.ok(
                "descriptor",
                format!("{DESCRIPTOR} is absent: recall writes it at first use"),
            );
            return;
        }
        Err(err) => {
            report.fail(
                "descriptor",
                format!("{DESCRIPTOR} could not be read: {err}"),
                "grant get on the store root",
            );
            return;
        }
    };
    let version = serde_json::from_slice::<JsonValue>(&body)
        .ok()
        .and_then(|v| v.get("layout_version").and_then(JsonValue::as_u64));
    match version {
        Some(LAYOUT_VERSION) => report.ok(
            "descriptor",
            format!("{DESCRIPTOR}: layout_version {LAYOUT_VERSION}"),
        ),
        other => report.fail(
            "descriptor",
            format!(
                "{DESCRIPTOR} names layout_version {other:?}; this recall reads {LAYOUT_VERSION}"
            ),
            "use another prefix, or the recall version that wrote this store",
        ),
    }
}

/// One multipart upload of two parts (5 MiB and 1 KiB), read back and removed.
async fn multipart_line(report: &mut Report, store: &Store, timeout: Duration) {
    let scratch = store.scratch("multipart");
    let parts = [
        Bytes::from(vec![7u8; 5 << 20]),
        Bytes::from(vec![9u8; 1024]),
    ];
    let whole = parts.iter().map(|p| p.len() as u64).sum::<u64>();
    let result = within(timeout, scratch.put_multipart(&parts))
        .await
        .map(|size| size == whole);
    let _ = within(timeout, scratch.delete()).await;
    match result {
        Ok(true) => report.ok("multipart", "a two-part upload came back whole"),
        Ok(false) => report.warn(
            "multipart",
            "a two-part upload came back with another size",
            "outputs over 8 MiB are uploaded in parts; use another server",
            &["outputs over 8 MiB cannot be cached"],
        ),
        Err(err) => report.warn(
            "multipart",
            format!("a two-part upload failed: {err}"),
            "outputs over 8 MiB are uploaded in parts; grant multipart uploads or use another \
             server",
            &["outputs over 8 MiB cannot be cached"],
        ),
    }
}

async fn check_daemon(url: &str, timeout: Duration) -> Result<Report, CliError> {
    let mut report = Report::default();
    let base = url.trim_end_matches('/');
    let parsed =
        reqwest::Url::parse(base).map_err(|e| CliError::Usage(format!("--daemon {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(CliError::Usage(format!(
            "--daemon {url:?}: expected an http:// or https:// URL"
        )));
    }
    report.ok("URL", format!("recalld at {base}"));
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| CliError::Usage(format!("--daemon {url:?}: {e}")))?;
    let answer = match http.get(format!("{base}/readyz")).send().await {
        Ok(response) => {
            let status = response.status();
            (
                status,
                response.json::<JsonValue>().await.unwrap_or_default(),
            )
        }
        Err(err) => {
            report.fail(
                "daemon",
                format!("no answer from {base}/readyz: {err}"),
                "start recalld, or correct --daemon",
            );
            report.skip(&[
                "ready",
                "create-if-absent",
                "replace-if-version-matches",
                "ranged GET",
            ]);
            return Ok(report);
        }
    };
    report.ok("daemon", format!("{base}/readyz answered {}", answer.0));
    let (status, body) = answer;
    if status.is_success() && body["ready"] == true {
        report.ok("ready", "its store answered recalld's checks");
    } else {
        report.fail(
            "ready",
            format!(
                "not ready: {}",
                body["cause"].as_str().unwrap_or("no cause given")
            ),
            "run `recall doctor --store URL` on recalld's store, with recalld's environment",
        );
    }
    match serde_json::from_value::<Capabilities>(body["capabilities"].clone()) {
        Ok(capabilities) => {
            report.capability_lines(&capabilities);
            crate::capabilities::remember(&crate::capabilities::target(base), &capabilities);
        }
        Err(_) => report.skip(&[
            "create-if-absent",
            "replace-if-version-matches",
            "ranged GET",
        ]),
    }
    Ok(report)
}
