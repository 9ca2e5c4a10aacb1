//! Distributed traces: W3C trace context across process boundaries (HTTP
//! headers, job headers) and OTLP/HTTP export when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. Without an endpoint spans
//! still get real ids, so trace context propagates and appears in logs.

use opentelemetry::{
    propagation::TextMapPropagator,
    trace::{Span as _, SpanKind, TraceContextExt as _, Tracer as _},
};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{SdkTracer, SdkTracerProvider},
};
use std::{collections::HashMap, sync::OnceLock, time::SystemTime};
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use opentelemetry::KeyValue;

const TRACEPARENT: &str = "traceparent";

/// The tracer `tracing` spans are exported through, for spans built with explicit times.
pub(crate) static TRACER: OnceLock<SdkTracer> = OnceLock::new();

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

fn remote(traceparent: &str) -> opentelemetry::Context {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    TraceContextPropagator::new().extract(&carrier)
}

/// Makes `span` a child of the remote span named by `traceparent` (ignored when malformed).
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    let _ = span.set_parent(remote(traceparent));
}

/// The OpenTelemetry trace id of `span` (32 hex digits), once it has one.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// Continues the caller's trace in `span` (when `traceparent` names one) and
/// records the trace id in the span's `trace_id` field, which must be declared
/// (`trace_id = tracing::field::Empty`): every log line inside the span then
/// says which trace to open.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(tp) = traceparent {
        set_parent(span, tp);
    }
    if let Some(id) = trace_id(span) {
        span.record("trace_id", id.as_str());
    }
}

/// Exports a span that ran from `start` to `end`, a child of the remote span
/// named by `traceparent`. For time no code of this process spent, such as a
/// job waiting in the queue since another process published it: a `tracing`
/// span starts when it is created and cannot be dated back.
pub fn record_interval(
    name: &'static str,
    traceparent: Option<&str>,
    start: SystemTime,
    end: SystemTime,
    attributes: Vec<KeyValue>,
) {
    let Some(tracer) = TRACER.get() else { return };
    let parent = traceparent.map(remote).unwrap_or_default();
    let mut span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Internal)
        .with_start_time(start)
        .with_attributes(attributes)
        .start_with_context(tracer, &parent);
    span.end_with_timestamp(end.max(start));
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
            let logged = tracing::info_span!("logged", trace_id = tracing::field::Empty);
            continue_trace(&logged, Some(remote));
            assert_eq!(trace_id(&logged).as_deref(), Some("0af7651916cd43dd8448eb211c80319c"));
            // A root span starts its own trace; garbage is not a parent.
            let root = tracing::info_span!("root");
            set_parent(&root, "not-a-traceparent");
            let own = traceparent(&root).expect("root span has a traceparent");
            assert_ne!(own.split('-').nth(1), Some("0af7651916cd43dd8448eb211c80319c"));
        });
    }
}
