//! `recall explain`: why key material misses, component by component, against the entries
//! that exist for the same task (docs/KEY-SPEC.md section 7.5 digests in every manifest).

use std::collections::BTreeSet;

use recall_key::{DerivedKey, DigestSource};
use recall_store::{EntryRef, Lookup, Manifest, Miss, system_time_ms};
use serde::Serialize;

use crate::client::CacheClient;
use crate::error::CliError;

/// One component that differs between the material and a stored entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "component", rename_all = "snake_case")]
pub enum Difference {
    /// The cache_version differs.
    CacheVersion {
        /// This material's.
        ours: String,
        /// The entry's.
        theirs: String,
    },
    /// The salt differs.
    Salt {
        /// This material's.
        ours: Option<String>,
        /// The entry's.
        theirs: Option<String>,
    },
    /// An input or output was added, removed or retyped: the signature differs.
    Signature {
        /// `input` or `output`.
        side: &'static str,
        /// Its name.
        name: String,
        /// `added`, `removed` or `retyped`.
        change: &'static str,
        /// This material's type, if it has the name.
        ours: Option<String>,
        /// The entry's type, if it has the name.
        theirs: Option<String>,
    },
    /// An input's value differs.
    InputValue {
        /// The input name.
        name: String,
    },
    /// An input is ignored on one side only.
    InputIgnored {
        /// The input name.
        name: String,
        /// Whether this material ignores it.
        ours: bool,
    },
}

impl Difference {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Difference::CacheVersion { ours, theirs } => {
                format!("cache_version differs: {ours:?} here, {theirs:?} stored")
            }
            Difference::Salt { ours, theirs } => {
                format!("salt differs: {ours:?} here, {theirs:?} stored")
            }
            Difference::Signature {
                side,
                name,
                change,
                ours,
                theirs,
            } => match *change {
                "added" => format!(
                    "signature differs: {side} {name:?} ({}) was added",
                    ours.as_deref().unwrap_or("?")
                ),
                "removed" => format!(
                    "signature differs: {side} {name:?} ({}) was removed",
                    theirs.as_deref().unwrap_or("?")
                ),
                _ => format!(
                    "signature differs: {side} {name:?} was retyped from {} to {}",
                    theirs.as_deref().unwrap_or("?"),
                    ours.as_deref().unwrap_or("?")
                ),
            },
            Difference::InputValue { name } => format!("input {name:?} has a different value"),
            Difference::InputIgnored { name, ours } => {
                if *ours {
                    format!("input {name:?} is ignored here but was not in the stored entry")
                } else {
                    format!("input {name:?} was ignored in the stored entry but is not here")
                }
            }
        }
    }
}

/// A stored entry of the same task and how it differs.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// The entry's key.
    pub key: String,
    /// Its cache_version.
    pub cache_version: String,
    /// When it was published (milliseconds since the Unix epoch).
    pub created_at_ms: i64,
    /// Whether it is expired.
    pub expired: bool,
    /// The components that differ.
    pub differences: Vec<Difference>,
}

/// The answer of `recall explain`.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The key of the material.
    pub key: String,
    /// One word: `hit`, `expired`, `cache_version`, `signature`, `inputs`, `salt`,
    /// `other_tenant`, `evicted` or `absent`.
    pub verdict: &'static str,
    /// Lines for people, most useful first.
    pub reasons: Vec<String>,
    /// Entries of the same task in this project/domain, closest first.
    pub candidates: Vec<Candidate>,
    /// Other project/domain pairs that have entries of this task.
    pub other_tenants: Vec<String>,
}

/// Components of `ours` that differ from the stored key `theirs`.
pub fn compare(ours: &DerivedKey, theirs: &DerivedKey) -> Vec<Difference> {
    let mut out = Vec::new();
    if ours.cache_version != theirs.cache_version {
        out.push(Difference::CacheVersion {
            ours: ours.cache_version.clone(),
            theirs: theirs.cache_version.clone(),
        });
    }
    if ours.salt != theirs.salt {
        out.push(Difference::Salt {
            ours: ours.salt.clone(),
            theirs: theirs.salt.clone(),
        });
    }
    let names: BTreeSet<&String> = ours.inputs.keys().chain(theirs.inputs.keys()).collect();
    let mut values = Vec::new();
    for name in names {
        let (a, b) = (ours.inputs.get(name), theirs.inputs.get(name));
        let change = match (a, b) {
            (Some(_), None) => Some("added"),
            (None, Some(_)) => Some("removed"),
            (Some(a), Some(b)) if a.ty != b.ty => Some("retyped"),
            _ => None,
        };
        if let Some(change) = change {
            out.push(Difference::Signature {
                side: "input",
                name: name.clone(),
                change,
                ours: a.map(|i| i.ty.to_string()),
                theirs: b.map(|i| i.ty.to_string()),
            });
            continue;
        }
        if let (Some(a), Some(b)) = (a, b) {
            let (ai, bi) = (
                a.source == DigestSource::Ignored,
                b.source == DigestSource::Ignored,
            );
            if ai != bi {
                values.push(Difference::InputIgnored {
                    name: name.clone(),
                    ours: ai,
                });
            } else if a.digest != b.digest {
                values.push(Difference::InputValue { name: name.clone() });
            }
        }
    }
    let names: BTreeSet<&String> = ours.outputs.keys().chain(theirs.outputs.keys()).collect();
    for name in names {
        let (a, b) = (ours.outputs.get(name), theirs.outputs.get(name));
        let change = match (a, b) {
            (Some(_), None) => "added",
            (None, Some(_)) => "removed",
            (Some(a), Some(b)) if a != b => "retyped",
            _ => continue,
        };
        out.push(Difference::Signature {
            side: "output",
            name: name.clone(),
            change,
            ours: a.map(ToString::to_string),
            theirs: b.map(ToString::to_string),
        });
    }
    if ours.task != theirs.task {
        out.push(Difference::Signature {
            side: "task",
            name: theirs.task.clone(),
            change: "retyped",
            ours: Some(ours.task.clone()),
            theirs: Some(theirs.task.clone()),
        });
    }
    out.extend(values);
    out
}

/// Ranks a candidate: same cache_version and signature first, then fewest differences.
fn rank(candidate: &Candidate) -> (bool, bool, usize, std::cmp::Reverse<i64>) {
    let version = candidate
        .differences
        .iter()
        .any(|d| matches!(d, Difference::CacheVersion { .. }));
    let signature = candidate
        .differences
        .iter()
        .any(|d| matches!(d, Difference::Signature { .. }));
    (
        version,
        signature,
        candidate.differences.len(),
        std::cmp::Reverse(candidate.created_at_ms),
    )
}

/// Explains why `key` hits or misses.
pub async fn explain(client: &dyn CacheClient, key: &DerivedKey) -> Result<Explanation, CliError> {
    let entry = EntryRef::of(key)?;
    let mut explanation = Explanation {
        key: key.key.to_hex(),
        verdict: "absent",
        reasons: Vec::new(),
        candidates: Vec::new(),
        other_tenants: Vec::new(),
    };
    match client.lookup(&entry).await? {
        Lookup::Hit(_) => {
            explanation.verdict = "hit";
            explanation
                .reasons
                .push("the entry exists and is live: a hit".into());
            return Ok(explanation);
        }
        Lookup::Miss(Miss::Expired { created_at_ms }) => {
            explanation.verdict = "expired";
            let age_s = (system_time_ms(std::time::SystemTime::now()) - created_at_ms) / 1000;
            explanation.reasons.push(format!(
                "the entry exists but expired: published {age_s} s ago, past its expiry or \
                 older than the maximum age"
            ));
            return Ok(explanation);
        }
        Lookup::Miss(miss @ (Miss::Undecodable { .. } | Miss::Broken { .. })) => {
            explanation.verdict = "absent";
            explanation.reasons.push(format!(
                "the entry is unusable: {}",
                crate::print::miss_text(&miss)
            ));
            return Ok(explanation);
        }
        Lookup::Miss(Miss::NotFound) => {}
    }

    let tenant = entry.tenant.clone();
    let listed = client.task_entries(&tenant, &key.task, None).await?;
    let mut marker_without_manifest = false;
    for item in &listed {
        let other = EntryRef {
            tenant: tenant.clone(),
            key: item.key,
        };
        if item.key == key.key {
            marker_without_manifest = true;
            continue;
        }
        let Some(stored) = client.stored_entry(&other).await? else {
            continue;
        };
        explanation
            .candidates
            .push(candidate(key, &stored.manifest, stored.expired));
    }
    explanation.candidates.sort_by_key(rank);

    if let Some(best) = explanation.candidates.first() {
        let d = &best.differences;
        explanation.verdict = if d
            .iter()
            .any(|d| matches!(d, Difference::CacheVersion { .. }))
        {
            "cache_version"
        } else if d.iter().any(|d| matches!(d, Difference::Signature { .. })) {
            "signature"
        } else if d.iter().any(|d| matches!(d, Difference::Salt { .. })) {
            "salt"
        } else {
            "inputs"
        };
        explanation.reasons.push(format!(
            "no entry with this key; the closest of {} stored entr{} of task {:?} in {}/{} is {} \
             (cache_version {:?}):",
            explanation.candidates.len(),
            if explanation.candidates.len() == 1 {
                "y"
            } else {
                "ies"
            },
            key.task,
            key.project,
            key.domain,
            best.key,
            best.cache_version
        ));
        for difference in d {
            explanation
                .reasons
                .push(format!("  {}", difference.describe()));
        }
        return Ok(explanation);
    }

    for other in client.tenants().await.unwrap_or_default() {
        if other == tenant {
            continue;
        }
        if let Ok(found) = client.task_entries(&other, &key.task, None).await
            && !found.is_empty()
        {
            explanation
                .other_tenants
                .push(format!("{}/{}", other.project(), other.domain()));
        }
    }
    if marker_without_manifest {
        explanation.verdict = "evicted";
        explanation.reasons.push(
            "the entry was published once (its index marker remains) but its manifest is gone: \
             evicted, removed as broken, or its publish did not finish"
                .into(),
        );
    } else if !explanation.other_tenants.is_empty() {
        explanation.verdict = "other_tenant";
        explanation.reasons.push(format!(
            "task {:?} has no entries in {}/{}; it has some in {} (entries are never shared \
             across projects or domains)",
            key.task,
            key.project,
            key.domain,
            explanation.other_tenants.join(", ")
        ));
    } else {
        explanation.verdict = "absent";
        explanation.reasons.push(format!(
            "task {:?} has no entries in {}/{}: never published, or evicted",
            key.task, key.project, key.domain
        ));
    }
    Ok(explanation)
}

fn candidate(key: &DerivedKey, manifest: &Manifest, expired: bool) -> Candidate {
    Candidate {
        key: manifest.key.key.to_hex(),
        cache_version: manifest.key.cache_version.clone(),
        created_at_ms: manifest.created_at_ms,
        expired,
        differences: compare(key, &manifest.key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recall_key::{InputSource, KeyMaterial, Value, ValueType};

    fn key(version: &str, inputs: &[(&str, ValueType, Option<i64>)], out: ValueType) -> DerivedKey {
        let mut m = KeyMaterial::new("p", "d", "t", version).unwrap();
        for (name, ty, value) in inputs {
            let source = match value {
                Some(v) => InputSource::Value(Value::Int(*v)),
                None => InputSource::Ignored,
            };
            m.add_input(name, ty.clone(), source).unwrap();
        }
        m.add_output("o", out).unwrap();
        m.derive().unwrap()
    }

    #[test]
    fn each_component_is_named() {
        let base = key("1", &[("n", ValueType::Int, Some(1))], ValueType::File);
        assert!(compare(&base, &base).is_empty());
        let version = key("2", &[("n", ValueType::Int, Some(1))], ValueType::File);
        assert_eq!(
            compare(&version, &base),
            [Difference::CacheVersion {
                ours: "2".into(),
                theirs: "1".into()
            }]
        );
        let value = key("1", &[("n", ValueType::Int, Some(2))], ValueType::File);
        assert_eq!(
            compare(&value, &base),
            [Difference::InputValue { name: "n".into() }]
        );
        let ignored = key("1", &[("n", ValueType::Int, None)], ValueType::File);
        assert_eq!(
            compare(&ignored, &base),
            [Difference::InputIgnored {
                name: "n".into(),
                ours: true
            }]
        );
        let added = key(
            "1",
            &[
                ("n", ValueType::Int, Some(1)),
                ("m", ValueType::Int, Some(1)),
            ],
            ValueType::File,
        );
        let d = compare(&added, &base);
        assert!(
            matches!(&d[..], [Difference::Signature { side: "input", name, change: "added", .. }] if name == "m"),
            "{d:?}"
        );
        let retyped = key("1", &[("n", ValueType::Int, Some(1))], ValueType::Dir);
        let d = compare(&retyped, &base);
        assert!(
            matches!(
                &d[..],
                [Difference::Signature {
                    side: "output",
                    change: "retyped",
                    ..
                }]
            ),
            "{d:?}"
        );
        assert!(
            d[0].describe().contains("retyped from file to dir"),
            "{}",
            d[0].describe()
        );
    }
}
