//! Pieces shared by the benchmark binaries: closed-loop HTTP load, latency
//! statistics, and reading `Server-Timing`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

/// What one measured run produced.
pub struct Run {
    pub count: usize,
    pub elapsed: Duration,
    pub latencies_ms: Vec<f64>,
    /// Queue wait per request as reported in `Server-Timing` (HTTP runs only).
    pub queue_ms: Vec<f64>,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
    pub fn pct(&self, p: f64) -> f64 {
        percentile(&self.latencies_ms, p)
    }
}

pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1))).copied().unwrap_or(f64::NAN)
}

/// The `queue` duration of a `Server-Timing` header, in milliseconds.
pub fn queue_ms(server_timing: Option<&reqwest::header::HeaderValue>) -> Option<f64> {
    let text = server_timing?.to_str().ok()?;
    let queue = text.split(',').map(str::trim).find(|m| m.starts_with("queue;"))?;
    queue.split_once("dur=")?.1.parse().ok()
}

/// Closed loop: `clients` concurrent clients POST the files in turn for `secs` seconds;
/// a client that is shed (503) backs off 20 ms and goes on.
pub async fn over_http(base: &str, files: &Arc<Vec<Vec<u8>>>, op: &str, clients: usize, secs: u64) -> Run {
    let http = reqwest::Client::new();
    let url = format!("{base}/v1/resize?{op}");
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, url, files) = (http.clone(), url.clone(), files.clone());
        tasks.push(tokio::spawn(async move {
            let mut local = Vec::new();
            let mut i = c;
            while Instant::now() < end {
                let t0 = Instant::now();
                let res = http
                    .post(&url)
                    .header("content-type", "image/jpeg")
                    .body(files[i % files.len()].clone())
                    .send()
                    .await
                    .expect("request");
                if res.status() == 503 {
                    // Shed at the budget: a client backs off briefly, as `Retry-After` asks
                    // (capacity is what was served, so a refusal is not counted).
                    res.bytes().await.expect("problem body");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                assert_eq!(res.status(), 200, "{:?}", res.text().await);
                let queue = queue_ms(res.headers().get("server-timing"));
                res.bytes().await.expect("body");
                local.push((t0.elapsed().as_secs_f64() * 1000.0, queue));
                i += clients;
            }
            local
        }));
    }
    let (mut latencies_ms, mut queue) = (Vec::new(), Vec::new());
    for t in tasks {
        for (latency, q) in t.await.expect("client task") {
            latencies_ms.push(latency);
            queue.extend(q);
        }
    }
    Run { count: latencies_ms.len(), elapsed: started.elapsed(), latencies_ms, queue_ms: queue }
}

/// Why a request did not end in a usable answer, as the system benchmark counts it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    /// 503 with the problem `type` of its body (empty when it had none).
    Unavailable(String),
    /// Any other status than 200.
    Status(u16),
    /// The peer reset the connection (RST): ECONNRESET anywhere in the error chain.
    Reset,
    /// A write to a connection the peer had closed (EPIPE).
    BrokenPipe,
    /// The client's own deadline passed first.
    Timeout,
    /// Any other transport error, with its innermost message.
    Transport(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable(t) if t.is_empty() => write!(f, "503 (no problem type)"),
            Self::Unavailable(t) => write!(f, "503 {t}"),
            Self::Status(s) => write!(f, "HTTP {s}"),
            Self::Reset => write!(f, "connection reset"),
            Self::BrokenPipe => write!(f, "broken pipe"),
            Self::Timeout => write!(f, "timeout"),
            Self::Transport(m) => write!(f, "transport: {m}"),
        }
    }
}

/// The failure a reqwest error stands for.
///
/// reqwest wraps hyper, which wraps the socket's `io::Error`: the kind of the
/// innermost `io::Error` tells a reset from a broken pipe, where the outer
/// layers only say "error sending request" or "connection error".
pub fn classify_error(e: &reqwest::Error) -> Failure {
    let mut io_kinds = Vec::new();
    let mut messages = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            io_kinds.push(io.kind());
        }
        messages.push(s.to_string());
        source = s.source();
    }
    classify_chain(e.is_timeout(), &io_kinds, &messages)
}

/// [`classify_error`] on what was read from the chain: the `io::ErrorKind`s
/// found and the messages of every layer, outermost first.
pub fn classify_chain(timed_out: bool, io_kinds: &[std::io::ErrorKind], messages: &[String]) -> Failure {
    use std::io::ErrorKind::*;
    if timed_out || io_kinds.contains(&TimedOut) {
        return Failure::Timeout;
    }
    if io_kinds.contains(&ConnectionReset) {
        return Failure::Reset;
    }
    if io_kinds.contains(&BrokenPipe) {
        return Failure::BrokenPipe;
    }
    // Some layers keep only the text of an OS error, not the error itself.
    let text = messages.join(": ").to_ascii_lowercase();
    if text.contains("connection reset") || text.contains("os error 104") {
        return Failure::Reset;
    }
    if text.contains("broken pipe") || text.contains("os error 32") {
        return Failure::BrokenPipe;
    }
    Failure::Transport(messages.last().cloned().unwrap_or_default())
}

/// The `type` of an RFC 9457 problem document, if `body` is one.
pub fn problem_type(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(body).ok()?.get("type")?.as_str().map(str::to_owned)
}

/// utime + stime in clock ticks from the text of `/proc/PID/stat`. The
/// command name is parenthesised and may itself hold spaces and parentheses,
/// so fields are counted from the last `)`.
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    Some(fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?)
}

/// CPU seconds (user + system) `pid` has used so far. Unlike
/// [`crate::procs::cpu_seconds`] it asks no other process for the tick rate,
/// so it can be sampled often.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(stat_cpu_ticks(&stat)? as f64 / if hz > 0 { hz as f64 } else { 100.0 })
}

/// CPU seconds the calling thread has used.
pub fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// The median (mean of the middle two for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Conversions done by the worker's resize code in this process.
pub struct InProcess {
    pub count: usize,
    pub elapsed: Duration,
    /// CPU seconds of the resizing threads alone.
    pub cpu_seconds: f64,
}

impl InProcess {
    pub fn per_cpu_second(&self) -> f64 {
        self.count as f64 / self.cpu_seconds
    }
}

/// `threads` threads resize `files` in turn with `op` for `secs` seconds.
pub fn in_process(files: &[bytes::Bytes], op: &contracts::ResizeOp, threads: usize, secs: f64) -> InProcess {
    use worker::resize::{Limits, resize};
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(secs);
    let (count, cpu_seconds) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let cpu0 = thread_cpu_seconds();
                    let (mut n, mut i) = (0, t);
                    while Instant::now() < end {
                        resize(&files[i % files.len()], op, &Limits::default()).expect("corpus image resizes");
                        n += 1;
                        i += threads;
                    }
                    (n, thread_cpu_seconds() - cpu0)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("resize thread")).fold((0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    InProcess { count, elapsed: started.elapsed(), cpu_seconds }
}

/// Raises this process's open-file limit to its hard limit: an open loop
/// above capacity holds thousands of connections at once.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid rlimit for both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    #[test]
    fn percentiles_and_medians() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.99), 100.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert!(percentile(&[], 0.5).is_nan());
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn proc_stat_fields_are_counted_from_the_last_parenthesis() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 512 0 0 0 1234 567 0 0 20 0 9 0 100 0 0";
        assert_eq!(stat_cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(stat_cpu_ticks("4242 (x) S 1 2"), None);
        let own = process_cpu_seconds(std::process::id()).expect("own stat");
        assert!(own >= 0.0);
    }

    #[test]
    fn errors_are_classified_by_their_innermost_cause() {
        let m = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let sending = m(&["error sending request", "client error (SendRequest)", "connection error"]);
        assert_eq!(classify_chain(false, &[ErrorKind::ConnectionReset], &sending), Failure::Reset);
        assert_eq!(classify_chain(false, &[ErrorKind::BrokenPipe], &sending), Failure::BrokenPipe);
        assert_eq!(classify_chain(true, &[], &sending), Failure::Timeout);
        assert_eq!(
            classify_chain(false, &[], &m(&["error sending request", "Connection reset by peer (os error 104)"])),
            Failure::Reset
        );
        assert_eq!(
            classify_chain(false, &[ErrorKind::ConnectionRefused], &m(&["error", "Connection refused"])),
            Failure::Transport("Connection refused".into())
        );
        assert_eq!(
            problem_type(br#"{"type":"/problems/overloaded","status":503}"#).as_deref(),
            Some("/problems/overloaded")
        );
        assert_eq!(problem_type(b"Service Unavailable"), None);
    }

    /// A server that reads the request and closes with SO_LINGER 0, which sends
    /// an RST: reqwest must surface it as a reset, not a generic error.
    #[tokio::test]
    async fn a_reset_connection_is_counted_as_reset() {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let linger = libc::linger { l_onoff: 1, l_linger: 0 };
            // SAFETY: a valid socket and a valid linger struct of the size given.
            unsafe {
                use std::os::fd::AsRawFd;
                libc::setsockopt(
                    conn.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
        });
        let err = reqwest::Client::new().get(format!("http://{addr}/")).send().await.unwrap_err();
        server.join().unwrap();
        assert_eq!(classify_error(&err), Failure::Reset, "{err:?}");
    }
}
