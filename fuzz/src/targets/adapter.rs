//! What the page-parser targets share: a real connector of one kind, built from a config
//! through idsync's registry, pointed at a [`MockTarget`] that answers with the input; one
//! input is one full read of accounts, entitlements and grants.

use std::sync::Arc;

use futures::StreamExt;
use idsync::connector::registry::build_connectors;
use idsync::connector::Connector;
use tokio::runtime::Runtime;

use crate::mock::{chunk_size, MockTarget};

/// A connector of one kind reading from the mock target.
pub struct AdapterRig {
    /// The runtime the mock target and the reads run on.
    pub runtime: Runtime,
    /// The server answering with the input.
    pub mock: MockTarget,
    connector: Arc<dyn Connector>,
}

impl AdapterRig {
    /// Starts the mock target and builds the connector of target table `table` (its
    /// `base_url` is added), with no pacing and no retries so one input is one pass.
    pub fn new(table: &str, path: &str, content_type: &'static str) -> AdapterRig {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let mock = runtime.block_on(MockTarget::start(content_type));
        let text = format!(
            "[targets.fuzz]\n{table}\nbase_url = \"{}{path}\"\nrate_limit = []\n\
             read_retry = {{ max_attempts = 1 }}\ntimeout = \"5s\"\n",
            mock.base_url()
        );
        let loaded = idsync::app::load_config_str(&text, "fuzz.toml", &[])
            .unwrap_or_else(|err| panic!("the fuzz target's config is refused: {err}\n{text}"));
        let connectors = runtime.block_on(async { build_connectors(&loaded.config) });
        let connector = connectors
            .expect("build the connector")
            .remove("fuzz")
            .expect("the fuzz target's connector");
        AdapterRig {
            runtime,
            mock,
            connector,
        }
    }

    /// Serves `input` and reads every account, entitlement and grant until the end or the
    /// first error. Errors are the expected outcome of most inputs; their messages are built
    /// (a `Display` that panics is a finding too).
    pub fn read_all(&self, input: &[u8]) {
        self.mock.answer_with(input, chunk_size(input));
        let connector = self.connector.clone();
        self.runtime.block_on(async move {
            drain(connector.accounts()).await;
            drain(connector.entitlements()).await;
            drain(connector.grants()).await;
            if let Err(err) = connector.test_connection().await {
                let _ = err.to_string();
            }
        });
    }
}

/// Reads `pages` to the end or the first error, formatting what it holds.
async fn drain<T: std::fmt::Debug>(mut pages: idsync::connector::PageStream<'_, T>) {
    while let Some(page) = pages.next().await {
        match page {
            Ok(page) => {
                let _ = format!("{:?}", page.records);
            }
            Err(err) => {
                let _ = err.to_string();
                break;
            }
        }
    }
}
