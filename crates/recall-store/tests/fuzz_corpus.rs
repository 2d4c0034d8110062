//! The short fuzz run CI does on stable Rust: every file of the version-controlled corpus
//! (`fuzz/corpus/<target>/`) and a fixed number of mutations of each is fed to the three
//! decoders that read bytes recall does not control: the key-material parser, the manifest
//! decoder and the lease decoder. None may panic; each must accept or reject.
//!
//! `RECALL_FUZZ_ITERS` sets the mutations per target, spread over its corpus files (default
//! 100000), and
//! `RECALL_FUZZ_SEED` the generator's seed. Coverage-guided runs: `scripts/fuzz.sh`.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use recall_key::KeyMaterial;
use recall_store::{LeaseRecord, Manifest};

use recall_testkit::Rng;

/// Bytes CBOR and JSON decoders treat specially: headers with large lengths, indefinite
/// markers, tags, floats, brackets and quotes.
const INTERESTING: &[u8] = &[
    0x00, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x3b, 0x5b, 0x5f, 0x7b, 0x7f, 0x9b, 0x9f, 0xbb, 0xbf,
    0xc0, 0xd8, 0xf9, 0xfa, 0xfb, 0xff, b'"', b'{', b'}', b'[', b']', b'\\', b'-', b'e', b'0',
    b'9', b':', b',',
];

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..=rng.index(4) {
        match rng.index(6) {
            0 if !data.is_empty() => {
                let i = rng.index(data.len());
                data[i] ^= 1 << rng.index(8);
            }
            1 if !data.is_empty() => {
                let i = rng.index(data.len());
                data[i] = INTERESTING[rng.index(INTERESTING.len())];
            }
            2 => {
                let i = rng.index(data.len() + 1);
                data.insert(i, INTERESTING[rng.index(INTERESTING.len())]);
            }
            3 if !data.is_empty() => {
                data.truncate(rng.index(data.len()));
            }
            4 if data.len() > 1 => {
                let start = rng.index(data.len());
                let end = (start + 1 + rng.index(16)).min(data.len());
                let chunk = data[start..end].to_vec();
                let at = rng.index(data.len() + 1);
                data.splice(at..at, chunk);
            }
            _ if !data.is_empty() => {
                let start = rng.index(data.len());
                let end = (start + 1 + rng.index(16)).min(data.len());
                data.drain(start..end);
            }
            _ => data.push(rng.next() as u8),
        }
    }
    data
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
        .into_iter()
        .map(|path| {
            let bytes = fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        Err(_) => default,
    }
}

/// Feeds the corpus and its mutations to `decode`; returns how many inputs were accepted.
fn run(target: &str, decode: impl Fn(&[u8]) -> bool) -> (usize, usize) {
    let files = corpus(target);
    let iterations = env_number("RECALL_FUZZ_ITERS", 100_000) / files.len() as u64;
    let mut rng = Rng(env_number("RECALL_FUZZ_SEED", 0x5eed_0f7e_c411));
    let (mut tried, mut accepted) = (0, 0);
    for (path, seed) in files {
        let mut inputs = vec![seed.clone()];
        inputs.extend((0..iterations).map(|_| mutate(&seed, &mut rng)));
        for input in inputs {
            tried += 1;
            match catch_unwind(AssertUnwindSafe(|| decode(&input))) {
                Ok(true) => accepted += 1,
                Ok(false) => {}
                Err(_) => panic!(
                    "{target}: a mutation of {} panicked; input (hex): {}",
                    path.display(),
                    input.iter().map(|b| format!("{b:02x}")).collect::<String>()
                ),
            }
        }
    }
    println!("{target}: {tried} inputs, {accepted} accepted, none panicked");
    (tried, accepted)
}

#[test]
fn key_material_parser_never_panics() {
    let nowhere = Path::new("/nonexistent/recall-fuzz");
    let (tried, accepted) = run("key_material", |bytes| {
        let Ok(text) = std::str::from_utf8(bytes) else {
            return false;
        };
        KeyMaterial::from_json(text, nowhere)
            .and_then(|material| material.derive())
            .is_ok()
    });
    // The unmutated seeds that need no files are valid key material.
    assert!(accepted > 0 && accepted < tried, "{accepted} of {tried}");
}

#[test]
fn manifest_decoder_never_panics() {
    let (tried, accepted) = run("manifest", |bytes| match Manifest::decode(bytes) {
        // Whatever decodes must re-encode to bytes that decode to the same manifest.
        Ok(manifest) => {
            let again = Manifest::decode(&manifest.encode()).expect("re-encoded manifest");
            assert_eq!(again, manifest);
            true
        }
        Err(_) => false,
    });
    assert!(accepted > 0 && accepted < tried, "{accepted} of {tried}");
}

#[test]
fn lease_decoder_never_panics() {
    let (tried, accepted) = run("lease", |bytes| match LeaseRecord::decode(bytes) {
        Some(lease) => {
            assert_eq!(LeaseRecord::decode(&lease.encode()), Some(lease));
            true
        }
        None => false,
    });
    assert!(accepted > 0 && accepted < tried, "{accepted} of {tried}");
}
