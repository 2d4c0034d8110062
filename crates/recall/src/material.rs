//! Turning [`MaterialArgs`] (flags, `--spec` JSON, `--job` TOML) into key material, the
//! declared outputs' local paths and the command to run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use recall_key::{InputSource, KeyMaterial, Value, parse_type};
use serde_json::json;

use crate::cli::MaterialArgs;
use crate::error::CliError;
use crate::job::JobFile;
use crate::key_args::KeyFlags;
use crate::outputs::{OutputFlag, OutputKind, OutputPath};

/// Key material with everything else a run needs.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The key material.
    pub material: KeyMaterial,
    /// Local paths of outputs, by name (from `--output` and the job file).
    pub paths: BTreeMap<String, PathBuf>,
    /// The job file's command, if it has one.
    pub command: Option<Vec<String>>,
    /// The job file's directory, with `--job FILE`.
    pub job_dir: Option<PathBuf>,
}

impl MaterialArgs {
    /// Builds the key material; relative paths on the command line resolve against `cwd`.
    pub fn resolve(&self, cwd: &Path) -> Result<Resolved, CliError> {
        let flags: Vec<OutputFlag> = self
            .outputs
            .iter()
            .map(|o| OutputFlag::parse(o))
            .collect::<Result<_, _>>()?;
        let key_flags = KeyFlags {
            inputs: self.inputs.clone(),
            ignore: self.ignore.clone(),
            input_hashes: self.input_hashes.clone(),
            salt: self.salt.clone(),
            ..KeyFlags::default()
        };
        let mut paths = BTreeMap::new();
        let mut command = None;
        let mut job_dir = None;
        let mut material = if let Some(spec) = &self.spec {
            let text = std::fs::read_to_string(spec)
                .map_err(|e| CliError::Usage(format!("--spec {}: {e}", spec.display())))?;
            let base = match spec.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            KeyMaterial::from_json(&text, base)?
        } else if let Some(job_path) = &self.job {
            let job = JobFile::read(job_path)?;
            let pick = |flag: &Option<String>, file: &Option<String>, name: &str| {
                flag.clone().or_else(|| file.clone()).ok_or_else(|| {
                    CliError::Usage(format!(
                        "missing --{} (or `{name}` in the job file {})",
                        name.replace('_', "-"),
                        job_path.display()
                    ))
                })
            };
            let mut doc = json!({
                "project": pick(&self.project, &job.project, "project")?,
                "domain": pick(&self.domain, &job.domain, "domain")?,
                "task": pick(&self.task, &job.task, "task")?,
                "cache_version": pick(&self.cache_version, &job.cache_version, "cache_version")?,
                "inputs": job.inputs_json()?,
                "outputs": job.outputs.iter()
                    .map(|(name, o)| json!({"name": name, "type": o.ty}))
                    .collect::<Vec<_>>(),
            });
            if let Some(salt) = &job.salt {
                doc["salt"] = json!(salt);
            }
            for (name, output) in &job.outputs {
                if let Some(path) = &output.path {
                    paths.insert(name.clone(), job.base.join(path));
                }
            }
            command = job.command.clone();
            job_dir = Some(job.base.clone());
            KeyMaterial::from_json(&doc.to_string(), &job.base)
                .map_err(|e| CliError::Usage(format!("--job {}: {e}", job_path.display())))?
        } else {
            let need = |value: &Option<String>, flag: &str| {
                value.clone().ok_or_else(|| {
                    CliError::Usage(format!(
                        "missing {flag} (or give --spec FILE or --job FILE)"
                    ))
                })
            };
            KeyMaterial::new(
                &need(&self.project, "--project")?,
                &need(&self.domain, "--domain")?,
                &need(&self.task, "--task")?,
                &need(&self.cache_version, "--cache-version")?,
            )?
        };
        key_flags.apply(&mut material, cwd)?;
        for flag in &flags {
            if let Some(ty) = &flag.ty {
                let ty = parse_type(&format!("output {:?}", flag.name), ty)?;
                material.add_output(&flag.name, ty)?;
            }
            if let Some(path) = &flag.path {
                paths.insert(flag.name.clone(), cwd.join(path));
            }
        }
        for name in paths.keys() {
            if !material.outputs().iter().any(|(n, _)| n == name) {
                return Err(CliError::Usage(format!(
                    "--output {name:?}: not a declared output (declare it as NAME:TYPE=PATH)"
                )));
            }
        }
        Ok(Resolved {
            material,
            paths,
            command,
            job_dir,
        })
    }
}

impl Resolved {
    /// The local paths of the `file` and `dir` inputs hashed from their values (also those
    /// inside lists and maps).
    pub fn input_paths(&self) -> Vec<PathBuf> {
        fn collect(value: &Value, into: &mut Vec<PathBuf>) {
            match value {
                Value::File(path) | Value::Dir(path) => into.push(path.clone()),
                Value::List(items) => items.iter().for_each(|v| collect(v, into)),
                Value::Map(entries) => entries.iter().for_each(|(_, v)| collect(v, into)),
                _ => {}
            }
        }
        let mut paths = Vec::new();
        for input in self.material.inputs() {
            if let InputSource::Value(value) = &input.source {
                collect(value, &mut paths);
            }
        }
        paths
    }

    /// Every declared output with its kind and path: each must be `file` or `dir` and have
    /// a path (for `run` and `put`).
    pub fn output_paths(&self) -> Result<Vec<OutputPath>, CliError> {
        self.material
            .outputs()
            .iter()
            .map(|(name, ty)| {
                let kind = OutputKind::of(ty).ok_or_else(|| {
                    CliError::Usage(format!(
                        "output {name:?} has type {ty}: run and put handle only file and dir \
                         outputs (a command produces files)"
                    ))
                })?;
                let path = self.paths.get(name).ok_or_else(|| {
                    CliError::Usage(format!(
                        "output {name:?} has no path: give --output {name}:{ty}=PATH"
                    ))
                })?;
                Ok(OutputPath {
                    name: name.clone(),
                    kind,
                    path: path.clone(),
                })
            })
            .collect()
    }
}
