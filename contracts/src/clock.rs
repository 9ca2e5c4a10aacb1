//! Fleet time: a process's wall clock corrected by its offset from the
//! JetStream cluster's clock, sampled every [`SAMPLE_EVERY`].
//!
//! The api-server dates what others judge (a job's deadline; the time slice
//! of a usage record) and judges what others dated (a signature's `created`
//! and `expires`); a worker judges the deadline. With its own clock off by
//! minutes an api-server would refuse every signed request as expired or
//! send jobs that expire on arrival, and a worker would drop every job as
//! expired or work for requests long given up. The JetStream API states the
//! server's time in every stream and consumer info (`ts`), so the reference
//! is the clock of the cluster that orders the jobs anyway, a round trip away.

use prometheus_client::metrics::gauge::Gauge;
use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, SystemTime},
};

/// How often the offset is measured again.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Offsets within this are left alone: NTP's own business, and below what
/// any window here is sensitive to.
pub const TOLERATED_MS: i64 = 1_000;
/// A sample whose round trip took longer than this says too little.
pub const MAX_ROUND_TRIP: Duration = Duration::from_millis(500);

/// The correction in force. Written only by the sampler task, read by every request.
#[derive(Debug, Default)]
pub struct FleetClock {
    /// Fleet time minus own time, in milliseconds, once beyond [`TOLERATED_MS`]; else 0.
    correction_ms: AtomicI64,
}

impl FleetClock {
    /// Now, by the fleet's clock.
    pub fn now(&self) -> SystemTime {
        shifted(SystemTime::now(), self.correction_ms())
    }

    /// Seconds since the Unix epoch by the fleet's clock: what signatures are judged by.
    pub fn now_s(&self) -> i64 {
        self.now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
    }

    pub fn correction_ms(&self) -> i64 {
        self.correction_ms.load(Ordering::Relaxed)
    }

    /// Takes a measured offset; the correction now in force.
    pub fn set_offset(&self, offset_ms: i64) -> i64 {
        let c = correction(offset_ms);
        self.correction_ms.store(c, Ordering::Relaxed);
        c
    }

    /// Why a time judgement may surprise the caller, for an error's detail:
    /// the time it was judged at, and how far this server's own clock is off.
    pub fn explain(&self) -> String {
        let c = self.correction_ms();
        let own = if c == 0 {
            String::new()
        } else {
            let (by, way) = (c.unsigned_abs() as f64 / 1000.0, if c > 0 { "behind" } else { "ahead" });
            format!("; this server's own clock is {by:.0} s {way} and is not used")
        };
        format!("judged at {} (Unix seconds, the JetStream cluster's clock{own})", self.now_s())
    }
}

/// One sample of the JetStream cluster's clock against ours: the offset
/// (theirs minus ours, ms), from the `ts` of the stream or consumer info
/// `subject` (`$JS.API.STREAM.INFO.<stream>`, `$JS.API.CONSUMER.INFO.<stream>.<consumer>`).
pub async fn sample(client: &async_nats::Client, subject: &str) -> Option<i64> {
    let sent = SystemTime::now();
    let answer = tokio::time::timeout(MAX_ROUND_TRIP, client.request(subject.to_owned(), bytes::Bytes::new())).await;
    let received = SystemTime::now();
    let server = server_time(&answer.ok()?.ok()?.payload)?;
    offset_of(sent, received, server)
}

/// Measures the offset on `subject` every [`SAMPLE_EVERY`] (the first time
/// at once) for as long as the process runs, keeps `gauge` to it (seconds),
/// and says when the correction starts or ends.
pub async fn keep(
    clock: Arc<FleetClock>,
    client: async_nats::Client,
    subject: String,
    gauge: Gauge<f64, std::sync::atomic::AtomicU64>,
) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(offset) = sample(&client, &subject).await else {
            continue;
        };
        gauge.set(offset as f64 / 1000.0);
        let before = clock.correction_ms();
        let now = clock.set_offset(offset);
        if now == 0 && before != 0 {
            tracing::info!(offset_ms = offset, "this process's clock agrees with the JetStream cluster's again");
        } else if now != 0 && (before == 0 || (now - before).abs() > TOLERATED_MS) {
            tracing::warn!(
                offset_ms = offset,
                "this process's clock is off from the JetStream cluster's: what it dates and judges goes by the cluster's"
            );
        }
    }
}

/// `t` moved by `ms` milliseconds either way.
pub fn shifted(t: SystemTime, ms: i64) -> SystemTime {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 { t + d } else { t.checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH) }
}

/// The offset (server minus own, ms) from one sample: `server` stamped
/// between `sent` and `received` by our clock, taken as halfway. `None` when
/// the round trip was too long to say anything.
pub fn offset_of(sent: SystemTime, received: SystemTime, server: SystemTime) -> Option<i64> {
    let rtt = received.duration_since(sent).ok()?;
    if rtt > MAX_ROUND_TRIP {
        return None;
    }
    let mid = sent + rtt / 2;
    Some(match server.duration_since(mid) {
        Ok(ahead) => ahead.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    })
}

/// The correction for a measured offset: none within tolerance.
pub fn correction(offset_ms: i64) -> i64 {
    if offset_ms.abs() <= TOLERATED_MS { 0 } else { offset_ms }
}

/// The server time in a JetStream API answer (its `ts`, RFC 3339).
pub fn server_time(answer: &[u8]) -> Option<SystemTime> {
    #[derive(serde::Deserialize)]
    struct Stamped {
        ts: String,
    }
    let ts = serde_json::from_slice::<Stamped>(answer).ok()?.ts;
    let t = time::OffsetDateTime::parse(&ts, &time::format_description::well_known::Rfc3339).ok()?;
    let nanos = u64::try_from(t.unix_timestamp_nanos()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn the_offset_is_taken_at_the_middle_of_the_round_trip() {
        assert_eq!(offset_of(at(1_000), at(1_010), at(1_005)), Some(0));
        assert_eq!(offset_of(at(1_000), at(1_010), at(601_005)), Some(600_000), "fleet 10 min ahead");
        assert_eq!(offset_of(at(601_000), at(601_010), at(1_005)), Some(-600_000), "own clock 10 min ahead");
        assert_eq!(offset_of(at(1_000), at(2_000), at(1_500)), None, "a second's round trip says nothing");
        assert_eq!(offset_of(at(2_000), at(1_000), at(1_500)), None, "own clock stepped back mid-sample");
    }

    #[test]
    fn small_offsets_are_not_corrected() {
        assert_eq!(correction(0), 0);
        assert_eq!(correction(TOLERATED_MS), 0);
        assert_eq!(correction(-TOLERATED_MS), 0);
        assert_eq!(correction(TOLERATED_MS + 1), TOLERATED_MS + 1);
        assert_eq!(correction(-600_000), -600_000);
    }

    #[test]
    fn now_follows_the_correction_and_the_detail_says_which_way() {
        let c = FleetClock::default();
        let own = SystemTime::now();
        assert!(c.now().duration_since(own).unwrap_or_default() < Duration::from_secs(1));
        assert!(!c.explain().contains("own clock"), "{}", c.explain());
        c.set_offset(600_000);
        let ahead = c.now().duration_since(own).unwrap();
        assert!(ahead >= Duration::from_secs(600) && ahead < Duration::from_secs(601), "{ahead:?}");
        assert!(c.explain().contains("own clock is 600 s behind"), "{}", c.explain());
        c.set_offset(-600_000);
        assert!(own.duration_since(c.now()).unwrap() >= Duration::from_secs(599));
        assert!(c.explain().contains("600 s ahead"), "{}", c.explain());
        assert_eq!(c.set_offset(200), 0, "back within tolerance: no correction");
        assert_eq!(c.correction_ms(), 0);
    }

    #[test]
    fn reads_the_servers_time_from_a_stream_info() {
        let info = br#"{"type":"io.nats.jetstream.api.v1.stream_info_response","created":"2026-12-03T12:52:03.346947423Z","ts":"2026-12-03T12:52:08.113603573Z"}"#;
        let t = server_time(info).unwrap();
        let unix = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(unix.as_millis(), 1_796_302_328_113);
        assert_eq!(server_time(br#"{"type":"x"}"#), None);
        assert_eq!(server_time(br#"{"ts":"yesterday"}"#), None);
    }
}
