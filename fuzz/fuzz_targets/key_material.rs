//! Key material JSON (docs/KEY-SPEC.md section 8): parse and derive must accept or reject.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recall_key::KeyMaterial;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(material) = KeyMaterial::from_json(text, std::path::Path::new("/nonexistent"))
    {
        let _ = material.derive();
    }
});
