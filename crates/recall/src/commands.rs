//! What each subcommand does, written against [`CacheClient`] only.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use recall_key::Digest;
use recall_store::{
    Capabilities, EntryRef, GcOptions, Lookup, Manifest, Miss, NondeterminismOutcome,
    NondeterminismRecord, StoreConfig, StoreError, Tenant, system_time_ms,
};
use serde_json::{Value as JsonValue, json};

use crate::cli::{
    Cli, Command, EntryArgs, EvictArgs, ExplainArgs, GcArgs, GetArgs, GlobalArgs, InspectArgs,
    KeyArgs, LsArgs, PutArgs, RunArgs,
};
use crate::client::{CacheClient, EvictRequest, EvictTarget};
use crate::direct::DirectClient;
use crate::error::{CliError, EXIT_NOT_FOUND};
use crate::explain::explain;
use crate::material::Resolved;
use crate::outputs;
use crate::progress::{Reporter, human_bytes};
use crate::run::{RunOptions, miss_text, publish_outputs, warn_nondeterminism, with_timeout};

/// Runs one parsed command line; returns the exit status.
pub async fn execute(cli: Cli) -> Result<u8, CliError> {
    let cwd = PathBuf::from(".");
    let global = &cli.global;
    match cli.command {
        Command::Key(args) => key(args, &cwd),
        Command::Run(args) => run(global, args, &cwd).await,
        Command::Get(args) => get(global, args, &cwd).await,
        Command::Put(args) => put(global, args, &cwd).await,
        Command::Inspect(args) => inspect(global, args, &cwd).await,
        Command::Ls(args) => ls(global, args).await,
        Command::Evict(args) => evict(global, args).await,
        Command::Gc(args) => gc(global, args).await,
        Command::Explain(args) => explain_cmd(global, args, &cwd).await,
        Command::Doctor(args) => crate::doctor::doctor(global, args).await,
        Command::Completions { .. } => Err(CliError::Usage(
            "completions are printed by the recall binary".into(),
        )),
    }
}

/// Parses a duration flag: the key-spec forms (`1h30m`, `250ms`, `PT1H`) or whole days (`7d`).
pub fn parse_duration(flag: &str, text: &str) -> Result<Duration, CliError> {
    let bad = |why: String| CliError::Usage(format!("{flag} {text:?}: {why}"));
    if let Some(days) = text.strip_suffix('d')
        && !days.is_empty()
        && days.bytes().all(|b| b.is_ascii_digit())
    {
        let days: u64 = days.parse().map_err(|e| bad(format!("{e}")))?;
        return days
            .checked_mul(86_400)
            .map(Duration::from_secs)
            .ok_or_else(|| bad("too long".into()));
    }
    let nanos = recall_key::parse_duration(text)
        .map_err(|why| bad(format!("{why} (write e.g. 30s, 1h30m, 250ms or 7d)")))?;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| bad("must not be negative".into()))
}

fn reporter(global: &GlobalArgs) -> Reporter {
    Reporter {
        quiet: global.quiet,
    }
}

/// Opens the cache the global flags name.
pub async fn open_client(
    global: &GlobalArgs,
    config: StoreConfig,
) -> Result<Arc<dyn CacheClient>, CliError> {
    let timeout = parse_duration("--storage-timeout", &global.storage_timeout)?;
    match (&global.store, &global.daemon) {
        (Some(_), Some(_)) => Err(CliError::Usage(
            "give either --store or --daemon, not both".into(),
        )),
        (Some(url), None) => {
            let client =
                with_timeout(timeout, "open store", DirectClient::open(url, config)).await?;
            Ok(Arc::new(client))
        }
        (None, Some(url)) => Ok(Arc::new(crate::http::HttpClient::new(
            url,
            global.token.clone(),
            config.max_age,
        )?)),
        (None, None) => Err(CliError::Usage(
            "no cache: give --store URL (e.g. file:///var/cache/recall) or --daemon URL \
             (or set RECALL_STORE / RECALL_DAEMON)"
                .into(),
        )),
    }
}

fn config_with_max_age(max_age: Option<&String>) -> Result<StoreConfig, CliError> {
    Ok(StoreConfig {
        max_age: max_age
            .map(|text| parse_duration("--max-age", text))
            .transpose()?,
        ..StoreConfig::default()
    })
}

fn print_json(value: &JsonValue) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)
        .map_err(|e| CliError::local(Path::new("<stdout>"), e))?;
    writeln!(stdout).map_err(|e| CliError::local(Path::new("<stdout>"), e))?;
    Ok(())
}

fn print_line(line: impl std::fmt::Display) -> Result<(), CliError> {
    writeln!(std::io::stdout().lock(), "{line}")
        .map_err(|e| CliError::local(Path::new("<stdout>"), e))
}

fn key(args: KeyArgs, cwd: &Path) -> Result<u8, CliError> {
    let resolved = args.material.resolve(cwd)?;
    let derived = resolved.material.derive()?;
    if args.json {
        print_json(&serde_json::to_value(&derived).map_err(|e| CliError::Usage(e.to_string()))?)?;
    } else {
        print_line(derived.key)?;
    }
    Ok(0)
}

async fn run(global: &GlobalArgs, args: RunArgs, cwd: &Path) -> Result<u8, CliError> {
    let resolved = args.material.resolve(cwd)?;
    let outputs = resolved.output_paths()?;
    let command = if args.command.is_empty() {
        resolved.command.clone().unwrap_or_default()
    } else {
        args.command.clone()
    };
    if command.is_empty() {
        return Err(CliError::Usage(
            "no command: give it after `--` (recall run ... -- COMMAND ARGS) or as `command` \
             in the job file"
                .into(),
        ));
    }
    let outputs = outputs::guard(&outputs, &protected(global, Some(&resolved), &command))?;
    let key = resolved.material.derive()?;
    let options = RunOptions {
        serialize: args.serialize,
        overwrite: args.overwrite,
        heartbeat: parse_duration("--heartbeat", &args.heartbeat)?,
        poll: parse_duration("--poll", &args.poll)?,
        storage_timeout: parse_duration("--storage-timeout", &global.storage_timeout)?,
        reporter: reporter(global),
    };
    if options.heartbeat.is_zero() {
        return Err(CliError::Usage(format!(
            "--heartbeat {:?}: must be longer than zero",
            args.heartbeat
        )));
    }
    let config = config_with_max_age(args.max_age.as_ref())?;
    // Only a store URL that cannot mean anything stops the run; any other failure to open
    // the store (unreachable, unwritable, wrong layout) runs the command without the cache.
    let client = match open_client(global, config).await {
        Err(err @ (CliError::Usage(_) | CliError::Store(StoreError::InvalidUrl { .. }))) => {
            return Err(err);
        }
        other => other,
    };
    if options.serialize
        && let Ok(client) = &client
        && let Some(capabilities) = client.capabilities().await
    {
        refuse_serialize(client.describe(), &capabilities)?;
    }
    crate::run::run(client, &key, &outputs, &command, &options).await
}

/// What the outputs of this command line must never remove or replace: the job file's
/// directory, a `file://` store's root, the inputs and the command's script (the working
/// directory is always protected).
fn protected(
    global: &GlobalArgs,
    resolved: Option<&Resolved>,
    command: &[String],
) -> outputs::Protected {
    let store_root = global.store.as_deref().and_then(outputs::file_store_root);
    let mut inputs = resolved.map(Resolved::input_paths).unwrap_or_default();
    inputs.extend(outputs::script_of(command));
    outputs::Protected {
        job_dir: resolved.and_then(|r| r.job_dir.clone()),
        store_root,
        inputs,
    }
}

/// `--serialize` needs leases, and leases need conditional writes: on a store without them
/// it is refused (exit 2) rather than run with a lease that excludes no one.
fn refuse_serialize(store: String, capabilities: &Capabilities) -> Result<(), CliError> {
    let missing = crate::capabilities::missing_conditional_writes(capabilities);
    if missing.is_empty() {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "--serialize: {store} does not honour {} (found by recall's capability probe), so a \
         lease cannot keep concurrent runs from computing at once; run without --serialize or \
         use a store with conditional writes (`recall doctor --store URL` shows what it lacks)",
        missing.join(" and ")
    )))
}

impl EntryArgs {
    /// The entry addressed, and the resolved material when it was given.
    fn resolve(&self, cwd: &Path) -> Result<(EntryRef, Option<Resolved>), CliError> {
        if let Some(hex) = &self.key {
            let (Some(project), Some(domain)) = (&self.material.project, &self.material.domain)
            else {
                return Err(CliError::Usage("--key needs --project and --domain".into()));
            };
            let key: Digest = hex.parse().map_err(|_| {
                CliError::Usage(format!("--key {hex:?}: not 64 hexadecimal characters"))
            })?;
            if !self.material.outputs.is_empty() {
                // Only NAME=PATH forms make sense here; no material to declare them in.
                return Err(CliError::Usage(
                    "--output with --key: use --to DIR (outputs are named by the entry)".into(),
                ));
            }
            return Ok((EntryRef::new(project, domain, key)?, None));
        }
        let resolved = self.material.resolve(cwd)?;
        let derived = resolved.material.derive()?;
        Ok((EntryRef::of(&derived)?, Some(resolved)))
    }
}

async fn get(global: &GlobalArgs, args: GetArgs, cwd: &Path) -> Result<u8, CliError> {
    let (entry, resolved) = args.entry.resolve(cwd)?;
    let client = open_client(global, StoreConfig::default()).await?;
    let report = reporter(global);
    let short = entry.key.to_hex();
    let manifest = match client.lookup(&entry).await? {
        Lookup::Hit(m) => m,
        Lookup::Miss(miss) => {
            report.warn(format!("CACHE_MISS {short}: {}", miss_text(&miss)));
            return Ok(EXIT_NOT_FOUND);
        }
    };
    let protected = protected(global, resolved.as_ref(), &[]);
    let paths = resolved.map(|r| r.paths).unwrap_or_default();
    let mut targets = Vec::new();
    for (name, record) in &manifest.outputs {
        if let Some(wanted) = &args.stdout {
            if wanted == name {
                targets.push((name.clone(), record.ty.clone(), None));
            }
            continue;
        }
        let path = match (paths.get(name), &args.to) {
            (Some(path), _) => path.clone(),
            (None, Some(dir)) => dir.join(name),
            (None, None) => {
                return Err(CliError::Usage(format!(
                    "output {name:?} has no path: give --output {name}=PATH or --to DIR"
                )));
            }
        };
        targets.push((name.clone(), record.ty.clone(), Some(path)));
    }
    if let Some(wanted) = &args.stdout
        && targets.is_empty()
    {
        return Err(CliError::Usage(format!(
            "--stdout {wanted:?}: the entry has no such output (it has {})",
            manifest
                .outputs
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    // Checked before anything is fetched or replaced; the checked paths are the ones used.
    let declared: Vec<outputs::OutputPath> = targets
        .iter()
        .filter_map(|(name, ty, path)| {
            Some(outputs::OutputPath {
                name: name.clone(),
                kind: if ty == "dir" {
                    outputs::OutputKind::Dir
                } else {
                    outputs::OutputKind::File
                },
                path: path.clone()?,
            })
        })
        .collect();
    let checked = outputs::guard(&declared, &protected)?;
    let staging_parent = match checked.first() {
        Some(output) => outputs::parent_dir(&output.path)?,
        None => std::env::temp_dir(),
    };
    let staging = tempfile::Builder::new()
        .prefix(".recall-fetch-")
        .tempdir_in(&staging_parent)
        .map_err(|e| CliError::local(&staging_parent, e))?;
    let total: u64 = manifest.outputs.values().map(|o| o.size).sum();
    let fetched = report
        .transfer(
            format!("fetching {}", human_bytes(total)),
            client.fetch(&entry, staging.path()),
        )
        .await?;
    let manifest = match fetched {
        Lookup::Hit(m) => m,
        Lookup::Miss(miss) => {
            report.warn(format!("CACHE_MISS {short}: {}", miss_text(&miss)));
            return Ok(EXIT_NOT_FOUND);
        }
    };
    // Every output staged beside its target first; only then all renamed into place.
    let mut staged = Vec::with_capacity(checked.len());
    for output in &checked {
        let fetched = staging.path().join(&output.name);
        staged.push(match output.kind {
            outputs::OutputKind::Dir => outputs::stage_dir(&fetched, &output.path)?,
            outputs::OutputKind::File => outputs::stage_file(&fetched, &output.path)?,
        });
    }
    outputs::put_in_place(staged)?;
    let mut written = Vec::new();
    for (name, ty, path) in targets {
        match path {
            None => {
                let fetched = staging.path().join(&name);
                let mut file =
                    std::fs::File::open(&fetched).map_err(|e| CliError::local(&fetched, e))?;
                let mut stdout = std::io::stdout().lock();
                std::io::copy(&mut file, &mut stdout)
                    .and_then(|_| stdout.flush())
                    .map_err(|e| CliError::local(Path::new("<stdout>"), e))?;
            }
            Some(path) => {
                let (size, digest) = manifest
                    .outputs
                    .get(&name)
                    .map(|r| (r.size, r.digest.to_hex()))
                    .unwrap_or_default();
                written.push(json!({
                    "name": name, "path": path.display().to_string(),
                    "type": ty, "size": size, "digest": digest,
                }));
            }
        }
    }
    report.status(format!("CACHE_HIT {short}"));
    if args.json {
        print_json(&json!({"key": short, "status": "hit", "outputs": written}))?;
    }
    Ok(0)
}

async fn put(global: &GlobalArgs, args: PutArgs, cwd: &Path) -> Result<u8, CliError> {
    let resolved = args.material.resolve(cwd)?;
    let outputs = resolved.output_paths()?;
    for output in &outputs {
        outputs::check_produced(output).map_err(CliError::Usage)?;
    }
    let key = resolved.material.derive()?;
    let client = open_client(global, StoreConfig::default()).await?;
    let report = reporter(global);
    let short = key.key.to_hex();
    let (outcome, _) =
        publish_outputs(client.as_ref(), &key, &outputs, args.overwrite, report).await?;
    if outcome.is_published() {
        report.status(format!("CACHE_POPULATED {short}"));
        if let Some(capabilities) = client.capabilities().await {
            crate::capabilities::warn_publish(report, &client.describe(), &short, &capabilities);
        }
    } else {
        report.status(format!(
            "CACHE_EXISTS {short}: an entry already exists and was kept (--overwrite replaces it)"
        ));
    }
    let mut nondeterministic = Vec::new();
    if let Some(record) = outcome.observed() {
        warn_nondeterminism(report, &short, record);
        nondeterministic.extend(record.outputs.keys().cloned());
    }
    if args.json {
        print_json(&json!({
            "key": short,
            "outcome": if outcome.is_published() { "published" } else { "already_exists" },
            "nondeterministic_outputs": nondeterministic,
        }))?;
    }
    Ok(0)
}

fn time_text(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{ms} ms"))
}

/// The manifest as JSON (`inspect --json`).
pub fn manifest_json(manifest: &Manifest, expired: bool) -> JsonValue {
    let outputs: serde_json::Map<String, JsonValue> = manifest
        .outputs
        .iter()
        .map(|(name, record)| {
            (
                name.clone(),
                json!({
                    "type": record.ty,
                    "size": record.size,
                    "digest": record.digest.to_hex(),
                    "inline": record.inline.is_some(),
                }),
            )
        })
        .collect();
    json!({
        "status": if expired { "expired" } else { "live" },
        "layout_version": manifest.layout_version,
        "key": manifest.key,
        "outputs": outputs,
        "created_at_ms": manifest.created_at_ms,
        "expires_at_ms": manifest.expires_at_ms,
        "producer": manifest.producer,
        "nondeterminism": manifest
            .nondeterminism
            .iter()
            .map(NondeterminismRecord::to_json)
            .collect::<Vec<_>>(),
    })
}

async fn inspect(global: &GlobalArgs, args: InspectArgs, cwd: &Path) -> Result<u8, CliError> {
    let (entry, _) = args.entry.resolve(cwd)?;
    let client = open_client(global, StoreConfig::default()).await?;
    let Some(stored) = client.stored_entry(&entry).await? else {
        reporter(global).warn(format!(
            "CACHE_MISS {}: no entry in {}/{}",
            entry.key,
            entry.tenant.project(),
            entry.tenant.domain()
        ));
        return Ok(EXIT_NOT_FOUND);
    };
    let m = &stored.manifest;
    if args.json {
        print_json(&manifest_json(m, stored.expired))?;
        return Ok(0);
    }
    let k = &m.key;
    let mut lines = vec![
        format!("key            {}", k.key),
        format!(
            "status         {}",
            if stored.expired { "expired" } else { "live" }
        ),
        format!("project        {}", k.project),
        format!("domain         {}", k.domain),
        format!("task           {}", k.task),
        format!("cache_version  {}", k.cache_version),
        format!("salt           {}", k.salt.as_deref().unwrap_or("-")),
        format!("signature      {}", k.signature_digest),
        format!("inputs digest  {}", k.inputs_digest),
        format!("created        {}", time_text(m.created_at_ms)),
        format!(
            "expires        {}",
            m.expires_at_ms.map_or("never".into(), time_text)
        ),
        format!("producer       {}", m.producer),
        "inputs".into(),
    ];
    for (name, input) in &k.inputs {
        lines.push(format!(
            "  {name}: {} {}",
            input.ty,
            input.digest.map_or("(ignored)".to_string(), |d| d.to_hex())
        ));
    }
    lines.push("outputs".into());
    for (name, record) in &m.outputs {
        lines.push(format!(
            "  {name}: {} {} {}{}",
            record.ty,
            human_bytes(record.size),
            record.digest,
            if record.inline.is_some() {
                " (inline)"
            } else {
                ""
            }
        ));
    }
    if m.nondeterminism.is_empty() {
        lines.push("nondeterminism none observed".into());
    } else {
        lines.push(format!(
            "nondeterminism {} publish(es) produced other outputs for this key",
            m.nondeterminism.len()
        ));
        for record in &m.nondeterminism {
            lines.push(format!(
                "  {} by {} ({})",
                time_text(record.observed_at_ms),
                record.producer,
                match record.outcome {
                    NondeterminismOutcome::Replaced => "replaced the entry",
                    NondeterminismOutcome::Discarded => "discarded, the entry was kept",
                }
            ));
            for (name, change) in &record.outputs {
                lines.push(format!(
                    "    {name}: {} -> {}",
                    change.previous, change.current
                ));
            }
        }
    }
    print_line(lines.join("\n"))?;
    Ok(0)
}

async fn ls(global: &GlobalArgs, args: LsArgs) -> Result<u8, CliError> {
    let client = open_client(global, StoreConfig::default()).await?;
    let (Some(project), Some(domain)) = (&args.project, &args.domain) else {
        let tenants: Vec<String> = client
            .tenants()
            .await?
            .iter()
            .map(|t| format!("{}/{}", t.project(), t.domain()))
            .collect();
        if args.json {
            print_json(&json!({ "tenants": tenants }))?;
        } else if !tenants.is_empty() {
            print_line(tenants.join("\n"))?;
        }
        return Ok(0);
    };
    let tenant = Tenant::new(project, domain)?;
    let Some(task) = &args.task else {
        let tasks = client.tasks(&tenant).await?;
        if args.json {
            print_json(&json!({ "project": project, "domain": domain, "tasks": tasks }))?;
        } else if !tasks.is_empty() {
            print_line(tasks.join("\n"))?;
        }
        return Ok(0);
    };
    let listed = client
        .task_entries(&tenant, task, args.cache_version.as_deref())
        .await?;
    let mut rows = Vec::new();
    for item in listed {
        let entry = EntryRef {
            tenant: tenant.clone(),
            key: item.key,
        };
        let stored = client.stored_entry(&entry).await?;
        let (status, created, size) = match &stored {
            // A daemon serves live entries only; its lookup still says when one has expired
            // (size unknown then), so only a manifest that is really absent shows as gone.
            None => match client.lookup(&entry).await? {
                Lookup::Miss(Miss::Expired { created_at_ms }) => {
                    ("expired", Some(created_at_ms), None)
                }
                _ => ("gone", None, None),
            },
            Some(s) => (
                if s.expired { "expired" } else { "live" },
                Some(s.manifest.created_at_ms),
                Some(s.manifest.outputs.values().map(|o| o.size).sum::<u64>()),
            ),
        };
        rows.push(json!({
            "cache_version": item.cache_version,
            "key": item.key.to_hex(),
            "marked_at_ms": item.marked_at_ms,
            "status": status,
            "created_at_ms": created,
            "size": size,
        }));
    }
    if args.json {
        print_json(&json!({"project": project, "domain": domain, "task": task, "entries": rows}))?;
    } else {
        for row in &rows {
            print_line(format!(
                "{}  {}  {:<7}  {}",
                row["cache_version"].as_str().unwrap_or(""),
                row["key"].as_str().unwrap_or(""),
                row["status"].as_str().unwrap_or(""),
                row["created_at_ms"]
                    .as_i64()
                    .map_or("-".to_string(), time_text)
            ))?;
        }
    }
    Ok(0)
}

async fn evict(global: &GlobalArgs, args: EvictArgs) -> Result<u8, CliError> {
    let tenant = match (&args.project, &args.domain) {
        (Some(p), Some(d)) => Some(Tenant::new(p, d)?),
        _ => None,
    };
    let target = if let Some(hex) = &args.key {
        EvictTarget::Key(hex.parse().map_err(|_| {
            CliError::Usage(format!("--key {hex:?}: not 64 hexadecimal characters"))
        })?)
    } else if let Some(task) = &args.task {
        EvictTarget::Task {
            task: task.clone(),
            cache_version: args.cache_version.clone(),
        }
    } else if let Some(age) = &args.older_than {
        let age = parse_duration("--older-than", age)?;
        let cutoff = system_time_ms(SystemTime::now())
            .saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        EvictTarget::OlderThan(cutoff)
    } else if args.all {
        EvictTarget::Tenant
    } else {
        return Err(CliError::Usage(
            "evict: say what to evict: --key, --task, --older-than or --all".into(),
        ));
    };
    let client = open_client(global, StoreConfig::default()).await?;
    let request = EvictRequest {
        tenant,
        target,
        dry_run: args.dry_run,
    };
    let r = client.evict(&request).await?;
    if args.json {
        print_json(&json!({
            "dry_run": args.dry_run,
            "entries": r.entries, "markers": r.markers, "leases": r.leases, "blobs": r.blobs,
        }))?;
    } else {
        print_line(format!(
            "{} {} entries ({} markers, {} leases, {} blobs)",
            if args.dry_run {
                "would evict"
            } else {
                "evicted"
            },
            r.entries,
            r.markers,
            r.leases,
            r.blobs
        ))?;
    }
    Ok(0)
}

async fn gc(global: &GlobalArgs, args: GcArgs) -> Result<u8, CliError> {
    let tenant = match (&args.project, &args.domain) {
        (Some(p), Some(d)) => Some(Tenant::new(p, d)?),
        _ => None,
    };
    let options = GcOptions {
        grace: parse_duration("--grace", &args.grace)?,
        dry_run: args.dry_run,
    };
    let client = open_client(global, StoreConfig::default()).await?;
    let r = client.gc(tenant.as_ref(), &options).await?;
    if args.json {
        print_json(&json!({
            "dry_run": args.dry_run,
            "manifests": r.manifests,
            "undecodable_manifests": r.undecodable_manifests,
            "blobs": r.blobs,
            "referenced_blobs": r.referenced_blobs,
            "blobs_in_grace": r.blobs_in_grace,
            "collectable_blobs": r.collectable_blobs,
            "collectable_bytes": r.collectable_bytes,
            "deleted_blobs": r.deleted_blobs,
            "orphan_markers": r.orphan_markers,
        }))?;
    } else {
        print_line(format!(
            "{} manifests, {} blobs ({} referenced, {} in grace); {} {} unreferenced blobs ({}); \
             {} orphan markers",
            r.manifests,
            r.blobs,
            r.referenced_blobs,
            r.blobs_in_grace,
            if args.dry_run {
                "would delete"
            } else {
                "deleted"
            },
            r.collectable_blobs,
            human_bytes(r.collectable_bytes),
            r.orphan_markers
        ))?;
    }
    Ok(0)
}

async fn explain_cmd(global: &GlobalArgs, args: ExplainArgs, cwd: &Path) -> Result<u8, CliError> {
    let resolved = args.material.resolve(cwd)?;
    let key = resolved.material.derive()?;
    let client = open_client(global, config_with_max_age(args.max_age.as_ref())?).await?;
    let explanation = explain(client.as_ref(), &key).await?;
    if args.json {
        print_json(
            &serde_json::to_value(&explanation).map_err(|e| CliError::Usage(e.to_string()))?,
        )?;
    } else {
        print_line(format!("{} {}", explanation.verdict, explanation.key))?;
        for reason in &explanation.reasons {
            print_line(reason)?;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_key_spec_forms_and_days() {
        assert_eq!(
            parse_duration("--x", "7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(
            parse_duration("--x", "1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_duration("--x", "250ms").unwrap(),
            Duration::from_millis(250)
        );
        for bad in ["-1s", "5x", "", "d"] {
            let err = parse_duration("--max-age", bad).unwrap_err().to_string();
            assert!(err.starts_with(&format!("--max-age {bad:?}")), "{err}");
        }
    }
}
