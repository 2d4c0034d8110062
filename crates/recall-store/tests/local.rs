//! The conformance suite on the local-disk backend (`file://`, with its compare-and-swap).

mod conformance;

use recall_store::open_url;

async fn harness(_case: &str) -> Option<conformance::Harness> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("file://{}", dir.path().display());
    let backend = open_url(&url).expect("open file store");
    Some(conformance::Harness {
        objects: backend.objects,
        root: backend.root,
        _guard: Some(dir),
    })
}

conformance_suite!(harness);

// ---------------------------------------------------------------------------------------------
// Local-disk only: links, permissions, the lock and special files (issue 12 items 7 and 12).

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt};
use recall_key::{InputSource, KeyMaterial, Value, ValueType};
use recall_store::local::{LOCK_FILE, LocalCasStore, LockTimeout};
use recall_store::{
    EntryRef, FetchTo, Lookup, Miss, Output, PublishOptions, Store, StoreConfig, StoreError, Tenant,
};

/// A store on a fresh `file://` directory, with `lock_timeout` for the store lock.
async fn local_store(dir: &std::path::Path, lock_timeout: Duration) -> Store {
    let objects: Arc<dyn ObjectStore> = Arc::new(
        LocalCasStore::new(dir)
            .unwrap()
            .with_lock_timeout(lock_timeout),
    );
    Store::from_object_store(objects, "", StoreConfig::default())
        .await
        .unwrap()
}

/// A key of task `task` with one `bytes` output, `out`.
fn one_output_key(task: &str, n: i64) -> recall_key::DerivedKey {
    let mut material = KeyMaterial::new("proj", "dev", task, "1").unwrap();
    material
        .add_input("n", ValueType::Int, InputSource::Value(Value::Int(n)))
        .unwrap();
    material.add_output("out", ValueType::Bytes).unwrap();
    material.derive().unwrap()
}

/// Publishes a 64 KiB blob output (not inlined) for `key`.
/// Takes (or extends) the lease on `entry` for owner `me`, with a 10 s heartbeat.
async fn lease_for_me(
    store: &Store,
    entry: &EntryRef,
) -> Result<recall_store::LeaseStatus, StoreError> {
    store
        .get_or_extend_lease(entry, "me", Duration::from_secs(10), 3)
        .await
}

async fn publish_blob(store: &Store, key: &recall_key::DerivedKey, seed: u8) {
    let body = Bytes::from(vec![seed; 64 << 10]);
    store
        .publish(
            key,
            &[Output::bytes("out", body)],
            &PublishOptions::default(),
        )
        .await
        .unwrap();
}

/// Runs `work` with a generous bound that only catches a hang.
async fn no_hang<T>(what: &str, work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), work)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_and_evict_never_follow_links_out_of_the_store() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("precious.txt");
    std::fs::write(&victim, b"keep me").unwrap();
    let other = tempfile::tempdir().unwrap();
    let other_file = other.path().join("other.txt");
    std::fs::write(&other_file, b"keep me too").unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path(), Duration::from_secs(30)).await;
    let key = one_output_key("wf.links", 1);
    publish_blob(&store, &key, 1).await;
    let tenant = Tenant::new("proj", "dev").unwrap();
    let root = dir.path();
    // A linked directory among the blobs, one among the entries, a linked file at a blob
    // path, and a whole linked tenant.
    let blobs = root.join("tenants/proj/dev/blobs");
    std::os::unix::fs::symlink(outside.path(), blobs.join("zz")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("tenants/proj/dev/entries/zz")).unwrap();
    let fake = "ab".repeat(32);
    std::fs::create_dir_all(blobs.join("ab")).unwrap();
    std::os::unix::fs::symlink(&other_file, blobs.join("ab").join(&fake)).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("tenants/proj/linked")).unwrap();

    let report = store.gc(None, &conformance::SWEEP_NOW).await.unwrap();
    assert_eq!(report.blobs, 1, "links are not listed: {report:?}");
    let tenants = store.tenants().await.unwrap();
    assert_eq!(
        tenants,
        vec![tenant.clone()],
        "a linked tenant is not listed"
    );
    store.evict_tenant(&tenant).await.unwrap();
    // Deleting through a linked directory names nothing.
    let through = store.raw_path("tenants/proj/dev/blobs/zz/precious.txt");
    store.raw_object_store().delete(&through).await.unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    assert_eq!(std::fs::read(&other_file).unwrap(), b"keep me too");
    // Reading through a linked directory misses; writing through it fails.
    assert!(matches!(
        store.raw_object_store().get(&through).await,
        Err(object_store::Error::NotFound { .. })
    ));
    let written = store.raw_path("tenants/proj/dev/blobs/zz/new");
    assert!(
        store
            .raw_object_store()
            .put(&written, "x".into())
            .await
            .is_err()
    );
    assert!(!outside.path().join("new").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_files_are_private_to_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = local_store(&root, Duration::from_secs(30)).await;
    let key = one_output_key("wf.modes", 1);
    // A multipart blob too, with small parts.
    let big = Store::from_object_store(
        Arc::clone(store.raw_object_store()),
        "",
        StoreConfig {
            upload: recall_store::UploadTuning {
                single_put_max: 1 << 20,
                part_size: 5 << 20,
                parts_in_flight: 2,
            },
            ..StoreConfig::default()
        },
    )
    .await
    .unwrap();
    big.publish(
        &one_output_key("wf.modes", 2),
        &[Output::bytes("out", vec![7u8; 6 << 20])],
        &PublishOptions::default(),
    )
    .await
    .unwrap();
    publish_blob(&store, &key, 2).await;
    let entry = EntryRef::of(&key).unwrap();
    lease_for_me(&store, &entry).await.unwrap();
    let mut seen = 0;
    let mut pending = vec![root.clone()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "{}", path.display());
            seen += 1;
        }
    }
    // descriptor, lock, 2 blobs, 2 markers, 2 manifests, 1 lease
    assert!(seen >= 9, "only {seen} files");
    assert!(root.join(LOCK_FILE).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_elsewhere_gives_a_bounded_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path(), Duration::from_millis(300)).await;
    let key = one_output_key("wf.locked", 1);
    publish_blob(&store, &key, 3).await;
    let entry = EntryRef::of(&key).unwrap();
    // Taking a free lease is a create-if-absent (no lock); extending it is a swap (the lock).
    lease_for_me(&store, &entry).await.unwrap();
    // Another holder of the lock: a second open file description, as another process has.
    let holder = std::fs::OpenOptions::new()
        .read(true)
        .open(dir.path().join(LOCK_FILE))
        .unwrap();
    holder.lock().unwrap();
    // Lookups take no lock.
    assert!(matches!(
        no_hang("lookup", store.lookup(&entry)).await.unwrap(),
        Lookup::Hit(_)
    ));
    let err = no_hang("lease", lease_for_me(&store, &entry))
        .await
        .unwrap_err();
    let timed_out = |err: &StoreError| {
        let mut source: Option<&dyn std::error::Error> = Some(err);
        while let Some(e) = source {
            if e.downcast_ref::<LockTimeout>().is_some() {
                return true;
            }
            source = e.source();
        }
        false
    };
    assert!(timed_out(&err), "not a lock timeout: {err}");
    let err = no_hang("evict", store.evict_key(&entry)).await.unwrap_err();
    assert!(timed_out(&err), "not a lock timeout: {err}");
    drop(holder);
    store.evict_key(&entry).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_at_a_manifest_path_is_a_miss_and_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path(), Duration::from_secs(30)).await;
    let key = one_output_key("wf.fifo", 1);
    let entry = EntryRef::of(&key).unwrap();
    publish_blob(&store, &key, 4).await;
    let manifest = dir.path().join(entry.tenant.entry(&key.key));
    std::fs::remove_file(&manifest).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&manifest)
        .status()
        .unwrap();
    assert!(made.success());
    assert!(matches!(
        no_hang("lookup", store.lookup(&entry)).await.unwrap(),
        Lookup::Miss(Miss::Undecodable { .. })
    ));
    assert!(matches!(
        no_hang("fetch", store.fetch(&entry, FetchTo::Memory))
            .await
            .unwrap(),
        Lookup::Miss(Miss::Undecodable { .. })
    ));
    assert!(
        no_hang(
            "tasks",
            store.list_task_entries(&entry.tenant, "wf.fifo", None)
        )
        .await
        .is_ok()
    );
    // The next publish replaces it with a regular file.
    no_hang("publish", publish_blob(&store, &key, 4)).await;
    assert!(std::fs::symlink_metadata(&manifest).unwrap().is_file());
    assert!(matches!(
        store.lookup(&entry).await.unwrap(),
        Lookup::Hit(_)
    ));
    // A FIFO at a blob path is a broken blob: a miss, then repaired.
    let digest = recall_key::Digest::of_content(&vec![4u8; 64 << 10]);
    let blob = dir.path().join(entry.tenant.blob(&digest));
    std::fs::remove_file(&blob).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&blob)
            .status()
            .unwrap()
            .success()
    );
    assert!(matches!(
        no_hang("fetch", store.fetch(&entry, FetchTo::Memory))
            .await
            .unwrap(),
        Lookup::Miss(Miss::Broken { .. })
    ));
    no_hang("publish", publish_blob(&store, &key, 4)).await;
    assert!(matches!(
        store.fetch(&entry, FetchTo::Memory).await.unwrap(),
        Lookup::Hit(_)
    ));
}
