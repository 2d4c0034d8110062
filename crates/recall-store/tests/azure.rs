//! The conformance suite on Azure Blob Storage: Azurite (started by
//! scripts/test-servers.sh), or a real account.
//!
//! | variable                       | meaning                                              |
//! |--------------------------------|------------------------------------------------------|
//! | `RECALL_TEST_AZURE_CONTAINER`  | container to use (must exist); required              |
//! | `RECALL_TEST_AZURE_ACCOUNT`    | storage account name                                 |
//! | `RECALL_TEST_AZURE_KEY`        | storage account key                                  |
//! | `RECALL_TEST_AZURE_ENDPOINT`   | account URL, e.g. `http://127.0.0.1:PORT/devstoreaccount1` for Azurite |
//!
//! A test that finds no container configured fails, unless `RECALL_TEST_SKIP` names `azure`.

mod conformance;

use recall_store::open_url_with;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn harness(case: &str) -> Option<conformance::Harness> {
    if conformance::skipped("azure") {
        return None;
    }
    let required = |name: &str| {
        var(name).unwrap_or_else(|| {
            panic!(
                "{name} is not set: run scripts/test.sh (it starts Azurite), point \
                 RECALL_TEST_AZURE_* at an account, or set RECALL_TEST_SKIP=azure"
            )
        })
    };
    let container = required("RECALL_TEST_AZURE_CONTAINER");
    let mut options = vec![
        (
            "azure_storage_account_name",
            required("RECALL_TEST_AZURE_ACCOUNT"),
        ),
        (
            "azure_storage_account_key",
            required("RECALL_TEST_AZURE_KEY"),
        ),
    ];
    if let Some(endpoint) = var("RECALL_TEST_AZURE_ENDPOINT") {
        if endpoint.starts_with("http://") {
            options.push(("azure_allow_http", "true".to_string()));
        }
        options.push(("azure_storage_endpoint", endpoint));
    }
    let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let backend = open_url_with(&format!("az://{container}"), &options).expect("open Azure store");
    Some(conformance::Harness {
        objects: backend.objects,
        root: conformance::unique_root(case),
        _guard: None,
    })
}

conformance_suite!(harness);
