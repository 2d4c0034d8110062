//! Who a run is, for leases: the same `<hostname>/<pid>` the store writes as a manifest's
//! default `producer`.

/// `<hostname>/<pid>`: who holds a lease (recall-store's default producer id).
pub fn owner_id() -> String {
    recall_store::StoreConfig::default().producer
}
