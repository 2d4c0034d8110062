//! An outside client reads a cache entry by following docs/LAYOUT.md with aws-sdk-s3 alone.
//!
//! recall-store only *publishes* the entry. The reader in `mod outside` uses aws-sdk-s3,
//! ciborium, blake3 and serde_json, and gets nothing from recall but the KEY-SPEC 7.5 JSON
//! object that `recall key --json` prints; it does not import recall_store.

use std::sync::Arc;

use recall_key::{InputSource, KeyMaterial, Value, ValueType};
use recall_store::{Output, PublishOptions, PublishOutcome, Store, StoreConfig, open_url_with};

/// A reader written from docs/LAYOUT.md sections 2, 3, 4 and 10. No recall_store here.
mod outside {
    use std::collections::BTreeMap;

    use aws_sdk_s3::Client;
    use ciborium::Value;

    /// Returns the outputs of the entry `derived` names, or `None` on a miss.
    pub async fn read_entry(
        client: &Client,
        bucket: &str,
        root: &str,
        derived: &serde_json::Value,
    ) -> Option<BTreeMap<String, Vec<u8>>> {
        let text = |name: &str| derived[name].as_str().expect("key JSON field").to_string();
        let key = text("key");
        let base = if root.is_empty() {
            String::new()
        } else {
            format!("{root}/")
        };
        let tenant = format!("{base}tenants/{}/{}", text("project"), text("domain"));
        let manifest_key = format!("{tenant}/entries/{}/{key}", &key[..2]);
        let body = match client
            .get_object()
            .bucket(bucket)
            .key(&manifest_key)
            .send()
            .await
        {
            Ok(object) => object
                .body
                .collect()
                .await
                .expect("read manifest")
                .into_bytes(),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => return None,
            Err(err) => panic!("GET {manifest_key}: {err:?}"),
        };
        let manifest: Value = ciborium::from_reader(&body[..]).ok()?;
        let field = |map: &Value, name: &str| -> Option<Value> {
            map.as_map()?
                .iter()
                .find(|(k, _)| k.as_text() == Some(name))
                .map(|(_, v)| v.clone())
        };
        let layout_version: u64 = field(&manifest, "layout_version")?
            .as_integer()?
            .try_into()
            .ok()?;
        let stored_key = field(&field(&manifest, "key")?, "key")?;
        if layout_version != 1 || stored_key.as_text()? != key {
            return None;
        }
        let mut outputs = BTreeMap::new();
        for (name, record) in field(&manifest, "outputs")?.as_map()? {
            let size: u64 = field(record, "size")?.as_integer()?.try_into().ok()?;
            let digest = field(record, "digest")?.as_text()?.to_string();
            let mut hasher = blake3::Hasher::new();
            let mut data = Vec::new();
            if let Some(inline) = field(record, "inline") {
                data = inline.as_bytes()?.clone();
                hasher.update(&data);
            } else {
                let blob_key = format!("{tenant}/blobs/{}/{digest}", &digest[..2]);
                let object = client
                    .get_object()
                    .bucket(bucket)
                    .key(&blob_key)
                    .send()
                    .await
                    .ok()?;
                // Stream the blob, hashing as it arrives.
                let mut body = object.body;
                while let Some(chunk) = body.try_next().await.ok()? {
                    hasher.update(&chunk);
                    data.extend_from_slice(&chunk);
                }
            }
            if data.len() as u64 != size || hasher.finalize().to_hex().as_str() != digest {
                return None;
            }
            outputs.insert(name.as_text()?.to_string(), data);
        }
        Some(outputs)
    }

    /// The descriptor at the store root.
    pub async fn descriptor(client: &Client, bucket: &str, root: &str) -> serde_json::Value {
        let object = client
            .get_object()
            .bucket(bucket)
            .key(format!("{root}/recall-store.json"))
            .send()
            .await
            .expect("GET recall-store.json");
        let body = object
            .body
            .collect()
            .await
            .expect("read descriptor")
            .into_bytes();
        serde_json::from_slice(&body).expect("descriptor is JSON")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_client_reads_an_entry_by_following_layout_md() {
    if recall_testkit::skipped("s3") {
        return;
    }
    let env = recall_testkit::s3::S3Env::from_env();
    env.ensure_bucket().await;
    let options = env.object_store_options();
    let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let backend = open_url_with(&format!("s3://{}", env.bucket), &options).expect("open S3");
    let root = recall_testkit::unique_root("outside-reader", "read");
    let store =
        Store::from_object_store(Arc::clone(&backend.objects), &root, StoreConfig::default())
            .await
            .unwrap();

    let mut material = KeyMaterial::new("flytesnacks", "development", "wf.train", "1.0").unwrap();
    material
        .add_input("n", ValueType::Int, InputSource::Value(Value::Int(7)))
        .unwrap();
    material.add_output("loss", ValueType::Float).unwrap();
    material.add_output("model", ValueType::File).unwrap();
    let derived = material.derive().unwrap();
    let loss = recall_key::cbor::encode(&recall_key::cbor::Item::Float(0.25)).unwrap();
    let mut model = vec![0u8; 10 << 20];
    blake3::Hasher::new()
        .update(b"model")
        .finalize_xof()
        .fill(&mut model);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.bin"), &model).unwrap();
    let outcome = store
        .publish(
            &derived,
            &[
                Output::bytes("loss", loss.clone()),
                Output::file("model", dir.path().join("model.bin")),
            ],
            &PublishOptions::default(),
        )
        .await
        .unwrap();
    assert!(matches!(outcome, PublishOutcome::Published { .. }));

    // From here on: the key's JSON, aws-sdk-s3 and the layout document only.
    let key_json = serde_json::to_value(&derived).unwrap();
    let client = env.client();
    let descriptor = outside::descriptor(&client, &env.bucket, &root).await;
    assert_eq!(descriptor["layout_version"], 1);
    let outputs = outside::read_entry(&client, &env.bucket, &root, &key_json)
        .await
        .expect("the outside reader finds the entry");
    assert_eq!(outputs.len(), 2);
    assert_eq!(outputs["loss"], loss);
    assert!(outputs["model"] == model, "model bytes differ");

    let mut other = key_json.clone();
    other["key"] = serde_json::Value::String("ab".repeat(32));
    assert_eq!(
        outside::read_entry(&client, &env.bucket, &root, &other).await,
        None
    );
}
