//! Turning `recall key` flags (`--input NAME:TYPE=VALUE`, ...) into key material.

use std::path::Path;

use recall_key::{InputSource, KeyError, KeyMaterial, Value, parse_supplied_hash, parse_type};

/// The key-material flags of `recall key`, as given on the command line.
#[derive(Debug, Default, Clone)]
pub struct KeyFlags {
    /// `--project`.
    pub project: String,
    /// `--domain`.
    pub domain: String,
    /// `--task`.
    pub task: String,
    /// `--cache-version`.
    pub cache_version: String,
    /// Each `--input NAME:TYPE=VALUE`.
    pub inputs: Vec<String>,
    /// Each `--output NAME:TYPE`.
    pub outputs: Vec<String>,
    /// Each `--ignore-input NAME`.
    pub ignore: Vec<String>,
    /// Each `--input-hash NAME=HEX`.
    pub input_hashes: Vec<String>,
    /// `--salt`.
    pub salt: Option<String>,
}

/// A flag that does not have the form it should.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    /// The flag's text does not split into its parts.
    #[error("{flag} {value:?}: expected {expected}")]
    Shape {
        /// The flag, e.g. `--input`.
        flag: &'static str,
        /// Its text.
        value: String,
        /// The expected form.
        expected: &'static str,
    },
    /// The parts are there but the key material is invalid.
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl KeyFlags {
    /// Builds key material; `@PATH` values resolve against `cwd`.
    pub fn to_material(&self, cwd: &Path) -> Result<KeyMaterial, FlagError> {
        let mut material =
            KeyMaterial::new(&self.project, &self.domain, &self.task, &self.cache_version)?;
        self.apply(&mut material, cwd)?;
        Ok(material)
    }

    /// Adds the inputs, outputs, ignored inputs, input hashes and salt of these flags to
    /// `material` (project, domain, task and cache_version are not used).
    pub fn apply(&self, material: &mut KeyMaterial, cwd: &Path) -> Result<(), FlagError> {
        for flag in &self.inputs {
            let (name, ty_text, value_text) = split_input(flag)?;
            let ty = parse_type(&format!("input {name:?}"), ty_text)?;
            let value = Value::from_literal(&ty, value_text, cwd).map_err(|reason| {
                KeyError::InvalidValue {
                    input: name.to_string(),
                    ty: ty.to_string(),
                    value: format!("{value_text:?}"),
                    reason,
                }
            })?;
            material.add_input(name, ty, InputSource::Value(value))?;
        }
        for flag in &self.outputs {
            let (name, ty_text) = split_flag("--output", flag, ':', "NAME:TYPE, e.g. model:file")?;
            let ty = parse_type(&format!("output {name:?}"), ty_text)?;
            material.add_output(name, ty)?;
        }
        for name in &self.ignore {
            material.ignore_input(name)?;
        }
        for flag in &self.input_hashes {
            let (name, hex) = split_flag(
                "--input-hash",
                flag,
                '=',
                "NAME=HEX (64 hexadecimal characters)",
            )?;
            material.supply_hash(name, parse_supplied_hash(name, hex)?)?;
        }
        if let Some(salt) = &self.salt {
            material.set_salt(salt)?;
        }
        Ok(())
    }
}

/// Splits the text `value` of `flag` at the first `separator`; an error naming the flag, the
/// text and the `expected` form when there is none.
fn split_flag<'a>(
    flag: &'static str,
    value: &'a str,
    separator: char,
    expected: &'static str,
) -> Result<(&'a str, &'a str), FlagError> {
    value.split_once(separator).ok_or_else(|| FlagError::Shape {
        flag,
        value: value.to_string(),
        expected,
    })
}

/// Splits `NAME:TYPE=VALUE`. Names cannot contain `:` and types cannot contain `=`, so the
/// first of each separates the parts and VALUE may contain either.
fn split_input(flag: &str) -> Result<(&str, &str, &str), FlagError> {
    let shape = || FlagError::Shape {
        flag: "--input",
        value: flag.to_string(),
        expected: "NAME:TYPE=VALUE, e.g. n:int=3 or data:file=@in.csv",
    };
    let (name, rest) = flag.split_once(':').ok_or_else(shape)?;
    let (ty, value) = rest.split_once('=').ok_or_else(shape)?;
    Ok((name, ty, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(inputs: &[&str]) -> KeyFlags {
        KeyFlags {
            project: "p".into(),
            domain: "d".into(),
            task: "t".into(),
            cache_version: "1".into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            ..KeyFlags::default()
        }
    }

    #[test]
    fn value_may_contain_separators() {
        let m = flags(&["s:string=a:b=c"])
            .to_material(Path::new("."))
            .unwrap();
        assert_eq!(
            m.inputs()[0].source,
            InputSource::Value(Value::String("a:b=c".into()))
        );
    }

    #[test]
    fn input_order_does_not_change_the_key() {
        let a = flags(&["x:int=1", "y:string=hi"])
            .to_material(Path::new("."))
            .unwrap();
        let b = flags(&["y:string=hi", "x:int=1"])
            .to_material(Path::new("."))
            .unwrap();
        assert_eq!(a.derive().unwrap().key, b.derive().unwrap().key);
    }

    #[test]
    fn malformed_flags_name_themselves() {
        for (bad, needle) in [
            ("x", "--input \"x\""),
            ("x:int", "--input \"x:int\""),
            ("x:integer=1", "invalid type \"integer\""),
            ("x:int=1.5", "input \"x\" of type int: bad value \"1.5\""),
            ("a/b:int=1", "invalid input name \"a/b\""),
        ] {
            let err = flags(&[bad])
                .to_material(Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{err:?} should contain {needle:?}");
        }
        let err = flags(&["x:int=1", "x:int=2"])
            .to_material(Path::new("."))
            .unwrap_err();
        assert_eq!(err.to_string(), "duplicate input \"x\"");
    }
}
