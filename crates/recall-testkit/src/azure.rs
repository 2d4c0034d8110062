//! Where the Azure tests find their server.
//!
//! | variable                       | meaning                                              |
//! |--------------------------------|------------------------------------------------------|
//! | `RECALL_TEST_AZURE_CONTAINER`  | container to use (must exist); required              |
//! | `RECALL_TEST_AZURE_ACCOUNT`    | storage account name                                 |
//! | `RECALL_TEST_AZURE_KEY`        | storage account key                                  |
//! | `RECALL_TEST_AZURE_ENDPOINT`   | account URL, e.g. `http://127.0.0.1:PORT/devstoreaccount1` for Azurite |
//!
//! `scripts/test-servers.sh` starts Azurite and sets all of them. A test that finds no
//! container configured fails, unless `RECALL_TEST_SKIP` names `azure`.

use crate::{required, var};

/// An Azure Blob Storage account the tests use: its container, and the account name, key
/// and endpoint as object_store configuration keys.
#[derive(Debug, Clone)]
pub struct AzureEnv {
    /// The container.
    pub container: String,
    /// The account's settings, for `open_url_with`.
    pub options: Vec<(&'static str, String)>,
}

impl AzureEnv {
    /// Reads the variables, failing the test with instructions when they are missing.
    /// Callers check [`crate::skipped`]`("azure")` first.
    pub fn from_env() -> AzureEnv {
        const PROVIDER: &str =
            "run scripts/test.sh (it starts Azurite) or point RECALL_TEST_AZURE_* at an account";
        let mut options = vec![
            (
                "azure_storage_account_name",
                required("RECALL_TEST_AZURE_ACCOUNT", PROVIDER, "azure"),
            ),
            (
                "azure_storage_account_key",
                required("RECALL_TEST_AZURE_KEY", PROVIDER, "azure"),
            ),
        ];
        if let Some(endpoint) = var("RECALL_TEST_AZURE_ENDPOINT") {
            if endpoint.starts_with("http://") {
                options.push(("azure_allow_http", "true".to_string()));
            }
            options.push(("azure_storage_endpoint", endpoint));
        }
        AzureEnv {
            container: required("RECALL_TEST_AZURE_CONTAINER", PROVIDER, "azure"),
            options,
        }
    }
}
