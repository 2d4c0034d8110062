//! The test set-up that recall-store's, recalld's and recall's tests share (a `publish =
//! false` dev-dependency, never shipped):
//!
//! - [`skipped`]: whether `RECALL_TEST_SKIP` names a part, said on stderr. A test whose server
//!   is not configured fails; it is skipped only when `RECALL_TEST_SKIP` says so.
//! - [`s3::S3Env`] and [`azure::AzureEnv`]: where the object-store servers are, from the
//!   `RECALL_TEST_S3_*`, `RECALL_TEST_S3NOCAS_*` and `RECALL_TEST_AZURE_*` variables that
//!   `scripts/test-servers.sh` exports.
//! - [`unique_root`]: a store root no other test (or test run) uses.
//! - [`backend::Backend`]: a fresh store for a process under test (local disk, S3, or the S3
//!   server without conditional writes), as a URL and environment variables.
//! - [`recalld::Recalld`]: a running `recalld` binary on a free loopback port.
//!
//! It depends on no recall crate, so recall-store's own tests can use it.

pub mod azure;
pub mod backend;
pub mod recalld;
pub mod s3;

use std::sync::atomic::{AtomicU64, Ordering};

/// A non-empty environment variable.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A non-empty environment variable, or a test failure that says how to provide it:
/// `provider` names what sets it (e.g. "run scripts/test.sh (it starts moto)"), `skip` the
/// `RECALL_TEST_SKIP` part that skips the tests needing it.
pub fn required(name: &str, provider: &str, skip: &str) -> String {
    var(name).unwrap_or_else(|| {
        panic!("{name} is not set: {provider}, or set RECALL_TEST_SKIP={skip} to skip it")
    })
}

/// Whether `RECALL_TEST_SKIP` (comma-separated) names `part` (a backend such as `s3`, or a
/// mode such as `daemon`); says so on stderr when it does.
pub fn skipped(part: &str) -> bool {
    let list = std::env::var("RECALL_TEST_SKIP").unwrap_or_default();
    let skip = list.split(',').any(|p| p.trim() == part);
    if skip {
        eprintln!("SKIPPED (RECALL_TEST_SKIP={list}): {part}");
    }
    skip
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A store root unique to this process, call and case: `SCOPE/CASE-PID-N-NANOS`, shortened by
/// [`short_root`] when `RECALL_TEST_S3_SHORT_ROOTS` is set.
pub fn unique_root(scope: &str, case: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    short_root(&format!(
        "{scope}/{case}-{}-{}-{nanos}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    ))
}

/// The store root a test uses on S3: `long`, which names the case (handy when reading a
/// bucket), or, when `RECALL_TEST_S3_SHORT_ROOTS` is set, `t` and 12 hex digits of a hash of
/// it. s3s-fs keeps each object's metadata in one file named after the base64 of bucket and
/// key, so a key longer than about 130 bytes fails there (ENAMETOOLONG), and recall's layout
/// already adds about 106 bytes under the root. `scripts/s3-compat.sh` sets the variable.
pub fn short_root(long: &str) -> String {
    use std::hash::{Hash, Hasher};
    if var("RECALL_TEST_S3_SHORT_ROOTS").is_none() {
        return long.to_string();
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    long.hash(&mut hasher);
    format!("t{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

/// Creates the directory `name` under `parent` with permission bits `mode` (e.g. `0o777`, a
/// directory other users can reach) and returns its path.
pub fn dir_with_mode(parent: &std::path::Path, name: &str, mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, dir.display()));
    dir
}

/// xorshift64*: a small deterministic generator, so a failure reproduces from its seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// An index in `0..n` (0 when `n` is 0).
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
}

/// Deterministic, incompressible-looking bytes: the xorshift64 stream from `state` (not 0).
pub fn pseudo_random(len: usize, mut state: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}
