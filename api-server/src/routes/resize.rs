//! `POST /v1/resize`: validate cheaply first, read the body within limits,
//! queue the job, turn the worker's answer into an HTTP response.

use crate::{
    admission::{Head, OpClass, Shed},
    app::AppState,
    conditional::{self, IfNoneMatch},
    config::Staging,
    metrics::ShedLabel,
    problem::Problem,
};
use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::{Bytes, BytesMut};
use contracts::{
    ImageFormat, Job, Outcome, ProblemKind, ResizeOp,
    job::{StagedInput, unix_ms, unix_us},
};
use http_body_util::{BodyExt, Limited};
use sha2::{Digest, Sha256};
use std::time::{Instant, SystemTime};
use tracing::Instrument;

pub async fn resize(State(state): State<AppState>, req: Request) -> Response {
    let request_id = uuid::Uuid::now_v7().to_string();
    let started = Instant::now();
    // Every log line of the request carries these; `tenant` is filled in once
    // authentication says who is calling.
    let span = tracing::info_span!(
        "resize_request",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = "/v1/resize",
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        request_id = %request_id,
        tenant = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    let incoming = req.headers().get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned);
    telemetry::trace::continue_trace(&span, incoming.as_deref());
    let received = state.clock.now();
    let mut edge = EdgeUsage {
        received,
        since: started,
        bytes_in: content_length(req.headers()).ok().flatten().unwrap_or(0),
        tenant: None,
        key_id: String::new(),
    };
    // What the head says is enough to know the kind of work; a query that does
    // not parse is refused later (after authentication), at no cost to anyone.
    // A preset is known only once the caller is: such a request's class is unknown here.
    let query = parse_query(req.uri().query().unwrap_or(""));
    let class = OpClass::of(Head {
        op: query.as_ref().ok().and_then(|q| q.op.as_ref().ok()),
        content_length: Some(edge.bytes_in),
        declared: declared_format(req.headers()).ok(),
    });
    let _permit = match state.admission.try_admit(class) {
        Ok(permit) => permit,
        Err(shed) => {
            let (reason, detail) = match shed {
                Shed::InFlightCap => ("in_flight_cap", "too many requests in progress; retry shortly"),
                Shed::OverBudget => (
                    "over_budget",
                    "the queue is longer than this request could wait within the latency target; retry shortly",
                ),
            };
            state.metrics.shed.get_or_create(&ShedLabel { reason: reason.into() }).inc();
            let p = Problem::new(ProblemKind::Overloaded, detail).with_request_id(&request_id);
            state.usage.record(edge.record(&request_id, &p));
            // A refusal is a complete exchange: the body the client is sending is read
            // first (up to a bound), or the connection closes once the answer is out.
            let (parts, body) = req.into_parts();
            let drained = linger(body, &parts.headers).instrument(span.clone()).await;
            let res = p.closing(!drained).into_response();
            // Shed requests are counted in `api_shed_total`; at `info` a flood of
            // them would cost the logs more than the answers cost the server.
            finish(&span, &res, started, Some(ProblemKind::Overloaded.slug()), true);
            return res;
        }
    };
    state.metrics.in_flight.inc();
    // Without a tracing pipeline the client's own context is passed on unchanged.
    let traceparent = telemetry::trace::traceparent(&span).or(incoming);
    let result =
        handle(&state, &request_id, traceparent.clone(), req, query, &mut edge, class).instrument(span.clone()).await;
    state.metrics.in_flight.dec();
    let mut problem = None;
    let mut res = match result {
        Ok(mut res) => {
            let total = started.elapsed().as_secs_f64() * 1000.0;
            if let Some(st) = res.headers().get("server-timing").and_then(|v| v.to_str().ok()) {
                let value = format!("{st}, total;dur={total:.1}");
                if let Ok(v) = HeaderValue::from_str(&value) {
                    res.headers_mut().insert("server-timing", v);
                }
            }
            res
        }
        Err(p) => {
            if p.kind == ProblemKind::DeadlineExceeded {
                state.metrics.deadline_exceeded.inc();
            }
            if !p.metered {
                state.usage.record(edge.record(&request_id, &p));
            }
            problem = Some(p.kind);
            p.with_request_id(&request_id).into_response()
        }
    };
    // W3C Trace Context Level 2: tells the client which trace served it.
    if let Some(v) = traceparent.and_then(|tp| HeaderValue::from_str(&tp).ok()) {
        res.headers_mut().insert("traceresponse", v);
    }
    // Like the sheds above: at `info` a flood of refusals would cost the logs more than the answers.
    let quiet = problem == Some(ProblemKind::Overloaded);
    finish(&span, &res, started, problem.map(ProblemKind::slug), quiet);
    res
}

/// The access log line, and the status on the request's span.
fn finish(span: &tracing::Span, res: &Response, started: Instant, problem: Option<&str>, quiet: bool) {
    span.record("http.response.status_code", res.status().as_u16());
    if res.status().is_server_error() {
        span.record("otel.status_code", "error");
    }
    let duration_ms = (started.elapsed().as_secs_f64() * 1e4).round() / 10.0;
    // The status is on the span, so in the line already.
    let _in = span.enter();
    if quiet {
        tracing::debug!(duration_ms, problem, "request finished");
    } else if res.status().is_server_error() {
        tracing::warn!(duration_ms, problem, "request failed");
    } else {
        tracing::info!(duration_ms, problem, "request finished");
    }
}

async fn handle(
    state: &AppState,
    request_id: &str,
    traceparent: Option<String>,
    req: Request,
    query: Result<Query, Problem>,
    edge: &mut EdgeUsage,
    class: OpClass,
) -> Result<Response, Problem> {
    let (parts, body) = req.into_parts();
    let max = crate::config::effective_max_body(state.config.staging, state.config.max_body_bytes);
    let head = async {
        // Before anything else: an unauthenticated caller learns nothing and sends no body.
        let caller = state.authenticate(&parts, request_id).await?;
        tracing::Span::current().record("tenant", caller.tenant.as_str());
        edge.tenant = Some(caller.tenant.clone());
        edge.key_id.clone_from(&caller.key_id);
        let op = query?.with_presets(&caller.presets)?;
        let declared_len = content_length(&parts.headers)?;
        if let Some(len) = declared_len
            && len > max as u64
        {
            return Err(Problem::new(
                ProblemKind::PayloadTooLarge,
                format!("body of {len} bytes exceeds the limit of {max} bytes"),
            ));
        }
        // The body's memory is accounted before a byte of it is read: what it
        // declares, or the whole limit when it declares nothing (chunked).
        let want = declared_len.map_or(max, |len| len as usize);
        let reservation = state.stage.reserve(want).ok_or_else(|| {
            state.metrics.shed.get_or_create(&ShedLabel { reason: "staging_cap".into() }).inc();
            Problem::new(
                ProblemKind::Overloaded,
                "the server holds as many image bytes as it may at once; retry shortly",
            )
        })?;
        let condition = IfNoneMatch::parse(parts.headers.get_all(header::IF_NONE_MATCH).iter().map(|v| v.as_bytes()))
            .map_err(|e| Problem::new(ProblemKind::InvalidPrecondition, e))?;
        if condition == Some(IfNoneMatch::Any) {
            return Err(Problem::new(
                ProblemKind::PreconditionFailed,
                "`If-None-Match: *` asks for an answer only where none exists, and every resize has one",
            ));
        }
        Ok((caller, op, declared_format(&parts.headers)?, declared_len, reservation, condition))
    };
    let (caller, mut op, declared, declared_len, reservation, condition) = match head.await {
        Ok(h) => h,
        Err(p) => {
            let drained = linger(body, &parts.headers).await;
            return Err(p.closing(!drained));
        }
    };
    let body = read_body(body, max, declared_len, state.config.body_timeout).await?;
    caller.check_body(&body)?;
    if body.is_empty() {
        return Err(Problem::new(ProblemKind::MissingBody, "send the image as the request body"));
    }
    let input = ImageFormat::sniff(&body).ok_or_else(|| {
        Problem::new(
            ProblemKind::UnsupportedMediaType,
            format!("the body is not a {} image", contracts::format::READABLE),
        )
    })?;
    if input != declared {
        return Err(Problem::new(
            ProblemKind::ContentTypeMismatch,
            format!("Content-Type says {} but the body is {}", declared.media_type(), input.media_type()),
        ));
    }

    // `format=auto` is settled here, so the job, the tag and the usage record
    // all name the format the client gets.
    let accept = parts.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let varies = op.negotiate(accept, contracts::InputTraits::of(input, &body));
    let digest = Sha256::digest(&body);
    let etag = conditional::entity_tag(&digest, &op);
    let validators = Validators { etag, varies, cache_control: caller.cache_control.clone() };
    if condition.is_some_and(|c| c.lists(&validators.etag)) {
        state.usage.record(edge.not_modified(request_id, input, body.len() as u64));
        return Ok(validators.apply((StatusCode::NOT_MODIFIED, ()).into_response(), request_id));
    }

    let now = state.clock.now();
    let timeout = state.config.job_timeout;
    // A staged body is freed when this handler ends, however it ends: answered,
    // timed out, or dropped because the client went away.
    let (staged, payload, _staged_guard, _reservation) = match state.config.staging {
        Staging::Reference => {
            let token = crate::staging::new_token();
            let reference = StagedInput {
                url: format!("{}{}", state.peer_base, contracts::staging::body_path(request_id)),
                token: token.clone(),
                size: body.len() as u64,
                sha256: contracts::staging::to_hex(&digest),
            };
            let guard = state.stage.put(request_id, token, body, reservation);
            (Some(reference), Bytes::new(), Some(guard), None)
        }
        Staging::Inline => (None, body, None, Some(reservation)),
    };
    let job = Job {
        request_id: request_id.to_owned(),
        deadline_ms: unix_ms(now + timeout),
        reply: state.queue.reply_subject().to_owned(),
        op,
        input,
        enqueued_us: unix_us(now),
        traceparent,
        tenant: caller.tenant,
        key_id: caller.key_id,
        staged,
    };
    let answer = match state.queue.submit(&job, payload, timeout).await {
        Ok(a) => a,
        Err(p) => {
            if p.kind == ProblemKind::DeadlineExceeded {
                // The job waited at least this long: the strongest overload signal there is.
                state.admission.observe(class, timeout, None);
            }
            return Err(p);
        }
    };
    state.admission.observe(
        class,
        std::time::Duration::from_micros(answer.headers.queue_us),
        Some(std::time::Duration::from_micros(answer.headers.process_us)),
    );
    state.metrics.jobs_published.inc();
    let h = &answer.headers;
    state.metrics.queue_wait.observe(h.queue_us as f64 / 1e6);
    state.metrics.worker_process.observe(h.process_us as f64 / 1e6);
    match &h.outcome {
        Outcome::Failed { kind, detail } => Err(Problem::new(*kind, detail.clone()).metered()),
        Outcome::Ok(rendered) => {
            let timing =
                format!("queue;dur={:.1}, process;dur={:.1}", h.queue_us as f64 / 1000.0, h.process_us as f64 / 1000.0);
            let mut res = (StatusCode::OK, Body::from(answer.body)).into_response();
            let hs = res.headers_mut();
            hs.insert(header::CONTENT_TYPE, HeaderValue::from_static(rendered.format.media_type()));
            hs.insert("server-timing", HeaderValue::from_str(&timing).expect("ascii"));
            hs.insert("x-image-width", HeaderValue::from(rendered.width));
            hs.insert("x-image-height", HeaderValue::from(rendered.height));
            hs.insert("x-image-frames", HeaderValue::from(rendered.frames));
            Ok(validators.apply(res, request_id))
        }
    }
}

/// What a 200 and a 304 of the same request both say (RFC 9110 §15.4.5).
struct Validators {
    etag: String,
    /// The format was chosen from `Accept`: caches must key on it.
    varies: bool,
    /// The tenant's, checked when it was set; `None`: the default.
    cache_control: Option<String>,
}

impl Validators {
    fn apply(self, mut res: Response, request_id: &str) -> Response {
        let hs = res.headers_mut();
        hs.insert(header::ETAG, HeaderValue::from_str(&self.etag).expect("hex is a valid header"));
        if self.varies {
            hs.insert(header::VARY, HeaderValue::from_static("Accept"));
        }
        let cache_control = self.cache_control.as_deref().and_then(|c| HeaderValue::from_str(c).ok());
        let default = HeaderValue::from_static(contracts::identity::cache_control::DEFAULT);
        hs.insert(header::CACHE_CONTROL, cache_control.unwrap_or(default));
        hs.insert("x-request-id", HeaderValue::from_str(request_id).expect("uuid is ascii"));
        res
    }
}

/// What the edge knows about a request it answers without a worker.
struct EdgeUsage {
    /// By the fleet's clock.
    received: SystemTime,
    /// The same moment on the monotonic clock: the end is `received` plus what passed since.
    since: Instant,
    bytes_in: u64,
    /// Known once the caller is authenticated; until then the record is the anonymous tenant's.
    tenant: Option<String>,
    key_id: String,
}

impl EdgeUsage {
    fn record(&self, request_id: &str, p: &Problem) -> contracts::usage::UsageRecord {
        self.answered(contracts::usage::UsageRecord::refused(request_id, p.kind))
    }

    /// A repeated request answered 304 from its tag: counted, nothing processed.
    fn not_modified(&self, request_id: &str, input: ImageFormat, bytes_in: u64) -> contracts::usage::UsageRecord {
        let record = contracts::usage::UsageRecord::at_edge(request_id, 304, None);
        contracts::usage::UsageRecord { format_in: Some(input), bytes_in, ..self.answered(record) }
    }

    /// `record` with what the edge measured: who asked, when, and how long it took.
    fn answered(&self, record: contracts::usage::UsageRecord) -> contracts::usage::UsageRecord {
        let finished = self.received + self.since.elapsed();
        contracts::usage::UsageRecord {
            tenant: self.tenant.clone().unwrap_or(record.tenant.clone()),
            key_id: self.key_id.clone(),
            received_ms: unix_ms(self.received),
            finished_ms: unix_ms(finished).max(unix_ms(self.received)),
            bytes_in: self.bytes_in,
            latency_us: unix_us(finished).saturating_sub(unix_us(self.received)),
            ..record
        }
    }
}

/// A query string decoded once: the operation its parameters give on their
/// own (known before authentication, for admission), and the pairs a preset
/// is resolved from once the caller is known.
pub struct Query {
    pairs: Vec<(String, String)>,
    pub op: Result<ResizeOp, Problem>,
}

pub fn parse_query(query: &str) -> Result<Query, Problem> {
    let pairs = decode_query(query)?;
    let op = ResizeOp::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| Problem::new(ProblemKind::InvalidParameter, e.to_string()));
    Ok(Query { pairs, op })
}

impl Query {
    /// The operation once the caller is known: [`Query::op`] as it stands,
    /// unless the query names a preset or the tenant accepts presets only.
    fn with_presets(self, presets: &contracts::preset::Presets) -> Result<ResizeOp, Problem> {
        if !presets.only && !self.pairs.iter().any(|(k, _)| k == contracts::preset::PARAM) {
            return self.op;
        }
        let pairs: Vec<(&str, &str)> = self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        presets.resolve(&pairs).map_err(|e| Problem::new(ProblemKind::InvalidParameter, e.to_string()))
    }
}

fn decode_query(query: &str) -> Result<Vec<(String, String)>, Problem> {
    serde_urlencoded_pairs(query)
        .ok_or_else(|| Problem::new(ProblemKind::InvalidParameter, "the query string is not valid UTF-8 form encoding"))
}

/// Splits and percent-decodes `a=b&c=d` (form encoding, `+` as space).
fn serde_urlencoded_pairs(query: &str) -> Option<Vec<(String, String)>> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    match headers.get(header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| Problem::new(ProblemKind::InvalidParameter, "Content-Length is not a number")),
    }
}

fn declared_format(headers: &HeaderMap) -> Result<ImageFormat, Problem> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).ok_or_else(|| {
        Problem::new(ProblemKind::UnsupportedMediaType, "Content-Type must name the image type, e.g. image/jpeg")
    })?;
    ImageFormat::from_media_type(ct).ok_or_else(|| {
        Problem::new(
            ProblemKind::UnsupportedMediaType,
            format!("Content-Type `{ct}` is not one of {}", ImageFormat::ALL.map(ImageFormat::media_type).join(", ")),
        )
    })
}

/// Bodies up to this size are read and discarded after an early refusal.
const LINGER_BYTES: u64 = 1 << 20;
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// After refusing a request from its head, reads (and drops) a small body the
/// client is still sending. Closing with unread data makes the kernel reset
/// the connection, and a reset can destroy the problem document before the
/// client reads it. Large or slow bodies are not waited for: `false` then,
/// and the answer says `Connection: close` (the server loop then closes
/// with a lingering close, see `crate::serve`).
async fn linger(body: Body, headers: &HeaderMap) -> bool {
    // A client waiting for `100 Continue` has not sent its body; reading would invite it to.
    let expects = headers.get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects || content_length(headers).ok().flatten().is_some_and(|len| len > LINGER_BYTES) {
        return false;
    }
    let limited = Limited::new(body, LINGER_BYTES as usize);
    matches!(tokio::time::timeout(LINGER_TIME, limited.collect()).await, Ok(Ok(_)))
}

/// Reads the body into one buffer sized from `Content-Length` (no second copy
/// when it is complete), within `max` bytes and `timeout`.
async fn read_body(
    mut body: Body,
    max: usize,
    declared: Option<u64>,
    timeout: std::time::Duration,
) -> Result<Bytes, Problem> {
    let mut buf = BytesMut::with_capacity(declared.map_or(64 << 10, |len| len as usize).min(max));
    let read = async {
        while let Some(frame) = body.frame().await {
            // The connection ended (or broke) before the declared body arrived:
            // the answer goes nowhere, and usage says the client left.
            let frame = frame.map_err(|e| {
                Problem::new(
                    ProblemKind::ClientGone,
                    format!("the connection ended before the whole body arrived: {e}"),
                )
            })?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > max {
                    return Err(Problem::new(
                        ProblemKind::PayloadTooLarge,
                        format!("body exceeds the limit of {max} bytes"),
                    ));
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Err(Problem::new(
            ProblemKind::RequestTimeout,
            format!("the body was not received within {} s", timeout.as_secs()),
        )),
        Ok(Err(p)) => Err(p),
        Ok(Ok(())) => Ok(buf.freeze()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(percent_decode("%FF"), None);
        let op = parse_query("w=%33%32%30&h=320").unwrap().op.unwrap();
        assert_eq!(op.width, Some(320));
        assert_eq!(parse_query("w=1&fit=%FF").err().unwrap().kind, ProblemKind::InvalidParameter);
    }
}
