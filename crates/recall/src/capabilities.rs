//! What the store behind a `--store` or `--daemon` URL honours, found out only when a run
//! needs a guarantee (`--serialize`, a publish) and cached on local disk for an hour, so a
//! cached answer costs no request: `$XDG_CACHE_HOME/recall/capabilities/<hash>.json` (or
//! `~/.cache/...`). The probe itself is recall-store's (docs/LAYOUT.md section 11).

use std::path::PathBuf;
use std::time::Duration;

use recall_store::{Capabilities, system_time_ms};
use serde::{Deserialize, Serialize};

use crate::progress::Reporter;

/// How long a cached probe result is used.
pub const CACHE_TTL: Duration = Duration::from_secs(3600);
/// Longest a probe may take (it is about ten small requests).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// One cached probe result.
#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    /// What was probed (URL and endpoint), to tell hash collisions apart.
    target: String,
    /// When, milliseconds since the Unix epoch.
    probed_at_ms: i64,
    /// What was found.
    capabilities: Capabilities,
}

/// The directory of cached results, when a cache directory can be found.
pub fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".cache"))
        })?;
    Some(base.join("recall").join("capabilities"))
}

/// What a cached result is keyed by: the URL, and for S3 the endpoint the environment names
/// (one bucket name on two servers is two stores).
pub fn target(url: &str) -> String {
    let endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
    match endpoint {
        Some(endpoint) if url.starts_with("s3://") => format!("{url} at {endpoint}"),
        _ => url.to_string(),
    }
}

fn cache_file(target: &str) -> Option<PathBuf> {
    let name = &blake3::hash(target.as_bytes()).to_hex()[..32];
    Some(cache_dir()?.join(format!("{name}.json")))
}

/// The cached result for `target`, if one younger than [`CACHE_TTL`] exists.
pub fn cached(target: &str) -> Option<Capabilities> {
    let text = std::fs::read(cache_file(target)?).ok()?;
    let file: CacheFile = serde_json::from_slice(&text).ok()?;
    let age = system_time_ms(std::time::SystemTime::now()).saturating_sub(file.probed_at_ms);
    let fresh = (0..i64::try_from(CACHE_TTL.as_millis()).unwrap_or(i64::MAX)).contains(&age);
    (fresh && file.target == target).then_some(file.capabilities)
}

/// Caches a result; failures (read-only home, ...) only mean the next run probes again.
pub fn remember(target: &str, capabilities: &Capabilities) {
    let Some(path) = cache_file(target) else {
        return;
    };
    let file = CacheFile {
        target: target.to_string(),
        probed_at_ms: system_time_ms(std::time::SystemTime::now()),
        capabilities: capabilities.clone(),
    };
    let write = || -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(&path);
        std::fs::create_dir_all(dir)?;
        let mut temp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer(&mut temp, &file)?;
        temp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    };
    // A failed write is not worth a line on stderr: the next run probes again.
    let _ = write();
    if let Some(dir) = path.parent() {
        remove_expired(dir);
    }
}

/// Removes cached results older than a day, so that the directory does not grow with every
/// store URL ever used (test runs use a new one each time).
fn remove_expired(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|at| at.elapsed().ok())
            .is_some_and(|age| age > 24 * CACHE_TTL);
        if old && entry.path().extension().is_some_and(|e| e == "json") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The conditional writes `capabilities` lacks, by name (ranged GETs are not one).
pub fn missing_conditional_writes(capabilities: &Capabilities) -> Vec<&'static str> {
    capabilities
        .missing()
        .into_iter()
        .filter(|name| *name != "ranged_get")
        .collect()
}

/// The stderr line after a publish on a store without conditional writes: the entry was
/// written, but "exactly one manifest wins" does not hold, so it may not be the one kept.
pub fn warn_publish(report: Reporter, store: &str, short: &str, capabilities: &Capabilities) {
    let missing = missing_conditional_writes(capabilities);
    if missing.is_empty() {
        return;
    }
    report.warn(format!(
        "recall: warning: {short} was written, but {store} does not honour {}: \
         \"exactly one manifest wins\" does not hold there, so a concurrent publish of this key \
         may have replaced it (docs/LAYOUT.md section 11; `recall doctor --store URL`)",
        missing.join(" and ")
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_result_is_found_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: this test is the only one in the crate's unit tests touching the variable.
        unsafe { std::env::set_var("XDG_CACHE_HOME", dir.path()) };
        let caps: Capabilities = serde_json::from_value(serde_json::json!({
            "create_if_absent": {"supported": false, "detail": "x"},
            "replace_if_version_matches": {"supported": true, "detail": "y"},
            "ranged_get": {"supported": true, "detail": "z"},
        }))
        .unwrap();
        assert_eq!(cached("memory://a"), None);
        remember("memory://a", &caps);
        assert_eq!(cached("memory://a"), Some(caps.clone()));
        assert_eq!(cached("memory://b"), None);
        let path = cache_file("memory://a").unwrap();
        assert!(path.starts_with(dir.path().join("recall/capabilities")));
        let mut file: CacheFile = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        file.probed_at_ms -= 3_600_001;
        std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
        assert_eq!(cached("memory://a"), None, "expired after an hour");
        assert_eq!(missing_conditional_writes(&caps), ["create_if_absent"]);
    }
}
