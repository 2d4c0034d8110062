//! The native half of the `recall` Python package (`python/recall`), imported there as
//! `recall._native`.
//!
//! It adds no cache behaviour of its own: keys are derived by recall-key from the key-material
//! JSON of docs/KEY-SPEC.md section 8 (built by the Python layer), and every cache operation
//! goes through the `recall` CLI's [`CacheClient`] seam, [`DirectClient`] on a store URL or
//! [`HttpClient`] on recalld, with the CLI's own helpers for publishing and for putting
//! fetched outputs in place. The GIL is released for all hashing and I/O, which run on one
//! shared tokio runtime; every object here is `Send + Sync`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use recall_cli::client::{CacheClient, EvictRequest, EvictTarget};
use recall_cli::cmd::manifest_json;
use recall_cli::direct::DirectClient;
use recall_cli::error::CliError;
use recall_cli::explain::explain;
use recall_cli::http::HttpClient;
use recall_cli::outputs::{self, OutputKind, OutputPath};
use recall_cli::owner::owner_id;
use recall_cli::print::{miss_text, output_names};
use recall_cli::progress::Reporter;
use recall_cli::publish::publish_outputs;
use recall_cli::timeouts::with_timeout;
use recall_key::{DerivedKey, InputSource, KeyMaterial, Value, ValueType};
use recall_store::{Backend, EntryRef, Lookup, Store, StoreConfig, Tenant, open_url_with};
use serde_json::json;

/// The runtime every cache operation of this process runs on, started on first use. A child
/// forked after the parent started one gets its own: fork copies no threads, so the parent's
/// runtime would never run a task there (it is left alone, never dropped).
fn runtime() -> Result<&'static tokio::runtime::Runtime, CliError> {
    static RUNTIME: Mutex<Option<(u32, &'static tokio::runtime::Runtime)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, runtime)) = *slot
        && owner == pid
    {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("recall-io")
        .enable_all()
        .build()
        .map_err(|e| CliError::Storage(format!("cannot start the I/O runtime: {e}")))?;
    let runtime: &'static tokio::runtime::Runtime = Box::leak(Box::new(runtime));
    *slot = Some((pid, runtime));
    Ok(runtime)
}

/// A Python exception of `recall._errors` (`InvalidInput`, `StorageError`) with `message`.
fn python_error(py: Python<'_>, class: &str, message: String) -> PyErr {
    let made = py
        .import("recall._errors")
        .and_then(|module| module.getattr(class))
        .and_then(|class| class.call1((message,)));
    match made {
        Ok(exception) => PyErr::from_value(exception),
        Err(err) => err,
    }
}

/// The CLI's error as the Python exception of the same kind (exit status 3 is a storage
/// error, everything else bad input), with the CLI's message.
fn to_python(py: Python<'_>, err: CliError) -> PyErr {
    let class = if err.is_storage() {
        "StorageError"
    } else {
        "InvalidInput"
    };
    python_error(py, class, err.to_string())
}

/// Runs `work` on the shared runtime with the GIL released.
fn block<T: Send>(
    py: Python<'_>,
    work: impl Future<Output = Result<T, CliError>> + Send,
) -> PyResult<T> {
    py.detach(|| runtime().and_then(|rt| rt.block_on(work)))
        .map_err(|err| to_python(py, err))
}

fn seconds(py: Python<'_>, field: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        python_error(
            py,
            "InvalidInput",
            format!("{field} {value}: expected a number of seconds, zero or more"),
        )
    })
}

/// A derived cache key with every component it was derived from (docs/KEY-SPEC.md 7.5).
#[pyclass(frozen, module = "recall", name = "Key")]
pub struct Key {
    derived: DerivedKey,
    /// The key-material JSON, made on first use when the key came from [`scalar_key`].
    material: OnceLock<String>,
    /// The arguments of `recall.key` that [`scalar_key`] derived the key from, to make the
    /// key-material JSON from with `recall._key.material_text` when it is asked for.
    arguments: Option<Py<PyTuple>>,
}

#[pymethods]
impl Key {
    /// The key: 64 lowercase hexadecimal characters.
    #[getter]
    fn hex(&self) -> String {
        self.derived.key.to_hex()
    }

    /// The project.
    #[getter]
    fn project(&self) -> &str {
        &self.derived.project
    }

    /// The domain.
    #[getter]
    fn domain(&self) -> &str {
        &self.derived.domain
    }

    /// The task name.
    #[getter]
    fn task(&self) -> &str {
        &self.derived.task
    }

    /// The cache_version, trimmed.
    #[getter]
    fn cache_version(&self) -> &str {
        &self.derived.cache_version
    }

    /// The salt, if any.
    #[getter]
    fn salt(&self) -> Option<&str> {
        self.derived.salt.as_deref()
    }

    /// Digest of the task signature.
    #[getter]
    fn signature_digest(&self) -> String {
        self.derived.signature_digest.to_hex()
    }

    /// Digest over the value digests of the inputs that are not ignored.
    #[getter]
    fn inputs_digest(&self) -> String {
        self.derived.inputs_digest.to_hex()
    }

    /// Each input's value digest by name (`None` for an ignored input).
    #[getter]
    fn input_digests(&self) -> Vec<(String, Option<String>)> {
        self.derived
            .inputs
            .iter()
            .map(|(name, input)| (name.clone(), input.digest.map(|d| d.to_hex())))
            .collect()
    }

    /// Each declared output's name and type text, sorted by name.
    #[getter]
    fn outputs(&self) -> Vec<(String, String)> {
        self.derived
            .outputs
            .iter()
            .map(|(name, ty)| (name.clone(), ty.to_string()))
            .collect()
    }

    /// The key material this key was derived from, as the JSON of docs/KEY-SPEC.md section 8
    /// (`recall key --spec FILE` derives the same key from it).
    fn material_json(&self, py: Python<'_>) -> PyResult<String> {
        if let Some(text) = self.material.get() {
            return Ok(text.clone());
        }
        let Some(arguments) = &self.arguments else {
            return Ok(String::new()); // not reached: a key has one or the other
        };
        let text: String = py
            .import("recall._key")?
            .getattr("material_text")?
            .call1(arguments.bind(py))?
            .extract()?;
        Ok(self.material.get_or_init(|| text).clone())
    }

    /// The derivation result as `recall key --json` prints it (docs/KEY-SPEC.md section 7.5).
    fn json(&self) -> String {
        serde_json::to_string_pretty(&self.derived).unwrap_or_default()
    }

    fn __str__(&self) -> String {
        self.hex()
    }

    fn __repr__(&self) -> String {
        format!(
            "recall.Key('{}', project={:?}, domain={:?}, task={:?})",
            self.hex(),
            self.derived.project,
            self.derived.domain,
            self.derived.task
        )
    }

    fn __eq__(&self, other: PyRef<'_, Key>) -> bool {
        self.derived == other.derived
    }

    fn __hash__(&self) -> u64 {
        let bytes = self.derived.key.as_bytes();
        u64::from_le_bytes([
            bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
        ])
    }
}

/// Derives a key from key material JSON (docs/KEY-SPEC.md section 8); each name in `ignore`
/// is then marked ignored (an undeclared name is an error). Relative paths resolve against
/// `base`. Hashes files and directories with the GIL released.
#[pyfunction]
fn derive_key(
    py: Python<'_>,
    material: String,
    ignore: Vec<String>,
    base: PathBuf,
) -> PyResult<Key> {
    let derived = py.detach(|| -> Result<DerivedKey, CliError> {
        let mut parsed = KeyMaterial::from_json(&material, &base)?;
        for name in &ignore {
            parsed.ignore_input(name)?;
        }
        Ok(parsed.derive()?)
    });
    match derived {
        Ok(derived) => Ok(Key {
            derived,
            material: OnceLock::from(material),
            arguments: None,
        }),
        Err(err) => Err(to_python(py, err)),
    }
}

/// A type object of the `datetime` module, imported once.
fn datetime_type<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
) -> PyResult<&'py Bound<'py, PyType>> {
    cell.import(py, "datetime", name)
}

/// The KEY-SPEC type `recall._types.infer` gives a value of one of the common scalar Python
/// types (exactly `bool`, `int`, `float`, `str`, `bytes`, `datetime.datetime`,
/// `datetime.timedelta`), or None for any other.
fn scalar_type(value: &Bound<'_, PyAny>) -> PyResult<Option<ValueType>> {
    static DATETIME: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    static TIMEDELTA: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let py = value.py();
    Ok(Some(if value.is_exact_instance_of::<PyBool>() {
        ValueType::Bool
    } else if value.is_exact_instance_of::<PyInt>() {
        ValueType::Int
    } else if value.is_exact_instance_of::<PyFloat>() {
        ValueType::Float
    } else if value.is_exact_instance_of::<PyString>() {
        ValueType::String
    } else if value.is_exact_instance_of::<PyBytes>() {
        ValueType::Bytes
    } else if value.is_exact_instance(datetime_type(py, &DATETIME, "datetime")?.as_any()) {
        ValueType::Datetime
    } else if value.is_exact_instance(datetime_type(py, &TIMEDELTA, "timedelta")?.as_any()) {
        ValueType::Duration
    } else {
        return Ok(None);
    }))
}

/// Days, seconds and microseconds of a `datetime.timedelta`, in nanoseconds.
fn timedelta_ns(delta: &Bound<'_, PyAny>) -> PyResult<i128> {
    let days: i128 = delta.getattr("days")?.extract()?;
    let seconds: i128 = delta.getattr("seconds")?.extract()?;
    let micros: i128 = delta.getattr("microseconds")?.extract()?;
    Ok(((days * 86_400 + seconds) * 1_000_000 + micros) * 1_000)
}

/// The recall-key value of a Python value of type `ty` (from [`scalar_type`]): the value the
/// JSON path reads from the form `recall._types.encode` writes. None where that path does
/// something else (an int beyond 64 bits, a float that is not finite, a str that is not
/// valid UTF-8, a naive datetime, one whose UTC date has no four-digit year, a duration
/// beyond 64 bits), so that it runs and says what it says about the value.
fn scalar_value(ty: &ValueType, value: &Bound<'_, PyAny>) -> PyResult<Option<Value>> {
    static EPOCH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    // 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z in seconds since the epoch.
    const FIRST: i128 = -62_135_596_800;
    const LAST: i128 = 253_402_300_799;
    Ok(match ty {
        ValueType::Bool => Some(Value::Bool(value.extract()?)),
        ValueType::Int => value.extract::<i64>().ok().map(Value::Int),
        ValueType::Float => {
            let number: f64 = value.extract()?;
            number.is_finite().then_some(Value::Float(number))
        }
        ValueType::String => value
            .cast::<PyString>()?
            .to_cow()
            .ok()
            .map(|text| Value::String(text.into_owned())),
        ValueType::Bytes => Some(Value::Bytes(value.cast::<PyBytes>()?.as_bytes().to_vec())),
        ValueType::Datetime => {
            if value.call_method0("utcoffset")?.is_none() {
                return Ok(None);
            }
            let py = value.py();
            let epoch = EPOCH.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
                let module = py.import("datetime")?;
                let utc = module.getattr("timezone")?.getattr("utc")?;
                let epoch = module
                    .getattr("datetime")?
                    .call((1970, 1, 1, 0, 0, 0, 0, utc), None)?;
                Ok(epoch.unbind())
            })?;
            // Aware datetimes subtract as instants, with the same utcoffset() that
            // `astimezone(timezone.utc)` uses in recall._types.rfc3339.
            let nanos = timedelta_ns(&value.sub(epoch.bind(py))?)?;
            let seconds = nanos.div_euclid(1_000_000_000);
            if !(FIRST..=LAST).contains(&seconds) {
                return Ok(None);
            }
            Some(Value::Datetime {
                seconds: seconds as i64,
                nanos: nanos.rem_euclid(1_000_000_000) as u32,
            })
        }
        ValueType::Duration => i64::try_from(timedelta_ns(value)?)
            .ok()
            .map(Value::Duration),
        _ => None,
    })
}

/// An output type `recall._key.output_type` turns into exactly this type with no message:
/// a canonical KEY-SPEC type text, or the Python type `int`, `float`, `bool`, `str` or
/// `bytes`. None for anything else.
fn plain_output_type(spec: &Bound<'_, PyAny>) -> PyResult<Option<ValueType>> {
    if let Ok(text) = spec.cast_exact::<PyString>() {
        let Ok(text) = text.to_cow() else {
            return Ok(None);
        };
        return Ok(ValueType::parse(&text)
            .ok()
            .filter(|ty| ty.to_string() == text));
    }
    let py = spec.py();
    Ok(Some(if spec.is(py.get_type::<PyInt>()) {
        ValueType::Int
    } else if spec.is(py.get_type::<PyFloat>()) {
        ValueType::Float
    } else if spec.is(py.get_type::<PyBool>()) {
        ValueType::Bool
    } else if spec.is(py.get_type::<PyString>()) {
        ValueType::String
    } else if spec.is(py.get_type::<PyBytes>()) {
        ValueType::Bytes
    } else {
        return Ok(None);
    }))
}

/// A `str` argument that is exactly a `str` of valid UTF-8.
fn plain_str<'a>(value: &'a Bound<'_, PyAny>) -> Option<std::borrow::Cow<'a, str>> {
    value.cast_exact::<PyString>().ok()?.to_cow().ok()
}

/// A dict argument that is exactly a `dict`, or None (no entries) as an empty one.
fn plain_dict<'py>(value: &Bound<'py, PyAny>) -> Option<Bound<'py, PyDict>> {
    match value.is_none() {
        true => Some(PyDict::new(value.py())),
        false => value.cast_exact::<PyDict>().ok().cloned(),
    }
}

/// The fast path of `recall.key` for the common case, arguments of the plain Python types
/// (str names, dicts of inputs of the scalar types of [`scalar_type`], output types of
/// [`plain_output_type`], a list or tuple of ignored names, a str salt or None): the key
/// material is built with recall-key's builder, in the order `KeyMaterial::from_json` reads
/// its JSON, so the key and every error are the same as `recall._key.derive`'s. Returns None
/// for anything else: then the general path runs.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn scalar_key(
    py: Python<'_>,
    project: &Bound<'_, PyAny>,
    domain: &Bound<'_, PyAny>,
    task: &Bound<'_, PyAny>,
    cache_version: &Bound<'_, PyAny>,
    inputs: &Bound<'_, PyAny>,
    outputs: &Bound<'_, PyAny>,
    ignore: &Bound<'_, PyAny>,
    salt: &Bound<'_, PyAny>,
) -> PyResult<Option<Key>> {
    let (Some(project_text), Some(domain_text), Some(task_text), Some(version_text)) = (
        plain_str(project),
        plain_str(domain),
        plain_str(task),
        plain_str(cache_version),
    ) else {
        return Ok(None);
    };
    let salt_text = match salt.is_none() {
        true => None,
        false => match plain_str(salt) {
            Some(text) => Some(text),
            None => return Ok(None),
        },
    };
    let ignore_items: Vec<Bound<'_, PyAny>> = if let Ok(list) = ignore.cast_exact::<PyList>() {
        list.iter().collect()
    } else if let Ok(tuple) = ignore.cast_exact::<PyTuple>() {
        tuple.iter().collect()
    } else {
        return Ok(None);
    };
    let mut ignored = Vec::with_capacity(ignore_items.len());
    for name in &ignore_items {
        match plain_str(name) {
            Some(name) => ignored.push(name.into_owned()),
            None => return Ok(None),
        }
    }
    let (Some(input_dict), Some(output_dict)) = (plain_dict(inputs), plain_dict(outputs)) else {
        return Ok(None);
    };
    let mut input_list = Vec::with_capacity(input_dict.len());
    for (name, value) in input_dict.iter() {
        let (Some(name), Some(ty)) = (plain_str(&name), scalar_type(&value)?) else {
            return Ok(None);
        };
        let source = if ignored.iter().any(|n| *n == name) {
            InputSource::Ignored
        } else {
            match scalar_value(&ty, &value)? {
                Some(value) => InputSource::Value(value),
                None => return Ok(None),
            }
        };
        input_list.push((name.into_owned(), ty, source));
    }
    let mut output_list = Vec::with_capacity(output_dict.len());
    for (name, spec) in output_dict.iter() {
        let (Some(name), Some(ty)) = (plain_str(&name), plain_output_type(&spec)?) else {
            return Ok(None);
        };
        output_list.push((name.into_owned(), ty));
    }
    let derived = py.detach(|| -> Result<DerivedKey, CliError> {
        let mut material =
            KeyMaterial::new(&project_text, &domain_text, &task_text, &version_text)?;
        for (name, ty, source) in input_list {
            material.add_input(&name, ty, source)?;
        }
        for (name, ty) in output_list {
            material.add_output(&name, ty)?;
        }
        if let Some(salt) = &salt_text {
            material.set_salt(salt)?;
        }
        for name in &ignored {
            material.ignore_input(name)?;
        }
        Ok(material.derive()?)
    });
    let derived = derived.map_err(|err| to_python(py, err))?;
    let arguments = PyTuple::new(
        py,
        [
            project.clone(),
            domain.clone(),
            task.clone(),
            cache_version.clone(),
            input_dict.copy()?.into_any(),
            output_dict.copy()?.into_any(),
            PyTuple::new(py, ignore_items)?.into_any(),
            salt.clone(),
        ],
    )?;
    Ok(Some(Key {
        derived,
        material: OnceLock::new(),
        arguments: Some(arguments.unbind()),
    }))
}

/// Checks a declared type's text; returns its canonical text or raises `InvalidInput`
/// naming `field`.
#[pyfunction]
fn check_type(py: Python<'_>, field: &str, text: &str) -> PyResult<String> {
    recall_key::parse_type(field, text)
        .map(|ty| ty.to_string())
        .map_err(|err| to_python(py, err.into()))
}

/// `<hostname>/<pid>`, the lease owner id `recall run` uses.
#[pyfunction]
fn lease_owner() -> String {
    owner_id()
}

/// How to make the [`CacheClient`] of a [`Client`]: again in a forked child, whose copy of
/// the parent's runtime threads and pooled connections does not work.
enum Recipe {
    /// A store URL with backend options, opened (its descriptor read) on first use.
    Store {
        url: String,
        options: Vec<(String, String)>,
        max_age: Option<Duration>,
        /// Recorded in manifests; by default `<host>/<pid>` of the process that opens.
        producer: Option<String>,
    },
    /// recalld.
    Daemon {
        url: String,
        token: Option<String>,
        max_age: Option<Duration>,
    },
}

/// The client opened in one process, or being opened.
type Opened = Arc<tokio::sync::OnceCell<Arc<dyn CacheClient>>>;

/// One cache, a store or a daemon, behind recall's `CacheClient`.
#[pyclass(frozen, module = "recall._native", name = "Client")]
pub struct Client {
    recipe: Recipe,
    timeout: Duration,
    describe: String,
    /// The process the client was opened in, and the client.
    opened: Mutex<(u32, Opened)>,
}

impl Client {
    fn new(recipe: Recipe, timeout: Duration, describe: String) -> Client {
        Client {
            recipe,
            timeout,
            describe,
            opened: Mutex::new((std::process::id(), Opened::default())),
        }
    }

    /// What output paths must never replace: for a `file://` store, its root.
    fn protected(&self) -> outputs::Protected {
        let store_root = match &self.recipe {
            Recipe::Store { url, .. } => outputs::file_store_root(url),
            Recipe::Daemon { .. } => None,
        };
        outputs::Protected {
            store_root,
            ..outputs::Protected::default()
        }
    }

    /// The client of this process, opened on first use (and again after a failed opening).
    async fn client(&self) -> Result<Arc<dyn CacheClient>, CliError> {
        let cell = {
            let mut opened = self.opened.lock().unwrap_or_else(|e| e.into_inner());
            if opened.0 != std::process::id() {
                *opened = (std::process::id(), Opened::default());
            }
            Arc::clone(&opened.1)
        };
        cell.get_or_try_init(|| self.open()).await.cloned()
    }

    async fn open(&self) -> Result<Arc<dyn CacheClient>, CliError> {
        match &self.recipe {
            Recipe::Daemon {
                url,
                token,
                max_age,
            } => Ok(Arc::new(HttpClient::new(url, token.clone(), *max_age)?)),
            Recipe::Store {
                url,
                options,
                max_age,
                producer,
            } => {
                let mut config = StoreConfig {
                    max_age: *max_age,
                    ..StoreConfig::default()
                };
                if let Some(producer) = producer {
                    config.producer = producer.clone();
                }
                let Backend { objects, root } = open_backend(url, options)?;
                let opened = Store::from_object_store(objects, &root, config);
                let store =
                    with_timeout(self.timeout, "open store", async { Ok(opened.await?) }).await?;
                Ok(Arc::new(DirectClient::from_store(store, url)))
            }
        }
    }
}

fn open_backend(url: &str, options: &[(String, String)]) -> Result<Backend, CliError> {
    let options: Vec<(&str, &str)> = options
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Ok(open_url_with(url, &options)?)
}

fn entry_of(derived: &DerivedKey) -> Result<EntryRef, CliError> {
    Ok(EntryRef::of(derived)?)
}

fn scratch_dir(parent: Option<&Path>) -> Result<tempfile::TempDir, CliError> {
    let parent = match parent {
        Some(path) => outputs::parent_dir(path)?,
        None => std::env::temp_dir(),
    };
    tempfile::Builder::new()
        .prefix(".recall-fetch-")
        .tempdir_in(&parent)
        .map_err(|e| CliError::local(&parent, e))
}

#[pymethods]
impl Client {
    /// A client on the store at `url` (file://, s3://, gs://, az://, memory://) with backend
    /// `options` (object_store configuration keys, e.g. `aws_endpoint`). The URL and options
    /// are checked now; the store is opened (its descriptor read) on first use.
    #[staticmethod]
    #[pyo3(signature = (url, storage_timeout, max_age=None, producer=None, options=Vec::new()))]
    fn store(
        py: Python<'_>,
        url: String,
        storage_timeout: f64,
        max_age: Option<f64>,
        producer: Option<String>,
        options: Vec<(String, String)>,
    ) -> PyResult<Client> {
        let timeout = seconds(py, "storage_timeout", storage_timeout)?;
        let max_age = max_age.map(|s| seconds(py, "max_age", s)).transpose()?;
        // Checked now; opened again on first use in each process.
        open_backend(&url, &options).map_err(|err| to_python(py, err))?;
        Ok(Client::new(
            Recipe::Store {
                url: url.clone(),
                options,
                max_age,
                producer,
            },
            timeout,
            format!("store {url}"),
        ))
    }

    /// A client on recalld at `url` (http:// or https://), with an optional bearer token.
    #[staticmethod]
    #[pyo3(signature = (url, token, storage_timeout, max_age=None))]
    fn daemon(
        py: Python<'_>,
        url: String,
        token: Option<String>,
        storage_timeout: f64,
        max_age: Option<f64>,
    ) -> PyResult<Client> {
        let timeout = seconds(py, "storage_timeout", storage_timeout)?;
        let max_age = max_age.map(|s| seconds(py, "max_age", s)).transpose()?;
        let client =
            HttpClient::new(&url, token.clone(), max_age).map_err(|err| to_python(py, err))?;
        Ok(Client::new(
            Recipe::Daemon {
                url,
                token,
                max_age,
            },
            timeout,
            client.describe(),
        ))
    }

    /// One line naming the store or daemon.
    fn describe(&self) -> String {
        self.describe.clone()
    }

    /// Looks the entry of `key` up: `(manifest JSON, None)` on a hit, `(None, why)` on a miss.
    fn lookup(
        &self,
        py: Python<'_>,
        key: PyRef<'_, Key>,
    ) -> PyResult<(Option<String>, Option<String>)> {
        let derived = key.derived.clone();
        block(py, async move {
            let entry = entry_of(&derived)?;
            let client = self.client().await?;
            Ok(
                match with_timeout(self.timeout, "lookup", client.lookup(&entry)).await? {
                    Lookup::Hit(m) => (Some(manifest_json(&m, false).to_string()), None),
                    Lookup::Miss(miss) => (None, Some(miss_text(&miss))),
                },
            )
        })
    }

    /// The manifest at the entry's path even if it expired (`recall inspect --json`), or None.
    fn inspect(&self, py: Python<'_>, key: PyRef<'_, Key>) -> PyResult<Option<String>> {
        let derived = key.derived.clone();
        block(py, async move {
            let entry = entry_of(&derived)?;
            let client = self.client().await?;
            let stored = with_timeout(self.timeout, "lookup", client.stored_entry(&entry)).await?;
            Ok(stored.map(|s| manifest_json(&s.manifest, s.expired).to_string()))
        })
    }

    /// Fetches the entry's outputs, verified, and puts each named one in place at its path
    /// atomically (a file is renamed into place, a dir swapped in whole). Returns the
    /// manifest JSON, or None on a miss (nothing is written then).
    fn get(
        &self,
        py: Python<'_>,
        key: PyRef<'_, Key>,
        targets: Vec<(String, PathBuf)>,
    ) -> PyResult<Option<String>> {
        let derived = key.derived.clone();
        block(py, async move {
            let entry = entry_of(&derived)?;
            let client = self.client().await?;
            let manifest = match with_timeout(self.timeout, "lookup", client.lookup(&entry)).await?
            {
                Lookup::Hit(m) => m,
                Lookup::Miss(_) => return Ok(None),
            };
            let mut wanted = Vec::with_capacity(targets.len());
            for (name, path) in &targets {
                let Some(output) = manifest.outputs.get(name) else {
                    return Err(CliError::Usage(format!(
                        "output {name:?}: the entry has no such output (it has {})",
                        output_names(&manifest)
                    )));
                };
                wanted.push(OutputPath {
                    name: name.clone(),
                    kind: if output.ty == "dir" {
                        OutputKind::Dir
                    } else {
                        OutputKind::File
                    },
                    path: path.clone(),
                });
            }
            // The CLI's rules for what an output path may replace, checked before anything
            // is fetched or removed: never the working directory, an ancestor of it, or a
            // file:// store.
            let checked = outputs::guard(&wanted, &self.protected())?;
            let staging = scratch_dir(checked.first().map(|t| t.path.as_path()))?;
            let manifest = match client.fetch(&entry, staging.path()).await? {
                Lookup::Hit(m) => m,
                Lookup::Miss(_) => return Ok(None),
            };
            // All or nothing: every output staged beside its target, then all renamed in.
            let mut staged = Vec::with_capacity(checked.len());
            for output in &checked {
                let fetched = staging.path().join(&output.name);
                staged.push(match output.kind {
                    OutputKind::Dir => outputs::stage_dir(&fetched, &output.path)?,
                    OutputKind::File => outputs::stage_file(&fetched, &output.path)?,
                });
            }
            outputs::put_in_place(staged)?;
            Ok(Some(manifest_json(&manifest, false).to_string()))
        })
    }

    /// The verified bytes of one output (a dir output's archive), or None on a miss.
    fn get_bytes<'py>(
        &self,
        py: Python<'py>,
        key: PyRef<'_, Key>,
        name: String,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let derived = key.derived.clone();
        let bytes = block(py, async move {
            let entry = entry_of(&derived)?;
            let client = self.client().await?;
            let staging = scratch_dir(None)?;
            let manifest = match client.fetch(&entry, staging.path()).await? {
                Lookup::Hit(m) => m,
                Lookup::Miss(_) => return Ok(None),
            };
            if !manifest.outputs.contains_key(&name) {
                return Err(CliError::Usage(format!(
                    "output {name:?}: the entry has no such output (it has {})",
                    recall_cli::print::output_names(&manifest)
                )));
            }
            let path = staging.path().join(&name);
            std::fs::read(&path)
                .map(Some)
                .map_err(|e| CliError::local(&path, e))
        })?;
        Ok(bytes.map(|b| PyBytes::new(py, &b)))
    }

    /// Publishes outputs as the entry of `key`: `files` by path (a `dir` output's directory is
    /// archived), `blobs` from memory. Returns whether this call's manifest became the entry
    /// and one `CACHE_NONDETERMINISTIC` line per output that differs from the entry met.
    #[pyo3(signature = (key, files, blobs, overwrite=false))]
    fn publish(
        &self,
        py: Python<'_>,
        key: PyRef<'_, Key>,
        files: Vec<(String, PathBuf)>,
        blobs: Vec<(String, Bound<'_, PyBytes>)>,
        overwrite: bool,
    ) -> PyResult<(bool, Vec<String>)> {
        let derived = key.derived.clone();
        let blobs: Vec<(String, Vec<u8>)> = blobs
            .into_iter()
            .map(|(name, bytes)| (name, bytes.as_bytes().to_vec()))
            .collect();
        block(py, async move {
            let scratch = tempfile::Builder::new()
                .prefix("recall-publish-")
                .tempdir()
                .map_err(|e| CliError::local(&std::env::temp_dir(), e))?;
            let mut paths = Vec::new();
            for (name, bytes) in blobs {
                if !derived.outputs.contains_key(&name) {
                    return Err(undeclared(&derived, &name));
                }
                let path = scratch.path().join(paths.len().to_string());
                std::fs::write(&path, bytes).map_err(|e| CliError::local(&path, e))?;
                paths.push(OutputPath {
                    name,
                    kind: OutputKind::File,
                    path,
                });
            }
            for (name, path) in files {
                let kind = match derived.outputs.get(&name) {
                    None => return Err(undeclared(&derived, &name)),
                    Some(ValueType::Dir) => OutputKind::Dir,
                    Some(_) => OutputKind::File,
                };
                let output = OutputPath { name, kind, path };
                outputs::check_produced(&output).map_err(CliError::Usage)?;
                paths.push(output);
            }
            let client = self.client().await?;
            let quiet = Reporter { quiet: true };
            let (outcome, _) =
                publish_outputs(client.as_ref(), &derived, &paths, overwrite, quiet).await?;
            let short = derived.key.to_hex();
            // The text `recall run` prints (recall_cli::print::warn_nondeterminism).
            let lines = outcome
                .observed()
                .map(|record| {
                    record
                        .outputs
                        .iter()
                        .map(|(name, change)| {
                            format!(
                                "CACHE_NONDETERMINISTIC {short}: output {name:?} was {} and is \
                                 now {} for the same key: the task is not deterministic",
                                change.previous, change.current
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok((outcome.is_published(), lines))
        })
    }

    /// Takes, extends or reports the cache_serialize lease of the entry:
    /// `(granted, owner, expires_at_ms)`.
    fn lease(
        &self,
        py: Python<'_>,
        key: PyRef<'_, Key>,
        owner: String,
        heartbeat: f64,
    ) -> PyResult<(bool, String, i64)> {
        let derived = key.derived.clone();
        let heartbeat = seconds(py, "heartbeat", heartbeat)?;
        block(py, async move {
            let entry = entry_of(&derived)?;
            let client = self.client().await?;
            let grant = with_timeout(
                self.timeout,
                "lease",
                client.lease(&entry, &owner, heartbeat),
            )
            .await?;
            Ok((grant.granted, grant.owner, grant.expires_at_ms))
        })
    }

    /// Releases the lease if `owner` holds it; returns whether it did.
    fn release(&self, py: Python<'_>, key: PyRef<'_, Key>, owner: String) -> PyResult<bool> {
        let derived = key.derived.clone();
        block(py, async move {
            let entry = entry_of(&derived)?;
            let client = self.client().await?;
            with_timeout(
                self.timeout,
                "lease release",
                client.release(&entry, &owner),
            )
            .await
        })
    }

    /// Evicts one entry (or counts what would go): JSON with `entries`, `markers`, `leases`,
    /// `blobs`.
    #[pyo3(signature = (key, dry_run=false))]
    fn evict(&self, py: Python<'_>, key: PyRef<'_, Key>, dry_run: bool) -> PyResult<String> {
        let derived = key.derived.clone();
        block(py, async move {
            let entry = entry_of(&derived)?;
            self.evict_request(EvictRequest {
                tenant: Some(entry.tenant),
                target: EvictTarget::Key(entry.key),
                dry_run,
            })
            .await
        })
    }

    /// Evicts every entry of a task, or of one of its cache_versions.
    #[pyo3(signature = (project, domain, task, cache_version=None, dry_run=false))]
    fn evict_task(
        &self,
        py: Python<'_>,
        project: String,
        domain: String,
        task: String,
        cache_version: Option<String>,
        dry_run: bool,
    ) -> PyResult<String> {
        block(py, async move {
            let tenant = Tenant::new(&project, &domain)?;
            self.evict_request(EvictRequest {
                tenant: Some(tenant),
                target: EvictTarget::Task {
                    task,
                    cache_version,
                },
                dry_run,
            })
            .await
        })
    }

    /// Why the key misses (`recall explain --json`).
    fn explain(&self, py: Python<'_>, key: PyRef<'_, Key>) -> PyResult<String> {
        let derived = key.derived.clone();
        block(py, async move {
            let client = self.client().await?;
            let explanation = explain(client.as_ref(), &derived).await?;
            serde_json::to_string(&explanation).map_err(|e| CliError::Usage(e.to_string()))
        })
    }
}

impl Client {
    async fn evict_request(&self, request: EvictRequest) -> Result<String, CliError> {
        let client = self.client().await?;
        let r = client.evict(&request).await?;
        Ok(json!({
            "dry_run": request.dry_run,
            "entries": r.entries, "markers": r.markers, "leases": r.leases, "blobs": r.blobs,
        })
        .to_string())
    }
}

fn undeclared(derived: &DerivedKey, name: &str) -> CliError {
    CliError::Usage(format!(
        "output {name:?}: not a declared output of the key (it declares {})",
        derived
            .outputs
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// recall's native module: key derivation and cache clients.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Key>()?;
    module.add_class::<Client>()?;
    module.add_function(wrap_pyfunction!(derive_key, module)?)?;
    module.add_function(wrap_pyfunction!(scalar_key, module)?)?;
    module.add_function(wrap_pyfunction!(check_type, module)?)?;
    module.add_function(wrap_pyfunction!(lease_owner, module)?)?;
    Ok(())
}
