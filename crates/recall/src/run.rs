//! The engine of `recall run` (the subcommand's flags are [`crate::cmd`]'s): look the task
//! up, restore its outputs on a hit, otherwise run the command and publish what it
//! produced. The cache never turns a working job into a failed one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use recall_key::DerivedKey;
use recall_store::{EntryRef, Lookup, Manifest, system_time_ms};

use crate::client::CacheClient;
use crate::error::CliError;
use crate::outputs::{self, OutputPath};
use crate::owner::owner_id;
use crate::print::{miss_text, warn_nondeterminism};
use crate::progress::{Reporter, human_bytes};
use crate::publish::publish_outputs;
use crate::staging;
use crate::timeouts::with_timeout;

/// Settings of one `recall run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Flyte's cache_serialize: one run computes, the others wait for its entry.
    pub serialize: bool,
    /// Run anyway and replace the entry (Flyte's overwrite_cache).
    pub overwrite: bool,
    /// Lease heartbeat interval (the lease lapses after three missed heartbeats).
    pub heartbeat: Duration,
    /// How often a waiting run checks for the entry or a free lease.
    pub poll: Duration,
    /// Longest wait for one storage lookup before the run goes ahead without the cache.
    pub storage_timeout: Duration,
    /// Status lines on stderr.
    pub reporter: Reporter,
}

/// What the cache said before the command ran.
enum Before {
    /// Outputs restored; the command is not run.
    Hit,
    /// Run the command; publish afterwards if `publish` (storage answered).
    Run { publish: bool },
}

/// One run of one task: what it is, and what it learned from the cache on the way (the
/// lease it holds, the entry its publish replaces).
struct Session<'a> {
    key: &'a DerivedKey,
    entry: EntryRef,
    outputs: &'a [OutputPath],
    options: &'a RunOptions,
    /// The key in hex, for status lines.
    short: String,
    /// This process, as a lease owner.
    owner: String,
    /// Whether this run holds the entry's lease (released when the run ends).
    lease_held: bool,
    /// The entry this run's publish replaces (`--overwrite`, or one that cannot be
    /// restored), so the publish overwrites it.
    previous: Option<Manifest>,
}

/// Runs the task: the exit status recall should return. `outputs` are the ones
/// [`outputs::guard`] returned: their paths are removed and replaced as they are.
pub async fn run(
    client: Result<Arc<dyn CacheClient>, CliError>,
    key: &DerivedKey,
    outputs: &[OutputPath],
    command: &[String],
    options: &RunOptions,
) -> Result<u8, CliError> {
    let mut session = Session {
        key,
        entry: EntryRef::of(key)?,
        outputs,
        options,
        short: key.key.to_hex(),
        owner: owner_id(),
        lease_held: false,
        previous: None,
    };
    let report = options.reporter;
    let short = session.short.clone();
    let client = match client {
        Ok(client) => Some(client),
        Err(err) => {
            report.warn(format!("CACHE_LOOKUP_FAILURE {short}: {err}"));
            None
        }
    };

    let before = match &client {
        None => Before::Run { publish: false },
        Some(client) => match session.decide(client.as_ref()).await {
            Ok(before) => before,
            Err(err) if err.is_storage() => {
                report.warn(format!("CACHE_LOOKUP_FAILURE {short}: {err}"));
                Before::Run { publish: false }
            }
            // A refusal (recalld's store cannot hold the lease --serialize asked for):
            // exit 2 before the command runs, as the direct pre-check does.
            Err(err @ CliError::Usage(_)) => return Err(err),
            Err(err) => {
                // Storage answered but the outputs could not be put in place locally.
                report.warn(format!(
                    "recall: could not restore the cached outputs of {short} ({err}); \
                     running the command"
                ));
                Before::Run { publish: true }
            }
        },
    };
    // Why nothing will be published, when nothing will.
    let mut no_publish = match before {
        Before::Hit => {
            report.status(format!("CACHE_HIT {short}"));
            return Ok(0);
        }
        Before::Run { publish: true } => None,
        Before::Run { publish: false } => Some("storage was unavailable at lookup".to_string()),
    };
    if let Err(why) = outputs::clear_before_run(outputs) {
        // The command still runs; only the cache stays out of it.
        report.warn(format!("recall: {why}; the command runs without the cache"));
        no_publish = Some(why);
    }

    let heartbeat = match (&client, session.lease_held) {
        (Some(client), true) => Some(spawn_heartbeat(
            Arc::clone(client),
            session.entry.clone(),
            session.owner.clone(),
            options.heartbeat,
            report,
        )),
        _ => None,
    };
    let status = run_command(command).await;
    if let Some(task) = heartbeat {
        task.abort();
    }

    let result = session.finish(client.as_deref(), status, no_publish).await;

    if session.lease_held
        && let Some(client) = &client
    {
        let released = with_timeout(
            options.storage_timeout,
            "lease release",
            client.release(&session.entry, &session.owner),
        )
        .await;
        if let Err(err) = released {
            report.warn(format!(
                "recall: could not release the lease of {short} (it lapses on its own): {err}"
            ));
        }
    }
    Ok(result)
}

impl Session<'_> {
    /// Looks up (and, with `--serialize`, waits for a lease) until the run either hits or
    /// must compute. Errors are storage failures: the caller runs the command without the
    /// cache.
    async fn decide(&mut self, client: &dyn CacheClient) -> Result<Before, CliError> {
        let options = self.options;
        let report = options.reporter;
        let short = self.short.clone();
        let entry = &self.entry;
        let timeout = options.storage_timeout;
        let mut announced_wait = false;
        let mut lease_failing_since: Option<Instant> = None;
        if options.overwrite {
            report.status(format!("CACHE_SKIPPED {short}"));
            self.previous = with_timeout(timeout, "lookup", client.stored_entry(entry))
                .await?
                .map(|s| s.manifest);
        }
        loop {
            if !options.overwrite {
                match with_timeout(timeout, "lookup", client.lookup(entry)).await? {
                    Lookup::Hit(manifest) => match self.restore(client, &manifest).await {
                        Ok(true) => return Ok(Before::Hit),
                        Ok(false) => {
                            if !announced_wait {
                                report.status(format!(
                                    "CACHE_MISS {short}: the stored entry did not verify; \
                                     the next publish replaces it"
                                ));
                            }
                        }
                        Err(err) => {
                            if !err.is_storage() {
                                // It verified but cannot be restored (an unusable archive):
                                // this run's publish replaces it instead of being discarded.
                                self.previous = Some(manifest);
                            }
                            return Err(err);
                        }
                    },
                    Lookup::Miss(miss) => {
                        if !announced_wait {
                            report.status(format!("CACHE_MISS {short}: {}", miss_text(&miss)));
                        }
                    }
                }
            }
            if !options.serialize {
                return Ok(Before::Run { publish: true });
            }
            // The lookup just worked, so a failed lease request is most likely transient
            // (contention, a busy store): ask again for up to the storage timeout before
            // running without the lease, which is what a lasting failure does (fail open).
            let grant = match with_timeout(
                timeout,
                "lease",
                client.lease(entry, &self.owner, options.heartbeat),
            )
            .await
            {
                Ok(grant) => {
                    lease_failing_since = None;
                    grant
                }
                // A refusal (bad heartbeat, a store that cannot hold leases) is final.
                Err(err) if !err.is_storage() => return Err(err),
                Err(err) => {
                    let since = *lease_failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= timeout {
                        return Err(err);
                    }
                    report.warn(format!("lease request failed, asking again: {err}"));
                    tokio::time::sleep(options.poll).await;
                    continue;
                }
            };
            if grant.granted {
                self.lease_held = true;
                if !options.overwrite {
                    // A holder may have published and released between our lookup and our
                    // lease.
                    if let Lookup::Hit(manifest) =
                        with_timeout(timeout, "lookup", client.lookup(entry)).await?
                        && self.restore(client, &manifest).await?
                    {
                        let _ = client.release(entry, &self.owner).await;
                        self.lease_held = false;
                        return Ok(Before::Hit);
                    }
                }
                return Ok(Before::Run { publish: true });
            }
            if !announced_wait {
                let left =
                    (grant.expires_at_ms - system_time_ms(std::time::SystemTime::now())).max(0);
                report.status(format!(
                    "CACHE_WAITING {short}: {} is computing it (lease for {:.1} s more)",
                    grant.owner,
                    left as f64 / 1000.0
                ));
                announced_wait = true;
            }
            tokio::time::sleep(options.poll).await;
        }
    }

    /// Fetches a hit's outputs into a staging directory and moves them into place.
    /// `Ok(false)` when the entry turned out broken (a miss).
    async fn restore(
        &self,
        client: &dyn CacheClient,
        manifest: &Manifest,
    ) -> Result<bool, CliError> {
        let total: u64 = manifest.outputs.values().map(|o| o.size).sum();
        let label = format!(
            "fetching {} output(s), {}",
            manifest.outputs.len(),
            human_bytes(total)
        );
        let (staging, fetched) = staging::fetch(
            client,
            &self.entry,
            self.outputs,
            label,
            self.options.reporter,
        )
        .await?;
        if fetched.is_miss() {
            return Ok(false);
        }
        staging::place(staging.path(), self.outputs)?;
        Ok(true)
    }

    /// After the command: publish when it succeeded and produced every output. Returns the
    /// command's own exit status whatever happens to the publish.
    async fn finish(
        &self,
        client: Option<&dyn CacheClient>,
        status: u8,
        no_publish: Option<String>,
    ) -> u8 {
        let report = self.options.reporter;
        let short = &self.short;
        if status != 0 {
            report.status(format!(
                "recall: the command exited with status {status}; nothing published for {short}"
            ));
            return status;
        }
        if let Some(missing) = self
            .outputs
            .iter()
            .find_map(|o| outputs::check_produced(o).err())
        {
            report.warn(format!("recall: nothing published for {short}: {missing}"));
            return status;
        }
        let client = match (client, no_publish) {
            (Some(client), None) => client,
            (_, why) => {
                let why = why.unwrap_or_else(|| "storage was unavailable at lookup".into());
                report.warn(format!(
                    "CACHE_PUT_FAILURE {short}: {why}; nothing published"
                ));
                return status;
            }
        };
        let overwrite = self.previous.is_some();
        match publish_outputs(client, self.key, self.outputs, overwrite, report).await {
            Ok((outcome, _)) => {
                if outcome.is_published() {
                    report.status(format!("CACHE_POPULATED {short}"));
                    if let Some(capabilities) = client.capabilities().await {
                        crate::capabilities::warn_publish(
                            report,
                            &client.describe(),
                            short,
                            &capabilities,
                        );
                    }
                } else {
                    report.status(format!(
                        "CACHE_POPULATED {short}: another run published it first; its entry \
                         was kept"
                    ));
                }
                if let Some(record) = outcome.observed() {
                    warn_nondeterminism(report, short, record);
                }
            }
            Err(err) => report.warn(format!("CACHE_PUT_FAILURE {short}: {err}")),
        }
        status
    }
}

fn spawn_heartbeat(
    client: Arc<dyn CacheClient>,
    entry: EntryRef,
    owner: String,
    every: Duration,
    report: Reporter,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match client.lease(&entry, &owner, every).await {
                Ok(grant) if grant.granted => {}
                Ok(grant) => report.warn(format!(
                    "recall: the lease of {} was taken over by {}; both runs may compute",
                    entry.key, grant.owner
                )),
                Err(err) => report.warn(format!(
                    "recall: lease heartbeat for {} failed: {err}",
                    entry.key
                )),
            }
        }
    })
}

/// Runs the command with inherited stdio; its exit status (128 + signal when killed, 127
/// when it cannot be started). SIGINT reaches the command through the process group; recall
/// waits for it so the lease is released; SIGTERM to recall is passed on as a kill.
async fn run_command(command: &[String]) -> u8 {
    let Some((program, args)) = command.split_first() else {
        return 0;
    };
    let mut child = match tokio::process::Command::new(program).args(args).spawn() {
        Ok(child) => child,
        Err(err) => {
            eprintln!("recall: cannot run {program:?}: {err}");
            return 127;
        }
    };
    #[cfg(unix)]
    let waited = {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).ok();
        let mut terminate = signal(SignalKind::terminate()).ok();
        loop {
            tokio::select! {
                status = child.wait() => break status,
                Some(()) = async { match interrupt.as_mut() { Some(s) => s.recv().await, None => None } } => {}
                Some(()) = async { match terminate.as_mut() { Some(s) => s.recv().await, None => None } } => {
                    let _ = child.start_kill();
                }
            }
        }
    };
    #[cfg(not(unix))]
    let waited = child.wait().await;
    match waited {
        Ok(status) => exit_code(status),
        Err(err) => {
            eprintln!("recall: waiting for {program:?} failed: {err}");
            1
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code & 0xff).unwrap_or(1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return u8::try_from((128 + signal) & 0xff).unwrap_or(1);
        }
    }
    1
}
