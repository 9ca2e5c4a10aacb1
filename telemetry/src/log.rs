//! Log lines for machines (`LOG_FORMAT=json`) and the filter every binary logs through.
//!
//! One JSON object per line with the event's fields and the fields of every
//! span it happened in, all at the top level: a log pipeline can then select
//! `request_id = …` or `trace_id = …` without knowing which span of which
//! component recorded it. Inner spans and the event itself win over outer
//! spans on a name clash; `span` names the innermost span. Span fields that
//! only instruct the OpenTelemetry layer (`otel.kind`, `otel.status_code`)
//! are left out.

use serde_json::{Map, Value};
use std::{fmt::Write as _, io::Write as _};
use tracing::{Event, Level, Metadata, Subscriber, field::Field, span};
use tracing_subscriber::{
    EnvFilter,
    field::Visit,
    fmt::{
        MakeWriter,
        format::Writer,
        time::{FormatTime, SystemTime},
    },
    layer::{Context, Layer},
    registry::LookupSpan,
};

/// Writes the JSON lines. Span fields are kept as JSON values from the start
/// (not as text to be parsed back at every event), so a field recorded later
/// (`tenant`, the status) is one insert.
pub(crate) struct JsonLog<W> {
    make_writer: W,
}

impl<W> JsonLog<W> {
    pub(crate) fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

/// A span's fields, in its extensions.
struct SpanFields(Map<String, Value>);

impl<S, W> Layer<S> for JsonLog<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Map::new();
        attrs.record(&mut Fields(&mut fields));
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(SpanFields(fields)) = span.extensions_mut().get_mut::<SpanFields>() {
            values.record(&mut Fields(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut line = Map::new();
        let mut timestamp = String::new();
        if SystemTime.format_time(&mut Writer::new(&mut timestamp)).is_ok() {
            line.insert("timestamp".into(), timestamp.into());
        }
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        if let Some(scope) = ctx.event_scope(event) {
            let mut innermost = None;
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    line.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                innermost = Some(span.name());
            }
            if let Some(name) = innermost {
                line.insert("span".into(), name.into());
            }
        }
        event.record(&mut Fields(&mut line));
        let Ok(mut text) = serde_json::to_vec(&Value::Object(line)) else { return };
        text.push(b'\n');
        // One write per line: lines of concurrent tasks do not interleave.
        let _ = self.make_writer.make_writer_for(meta).write_all(&text);
    }
}

/// Fields as JSON values (numbers stay numbers). `otel.*` fields steer the
/// exported span (kind, status) and say nothing to a reader: left out.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        if !field.name().starts_with("otel.") {
            self.0.insert(field.name().into(), value);
        }
    }
}

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.put(field, text.into());
    }
}

/// `RUST_LOG` for events, but spans at `info` and above always on.
///
/// Spans are what the trace is made of and what gives a log line its
/// `request_id`, `tenant` and `trace_id`; a quieter log level (`RUST_LOG=warn`)
/// must not take them away from the warnings that are still printed, nor from
/// the exported trace.
pub(crate) struct SpansAndEvents(pub(crate) EnvFilter);

fn always(meta: &Metadata<'_>) -> bool {
    meta.is_span() && *meta.level() <= Level::INFO
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SpansAndEvents {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        if always(meta) {
            tracing::subscriber::Interest::always()
        } else {
            Layer::<S>::register_callsite(&self.0, meta)
        }
    }
    fn enabled(&self, meta: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        always(meta) || Layer::<S>::enabled(&self.0, meta, ctx)
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        let env = Layer::<S>::max_level_hint(&self.0);
        Some(
            env.map_or(tracing::level_filters::LevelFilter::INFO, |l| l.max(tracing::level_filters::LevelFilter::INFO)),
        )
    }
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        self.0.on_new_span(attrs, id, ctx);
    }
    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        self.0.on_record(id, values, ctx);
    }
    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        self.0.on_enter(id, ctx);
    }
    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        self.0.on_exit(id, ctx);
    }
    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        self.0.on_close(id, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::prelude::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(buf: &Buffer) -> Vec<Value> {
        let text = String::from_utf8(buf.0.lock().expect("buffer").clone()).expect("utf-8");
        text.lines().map(|l| serde_json::from_str(l).expect("each line is one JSON object")).collect()
    }

    fn subscriber(buf: &Buffer, directives: &str) -> impl Subscriber + Send + Sync {
        let writer = buf.clone();
        tracing_subscriber::registry()
            .with(SpansAndEvents(EnvFilter::new(directives)))
            .with(JsonLog::new(move || writer.clone()))
    }

    #[test]
    fn lines_carry_the_fields_of_every_enclosing_span() {
        let buf = Buffer::default();
        tracing::subscriber::with_default(subscriber(&buf, "warn"), || {
            let outer =
                tracing::info_span!("request", otel.kind = "server", request_id = "r1", tenant = tracing::field::Empty);
            let _o = outer.enter();
            outer.record("tenant", "acme");
            let inner = tracing::info_span!("step", request_id = "shadowed", n = 3u64);
            let _i = inner.enter();
            tracing::warn!(bytes = 7u64, ok = true, "slow");
            tracing::info!("below RUST_LOG");
        });
        let lines = lines(&buf);
        assert_eq!(lines.len(), 1, "info events stay filtered while their spans are on: {lines:?}");
        let l = &lines[0];
        assert_eq!(l["message"], "slow");
        assert_eq!(l["level"], "WARN");
        assert_eq!(l["tenant"], "acme", "recorded after the span was created: {l}");
        assert_eq!(l["request_id"], "shadowed", "the inner span wins: {l}");
        assert_eq!(l["n"], 3);
        assert_eq!(l["bytes"], 7);
        assert_eq!(l["ok"], true);
        assert_eq!(l["span"], "step");
        assert!(l.get("otel.kind").is_none(), "{l}");
        assert!(l["timestamp"].as_str().is_some_and(|t| t.contains('T')), "{l}");
    }

    #[test]
    fn events_outside_spans_are_plain() {
        let buf = Buffer::default();
        tracing::subscriber::with_default(subscriber(&buf, "info"), || {
            tracing::info!(error = %"quoted \"text\"", "started");
            // Spans below info follow RUST_LOG like events do.
            let _d = tracing::debug_span!("hidden", secret = 1u64).entered();
            tracing::info!("inside a disabled span");
        });
        let lines = lines(&buf);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["error"], "quoted \"text\"");
        assert!(lines[0].get("span").is_none(), "{}", lines[0]);
        assert!(lines[1].get("secret").is_none(), "{}", lines[1]);
    }
}
