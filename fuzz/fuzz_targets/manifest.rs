//! Manifests as read from a bucket: decode must accept or reject, and what it accepts must
//! survive a re-encode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recall_store::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::decode(data) {
        let again = Manifest::decode(&manifest.encode()).expect("a re-encoded manifest decodes");
        assert_eq!(again, manifest);
    }
});
