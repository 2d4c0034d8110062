//! Fault injection with counts (issue 6). A plain `main` (harness = false) because the
//! publisher killed with SIGKILL is this same executable started again as a child:
//!
//!     chaos                      every scenario, on local disk and (unless skipped) S3
//!     chaos child URL N SIZE     publish entry N with one SIZE-byte output, then exit
//!
//! Scenarios: kill -9 of publishers at random points across 100 publishes, then every
//! manifest checked; random bytes flipped in stored blobs, then every fetch checked against
//! the original bytes; a full disk (a 24 MiB tmpfs) under publishes. Each prints what it
//! tried and what it found, and fails on any torn entry or corrupt byte.
//!
//! `RECALL_CHAOS_PUBLISHES` (default 100) and `RECALL_CHAOS_SEED` change the run; S3 uses the
//! `RECALL_TEST_S3_*` server like the conformance suite and fails without one unless
//! `RECALL_TEST_SKIP` names `s3`; the full-disk scenario needs root (for mount) and fails
//! without it unless `RECALL_TEST_SKIP` names `fulldisk`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use recall_key::{DerivedKey, Digest, InputSource, KeyMaterial, Value, ValueType};
use recall_store::{
    EntryRef, FetchTo, Fetched, Lookup, Manifest, Output, PublishOptions, Store, StoreConfig,
    Tenant, open_url_with,
};
use recall_testkit::s3::S3Env;
use recall_testkit::{Rng, skipped};

const PROJECT: &str = "chaos";
const DOMAIN: &str = "development";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        })
        .unwrap_or(default)
}

/// The key of entry `n` (one input `n`, one bytes output `out`).
fn key(n: u64) -> DerivedKey {
    let mut material = KeyMaterial::new(PROJECT, DOMAIN, "wf.chaos", "1").unwrap();
    material
        .add_input(
            "n",
            ValueType::Int,
            InputSource::Value(Value::Int(n as i64)),
        )
        .unwrap();
    material.add_output("out", ValueType::Bytes).unwrap();
    material.derive().unwrap()
}

/// The output bytes of entry `n`: deterministic, so a re-publish writes the same content.
fn content(n: u64, size: usize) -> Bytes {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (n + 1));
    let mut data = Vec::with_capacity(size + 8);
    while data.len() < size {
        data.extend_from_slice(&rng.next().to_le_bytes());
    }
    data.truncate(size);
    Bytes::from(data)
}

/// Where a scenario runs: a URL plus object_store options (credentials for S3).
#[derive(Clone)]
struct Target {
    name: &'static str,
    url: String,
    options: Vec<(&'static str, String)>,
}

impl Target {
    async fn store(&self) -> Store {
        let options: Vec<(&str, &str)> =
            self.options.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let backend = open_url_with(&self.url, &options).expect("open store");
        Store::from_object_store(backend.objects, &backend.root, StoreConfig::default())
            .await
            .expect("store")
    }
}

fn s3_target(root: &str) -> Option<Target> {
    if skipped("s3") {
        println!("== SKIPPED (RECALL_TEST_SKIP): chaos on S3");
        return None;
    }
    let env = S3Env::from_env();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(env.ensure_bucket());
    Some(Target {
        name: "s3",
        url: format!("s3://{}/{}", env.bucket, recall_testkit::short_root(root)),
        options: env.object_store_options(),
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        child(&args[2..]);
        return;
    }
    // `cargo test` passes harness flags such as `--nocapture`; a name filter selects nothing
    // here, so every scenario runs unless the filter is `--list`.
    if args.iter().any(|a| a == "--list") {
        println!("chaos: test");
        return;
    }
    let seed = env_number("RECALL_CHAOS_SEED", 0xc4a0_5eed);
    let publishes = env_number("RECALL_CHAOS_PUBLISHES", 100);
    let unique = format!(
        "chaos-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );

    let local_dir = tempfile::tempdir().unwrap();
    let mut targets = vec![Target {
        name: "local",
        url: format!("file://{}", local_dir.path().display()),
        options: Vec::new(),
    }];
    targets.extend(s3_target(&unique));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    for target in &targets {
        kill_publishers(&runtime, target, publishes, seed);
        flip_bytes(&runtime, target, seed);
    }
    full_disk(&runtime, seed);
    println!("chaos: every scenario passed");
}

/// The child: publish entry `n` with `size` bytes and exit 0.
fn child(args: &[String]) {
    let [url, n, size] = args else {
        eprintln!("usage: chaos child URL N SIZE");
        std::process::exit(2);
    };
    let n: u64 = n.parse().expect("N");
    let size: usize = size.parse().expect("SIZE");
    let options = if url.starts_with("s3://") {
        S3Env::from_env().object_store_options()
    } else {
        Vec::new()
    };
    let target = Target {
        name: "child",
        url: url.clone(),
        options,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = target.store().await;
        let output = Output::bytes("out", content(n, size));
        store
            .publish(&key(n), &[output], &PublishOptions::default())
            .await
            .expect("publish");
    });
}

fn size_for(rng: &mut Rng, target: &Target) -> usize {
    let big = if target.name == "s3" {
        12 << 20
    } else {
        24 << 20
    };
    match rng.below(4) {
        0 => 1 + rng.below(4000) as usize,
        1 => 5000 + rng.below(200 << 10) as usize,
        _ => (1 << 20) + rng.below(big) as usize,
    }
}

/// What checking every manifest of the chaos tenant found.
#[derive(Default, Debug)]
struct Audit {
    manifests: u64,
    undecodable: u64,
    outputs_checked: u64,
    missing_blobs: u64,
    corrupt_blobs: u64,
}

impl Audit {
    /// Fails unless every manifest decoded and every output it names is there, whole.
    fn assert_sound(&self, after: &str) {
        assert_eq!(
            (self.undecodable, self.missing_blobs, self.corrupt_blobs),
            (0, 0, 0),
            "torn entries after {after}"
        );
    }
}

impl std::fmt::Display for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} manifests checked, {} outputs; {} undecodable, {} missing blobs, {} corrupt blobs",
            self.manifests,
            self.outputs_checked,
            self.undecodable,
            self.missing_blobs,
            self.corrupt_blobs
        )
    }
}

async fn audit(store: &Store) -> Audit {
    let tenant = Tenant::new(PROJECT, DOMAIN).unwrap();
    let objects = store.raw_object_store();
    let listed: Vec<_> = objects
        .list(Some(&store.raw_path(&tenant.entries_prefix())))
        .try_collect()
        .await
        .unwrap();
    let mut audit = Audit::default();
    for meta in listed {
        audit.manifests += 1;
        let bytes = objects
            .get(&meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let Ok(manifest) = Manifest::decode(&bytes) else {
            audit.undecodable += 1;
            continue;
        };
        for record in manifest.outputs.values() {
            audit.outputs_checked += 1;
            let data = match &record.inline {
                Some(inline) => inline.clone(),
                None => match store.raw_get(&tenant.blob(&record.digest)).await {
                    Ok(Some(got)) => got,
                    Ok(None) | Err(_) => {
                        audit.missing_blobs += 1;
                        continue;
                    }
                },
            };
            if Digest::of_content(&data) != record.digest || data.len() as u64 != record.size {
                audit.corrupt_blobs += 1;
            }
        }
    }
    audit
}

fn kill_publishers(runtime: &tokio::runtime::Runtime, target: &Target, publishes: u64, seed: u64) {
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(seed);
    let keys = (publishes * 3 / 5).max(1);
    let spawn = |n: u64, size: usize| {
        Command::new(&exe)
            .args(["child", &target.url, &n.to_string(), &size.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // One undisturbed publish of the largest kind tells how long a publish takes here.
    let started = Instant::now();
    let probe = spawn(keys, 16 << 20).wait_with_output().unwrap();
    assert!(
        probe.status.success(),
        "probe publish failed: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let typical = started.elapsed();

    let (mut killed, mut finished) = (0, 0);
    for i in 0..publishes {
        let n = i % keys;
        let size = size_for(&mut rng, target);
        let mut child = spawn(n, size);
        let delay = Duration::from_micros(rng.below(typical.as_micros() as u64 * 6 / 5 + 1));
        std::thread::sleep(delay);
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(status.success(), "publisher {i} failed on its own");
                finished += 1;
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                killed += 1;
            }
        }
    }
    let store = runtime.block_on(target.store());
    let found = runtime.block_on(audit(&store));
    println!(
        "chaos kill-9 [{}]: {publishes} publishes of {keys} keys (one undisturbed publish took \
         {typical:?}); {killed} killed mid-way, {finished} finished; {found}",
        target.name,
    );
    assert!(
        killed > 0 && finished > 0,
        "the kill points did not spread: {killed} killed, {finished} finished"
    );
    found.assert_sound("kill -9");
    // Every key can be published afterwards, and then reads back whole.
    runtime.block_on(async {
        let mut republished = 0;
        for n in 0..keys {
            let size = 3000 + (n as usize) * 1000;
            let k = key(n);
            let entry = EntryRef::of(&k).unwrap();
            if store.lookup(&entry).await.unwrap().is_miss() {
                store
                    .publish(
                        &k,
                        &[Output::bytes("out", content(n, size))],
                        &PublishOptions::default(),
                    )
                    .await
                    .unwrap();
                republished += 1;
            }
            let Lookup::Hit(got) = store.fetch(&entry, FetchTo::Memory).await.unwrap() else {
                panic!("key {n} is not a hit after republishing");
            };
            let Fetched::Bytes(bytes) = &got.outputs["out"] else {
                panic!("not in memory")
            };
            assert_eq!(
                Digest::of_content(bytes),
                got.manifest.outputs["out"].digest
            );
        }
        println!(
            "chaos kill-9 [{}]: afterwards {republished} missing keys republished; all {keys} \
             keys read back verified",
            target.name
        );
    });
}

fn flip_bytes(runtime: &tokio::runtime::Runtime, target: &Target, seed: u64) {
    runtime.block_on(async {
        let store = target.store().await;
        let mut rng = Rng(seed ^ 0xf11b);
        let entries = 20u64;
        let base = 10_000;
        let mut originals = Vec::new();
        for n in base..base + entries {
            let size = 5000 + rng.below(300 << 10) as usize;
            let data = content(n, size);
            store
                .publish(
                    &key(n),
                    &[Output::bytes("out", data.clone())],
                    &PublishOptions::default(),
                )
                .await
                .unwrap();
            originals.push((n, data));
        }
        let tenant = Tenant::new(PROJECT, DOMAIN).unwrap();
        let mut flipped = 0;
        // About half the entries, and at least one damaged and one intact.
        let damaged: Vec<bool> = (0..originals.len())
            .map(|i| i == 0 || (i != 1 && rng.below(2) == 0))
            .collect();
        for (_, data) in originals
            .iter()
            .zip(&damaged)
            .filter(|(_, d)| **d)
            .map(|(o, _)| o)
        {
            store
                .raw_edit(&tenant.blob(&Digest::of_content(data)), |bytes| {
                    for _ in 0..=rng.below(3) {
                        let i = rng.below(bytes.len() as u64) as usize;
                        bytes[i] ^= 1 << rng.below(8);
                    }
                })
                .await
                .unwrap();
            flipped += 1;
        }
        let (mut hits, mut misses, mut corrupt) = (0, 0, 0);
        let dir = tempfile::tempdir().unwrap();
        for (n, data) in &originals {
            let entry = EntryRef::of(&key(*n)).unwrap();
            let to = if n % 2 == 0 {
                FetchTo::Memory
            } else {
                FetchTo::Dir(dir.path().join(n.to_string()))
            };
            if let FetchTo::Dir(d) = &to {
                std::fs::create_dir_all(d).unwrap();
            }
            match store.fetch(&entry, to).await.unwrap() {
                Lookup::Hit(got) => {
                    hits += 1;
                    let bytes = match &got.outputs["out"] {
                        Fetched::Bytes(b) => b.clone(),
                        Fetched::File(path) => Bytes::from(std::fs::read(path).unwrap()),
                    };
                    if bytes != *data {
                        corrupt += 1;
                    }
                }
                Lookup::Miss(_) => {
                    misses += 1;
                    // Nothing may have been left behind in the destination either.
                    let out = dir.path().join(n.to_string()).join("out");
                    if out.exists() && std::fs::read(&out).unwrap() != data.as_ref() {
                        corrupt += 1;
                    }
                }
            }
        }
        println!(
            "chaos flipped-bytes [{}]: {entries} entries, blobs of {flipped} damaged; {hits} hits, \
             {misses} misses, {corrupt} corrupt bytes handed out",
            target.name
        );
        assert_eq!(corrupt, 0, "corrupt bytes were handed out");
        assert_eq!(
            misses, flipped,
            "every damaged entry is a miss, every other a hit"
        );
    });
}

fn full_disk(runtime: &tokio::runtime::Runtime, seed: u64) {
    if skipped("fulldisk") {
        println!("== SKIPPED (RECALL_TEST_SKIP): chaos full-disk");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mount = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(dir.path())
        .output()
        .expect("run mount");
    assert!(
        mount.status.success(),
        "the full-disk scenario mounts a 24 MiB tmpfs and needs root; set RECALL_TEST_SKIP=fulldisk \
         to skip it: {}",
        String::from_utf8_lossy(&mount.stderr)
    );
    struct Unmount<'a>(&'a std::path::Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(dir.path());
    let target = Target {
        name: "tmpfs",
        url: format!("file://{}", dir.path().display()),
        options: Vec::new(),
    };
    runtime.block_on(async {
        let store = target.store().await;
        let mut rng = Rng(seed ^ 0xd15c);
        let (mut ok, mut failed) = (0u64, 0u64);
        let mut published = Vec::new();
        let mut first_error = None;
        for n in 20_000..20_040u64 {
            let size = (1 << 20) + rng.below(3 << 20) as usize;
            let k = key(n);
            match store
                .publish(
                    &k,
                    &[Output::bytes("out", content(n, size))],
                    &PublishOptions::default(),
                )
                .await
            {
                Ok(_) => {
                    ok += 1;
                    published.push(n);
                }
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
        let found = audit(&store).await;
        let mut verified = 0;
        for n in &published {
            let entry = EntryRef::of(&key(*n)).unwrap();
            if let Lookup::Hit(_) = store.fetch(&entry, FetchTo::Memory).await.unwrap() {
                verified += 1;
            }
        }
        println!(
            "chaos full-disk [24 MiB tmpfs]: 40 publishes of 1-4 MiB; {ok} succeeded, {failed} \
             failed cleanly (first: {}); {found}; {verified} of {ok} published entries read \
             back verified",
            first_error.as_deref().unwrap_or("none"),
        );
        assert!(
            ok > 0 && failed > 0,
            "the disk did not fill: {ok} ok, {failed} failed"
        );
        found.assert_sound("a full disk");
        assert_eq!(verified, ok);
    });
}
