//! The backend-agnostic conformance suite: every case is written once, here, and run against
//! every backend by `conformance_suite!` (tests/memory.rs, local.rs, s3.rs, azure.rs).

#![allow(dead_code)]

pub mod faulty;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use recall_key::{DerivedKey, Digest, InputSource, KeyMaterial, Value, ValueType};
use recall_store::{
    Clock, DEFAULT_GRACE, EntryRef, EvictReport, EvictSelector, FetchTo, Fetched, GcOptions,
    LeaseStatus, Lookup, Manifest, ManualClock, Miss, Output, PublishMode, PublishOptions,
    PublishOutcome, Store, StoreConfig, Tenant, UploadTuning,
};

use self::faulty::{Fault, FaultyStore};

/// Generates one `#[tokio::test]` per conformance case. `$make` is an async fn taking the
/// case name and returning `Option<Harness>`: `None` only when the backend was explicitly
/// skipped with `RECALL_TEST_SKIP`.
#[macro_export]
macro_rules! conformance_suite {
    ($make:path) => {
        $crate::conformance_suite!(@single_writer $make);
        $crate::conformance_suite!(@cases $make;
            sixty_four_concurrent_publishers_one_winner,
            publish_aborted_mid_multipart_leaves_no_blob,
            undecodable_manifest_is_a_miss_and_is_replaced,
            wrong_size_in_a_manifest_keeps_the_shared_blob,
            broken_entries_are_replaced_by_the_next_publish,
            a_sound_entry_written_concurrently_is_not_replaced,
            conditional_writes_are_enforced_by_the_backend,
            probe_finds_every_capability_and_cleans_up,
            lease_two_owners_heartbeat_takeover_release,
            lease_racers_exactly_one_acquires,
            lease_arguments_are_checked,
            evict_by_project_domain,
            evict_older_than,
            evict_dry_run_counts_what_eviction_removes,
            gc_sweeps_unreferenced_blobs_after_grace_with_dry_run,
            gc_keeps_blobs_of_an_in_flight_publish,
            nondeterministic_publishes_are_recorded,
            racing_publishers_with_other_outputs_are_all_recorded,
            read_only_key_on_a_root_without_descriptor_misses,
        );
    };
    // The cases that hold with one writer at a time on a store without conditional writes
    // and whose listings need no delimiter below a prefix: all that s3_nocas.rs runs on s3rver.
    (@single_writer $make:path) => {
        $crate::conformance_suite!(@cases $make;
            round_trip_every_output_kind,
            objects_sit_at_the_documented_paths,
            existing_entry_wins_and_overwrite_replaces,
            identical_outputs_share_one_blob,
            bad_names_are_rejected_before_any_io,
            outputs_must_match_the_declared_outputs,
            publish_aborted_at_the_manifest_leaves_no_entry,
            flipped_byte_in_a_blob_is_a_miss_and_heals,
            deleted_blob_is_a_miss_and_heals,
            expiry_by_max_age_per_task_and_ttl,
            evict_by_key,
            evict_by_task_and_cache_version,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some(harness) = $make(stringify!($case)).await else {
                    return;
                };
                conformance::$case(&harness).await;
            }
        )*
    };
}

/// One test's private corner of a backend.
pub struct Harness {
    /// The backend's object store.
    pub objects: Arc<dyn ObjectStore>,
    /// A root no other test uses.
    pub root: String,
    /// Keeps a temporary directory alive for the local backend.
    pub _guard: Option<tempfile::TempDir>,
}

/// A root prefix unique to this test run and case.
pub fn unique_root(case: &str) -> String {
    recall_testkit::unique_root("conformance", case)
}

/// A harness on a fresh root of the store `open_url_with(url, options)` opens.
pub fn remote_harness(url: &str, options: &[(&str, String)], case: &str) -> Harness {
    let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let backend = recall_store::open_url_with(url, &options)
        .unwrap_or_else(|e| panic!("open the store at {url}: {e}"));
    Harness {
        objects: backend.objects,
        root: unique_root(case),
        _guard: None,
    }
}

/// A real garbage collection with no grace: every unreferenced blob is swept.
pub const SWEEP_NOW: GcOptions = GcOptions {
    grace: Duration::ZERO,
    dry_run: false,
};

/// Small parts so multipart paths are exercised with test-sized data.
pub fn test_tuning() -> UploadTuning {
    UploadTuning {
        single_put_max: 1 << 20,
        part_size: 5 << 20,
        parts_in_flight: 2,
    }
}

impl Harness {
    /// A store on this harness's root with the test tuning and `producer`.
    pub async fn store(&self, producer: &str) -> Store {
        self.store_with(StoreConfig {
            producer: producer.to_string(),
            upload: test_tuning(),
            ..StoreConfig::default()
        })
        .await
    }

    /// The start of a single-writer case: a store of producer `writer`, a scratch directory,
    /// the key of task `task` with input `n` ([`key`]) and its entry.
    pub async fn writer_case(
        &self,
        task: &str,
        n: i64,
    ) -> (Store, tempfile::TempDir, DerivedKey, EntryRef) {
        let k = key(task, n);
        let entry = EntryRef::of(&k).unwrap();
        (self.store("writer").await, scratch(), k, entry)
    }

    /// A store on this harness's root with `config`.
    pub async fn store_with(&self, config: StoreConfig) -> Store {
        Store::from_object_store(Arc::clone(&self.objects), &self.root, config)
            .await
            .expect("open store")
    }

    /// A store on this root whose object store fails as `fault` says.
    pub async fn faulty_store(&self, fault: Fault) -> Store {
        self.racing_store(fault, None).await
    }

    /// Like [`Harness::faulty_store`], with the manifest a racer writes for
    /// [`Fault::RacedManifestUpdate`].
    pub async fn racing_store(&self, fault: Fault, race: Option<Bytes>) -> Store {
        let objects: Arc<dyn ObjectStore> = Arc::new(FaultyStore {
            inner: Arc::clone(&self.objects),
            fault,
            race: std::sync::Mutex::new(race),
        });
        Store::from_object_store(
            objects,
            &self.root,
            StoreConfig {
                producer: "faulty".into(),
                upload: test_tuning(),
                ..StoreConfig::default()
            },
        )
        .await
        .expect("open faulty store")
    }

    /// The object paths under the root (relative to it, sorted) that `keep` accepts.
    pub async fn list_where(&self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let mut all = self.list_all().await;
        all.retain(|p| keep(p));
        all
    }

    /// Every object path under the root, relative to it, sorted.
    pub async fn list_all(&self) -> Vec<String> {
        let prefix = Path::from(self.root.as_str());
        let prefix = (!self.root.is_empty()).then_some(&prefix);
        let mut all: Vec<String> = self
            .objects
            .list(prefix)
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .expect("list");
        let strip = if self.root.is_empty() {
            0
        } else {
            self.root.len() + 1
        };
        all = all.into_iter().map(|p| p[strip..].to_string()).collect();
        all.sort();
        all
    }
}

/// Deterministic pseudo-random bytes (BLAKE3 output stream of `seed`).
pub fn data(seed: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(seed.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// The key of task `task` with input `n`, declaring the four outputs of [`outputs`].
pub fn key(task: &str, n: i64) -> DerivedKey {
    let mut material = KeyMaterial::new("flytesnacks", "development", task, "1.0").unwrap();
    material
        .add_input("n", ValueType::Int, InputSource::Value(Value::Int(n)))
        .unwrap();
    for (name, ty) in [
        ("scalar", ValueType::Int),
        ("empty", ValueType::Bytes),
        ("medium", ValueType::Bytes),
        ("large", ValueType::File),
    ] {
        material.add_output(name, ty).unwrap();
    }
    material.derive().unwrap()
}

/// The expected bytes of each output for input `n`: an inlined scalar, an empty output, a
/// 100 KiB blob sent in one PUT and a 12 MiB file sent as a multipart upload.
pub fn expected(n: i64) -> BTreeMap<String, Vec<u8>> {
    let mut map = BTreeMap::new();
    // An int output is stored as CBOR(enc(value)) (docs/LAYOUT.md section 4.3).
    let scalar = recall_key::cbor::encode(&recall_key::cbor::Item::Int(n.into())).unwrap();
    map.insert("scalar".to_string(), scalar);
    map.insert("empty".to_string(), Vec::new());
    map.insert(
        "medium".to_string(),
        data(&format!("medium-{n}"), 100 << 10),
    );
    map.insert("large".to_string(), data(&format!("large-{n}"), 12 << 20));
    map
}

/// The outputs to publish for input `n`; `large` is written to a file under `dir`.
pub fn outputs(n: i64, dir: &std::path::Path) -> Vec<Output> {
    let expected = expected(n);
    let large = dir.join(format!("large-{n}"));
    std::fs::write(&large, &expected["large"]).unwrap();
    vec![
        Output::bytes("scalar", expected["scalar"].clone()),
        Output::bytes("empty", Bytes::new()),
        Output::bytes("medium", expected["medium"].clone()),
        Output::file("large", large),
    ]
}

/// Fetches into memory and asserts a hit whose outputs are exactly [`expected`]`(n)`.
pub async fn assert_hit(store: &Store, key: &DerivedKey, n: i64) {
    let entry = EntryRef::of(key).unwrap();
    let hit = match store.fetch(&entry, FetchTo::Memory).await.unwrap() {
        Lookup::Hit(hit) => hit,
        Lookup::Miss(miss) => panic!("expected a hit for n={n}, got {miss:?}"),
    };
    assert_whole(&hit.outputs, n);
}

fn assert_whole(outputs: &BTreeMap<String, Fetched>, n: i64) {
    let expected = expected(n);
    assert_eq!(
        outputs.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (name, want) in &expected {
        match &outputs[name] {
            Fetched::Bytes(got) => assert!(got[..] == want[..], "output {name} differs"),
            Fetched::File(path) => {
                assert!(
                    std::fs::read(path).unwrap() == *want,
                    "output {name} differs"
                )
            }
        }
    }
}

async fn publish(store: &Store, key: &DerivedKey, n: i64, dir: &std::path::Path) -> PublishOutcome {
    store
        .publish(key, &outputs(n, dir), &PublishOptions::default())
        .await
        .unwrap()
}

/// Publishes entry `n` again after the case broke or removed it: the publish must win and
/// the entry then hit, whole.
async fn republish_and_hit(store: &Store, key: &DerivedKey, n: i64, dir: &std::path::Path) {
    assert!(matches!(
        publish(store, key, n, dir).await,
        PublishOutcome::Published { .. }
    ));
    assert_hit(store, key, n).await;
}

/// Publishes `outputs` for `key` with the default options; the publish must fail, and its
/// error is returned as text.
async fn publish_error(store: &Store, key: &DerivedKey, outputs: &[Output]) -> String {
    store
        .publish(key, outputs, &PublishOptions::default())
        .await
        .unwrap_err()
        .to_string()
}

/// Publishes `outputs` for `key` with the default options; the outcome.
async fn publish_outputs(store: &Store, key: &DerivedKey, outputs: &[Output]) -> PublishOutcome {
    store
        .publish(key, outputs, &PublishOptions::default())
        .await
        .unwrap()
}

/// The manifest of the live entry of `key`; fails the case on a miss.
async fn lookup_hit(store: &Store, key: &DerivedKey) -> Manifest {
    let entry = EntryRef::of(key).unwrap();
    store.lookup(&entry).await.unwrap().hit().expect("a hit")
}

/// A fetch of `entry` into memory.
async fn fetch_memory(store: &Store, entry: &EntryRef) -> Lookup<recall_store::Entry> {
    store.fetch(entry, FetchTo::Memory).await.unwrap()
}

/// Publishes entry `n` of `task` through a store whose object store fails as `fault` says:
/// the publish must fail with the injected failure and leave a plain miss. Returns a sound
/// store on the same root, the scratch directory, the key and its entry.
async fn aborted_publish(
    h: &Harness,
    fault: Fault,
    task: &str,
    n: i64,
) -> (Store, tempfile::TempDir, DerivedKey, EntryRef) {
    let faulty = h.faulty_store(fault).await;
    let (store, dir, k, entry) = h.writer_case(task, n).await;
    let err = publish_error(&faulty, &k, &outputs(n, dir.path())).await;
    assert!(err.contains("injected failure"), "{err}");
    assert_eq!(
        store.lookup(&entry).await.unwrap(),
        Lookup::Miss(Miss::NotFound)
    );
    (store, dir, k, entry)
}

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

async fn raw_get(store: &Store, relative: &str) -> Option<Bytes> {
    store
        .raw_get(relative)
        .await
        .unwrap_or_else(|e| panic!("get {relative}: {e}"))
}

fn hex(d: &Digest) -> String {
    d.to_hex()
}

// ---------------------------------------------------------------------------------------------
// Cases

pub async fn round_trip_every_output_kind(h: &Harness) {
    let (store, dir, k, entry) = h.writer_case("wf.round_trip", 1).await;
    assert_eq!(
        store.lookup(&entry).await.unwrap(),
        Lookup::Miss(Miss::NotFound)
    );
    let PublishOutcome::Published { manifest, .. } = publish(&store, &k, 1, dir.path()).await
    else {
        panic!("first publish must win");
    };
    assert_eq!(manifest.producer, "writer");
    let looked = store.lookup(&entry).await.unwrap().hit().expect("hit");
    assert_eq!(looked, *manifest);
    let inline: BTreeMap<_, _> = looked
        .outputs
        .iter()
        .map(|(n, r)| (n.as_str(), r.inline.is_some()))
        .collect();
    assert_eq!(
        inline,
        BTreeMap::from([
            ("empty", true),
            ("large", false),
            ("medium", false),
            ("scalar", true)
        ])
    );
    assert_eq!(looked.outputs["large"].ty, "file");
    assert_eq!(looked.outputs["large"].size, 12 << 20);

    assert_hit(&store, &k, 1).await;

    let into = dir.path().join("fetched");
    let hit = store
        .fetch(&entry, FetchTo::Dir(into.clone()))
        .await
        .unwrap()
        .hit()
        .expect("hit into dir");
    for name in ["scalar", "empty", "medium", "large"] {
        assert_eq!(hit.outputs[name], Fetched::File(into.join(name)));
    }
    assert_whole(&hit.outputs, 1);
    let leftovers: Vec<_> = std::fs::read_dir(&into)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name.starts_with(".recall"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

pub async fn objects_sit_at_the_documented_paths(h: &Harness) {
    let store = h.store("writer").await;
    let dir = scratch();
    let k = key("wf.layout", 2);
    publish(&store, &k, 2, dir.path()).await;
    let key_hex = hex(&k.key);
    let expected = expected(2);
    let medium = Digest::of_content(&expected["medium"]);
    let large = Digest::of_content(&expected["large"]);
    let tenant = "tenants/flytesnacks/development";
    let mut want = vec![
        "recall-store.json".to_string(),
        format!("{tenant}/entries/{}/{key_hex}", &key_hex[..2]),
        format!("{tenant}/blobs/{}/{}", &hex(&medium)[..2], hex(&medium)),
        format!("{tenant}/blobs/{}/{}", &hex(&large)[..2], hex(&large)),
        format!("{tenant}/tasks/wf.layout/1.0/{key_hex}"),
    ];
    want.sort();
    let mut got = h.list_all().await;
    got.retain(|p| !p.starts_with(".recall"));
    assert_eq!(got, want);

    // Blobs are the raw bytes; the descriptor names the layout version.
    let blob = raw_get(
        &store,
        &want
            .iter()
            .find(|p| p.contains(&hex(&large)))
            .unwrap()
            .clone(),
    )
    .await
    .unwrap();
    assert!(blob[..] == expected["large"][..]);
    let descriptor: serde_json::Value =
        serde_json::from_slice(&raw_get(&store, "recall-store.json").await.unwrap()).unwrap();
    assert_eq!(descriptor["layout_version"], 1);
    assert_eq!(descriptor["key_spec_version"], 1);
    assert_eq!(descriptor["inline_max_bytes"], 4096);
}

pub async fn existing_entry_wins_and_overwrite_replaces(h: &Harness) {
    let first = h.store("first").await;
    let second = h.store("second").await;
    let dir = scratch();
    let k = key("wf.overwrite", 3);
    let entry = EntryRef::of(&k).unwrap();
    assert!(matches!(
        publish(&first, &k, 3, dir.path()).await,
        PublishOutcome::Published { .. }
    ));
    assert!(matches!(
        publish(&second, &k, 3, dir.path()).await,
        PublishOutcome::AlreadyExists { observed: None, .. }
    ));
    assert_eq!(
        first.lookup(&entry).await.unwrap().hit().unwrap().producer,
        "first"
    );
    let overwrite = PublishOptions {
        mode: PublishMode::Overwrite,
        ..PublishOptions::default()
    };
    let outcome = second
        .publish(&k, &outputs(3, dir.path()), &overwrite)
        .await
        .unwrap();
    assert!(matches!(outcome, PublishOutcome::Published { .. }));
    assert_eq!(
        first.lookup(&entry).await.unwrap().hit().unwrap().producer,
        "second"
    );
    assert_hit(&first, &k, 3).await;
}

pub async fn identical_outputs_share_one_blob(h: &Harness) {
    let store = h.store("writer").await;
    let dir = scratch();
    let mut material = KeyMaterial::new("flytesnacks", "development", "wf.dedup", "1.0").unwrap();
    material.add_output("out", ValueType::Bytes).unwrap();
    let a = material.derive().unwrap();
    material.set_salt("other").unwrap();
    let b = material.derive().unwrap();
    assert_ne!(a.key, b.key);
    let body = data("shared", 200 << 10);
    for k in [&a, &b] {
        let outcome = store
            .publish(
                k,
                &[Output::bytes("out", body.clone())],
                &PublishOptions::default(),
            )
            .await
            .unwrap();
        assert!(matches!(outcome, PublishOutcome::Published { .. }));
    }
    let blobs = h.list_where(|p| p.contains("/blobs/")).await;
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    let _ = dir;
}

pub async fn bad_names_are_rejected_before_any_io(h: &Harness) {
    let store = h.store("writer").await;
    let before = h.list_all().await;
    let good = key("wf.names", 4);
    let dir = scratch();
    for (field, bad) in [
        ("project", ".."),
        ("project", "a/b"),
        ("domain", ""),
        ("domain", "x\u{0}y"),
        ("task", "../../etc"),
        ("cache_version", "1/0"),
    ] {
        let mut k = good.clone();
        match field {
            "project" => k.project = bad.into(),
            "domain" => k.domain = bad.into(),
            "task" => k.task = bad.into(),
            _ => k.cache_version = bad.into(),
        }
        let err = store
            .publish(&k, &outputs(4, dir.path()), &PublishOptions::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(&format!("invalid {field}")), "{err}");
        assert!(
            err.contains(&format!("{bad:?}")),
            "{err} should name {bad:?}"
        );
    }
    let long = "p".repeat(129);
    let err = EntryRef::new(&long, "development", good.key)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("invalid project") && err.contains("longer than 128"),
        "{err}"
    );
    assert!(EntryRef::new("flytesnacks", "dev\nx", good.key).is_err());
    assert_eq!(h.list_all().await, before, "nothing may be written");
}

pub async fn outputs_must_match_the_declared_outputs(h: &Harness) {
    let store = h.store("writer").await;
    let dir = scratch();
    let k = key("wf.mismatch", 5);
    let mut missing = outputs(5, dir.path());
    missing.retain(|o| o.name != "medium");
    let err = publish_error(&store, &k, &missing).await;
    assert!(
        err.contains("\"medium\"") && err.contains("not given"),
        "{err}"
    );
    let mut extra = outputs(5, dir.path());
    extra.push(Output::bytes("surprise", "x"));
    let err = publish_error(&store, &k, &extra).await;
    assert!(
        err.contains("\"surprise\"") && err.contains("not declared"),
        "{err}"
    );
    let mut unreadable = outputs(5, dir.path());
    unreadable[3] = Output::file("large", dir.path().join("does-not-exist"));
    let err = publish_error(&store, &k, &unreadable).await;
    assert!(err.contains("does-not-exist"), "{err}");
    let entry = EntryRef::of(&k).unwrap();
    assert!(store.lookup(&entry).await.unwrap().is_miss());
}

pub async fn sixty_four_concurrent_publishers_one_winner(h: &Harness) {
    let dir = Arc::new(scratch());
    let k = key("wf.race", 6);
    let mut publishers = Vec::new();
    for i in 0..64 {
        let store = h.store(&format!("publisher-{i}")).await;
        let k = k.clone();
        let dir = Arc::clone(&dir);
        publishers.push(tokio::spawn(async move {
            let sub = dir.path().join(format!("p{i}"));
            std::fs::create_dir_all(&sub).unwrap();
            let outcome = store
                .publish(&k, &outputs(6, &sub), &PublishOptions::default())
                .await
                .unwrap();
            (i, outcome)
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..4 {
        let store = h.store("reader").await;
        let entry = EntryRef::of(&k).unwrap();
        readers.push(tokio::spawn(async move {
            let mut hits = 0;
            for _ in 0..40 {
                match store.fetch(&entry, FetchTo::Memory).await.unwrap() {
                    Lookup::Hit(hit) => {
                        assert_whole(&hit.outputs, 6);
                        hits += 1;
                    }
                    Lookup::Miss(Miss::NotFound) => {}
                    Lookup::Miss(other) => panic!("a reader saw a torn entry: {other:?}"),
                }
            }
            hits
        }));
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    for publisher in publishers {
        match publisher.await.unwrap() {
            (i, PublishOutcome::Published { manifest: m, .. }) => winners.push((i, m.producer)),
            (_, PublishOutcome::AlreadyExists { .. }) => losers += 1,
        }
    }
    for reader in readers {
        reader.await.unwrap();
    }
    assert_eq!(winners.len(), 1, "exactly one manifest wins: {winners:?}");
    assert_eq!(losers, 63);
    let store = h.store("check").await;
    let manifest = lookup_hit(&store, &k).await;
    assert_eq!(manifest.producer, winners[0].1);
    assert_hit(&store, &k, 6).await;
    let entries = h.list_where(|p| p.contains("/entries/")).await;
    assert_eq!(entries.len(), 1);
}

pub async fn publish_aborted_at_the_manifest_leaves_no_entry(h: &Harness) {
    let (store, dir, k, entry) = aborted_publish(h, Fault::ManifestPut, "wf.abort", 7).await;
    assert_eq!(
        store.fetch(&entry, FetchTo::Memory).await.unwrap(),
        Lookup::Miss(Miss::NotFound)
    );
    republish_and_hit(&store, &k, 7, dir.path()).await;
}

pub async fn publish_aborted_mid_multipart_leaves_no_blob(h: &Harness) {
    let (store, dir, k, entry) =
        aborted_publish(h, Fault::SecondPart, "wf.abort_multipart", 8).await;
    let large = Digest::of_content(&expected(8)["large"]);
    let tenant = entry.tenant.clone();
    assert_eq!(
        raw_get(&store, &tenant.blob(&large)).await,
        None,
        "no partial blob"
    );
    republish_and_hit(&store, &k, 8, dir.path()).await;
}

async fn break_blob(store: &Store, entry: &EntryRef, output: &str, n: i64, delete: bool) {
    let digest = Digest::of_content(&expected(n)[output]);
    let blob = entry.tenant.blob(&digest);
    if delete {
        store.raw_delete(&blob).await.unwrap();
    } else {
        store
            .raw_edit(&blob, |bytes| {
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x01;
            })
            .await
            .unwrap();
    }
}

async fn broken_blob_case(h: &Harness, delete: bool) {
    let n = if delete { 9 } else { 10 };
    let (store, dir, k, entry) = h
        .writer_case(if delete { "wf.deleted" } else { "wf.flipped" }, n)
        .await;
    publish(&store, &k, n, dir.path()).await;
    for output in ["large", "medium"] {
        break_blob(&store, &entry, output, n, delete).await;
        let into = dir.path().join(format!("fetch-{output}"));
        match store
            .fetch(&entry, FetchTo::Dir(into.clone()))
            .await
            .unwrap()
        {
            Lookup::Miss(Miss::Broken { output: which, .. }) => assert_eq!(which, output),
            other => panic!("expected a broken-entry miss, got {other:?}"),
        }
        // No byte of the broken output, nor of any other, was handed out.
        let files: Vec<_> = std::fs::read_dir(&into).unwrap().collect();
        assert!(files.is_empty(), "files left after a miss: {files:?}");
        // The broken entry was removed: the next lookup is a plain miss ...
        assert_eq!(
            store.lookup(&entry).await.unwrap(),
            Lookup::Miss(Miss::NotFound)
        );
        // ... and the next run repopulates it.
        republish_and_hit(&store, &k, n, dir.path()).await;
    }
}

pub async fn flipped_byte_in_a_blob_is_a_miss_and_heals(h: &Harness) {
    broken_blob_case(h, false).await;
}

pub async fn deleted_blob_is_a_miss_and_heals(h: &Harness) {
    broken_blob_case(h, true).await;
}

/// Rewrites the manifest of `entry` with `edit` applied (a manifest that lies about its blobs).
async fn edit_manifest(store: &Store, entry: &EntryRef, edit: impl FnOnce(&mut Manifest)) {
    store
        .raw_edit(&entry.tenant.entry(&entry.key), |bytes| {
            let mut manifest = Manifest::decode(bytes).unwrap();
            edit(&mut manifest);
            *bytes = manifest.encode();
        })
        .await
        .unwrap();
}

/// Issue 12 item 6: a manifest stating the wrong size for a blob whose bytes match its name
/// is the broken thing; the blob, shared with another entry, stays.
pub async fn wrong_size_in_a_manifest_keeps_the_shared_blob(h: &Harness) {
    let store = h.store("writer").await;
    let dir = scratch();
    let n = 20;
    let (liar, honest) = (key("wf.size_liar", n), key("wf.size_honest", n));
    publish(&store, &liar, n, dir.path()).await;
    publish(&store, &honest, n, dir.path()).await;
    let liar_entry = EntryRef::of(&liar).unwrap();
    // Too small for one blob (the reader finds more bytes), too large for the other.
    for (output, delta) in [("medium", -1i64), ("large", 1)] {
        edit_manifest(&store, &liar_entry, |m| {
            let record = m.outputs.get_mut(output).unwrap();
            record.size = record.size.checked_add_signed(delta).unwrap();
        })
        .await;
        match store.fetch(&liar_entry, FetchTo::Memory).await.unwrap() {
            Lookup::Miss(Miss::Broken { output: which, .. }) => assert_eq!(which, output),
            other => panic!("expected a broken-entry miss for {output}, got {other:?}"),
        }
        let digest = Digest::of_content(&expected(n)[output]);
        assert!(
            raw_get(&store, &liar_entry.tenant.blob(&digest))
                .await
                .is_some(),
            "the blob of {output} was deleted though its bytes match its name"
        );
        // The other entry sharing the blob still hits, whole.
        assert_hit(&store, &honest, n).await;
        // The lying entry is replaced by the next publish.
        republish_and_hit(&store, &liar, n, dir.path()).await;
    }
}

/// Issue 12 item 8: a live entry that cannot be restored (zero outputs, a declared output
/// missing, an undeclared one, a blob gone or of another size) is replaced by the next
/// publish instead of being kept forever.
pub async fn broken_entries_are_replaced_by_the_next_publish(h: &Harness) {
    let n = 21;
    let (store, dir, k, entry) = h.writer_case("wf.broken_entries", n).await;
    let medium = Digest::of_content(&expected(n)["medium"]);
    let medium_blob = entry.tenant.blob(&medium);
    type Break = Box<dyn Fn(&mut Manifest)>;
    let breaks: Vec<(&str, Option<Break>)> = vec![
        (
            "zero outputs",
            Some(Box::new(|m: &mut Manifest| m.outputs.clear())),
        ),
        (
            "a declared output missing",
            Some(Box::new(|m: &mut Manifest| {
                m.outputs.remove("large");
            })),
        ),
        (
            "an undeclared output",
            Some(Box::new(|m: &mut Manifest| {
                let extra = m.outputs["scalar"].clone();
                m.outputs.insert("extra".into(), extra);
            })),
        ),
        (
            "a blob of another size",
            Some(Box::new(|m: &mut Manifest| {
                m.outputs.get_mut("medium").unwrap().size += 1;
            })),
        ),
        ("a blob gone", None),
    ];
    for (what, edit) in breaks {
        publish(&store, &k, n, dir.path()).await;
        match edit {
            Some(edit) => edit_manifest(&store, &entry, edit).await,
            None => store.raw_delete(&medium_blob).await.unwrap(),
        }
        // Still a live manifest: a lookup (one GET) reports a hit ...
        assert!(
            matches!(store.lookup(&entry).await.unwrap(), Lookup::Hit(_)),
            "{what}"
        );
        // ... but the next publish replaces it rather than keeping it.
        let outcome = publish(&store, &k, n, dir.path()).await;
        assert!(
            matches!(outcome, PublishOutcome::Published { .. }),
            "{what}: {outcome:?}"
        );
        assert_hit(&store, &k, n).await;
    }
}

/// Issue 12 item 8: the replacement of a broken entry is conditional on the version found
/// broken: a sound entry another publisher wrote in between is kept.
pub async fn a_sound_entry_written_concurrently_is_not_replaced(h: &Harness) {
    let n = 22;
    let (store, dir, k, entry) = h.writer_case("wf.broken_race", n).await;
    publish(&store, &k, n, dir.path()).await;
    let sound = raw_get(&store, &entry.tenant.entry(&k.key)).await.unwrap();
    edit_manifest(&store, &entry, |m| m.outputs.clear()).await;
    let racing = h
        .racing_store(Fault::RacedManifestUpdate, Some(sound.clone()))
        .await;
    let outcome = publish(&racing, &k, n, dir.path()).await;
    assert!(
        matches!(outcome, PublishOutcome::AlreadyExists { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        raw_get(&store, &entry.tenant.entry(&k.key)).await.unwrap(),
        sound,
        "the sound manifest written concurrently was replaced"
    );
    assert_hit(&store, &k, n).await;
}

pub async fn undecodable_manifest_is_a_miss_and_is_replaced(h: &Harness) {
    let (store, dir, k, entry) = h.writer_case("wf.garbage", 11).await;
    let path = entry.tenant.entry(&k.key);
    // A recall store (LAYOUT section 1): without a descriptor every lookup is a plain miss.
    store
        .raw_put(
            "recall-store.json",
            &br#"{"layout_version": 1, "key_spec_version": 1}"#[..],
        )
        .await
        .unwrap();
    for garbage in [&b"\xa1\x61"[..], b"not cbor at all", b""] {
        store.raw_put(&path, garbage.to_vec()).await.unwrap();
        assert!(matches!(
            store.lookup(&entry).await.unwrap(),
            Lookup::Miss(Miss::Undecodable { .. })
        ));
        assert!(matches!(
            store.fetch(&entry, FetchTo::Memory).await.unwrap(),
            Lookup::Miss(Miss::Undecodable { .. })
        ));
    }
    // A manifest of another key stored at this key's path is not a hit either.
    let other = key("wf.garbage", 12);
    let other_store = h.store("other").await;
    publish(&other_store, &other, 12, dir.path()).await;
    let other_manifest = raw_get(&store, &entry.tenant.entry(&other.key))
        .await
        .unwrap();
    store.raw_put(&path, other_manifest).await.unwrap();
    assert!(matches!(
        store.lookup(&entry).await.unwrap(),
        Lookup::Miss(Miss::Undecodable { .. })
    ));
    republish_and_hit(&store, &k, 11, dir.path()).await;
}

pub async fn expiry_by_max_age_per_task_and_ttl(h: &Harness) {
    let clock = Arc::new(ManualClock::starting_now());
    let config = |producer: &str| StoreConfig {
        producer: producer.into(),
        max_age: Some(Duration::from_secs(3600)),
        max_age_per_task: BTreeMap::from([("wf.short".to_string(), Duration::from_secs(600))]),
        clock: Arc::clone(&clock) as Arc<dyn Clock>,
        upload: test_tuning(),
    };
    let store = h.store_with(config("first")).await;
    let dir = scratch();
    let long = key("wf.long", 13);
    let short = key("wf.short", 13);
    let ttl = key("wf.ttl", 13);
    publish(&store, &long, 13, dir.path()).await;
    publish(&store, &short, 13, dir.path()).await;
    let with_ttl = PublishOptions {
        ttl: Some(Duration::from_secs(300)),
        ..PublishOptions::default()
    };
    store
        .publish(&ttl, &outputs(13, dir.path()), &with_ttl)
        .await
        .unwrap();
    let state = |k: &DerivedKey| {
        let store = store.clone();
        let entry = EntryRef::of(k).unwrap();
        async move {
            match store.lookup(&entry).await.unwrap() {
                Lookup::Hit(_) => "hit",
                Lookup::Miss(Miss::Expired { .. }) => "expired",
                Lookup::Miss(other) => panic!("unexpected {other:?}"),
            }
        }
    };
    assert_eq!(
        [state(&long).await, state(&short).await, state(&ttl).await],
        ["hit"; 3]
    );
    clock.advance(Duration::from_secs(301));
    assert_eq!(
        [state(&long).await, state(&short).await, state(&ttl).await],
        ["hit", "hit", "expired"]
    );
    clock.advance(Duration::from_secs(300));
    assert_eq!(
        [state(&long).await, state(&short).await],
        ["hit", "expired"]
    );
    clock.advance(Duration::from_secs(3000));
    assert_eq!(state(&long).await, "expired");
    // The manifest of an expired entry can still be read, for tools that explain the miss.
    let expired = store
        .read_entry_manifest(&EntryRef::of(&long).unwrap())
        .await
        .unwrap()
        .expect("the expired manifest is still there");
    assert_eq!(expired.key, long);
    assert!(store.is_expired(&expired));
    assert_eq!(
        store
            .read_entry_manifest(&EntryRef::of(&key("wf.never", 13)).unwrap())
            .await
            .unwrap(),
        None
    );
    // An expired entry is a miss for fetch too, and the next publish replaces it.
    assert!(
        store
            .fetch(&EntryRef::of(&long).unwrap(), FetchTo::Memory)
            .await
            .unwrap()
            .is_miss()
    );
    let again = h.store_with(config("second")).await;
    let outcome = publish(&again, &long, 13, dir.path()).await;
    assert!(matches!(outcome, PublishOutcome::Published { .. }));
    assert_eq!(state(&long).await, "hit");
    let manifest = lookup_hit(&again, &long).await;
    assert_eq!(manifest.producer, "second");
    assert_eq!(manifest.created_at_ms, clock.now_ms());
}

// ---------------------------------------------------------------------------------------------
// Leases, eviction, GC

/// A store whose clock is `clock`.
async fn clocked(h: &Harness, producer: &str, clock: &Arc<ManualClock>) -> Store {
    h.store_with(StoreConfig {
        producer: producer.into(),
        clock: Arc::clone(clock) as Arc<dyn Clock>,
        upload: test_tuning(),
        ..StoreConfig::default()
    })
    .await
}

/// A key with one 100 KiB `bytes` output named `out`.
fn small_key(project: &str, domain: &str, task: &str, version: &str, n: i64) -> DerivedKey {
    let mut material = KeyMaterial::new(project, domain, task, version).unwrap();
    material
        .add_input("n", ValueType::Int, InputSource::Value(Value::Int(n)))
        .unwrap();
    material.add_output("out", ValueType::Bytes).unwrap();
    material.derive().unwrap()
}

fn small_body(k: &DerivedKey) -> Vec<u8> {
    data(&k.key.to_hex(), 100 << 10)
}

async fn publish_small(store: &Store, k: &DerivedKey) {
    let outcome = store
        .publish(
            k,
            &[Output::bytes("out", small_body(k))],
            &PublishOptions::default(),
        )
        .await
        .unwrap();
    assert!(matches!(outcome, PublishOutcome::Published { .. }));
}

/// The first half of a publish of [`small_key`] `k`, which then fails at its manifest: the
/// blob and the index marker are written, the manifest is not.
async fn publish_first_half(h: &Harness, k: &DerivedKey) {
    let faulty = h.faulty_store(Fault::ManifestPut).await;
    let outputs = [Output::bytes("out", small_body(k))];
    publish_error(&faulty, k, &outputs).await;
}

async fn is_hit(store: &Store, k: &DerivedKey) -> bool {
    match store
        .fetch(&EntryRef::of(k).unwrap(), FetchTo::Memory)
        .await
        .unwrap()
    {
        Lookup::Hit(hit) => {
            assert_eq!(hit.outputs["out"], Fetched::Bytes(small_body(k).into()));
            true
        }
        Lookup::Miss(Miss::NotFound) => false,
        Lookup::Miss(other) => panic!("unexpected miss {other:?}"),
    }
}

pub async fn conditional_writes_are_enforced_by_the_backend(h: &Harness) {
    use object_store::{PutMode, UpdateVersion};
    let store = h.store("writer").await;
    let path = store.raw_path("probe/conditional");
    let objects = store.raw_object_store();
    let first = objects
        .put_opts(&path, "one".into(), PutMode::Create.into())
        .await
        .unwrap();
    let again = objects
        .put_opts(&path, "two".into(), PutMode::Create.into())
        .await
        .unwrap_err();
    assert!(
        matches!(again, object_store::Error::AlreadyExists { .. }),
        "{again}"
    );
    let stale = UpdateVersion::from(first.clone());
    let second = objects
        .put_opts(&path, "three".into(), PutMode::Update(first.into()).into())
        .await
        .unwrap();
    let err = objects
        .put_opts(&path, "four".into(), PutMode::Update(stale).into())
        .await
        .unwrap_err();
    assert!(
        matches!(err, object_store::Error::Precondition { .. }),
        "{err}"
    );
    objects
        .put_opts(&path, "five".into(), PutMode::Update(second.into()).into())
        .await
        .unwrap();
    let body = objects.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(&body[..], b"five");
}

pub async fn probe_finds_every_capability_and_cleans_up(h: &Harness) {
    let store = h.store("prober").await;
    let capabilities = store
        .probe_capabilities(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    for (name, check) in capabilities.checks() {
        assert!(check.supported, "{name}: {}", check.detail);
    }
    assert!(capabilities.conditional_writes());
    assert!(capabilities.missing().is_empty());
    let left = h
        .list_where(|p| p.contains("/probe/") || p.starts_with("probe/"))
        .await;
    assert!(left.is_empty(), "the probe left {left:?}");
}

/// An eviction report: how many entries, index markers, leases and blobs were removed.
fn removed(entries: u64, markers: u64, leases: u64, blobs: u64) -> EvictReport {
    EvictReport {
        entries,
        markers,
        leases,
        blobs,
    }
}

/// Takes or extends the lease on `entry` for `owner` with heartbeat `beat` and the default
/// grace.
async fn lease(store: &Store, entry: &EntryRef, owner: &str, beat: Duration) -> LeaseStatus {
    store
        .get_or_extend_lease(entry, owner, beat, DEFAULT_GRACE)
        .await
        .unwrap()
}

pub async fn lease_two_owners_heartbeat_takeover_release(h: &Harness) {
    let clock = Arc::new(ManualClock::starting_now());
    let a = clocked(h, "a", &clock).await;
    let b = clocked(h, "b", &clock).await;
    let entry = EntryRef::of(&key("wf.serialized", 20)).unwrap();
    let beat = Duration::from_secs(10);
    let t0 = clock.now_ms();

    let LeaseStatus::Acquired(first) = lease(&a, &entry, "a", beat).await else {
        panic!("a fresh lease is free");
    };
    assert_eq!(
        (first.owner.as_str(), first.expires_at_ms),
        ("a", t0 + 30_000)
    );
    match lease(&b, &entry, "b", beat).await {
        LeaseStatus::HeldBy(record) => assert_eq!(
            (record.owner.as_str(), record.expires_at_ms),
            ("a", t0 + 30_000)
        ),
        other => panic!("b must wait: {other:?}"),
    }
    // Heartbeat: a extends, keeping its acquisition time.
    clock.advance(Duration::from_secs(10));
    let LeaseStatus::Acquired(extended) = lease(&a, &entry, "a", beat).await else {
        panic!("the holder extends");
    };
    assert_eq!(extended.acquired_at_ms, t0);
    assert_eq!(extended.expires_at_ms, t0 + 40_000);
    clock.advance(Duration::from_secs(25));
    assert!(matches!(
        lease(&b, &entry, "b", beat).await,
        LeaseStatus::HeldBy(_)
    ));
    // a stops heartbeating; after heartbeat × grace b takes over.
    clock.advance(Duration::from_secs(6));
    let LeaseStatus::Acquired(taken) = lease(&b, &entry, "b", beat).await else {
        panic!("b takes over an expired lease");
    };
    assert_eq!(taken.owner, "b");
    assert_eq!(taken.acquired_at_ms, clock.now_ms());
    match lease(&a, &entry, "a", beat).await {
        LeaseStatus::HeldBy(record) => assert_eq!(record.owner, "b"),
        other => panic!("a lost the lease: {other:?}"),
    }
    // Only the holder can release; a released lease is free at once.
    assert!(!a.release_lease(&entry, "a").await.unwrap());
    assert!(b.release_lease(&entry, "b").await.unwrap());
    assert!(
        !b.release_lease(&entry, "b").await.unwrap(),
        "releasing twice is a no-op"
    );
    let record = a.read_lease_record(&entry).await.unwrap().unwrap().unwrap();
    assert!(record.released);
    assert!(matches!(
        lease(&a, &entry, "a", beat).await,
        LeaseStatus::Acquired(_)
    ));
    // A custom grace multiplier.
    assert!(a.release_lease(&entry, "a").await.unwrap());
    let LeaseStatus::Acquired(custom) = b.get_or_extend_lease(&entry, "b", beat, 5).await.unwrap()
    else {
        panic!("released lease is free");
    };
    assert_eq!(custom.expires_at_ms, clock.now_ms() + 50_000);
    // An undecodable lease object is free and replaced.
    a.raw_put(&entry.tenant.lease(&entry.key), &b"junk"[..])
        .await
        .unwrap();
    assert!(matches!(
        lease(&a, &entry, "a", beat).await,
        LeaseStatus::Acquired(_)
    ));
}

pub async fn lease_racers_exactly_one_acquires(h: &Harness) {
    let clock = Arc::new(ManualClock::starting_now());
    let entry = EntryRef::of(&key("wf.lease_race", 21)).unwrap();
    let beat = Duration::from_secs(5);
    for round in ["fresh", "expired"] {
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let mut racers = Vec::new();
        for i in 0..16 {
            let store = clocked(h, "racer", &clock).await;
            let entry = entry.clone();
            let barrier = Arc::clone(&barrier);
            racers.push(tokio::spawn(async move {
                barrier.wait().await;
                let owner = format!("{round}-{i}");
                let status = store
                    .get_or_extend_lease(&entry, &owner, beat, DEFAULT_GRACE)
                    .await
                    .unwrap();
                matches!(status, LeaseStatus::Acquired(_))
            }));
        }
        let mut acquired = 0;
        for racer in racers {
            if racer.await.unwrap() {
                acquired += 1;
            }
        }
        assert_eq!(acquired, 1, "{round} lease: exactly one racer acquires");
        clock.advance(Duration::from_secs(16));
    }
}

pub async fn lease_arguments_are_checked(h: &Harness) {
    let store = h.store("writer").await;
    let entry = EntryRef::of(&key("wf.lease_args", 22)).unwrap();
    let beat = Duration::from_secs(1);
    for (owner, heartbeat, grace, named) in [
        ("", beat, 3, "lease owner \"\""),
        ("a", Duration::ZERO, 3, "lease heartbeat"),
        ("a", beat, 0, "lease grace 0"),
    ] {
        let err = store
            .get_or_extend_lease(&entry, owner, heartbeat, grace)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(named), "{err}");
    }
    assert_eq!(
        store.read_lease_record(&entry).await.unwrap(),
        None,
        "nothing written"
    );
}

pub async fn evict_by_key(h: &Harness) {
    let store = h.store("writer").await;
    let gone = small_key("flytesnacks", "development", "wf.evict", "1.0", 1);
    let kept = small_key("flytesnacks", "development", "wf.evict", "1.0", 2);
    publish_small(&store, &gone).await;
    publish_small(&store, &kept).await;
    let entry = EntryRef::of(&gone).unwrap();
    store
        .get_or_extend_lease(&entry, "x", Duration::from_secs(9), 3)
        .await
        .unwrap();
    let report = store.evict_key(&entry).await.unwrap();
    assert_eq!(report, removed(1, 1, 1, 0));
    assert!(!is_hit(&store, &gone).await);
    assert!(is_hit(&store, &kept).await);
    let left = h.list_all().await;
    assert!(
        !left.iter().any(|p| p.ends_with(&gone.key.to_hex())),
        "{left:?}"
    );
    assert_eq!(
        store.evict_key(&entry).await.unwrap(),
        EvictReport::default()
    );
}

pub async fn evict_by_task_and_cache_version(h: &Harness) {
    let store = h.store("writer").await;
    let a1 = [1, 2].map(|n| small_key("flytesnacks", "development", "wf.a", "v1", n));
    let a2 = small_key("flytesnacks", "development", "wf.a", "v2", 1);
    let b1 = small_key("flytesnacks", "development", "wf.b", "v1", 1);
    for k in a1.iter().chain([&a2, &b1]) {
        publish_small(&store, k).await;
    }
    let tenant = Tenant::new("flytesnacks", "development").unwrap();
    let listed = store
        .list_task_entries(&tenant, "wf.a", None)
        .await
        .unwrap();
    let mut versions: Vec<_> = listed
        .iter()
        .map(|e| (e.cache_version.clone(), e.key))
        .collect();
    versions.sort_by_key(|(v, k)| (v.clone(), k.to_hex()));
    let mut expected: Vec<_> = a1
        .iter()
        .map(|k| ("v1".to_owned(), k.key))
        .chain([("v2".to_owned(), a2.key)])
        .collect();
    expected.sort_by_key(|(v, k)| (v.clone(), k.to_hex()));
    assert_eq!(versions, expected);
    let only_v2 = store
        .list_task_entries(&tenant, "wf.a", Some("v2"))
        .await
        .unwrap();
    assert_eq!(only_v2.len(), 1);
    assert_eq!(only_v2[0].key, a2.key);
    let report = store.evict_task(&tenant, "wf.a", Some("v1")).await.unwrap();
    assert_eq!((report.entries, report.markers), (2, 2));
    for k in &a1 {
        assert!(!is_hit(&store, k).await);
    }
    assert!(is_hit(&store, &a2).await);
    assert!(is_hit(&store, &b1).await);
    let report = store.evict_task(&tenant, "wf.a", None).await.unwrap();
    assert_eq!((report.entries, report.markers), (1, 1));
    assert!(!is_hit(&store, &a2).await);
    assert!(is_hit(&store, &b1).await);
    let err = store
        .evict_task(&tenant, "../wf.b", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("invalid task \"../wf.b\""), "{err}");
    assert!(is_hit(&store, &b1).await);
}

pub async fn evict_by_project_domain(h: &Harness) {
    let store = h.store("writer").await;
    let mine = small_key("flytesnacks", "development", "wf.t", "1", 1);
    let theirs = small_key("flytesnacks", "production", "wf.t", "1", 1);
    let other = small_key("other", "development", "wf.t", "1", 1);
    for k in [&mine, &theirs, &other] {
        publish_small(&store, k).await;
    }
    let tenants = store.tenants().await.unwrap();
    assert_eq!(tenants.len(), 3, "{tenants:?}");
    let tenant = Tenant::new("flytesnacks", "development").unwrap();
    let report = store.evict_tenant(&tenant).await.unwrap();
    assert_eq!(report, removed(1, 1, 0, 1));
    assert!(!is_hit(&store, &mine).await);
    assert!(is_hit(&store, &theirs).await);
    assert!(is_hit(&store, &other).await);
    let left = h.list_all().await;
    assert!(
        !left
            .iter()
            .any(|p| p.starts_with("tenants/flytesnacks/development/")),
        "{left:?}"
    );
}

pub async fn evict_older_than(h: &Harness) {
    let clock = Arc::new(ManualClock::starting_now());
    let store = clocked(h, "writer", &clock).await;
    let old = small_key("flytesnacks", "development", "wf.age", "1", 1);
    let old_elsewhere = small_key("other", "production", "wf.age", "1", 1);
    let new = small_key("flytesnacks", "development", "wf.age", "1", 2);
    publish_small(&store, &old).await;
    publish_small(&store, &old_elsewhere).await;
    clock.advance(Duration::from_secs(3600));
    publish_small(&store, &new).await;
    let cutoff = clock.now_ms() - 1_800_000;
    let tenant = Tenant::new("flytesnacks", "development").unwrap();
    let report = store.evict_older_than(Some(&tenant), cutoff).await.unwrap();
    assert_eq!((report.entries, report.markers), (1, 1));
    assert!(!is_hit(&store, &old).await);
    assert!(
        is_hit(&store, &old_elsewhere).await,
        "other tenants untouched"
    );
    let report = store.evict_older_than(None, cutoff).await.unwrap();
    assert_eq!(report.entries, 1);
    assert!(!is_hit(&store, &old_elsewhere).await);
    assert!(is_hit(&store, &new).await);
}

/// A dry run of every selector reports exactly what the same eviction then removes, and
/// deletes nothing; the report's total is the number of objects that disappear. Each
/// selector gets its own project holding two entries of a task (one with a lease), an entry
/// of another task, an undecodable manifest, and a lease without an entry.
pub async fn evict_dry_run_counts_what_eviction_removes(h: &Harness) {
    let clock = Arc::new(ManualClock::starting_now());
    let store = clocked(h, "writer", &clock).await;
    let undecodable = Digest::of_content(b"undecodable");
    let setup = |project: &'static str| {
        let store = store.clone();
        async move {
            let a = [1, 2].map(|n| small_key(project, "development", "wf.dry", "v1", n));
            let b = small_key(project, "development", "wf.other", "v1", 3);
            for k in a.iter().chain([&b]) {
                publish_small(&store, k).await;
            }
            let tenant = Tenant::new(project, "development").unwrap();
            store
                .get_or_extend_lease(
                    &EntryRef::of(&a[0]).unwrap(),
                    "x",
                    Duration::from_secs(9),
                    3,
                )
                .await
                .unwrap();
            let orphan_lease = EntryRef {
                tenant: tenant.clone(),
                key: Digest::of_content(project.as_bytes()),
            };
            store
                .get_or_extend_lease(&orphan_lease, "y", Duration::from_secs(9), 3)
                .await
                .unwrap();
            store
                .raw_put(&tenant.entry(&undecodable), &b"not a manifest"[..])
                .await
                .unwrap();
            (tenant, a)
        }
    };
    type Selects = fn(Tenant, &[DerivedKey; 2]) -> EvictSelector;
    let cases: Vec<(&str, Selects)> = vec![
        ("dry-key", |t, a| {
            EvictSelector::Key(EntryRef {
                tenant: t,
                key: a[0].key,
            })
        }),
        ("dry-undecodable", |t, _| {
            EvictSelector::Key(EntryRef {
                tenant: t,
                key: Digest::of_content(b"undecodable"),
            })
        }),
        ("dry-task", |t, _| EvictSelector::Task {
            tenant: t,
            task: "wf.dry".into(),
            cache_version: None,
        }),
        ("dry-tenant", |t, _| EvictSelector::Tenant(t)),
        ("dry-old", |t, _| EvictSelector::OlderThan {
            tenant: Some(t),
            cutoff_ms: i64::MAX,
        }),
    ];
    for (project, selector) in cases {
        let (tenant, a) = setup(project).await;
        let selector = selector(tenant, &a);
        let before = h.list_all().await;
        let dry = store.evict(&selector, true).await.unwrap();
        assert_eq!(
            h.list_all().await,
            before,
            "{project}: a dry run deletes nothing"
        );
        let real = store.evict(&selector, false).await.unwrap();
        assert_eq!(dry, real, "{project}: dry run and eviction disagree");
        let removed = before.len() - h.list_all().await.len();
        assert_eq!(
            (real.entries + real.markers + real.leases + real.blobs) as usize,
            removed,
            "{project}: {real:?}"
        );
        assert!(removed > 0, "{project}: nothing evicted");
    }
}

pub async fn gc_sweeps_unreferenced_blobs_after_grace_with_dry_run(h: &Harness) {
    let clock = Arc::new(ManualClock::starting_now());
    let store = clocked(h, "writer", &clock).await;
    let [kept, evicted, aborted] =
        [1, 2, 3].map(|n| small_key("flytesnacks", "development", "wf.gc", "1", n));
    publish_small(&store, &kept).await;
    publish_small(&store, &evicted).await;
    store
        .evict_key(&EntryRef::of(&evicted).unwrap())
        .await
        .unwrap();
    // An aborted publish leaves a blob and a marker without a manifest.
    publish_first_half(h, &aborted).await;
    let tenant = Tenant::new("flytesnacks", "development").unwrap();
    let dry = GcOptions {
        grace: Duration::from_secs(3600),
        dry_run: true,
    };

    let report = store.gc(Some(&tenant), &dry).await.unwrap();
    assert_eq!(
        (report.manifests, report.blobs, report.referenced_blobs),
        (1, 3, 1)
    );
    assert_eq!(
        (
            report.blobs_in_grace,
            report.collectable_blobs,
            report.orphan_markers
        ),
        (2, 0, 0)
    );

    clock.advance(Duration::from_secs(7200));
    let report = store.gc(Some(&tenant), &dry).await.unwrap();
    assert_eq!((report.blobs_in_grace, report.collectable_blobs), (0, 2));
    assert_eq!(report.collectable_bytes, 2 * (100 << 10));
    assert_eq!((report.deleted_blobs, report.orphan_markers), (0, 1));
    let blobs = |all: Vec<String>| all.into_iter().filter(|p| p.contains("/blobs/")).count();
    assert_eq!(blobs(h.list_all().await), 3, "a dry run deletes nothing");

    let real = GcOptions {
        dry_run: false,
        ..dry
    };
    let report = store.gc(None, &real).await.unwrap();
    assert_eq!(
        (report.deleted_blobs, report.collectable_bytes),
        (2, 2 * (100 << 10))
    );
    let left = h.list_all().await;
    assert_eq!(blobs(left.clone()), 1);
    assert!(
        !left.iter().any(|p| p.ends_with(&aborted.key.to_hex())),
        "orphan marker swept: {left:?}"
    );
    assert!(is_hit(&store, &kept).await);
    let report = store.gc(None, &real).await.unwrap();
    assert_eq!((report.blobs, report.collectable_blobs), (1, 0));
}

pub async fn gc_keeps_blobs_of_an_in_flight_publish(h: &Harness) {
    let store = h.store("writer").await;
    let k = small_key("flytesnacks", "development", "wf.inflight", "1", 1);
    // The first half of a publish: blob and marker are there, the manifest is not yet.
    publish_first_half(h, &k).await;
    let tenant = Tenant::new("flytesnacks", "development").unwrap();
    let report = store
        .gc(Some(&tenant), &GcOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (report.blobs, report.blobs_in_grace, report.deleted_blobs),
        (1, 1, 0)
    );
    assert_eq!(report.orphan_markers, 0);
    // The publish completes (its blob is found present and not uploaded again) and hits.
    publish_small(&store, &k).await;
    assert!(is_hit(&store, &k).await);
    // A referenced blob is never collected, even with no grace at all.
    let none = GcOptions {
        grace: Duration::ZERO,
        dry_run: false,
    };
    let report = store.gc(Some(&tenant), &none).await.unwrap();
    assert_eq!((report.referenced_blobs, report.deleted_blobs), (1, 0));
    assert!(is_hit(&store, &k).await);
}

/// A key with two outputs: `small` (inlined) and `blob` (8 KiB, a blob).
fn nd_key(task: &str) -> DerivedKey {
    let mut material = KeyMaterial::new("flytesnacks", "development", task, "1.0").unwrap();
    material.add_output("small", ValueType::Bytes).unwrap();
    material.add_output("blob", ValueType::Bytes).unwrap();
    material.derive().unwrap()
}

/// Variant `v` of [`nd_key`]'s outputs, with their digests.
fn nd_outputs(v: u32) -> (Vec<Output>, BTreeMap<String, Digest>) {
    let small = format!("small-{v}").into_bytes();
    let blob = data(&format!("blob-{v}"), 8 << 10);
    let digests = [
        ("small".to_string(), Digest::of_content(&small)),
        ("blob".to_string(), Digest::of_content(&blob)),
    ]
    .into_iter()
    .collect();
    (
        vec![Output::bytes("small", small), Output::bytes("blob", blob)],
        digests,
    )
}

pub async fn nondeterministic_publishes_are_recorded(h: &Harness) {
    use recall_store::NondeterminismOutcome;
    let winner = h.store("winner").await;
    let loser = h.store("loser").await;
    let k = nd_key("wf.nondeterministic");
    let entry = EntryRef::of(&k).unwrap();
    let (v0, d0) = nd_outputs(0);
    let (v1, d1) = nd_outputs(1);
    let (v2, d2) = nd_outputs(2);
    let PublishOutcome::Published {
        manifest: first,
        observed: None,
    } = publish_outputs(&winner, &k, &v0).await
    else {
        panic!("the first publish wins and observes nothing");
    };
    assert!(first.nondeterminism.is_empty());

    // The loser's outputs differ: the winner's entry is kept and records it.
    let PublishOutcome::AlreadyExists {
        existing: Some(existing),
        observed: Some(observed),
    } = publish_outputs(&loser, &k, &v1).await
    else {
        panic!("the loser sees the winner and observes the difference");
    };
    assert_eq!(observed.outcome, NondeterminismOutcome::Discarded);
    assert_eq!(observed.producer, "loser");
    for name in ["small", "blob"] {
        assert_eq!(observed.outputs[name].previous, d0[name], "{name}");
        assert_eq!(observed.outputs[name].current, d1[name], "{name}");
    }
    let stored = lookup_hit(&winner, &k).await;
    assert_eq!(stored, *existing);
    assert_eq!(stored.nondeterminism, std::slice::from_ref(&observed));
    // Otherwise the winner's manifest, unchanged.
    let mut without = stored.clone();
    without.nondeterminism.clear();
    assert_eq!(without, *first);
    let fetched = fetch_memory(&winner, &entry).await.hit().unwrap();
    assert_eq!(
        fetched.outputs["small"],
        Fetched::Bytes(Bytes::from("small-0"))
    );

    // The same difference again is not recorded twice; identical outputs observe nothing.
    let again = publish_outputs(&loser, &k, &v1).await;
    assert!(again.observed().is_some());
    let (same, _) = nd_outputs(0);
    let same = publish_outputs(&loser, &k, &same).await;
    assert!(matches!(
        same,
        PublishOutcome::AlreadyExists {
            observed: None,
            existing: Some(_)
        }
    ));
    assert_eq!(lookup_hit(&winner, &k).await.nondeterminism.len(), 1);

    // GC still sees the entry's blob: the rewritten manifest names the same outputs.
    let report = winner.gc(None, &SWEEP_NOW).await.unwrap();
    assert_eq!(report.undecodable_manifests, 0);
    assert!(fetch_memory(&winner, &entry).await.hit().is_some());

    // An overwrite with other outputs records "replaced" after the carried-over record.
    let overwrite = PublishOptions {
        mode: PublishMode::Overwrite,
        ..PublishOptions::default()
    };
    let outcome = loser.publish(&k, &v2, &overwrite).await.unwrap();
    let replaced = outcome
        .observed()
        .cloned()
        .expect("overwrite observed the difference");
    assert_eq!(replaced.outcome, NondeterminismOutcome::Replaced);
    assert_eq!(replaced.outputs["blob"].previous, d0["blob"]);
    assert_eq!(replaced.outputs["blob"].current, d2["blob"]);
    let stored = lookup_hit(&winner, &k).await;
    assert_eq!(stored.producer, "loser");
    assert_eq!(stored.nondeterminism, [observed, replaced.clone()]);

    // A deterministic overwrite observes nothing and keeps the history.
    let (v2_again, _) = nd_outputs(2);
    let outcome = winner.publish(&k, &v2_again, &overwrite).await.unwrap();
    assert!(outcome.is_published());
    assert!(outcome.observed().is_none());
    let stored = lookup_hit(&winner, &k).await;
    assert_eq!(stored.nondeterminism.len(), 2);
    assert_eq!(stored.nondeterminism[1], replaced);
}

pub async fn racing_publishers_with_other_outputs_are_all_recorded(h: &Harness) {
    let k = nd_key("wf.nondeterministic_race");
    let mut publishers = Vec::new();
    for v in 0..6u32 {
        let store = h.store(&format!("racer-{v}")).await;
        let k = k.clone();
        publishers.push(tokio::spawn(async move {
            let (outputs, digests) = nd_outputs(v);
            let outcome = store
                .publish(&k, &outputs, &PublishOptions::default())
                .await
                .unwrap();
            (outcome, digests)
        }));
    }
    let mut winner = None;
    let mut losers = Vec::new();
    for publisher in publishers {
        match publisher.await.unwrap() {
            (PublishOutcome::Published { manifest, .. }, _) => winner = Some(manifest),
            (PublishOutcome::AlreadyExists { observed, .. }, digests) => {
                let observed = observed.expect("every loser's outputs differ");
                assert_eq!(observed.outputs["blob"].current, digests["blob"]);
                losers.push(digests["blob"]);
            }
        }
    }
    let winner = winner.expect("one publisher wins");
    assert_eq!(losers.len(), 5);
    let store = h.store("check").await;
    let stored = lookup_hit(&store, &k).await;
    assert_eq!(stored.producer, winner.producer);
    assert_eq!(stored.outputs, winner.outputs);
    assert_eq!(stored.created_at_ms, winner.created_at_ms);
    // No conditional update was lost: every loser's record is there.
    let mut recorded: Vec<Digest> = stored
        .nondeterminism
        .iter()
        .map(|r| r.outputs["blob"].current)
        .collect();
    recorded.sort_by_key(|d| d.to_hex());
    losers.sort_by_key(|d| d.to_hex());
    assert_eq!(recorded, losers);
}

/// LAYOUT section 1: a root without a descriptor is not a recall store yet, so every lookup
/// misses, and reading it writes nothing: a read-only key opens it and misses instead of
/// failing on the descriptor write. The first writer creates the descriptor, and a reader
/// opened before that then sees the entry.
pub async fn read_only_key_on_a_root_without_descriptor_misses(h: &Harness) {
    let dir = scratch();
    let k = key("wf.readonly", 5);
    let entry = EntryRef::of(&k).unwrap();
    let reader = h.faulty_store(Fault::ReadOnly).await;
    assert_eq!(
        reader.lookup(&entry).await.unwrap(),
        Lookup::Miss(Miss::NotFound)
    );
    assert!(fetch_memory(&reader, &entry).await.is_miss());
    assert_eq!(reader.read_entry_manifest(&entry).await.unwrap(), None);
    // A reader with write access writes nothing either.
    let plain = h.store("reader").await;
    assert!(plain.lookup(&entry).await.unwrap().is_miss());
    let mut written = h.list_all().await;
    written.retain(|p| !p.starts_with(".recall"));
    assert_eq!(written, Vec::<String>::new());

    // Publishing with the read-only key fails on the descriptor, naming it.
    let err = publish_error(&reader, &k, &outputs(5, dir.path())).await;
    assert!(err.contains("recall-store.json"), "{err}");

    // The first writer creates it; the reader opened before sees the entry.
    publish(&h.store("writer").await, &k, 5, dir.path()).await;
    assert!(
        h.list_all()
            .await
            .contains(&"recall-store.json".to_string())
    );
    assert_hit(&reader, &k, 5).await;
}
