//! Distributed traces: W3C trace context across process boundaries (HTTP
//! headers, job headers) and OTLP/HTTP export when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. Without an endpoint spans
//! still get real ids, so trace context propagates and appears in logs.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use std::collections::HashMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";

pub(crate) fn provider(service: &'static str) -> SdkTracerProvider {
    let mut builder =
        SdkTracerProvider::builder().with_resource(Resource::builder().with_service_name(service).build());
    let configured = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if configured {
        match opentelemetry_otlp::SpanExporter::builder().with_http().build() {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(e) => eprintln!("OTLP trace export disabled: {e}"),
        }
    }
    builder.build()
}

/// The W3C `traceparent` of `span`, to hand to the next process.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` a child of the remote span named by `traceparent` (ignored when malformed).
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(cx);
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::prelude::*;

    #[test]
    fn context_crosses_a_process_boundary() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let remote = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
            let span = tracing::info_span!("child");
            set_parent(&span, remote);
            let out = traceparent(&span).expect("a sampled span has a traceparent");
            let parts: Vec<_> = out.split('-').collect();
            assert_eq!(parts[1], "0af7651916cd43dd8448eb211c80319c", "same trace");
            assert_ne!(parts[2], "b7ad6b7169203331", "new span id");
            // A root span starts its own trace; garbage is not a parent.
            let root = tracing::info_span!("root");
            set_parent(&root, "not-a-traceparent");
            let own = traceparent(&root).expect("root span has a traceparent");
            assert_ne!(own.split('-').nth(1), Some("0af7651916cd43dd8448eb211c80319c"));
        });
    }
}
