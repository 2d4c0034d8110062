//! Benchmark drivers for `scripts/bench.sh`; each prints one line of JSON for the script.
//!
//!     recall-bench populate URL N            publish N small entries (inline outputs)
//!     recall-bench lookups URL N SAMPLES     lookup latency over random keys among the N
//!     recall-bench cold URL DAEMON M         cold hits through recalld vs direct manifest GETs
//!     recall-bench coalesce URL DAEMON       64 concurrent cold lookups of one key via recalld
//!     recall-bench keys N                    the keys `populate` wrote, one hex key per line
//!     recall-bench load --protocol http|datacatalog|connect --url URL [--connections 50] [--seconds 10]
//!                                            hot hits of one entry through one of recalld's front
//!                                            doors (src/load.rs): {requests, errors, rps, p50_us, p99_us}
//!                                            (and the hit's url, for http)
//!     recall-bench grpc-request              the datacatalog load's GetArtifact as a gRPC
//!                                            request body, on stdout
//!     recall-bench grpc-floor --upstream URL --listen ADDR
//!                                            an HTTP/2 server answering every call with the
//!                                            datacatalog answer URL gave (src/floor.rs)
//!
//! URL is a store URL (`file:///...`, `s3://...` with the AWS variables); DAEMON is recalld's
//! base URL over the same store. Entries use project `bench`, domain `perf`, task `wf.bench`.

mod floor;
mod load;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use recall_key::{DerivedKey, InputSource, KeyMaterial, Value, ValueType};
use recall_store::{EntryRef, Lookup, Output, PublishOptions, Store, Tenant};

const PROJECT: &str = "bench";
const DOMAIN: &str = "perf";

fn key(n: u64) -> anyhow::Result<DerivedKey> {
    let mut material = KeyMaterial::new(PROJECT, DOMAIN, "wf.bench", "1")?;
    material.add_input(
        "n",
        ValueType::Int,
        InputSource::Value(Value::Int(n as i64)),
    )?;
    material.add_output("out", ValueType::Int)?;
    Ok(material.derive()?)
}

/// A small deterministic generator (xorshift64*) for picking keys.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// Percentiles of latencies, in microseconds.
fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1e6
    };
    let mean = samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64;
    format!(
        "{{\"samples\":{},\"mean_us\":{:.1},\"p50_us\":{:.1},\"p99_us\":{:.1}}}",
        samples.len(),
        mean * 1e6,
        at(0.50),
        at(0.99)
    )
}

/// `--flag value` pairs of `args`; a flag without its value is an error.
fn flag_values<'a>(args: &[&'a str]) -> anyhow::Result<Vec<(&'a str, &'a str)>> {
    args.chunks(2)
        .map(|pair| match *pair {
            [flag, value] => Ok((flag, value)),
            _ => bail!(
                "{} needs a value",
                pair.first().copied().unwrap_or("a flag")
            ),
        })
        .collect()
}

fn number(text: &str, what: &str) -> anyhow::Result<u64> {
    text.parse()
        .with_context(|| format!("{what}: {text:?} is not a number"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        ["populate", url, n] => populate(url, number(n, "N")?).await,
        ["lookups", url, n, samples] => {
            lookups(url, number(n, "N")?, number(samples, "SAMPLES")?).await
        }
        ["cold", url, daemon, m] => cold(url, daemon, number(m, "M")?).await,
        ["coalesce", url, daemon] => coalesce(url, daemon).await,
        ["load", ref rest @ ..] => load::run(rest).await,
        ["grpc-floor", ref rest @ ..] => floor::run(rest).await,
        ["grpc-request"] => {
            use std::io::Write;
            std::io::stdout().write_all(&load::framed_get_artifact())?;
            Ok(())
        }
        ["keys", n] => {
            use std::io::Write;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for i in 0..number(n, "N")? {
                writeln!(out, "{}", key(i)?.key)?;
            }
            Ok(())
        }
        _ => bail!("usage: see the comment at the top of crates/recall-bench/src/main.rs"),
    }
}

async fn publish_range(store: &Store, range: std::ops::Range<u64>) -> anyhow::Result<()> {
    let store = Arc::new(store.clone());
    let mut stream = futures::stream::iter(range)
        .map(|n| {
            let store = store.clone();
            async move {
                let key = key(n)?;
                let output = Output::bytes("out", n.to_string().into_bytes());
                store
                    .publish(&key, &[output], &PublishOptions::default())
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32);
    while let Some(result) = stream.next().await {
        result?;
    }
    Ok(())
}

async fn populate(url: &str, n: u64) -> anyhow::Result<()> {
    let store = Store::open(url).await?;
    let started = Instant::now();
    publish_range(&store, 0..n).await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"entries\":{n},\"seconds\":{seconds:.1},\"per_second\":{:.0}}}",
        n as f64 / seconds
    );
    Ok(())
}

async fn lookups(url: &str, n: u64, samples: u64) -> anyhow::Result<()> {
    let store = Store::open(url).await?;
    let mut rng = Rng(0x10c4_u64 ^ n);
    let mut times = Vec::with_capacity(samples as usize);
    for _ in 0..samples {
        let entry = EntryRef::of(&key(rng.below(n))?)?;
        let started = Instant::now();
        let found = store.lookup(&entry).await?;
        times.push(started.elapsed());
        if found.is_miss() {
            bail!("a populated key missed: {found:?}");
        }
    }
    println!("{}", summary(times));
    Ok(())
}

async fn cold(url: &str, daemon: &str, m: u64) -> anyhow::Result<()> {
    let store = Store::open(url).await?;
    // Keys no earlier run used, so neither recalld's memory tier nor anything else has them.
    let base = 1_000_000_000 + std::process::id() as u64 * 100_000;
    publish_range(&store, base..base + m).await?;
    let client = reqwest::Client::new();
    let tenant = Tenant::new(PROJECT, DOMAIN)?;
    let (mut via_daemon, mut direct) = (Vec::new(), Vec::new());
    for n in base..base + m {
        let key = key(n)?.key;
        let started = Instant::now();
        let response = client
            .get(format!("{daemon}/v1/entries/{PROJECT}/{DOMAIN}/{key}"))
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        via_daemon.push(started.elapsed());
        if !status.is_success() {
            bail!("recalld answered {status} for a published key: {body:?}");
        }
        let started = Instant::now();
        let found = store
            .lookup(&EntryRef {
                tenant: tenant.clone(),
                key,
            })
            .await?;
        direct.push(started.elapsed());
        if found.is_miss() {
            bail!("the store misses a published key: {found:?}");
        }
    }
    println!(
        "{{\"daemon\":{},\"direct\":{}}}",
        summary(via_daemon),
        summary(direct)
    );
    Ok(())
}

async fn hot_store_requests(client: &reqwest::Client, daemon: &str) -> anyhow::Result<u64> {
    let text = client
        .get(format!("{daemon}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|line| line.strip_prefix("recall_hot_store_requests "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .context("recall_hot_store_requests not in /metrics")
}

async fn coalesce(url: &str, daemon: &str) -> anyhow::Result<()> {
    let store = Store::open(url).await?;
    let n = 2_000_000_000 + std::process::id() as u64;
    publish_range(&store, n..n + 1).await?;
    let key = key(n)?.key;
    let client = reqwest::Client::new();
    let before = hot_store_requests(&client, daemon).await?;
    let lookups = (0..64).map(|_| {
        let client = client.clone();
        let url = format!("{daemon}/v1/entries/{PROJECT}/{DOMAIN}/{key}");
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
    });
    let mut hits = 0;
    for lookup in futures::future::join_all(lookups).await {
        if lookup??.is_success() {
            hits += 1;
        }
    }
    let after = hot_store_requests(&client, daemon).await?;
    match store.lookup(&EntryRef::of(&self::key(n)?)?).await? {
        Lookup::Hit(_) => {}
        Lookup::Miss(miss) => bail!("the entry vanished: {miss:?}"),
    }
    println!(
        "{{\"concurrent\":64,\"hits\":{hits},\"store_requests\":{}}}",
        after - before
    );
    Ok(())
}
