//! The JetStream resources the aggregator reads and writes, created
//! idempotently from the contracts.

use async_nats::jetstream::{self, consumer::PullConsumer, kv, object_store::ObjectStore, stream::Stream};
use contracts::access::Role;
use contracts::usage::streams;
use prometheus_client::metrics::counter::Counter;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("connecting to NATS at {url}: {source}")]
    Connect { url: String, source: async_nats::ConnectError },
    #[error("setting up {what}: {detail}")]
    Setup { what: &'static str, detail: String },
}

/// Handles on every resource of the usage pipeline.
#[derive(Clone)]
pub struct Store {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub usage: Stream,
    pub rollups: kv::Store,
    pub state: kv::Store,
    pub archive: ObjectStore,
}

fn setup(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> StoreError {
    move |e| StoreError::Setup { what, detail: e.to_string() }
}

impl Store {
    /// Connects (to any of the comma-separated `url`s) and creates whatever does not exist yet.
    /// `refusals` counts what NATS refuses this connection.
    pub async fn open(
        url: &str,
        creds: &contracts::connect::Credentials,
        replicas: usize,
        refusals: Counter,
    ) -> Result<Self, StoreError> {
        let urls = contracts::servers::server_urls(url);
        let client = contracts::connect::options(Role::UsageAggregator, creds, refusals)
            .map_err(|e| StoreError::Setup { what: "NATS credentials", detail: e.to_string() })?
            .retry_on_initial_connect()
            .connect(urls.as_slice())
            .await
            .map_err(|source| StoreError::Connect { url: url.to_owned(), source })?;
        Self::with_client(client, replicas).await
    }

    pub async fn with_client(client: async_nats::Client, replicas: usize) -> Result<Self, StoreError> {
        let js = jetstream::new(client.clone());
        let usage = js.get_or_create_stream(streams::usage_stream(replicas)).await.map_err(|e| setup("USAGE")(&e))?;
        js.get_or_create_stream(streams::dead_stream(replicas)).await.map_err(|e| setup("USAGE_DEAD")(&e))?;
        let rollups = match js.get_key_value(streams::ROLLUP_BUCKET).await {
            Ok(kv) => kv,
            Err(_) => js
                .create_key_value(streams::rollup_bucket(replicas))
                .await
                .map_err(|e| setup("the rollup bucket")(&e))?,
        };
        let state = match js.get_key_value(streams::STATE_BUCKET).await {
            Ok(kv) => kv,
            Err(_) => {
                js.create_key_value(streams::state_bucket(replicas)).await.map_err(|e| setup("the state bucket")(&e))?
            }
        };
        let archive = match js.get_object_store(streams::ARCHIVE_BUCKET).await {
            Ok(o) => o,
            Err(_) => js
                .create_object_store(streams::archive_bucket(replicas))
                .await
                .map_err(|e| setup("the archive bucket")(&e))?,
        };
        Ok(Self { client, js, usage, rollups, state, archive })
    }

    pub async fn consumer(&self, ack_wait: Duration) -> Result<PullConsumer, StoreError> {
        match self.usage.get_consumer(streams::AGGREGATOR_CONSUMER).await {
            Ok(c) => Ok(c),
            Err(_) => self
                .usage
                .create_consumer(streams::aggregator_consumer(ack_wait))
                .await
                .map_err(|e| setup("the aggregator consumer")(&e)),
        }
    }
}
