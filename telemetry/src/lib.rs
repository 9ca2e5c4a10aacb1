//! Observability shared by every binary: structured logs and spans through
//! `tracing`, OpenTelemetry traces with W3C context propagation, and a
//! Prometheus endpoint for a `prometheus-client` registry.
//!
//! # Layout
//! - [`init`] / [`shutdown`]: the subscriber (`RUST_LOG` filter for events,
//!   spans at `info` always; one flat JSON object per line with
//!   `LOG_FORMAT=json`; OpenTelemetry layer) and flushing spans at exit.
//! - [`trace`]: `traceparent` in and out, trace ids for logs, spans with
//!   explicit times.
//! - [`metrics`]: rendering a registry and serving it with health endpoints.
//! - [`shutdown_signal`]: SIGINT/SIGTERM, how every binary learns to drain.

mod log;
pub mod metrics;
pub mod trace;

use opentelemetry::trace::TracerProvider as _;
use std::sync::OnceLock;
use tracing_subscriber::{EnvFilter, filter, fmt, prelude::*};

static PROVIDER: OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> = OnceLock::new();

/// Header that carries a request's id to the processes serving it (beside `traceparent`),
/// so their log lines name the request too.
pub const REQUEST_ID_HEADER: &str = "Resize-Request-Id";

/// Installs the global subscriber. Safe to call more than once (tests): later calls do nothing.
pub fn init(service: &'static str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v == "json");
    let provider = trace::provider(service);
    let tracer = provider.tracer(service);
    // Every request leaves a dozen spans: source locations, thread names and
    // busy/idle times on each would double what is exported and add clock reads
    // at every poll, for little the span names and timings do not already say.
    // Warnings and errors ride along as span events; the rest of the log stays
    // in the log. Parents come from the `tracing` span tree (nothing here reads
    // OpenTelemetry's thread-local context), so entering a span, at every poll
    // of an instrumented future, need not install one.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer.clone())
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_context_activation(false)
        .with_filter(filter::filter_fn(|meta| meta.is_span() || *meta.level() <= tracing::Level::WARN));
    let registry = tracing_subscriber::registry().with(log::SpansAndEvents(filter)).with(otel);
    let result = if json {
        registry.with(log::JsonLog::new(std::io::stderr)).try_init()
    } else {
        registry.with(fmt::layer().with_target(false).with_writer(std::io::stderr)).try_init()
    };
    if result.is_ok() {
        let _ = PROVIDER.set(provider);
        let _ = trace::TRACER.set(tracer);
        tracing::info!(service, version = env!("CARGO_PKG_VERSION"), "starting");
    }
}

/// Flushes buffered spans; call once before the process exits.
pub fn shutdown() {
    if let Some(p) = PROVIDER.get() {
        let _ = p.shutdown();
    }
}

/// Resolves on SIGINT or SIGTERM: how every binary learns it should drain and stop.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
