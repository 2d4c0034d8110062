//! Benchmark driver for docs/BENCHMARKS.md: publishes one large file as a cache output, or
//! copies the same file into the same store with a plain multipart upload (no hashing, no
//! manifest), and prints the elapsed time and throughput. Peak memory is measured from the
//! outside with `/usr/bin/time -v` (scripts/bench.sh).
//!
//!   publish_bench publish STORE_URL FILE
//!   publish_bench copy    STORE_URL FILE
//!   publish_bench make-bucket BUCKET      (S3 test servers: creates it with aws-sdk-s3)

use std::time::Instant;

use object_store::path::Path;
use object_store::{ObjectStoreExt, WriteMultipart};
use recall_key::{InputSource, KeyMaterial, Value, ValueType};
use recall_store::{Output, PublishOptions, PublishOutcome, Store, UploadTuning, open_url};
use tokio::io::AsyncReadExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, bucket] = &args[..]
        && mode == "make-bucket"
    {
        return make_bucket(bucket).await;
    }
    let [_, mode, url, file] = &args[..] else {
        return Err("usage: publish_bench publish|copy STORE_URL FILE".into());
    };
    let size = std::fs::metadata(file)?.len();
    let started = Instant::now();
    match mode.as_str() {
        "publish" => {
            let store = Store::open(url).await?;
            let mut material = KeyMaterial::new("bench", "development", "wf.big", "1")?;
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos() as i64;
            material.add_input("run", ValueType::Int, InputSource::Value(Value::Int(nanos)))?;
            material.add_output("out", ValueType::File)?;
            let key = material.derive()?;
            let outcome = store
                .publish(
                    &key,
                    &[Output::file("out", file)],
                    &PublishOptions::default(),
                )
                .await?;
            if !matches!(outcome, PublishOutcome::Published { .. }) {
                return Err("publish did not win".into());
            }
        }
        "copy" => {
            let backend = open_url(url)?;
            let tuning = UploadTuning::default();
            let location =
                Path::from(format!("{}/plain-copy", backend.root).trim_start_matches('/'));
            let upload = backend.objects.put_multipart(&location).await?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, tuning.part_size);
            let mut input = tokio::fs::File::open(file).await?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = input.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                writer.wait_for_capacity(tuning.parts_in_flight).await?;
                writer.write(&buf[..n]);
            }
            writer.finish().await?;
        }
        other => return Err(format!("unknown mode {other:?}: expected publish or copy").into()),
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{mode}: {size} bytes in {seconds:.2} s = {:.0} MiB/s",
        size as f64 / (1 << 20) as f64 / seconds
    );
    Ok(())
}

/// Creates `bucket` on the S3 server the AWS_* variables name, unless it exists.
async fn make_bucket(bucket: &str) -> Result<(), Box<dyn std::error::Error>> {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(var("AWS_REGION")?))
        .credentials_provider(Credentials::new(
            var("AWS_ACCESS_KEY_ID")?,
            var("AWS_SECRET_ACCESS_KEY")?,
            None,
            None,
            "bench",
        ))
        .endpoint_url(var("AWS_ENDPOINT_URL")?)
        .force_path_style(true)
        .build();
    let client = aws_sdk_s3::Client::from_conf(config);
    if client.head_bucket().bucket(bucket).send().await.is_err() {
        client.create_bucket().bucket(bucket).send().await?;
    }
    Ok(())
}
