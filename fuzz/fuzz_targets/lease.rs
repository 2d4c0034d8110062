//! Lease objects as read from a bucket: decode must accept or reject, and round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recall_store::LeaseRecord;

fuzz_target!(|data: &[u8]| {
    if let Some(lease) = LeaseRecord::decode(data) {
        assert_eq!(LeaseRecord::decode(&lease.encode()), Some(lease));
    }
});
