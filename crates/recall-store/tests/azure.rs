//! The conformance suite on Azure Blob Storage: Azurite (started by
//! scripts/test-servers.sh), or a real account named by the `RECALL_TEST_AZURE_*` variables
//! (see recall-testkit's `azure` module). A test that finds no container configured fails,
//! unless `RECALL_TEST_SKIP` names `azure`.

mod conformance;

use recall_testkit::azure::AzureEnv;

async fn harness(case: &str) -> Option<conformance::Harness> {
    if recall_testkit::skipped("azure") {
        return None;
    }
    let env = AzureEnv::from_env();
    let url = format!("az://{}", env.container);
    Some(conformance::remote_harness(&url, &env.options, case))
}

conformance_suite!(harness);
