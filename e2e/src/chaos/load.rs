//! Open-loop traffic against the api-servers, one [`Outcome`] per request.
//!
//! Arrivals follow a fixed schedule and never wait for answers, as real
//! clients do not: a slow system gets more requests in flight, not fewer.
//! Every twentieth request carries no credentials, every twentieth other
//! one a signature by a key that is not the tenant's, one more a corrupt
//! image and one more is abandoned by its client halfway through the upload;
//! the rest alternate between the tenants' API keys and their signatures.
//! Each tenant asks for its own box size, so an image that reached the wrong
//! tenant shows.
//!
//! Requests go to the api-servers in turn through the [`Edge`], which leaves
//! out a backend its health checks ejected and answers for the requests
//! waiting on it. A refused connection is tried on the next one, as a load
//! balancer routes around a dead backend; anything after the connection is
//! the system's answer.

use super::{
    edge::{self, Edge},
    fleet::{Backends, Fleet},
};
use crate::bench::{Failure, classify_error, problem_type};
use bytes::Bytes;
use identity::client::{self, Credentials};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::task::JoinSet;

/// Who a request claims to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Tenant index, by API key.
    Bearer(usize),
    /// Tenant index, by RFC 9421 signature.
    Signed(usize),
    /// No credentials at all.
    Anonymous,
    /// The tenant's key id, signed with some other key.
    Forged(usize),
    /// Tenant index, by API key, with a body that is not a decodable image.
    Corrupt(usize),
    /// Tenant index, by API key: the client sends half the declared body and
    /// closes the connection.
    Abandoned(usize),
}

impl Ask {
    /// The tenant a request may be served for; `None` for one that must be refused.
    pub fn tenant(self) -> Option<usize> {
        match self {
            Self::Bearer(t) | Self::Signed(t) => Some(t),
            Self::Anonymous | Self::Forged(_) | Self::Corrupt(_) | Self::Abandoned(_) => None,
        }
    }

    /// The tenant whose valid credentials the request carries, image or not.
    pub fn sender(self) -> Option<usize> {
        match self {
            Self::Bearer(t) | Self::Signed(t) | Self::Corrupt(t) | Self::Abandoned(t) => Some(t),
            Self::Anonymous | Self::Forged(_) => None,
        }
    }

    /// The `i`-th request of a run.
    pub fn nth(i: usize) -> Self {
        let tenant = (i / 2) % TENANT_SIDES.len();
        match i % 20 {
            3 => Self::Corrupt(tenant),
            7 => Self::Anonymous,
            11 => Self::Abandoned(tenant),
            13 => Self::Forged(tenant),
            _ if i.is_multiple_of(2) => Self::Bearer(tenant),
            _ => Self::Signed(tenant),
        }
    }
}

/// The box each tenant asks for (`fit=inside`): the longer side of its answers.
pub const TENANT_SIDES: [u32; 2] = [200, 240];

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A decodable image; its longer side.
    Image { side: u32 },
    /// A problem document (`type` empty when the body was not problem+json with a type).
    Problem { status: u16, kind: String },
    /// No HTTP answer, or an unreadable one.
    Failed(Failure),
}

#[derive(Debug, Clone)]
pub struct Outcome {
    /// Scheduled send time, from the start of the run.
    pub sent: Duration,
    /// From the scheduled send to the end of the answer (or the failure).
    pub took: Duration,
    pub ask: Ask,
    /// The api-server that got the request last: index and incarnation.
    pub backend: (usize, u32),
    pub answer: Answer,
    /// `x-request-id` of the answer: the id its usage record carries.
    pub request_id: Option<String>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        matches!(self.answer, Answer::Image { .. }) && self.ask.tenant().is_some()
    }

    /// Whether the edge answered for a backend it ejected while the request waited on it.
    pub fn by_edge(&self) -> bool {
        matches!(&self.answer, Answer::Problem { kind, .. } if kind == edge::EJECTED)
    }

    /// When the answer (or the failure) arrived, from the start of the run.
    pub fn done(&self) -> Duration {
        self.sent + self.took
    }
}

/// Everything a request needs; cheap to clone into each request's task.
#[derive(Clone)]
pub struct Load {
    http: reqwest::Client,
    backends: Backends,
    edge: Edge,
    photos: Arc<Vec<Bytes>>,
    /// Per tenant: API key, signature key, and a forged signature key with the real key id.
    keys: Arc<Vec<[Credentials; 3]>>,
    /// A request not answered within this (the api-server's deadline + 1 s) hangs.
    timeout: Duration,
}

impl Load {
    pub fn new(fleet: &Fleet, photos: Vec<Bytes>, timeout: Duration) -> Self {
        let keys = fleet
            .tenants
            .iter()
            .map(|t| {
                let forged = Credentials::Signature { key_id: t.signature_key_id.clone(), key: client::generate_key() };
                [t.api_key.clone(), t.signature.clone(), forged]
            })
            .collect();
        Self {
            http: reqwest::Client::new(),
            backends: fleet.backends.clone(),
            edge: Edge::watch(fleet.backends.clone()),
            photos: Arc::new(photos),
            keys: Arc::new(keys),
            timeout,
        }
    }

    /// Open loop from `start` until `end` (milliseconds from `start`, which may be
    /// moved while the load runs): arrivals at `rate(t)` per second, `t` from the start.
    pub async fn open(&self, start: Instant, end: Arc<AtomicU64>, rate: impl Fn(Duration) -> f64) -> Vec<Outcome> {
        let mut tasks = JoinSet::new();
        let mut at = Duration::ZERO;
        let mut i = 0;
        while (at.as_millis() as u64) < end.load(Ordering::Relaxed) {
            tokio::time::sleep_until((start + at).into()).await;
            let me = self.clone();
            tasks.spawn(async move { me.once(i, at, start).await });
            i += 1;
            at += Duration::from_secs_f64(1.0 / rate(at).max(0.1));
        }
        let mut out = Vec::with_capacity(i);
        while let Some(o) = tasks.join_next().await {
            out.push(o.expect("request task"));
        }
        out.sort_by_key(|o| o.sent);
        out
    }

    /// Closed loop for `length` with `clients` clients of the first tenant's API key: the capacity.
    pub async fn closed(&self, length: Duration, clients: usize) -> Vec<Outcome> {
        let start = Instant::now();
        let mut tasks = JoinSet::new();
        for c in 0..clients {
            let me = self.clone();
            tasks.spawn(async move {
                let mut local = Vec::new();
                let mut i = c;
                while start.elapsed() < length {
                    local.push(me.once_as(i, Ask::Bearer(0), start.elapsed(), start).await);
                    i += clients;
                }
                local
            });
        }
        let mut out = Vec::new();
        while let Some(o) = tasks.join_next().await {
            out.extend(o.expect("client task"));
        }
        out
    }

    async fn once(&self, i: usize, sent: Duration, start: Instant) -> Outcome {
        self.once_as(i, Ask::nth(i), sent, start).await
    }

    async fn once_as(&self, i: usize, ask: Ask, sent: Duration, start: Instant) -> Outcome {
        let at = start + sent;
        let (backend, result) = match tokio::time::timeout(self.timeout, self.exchange(i, ask)).await {
            Ok(r) => r,
            Err(_) => ((i % self.backends.len(), 0), Err(Failure::Timeout)),
        };
        let (answer, request_id) = match result {
            Ok(r) => r,
            Err(f) => (Answer::Failed(f), None),
        };
        Outcome { sent, took: at.elapsed(), ask, backend, answer, request_id }
    }

    /// Sends request `i` to the api-servers in the edge's order, past the ones refusing connections.
    async fn exchange(&self, i: usize, ask: Ask) -> ((usize, u32), Result<(Answer, Option<String>), Failure>) {
        let body = match ask {
            // A JPEG start and a quantisation table marker with a length that cannot be.
            Ask::Corrupt(_) => {
                Bytes::from_iter([0xff, 0xd8, 0xff, 0xdb].into_iter().chain(std::iter::repeat_n(0, 4096)))
            }
            _ => self.photos[i % self.photos.len()].clone(),
        };
        let mut last = None;
        // Starting from i + i/4, not i: the asks alternate with i (bearer and
        // signed, then tenants every two), and every backend must see them all.
        for b in self.edge.order(i + i / 4) {
            let (base, generation) = self.backends.get(b);
            // Err: the connection was refused, try the next backend.
            let attempt = async {
                if let Ask::Abandoned(t) = ask {
                    return Ok(self.abandon(&base, &self.keys[t][0], &body).await);
                }
                match self.send(&base, ask, body.clone()).await {
                    Err(e) if e.is_connect() => Err(classify_error(&e)),
                    Err(e) => Ok(Err(classify_error(&e))),
                    Ok(res) => Ok(read(res).await),
                }
            };
            let answered = tokio::select! {
                r = attempt => r,
                () = self.edge.ejected(b) => Ok(Ok((Answer::Problem { status: 503, kind: edge::EJECTED.into() }, None))),
            };
            match answered {
                Ok(r) => return ((b, generation), r),
                Err(refused) => last = Some(((b, generation), Err(refused))),
            }
        }
        last.expect("at least one api-server")
    }

    async fn send(&self, base: &str, ask: Ask, body: Bytes) -> reqwest::Result<reqwest::Response> {
        let side = TENANT_SIDES[ask.sender().unwrap_or(0)];
        let url = format!("{base}/v1/resize?w={side}&h={side}&fit=inside&format=jpeg&quality=70");
        let mut req = self.http.post(&url).header("content-type", "image/jpeg");
        let creds = match ask {
            Ask::Bearer(t) | Ask::Corrupt(t) | Ask::Abandoned(t) => Some(&self.keys[t][0]),
            Ask::Signed(t) => Some(&self.keys[t][1]),
            Ask::Forged(t) => Some(&self.keys[t][2]),
            Ask::Anonymous => None,
        };
        if let Some(creds) = creds {
            req = req.headers(crate::identity::auth_headers(&url, "image/jpeg", &body, creds));
        }
        req.body(body).send().await
    }

    /// Declares the whole body, sends half of it and closes the connection:
    /// on a raw socket, since an HTTP client would keep the connection (and
    /// the server would read the next request as the rest of this body).
    /// Any answer read before the close counts; usually there is none.
    async fn abandon(&self, base: &str, key: &Credentials, body: &Bytes) -> Result<(Answer, Option<String>), Failure> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let url = format!("{base}/v1/resize?w=64&format=jpeg");
        let authority = base.trim_start_matches("http://");
        let mut head = format!(
            "POST {} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: image/jpeg\r\ncontent-length: {}\r\n",
            &url[base.len()..],
            body.len()
        );
        for (name, value) in &crate::identity::auth_headers(&url, "image/jpeg", body, key) {
            head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or_default()));
        }
        head.push_str("\r\n");
        let io = async {
            let mut sock = tokio::net::TcpStream::connect(authority).await?;
            sock.write_all(head.as_bytes()).await?;
            sock.write_all(&body[..body.len() / 2]).await?;
            sock.shutdown().await?;
            let mut answer = Vec::new();
            sock.read_to_end(&mut answer).await?;
            std::io::Result::Ok(answer)
        };
        match io.await {
            Ok(answer) if answer.is_empty() => Err(Failure::Transport("left mid-upload".into())),
            Ok(answer) => Ok((
                Answer::Problem {
                    status: super::slow::status_of(&answer).unwrap_or(0),
                    kind: "(read before leaving)".into(),
                },
                None,
            )),
            Err(e) => Err(Failure::Transport(format!("left mid-upload: {e}"))),
        }
    }
}

async fn read(res: reqwest::Response) -> Result<(Answer, Option<String>), Failure> {
    let status = res.status().as_u16();
    let id = res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let problem_json =
        res.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    let body = res.bytes().await.map_err(|e| classify_error(&e))?;
    let answer = match status {
        200 => match image::ImageReader::new(std::io::Cursor::new(&body)).with_guessed_format() {
            Ok(r) => match r.into_dimensions() {
                Ok((w, h)) => Answer::Image { side: w.max(h) },
                Err(e) => Answer::Failed(Failure::Transport(format!("200 with an undecodable image: {e}"))),
            },
            Err(e) => Answer::Failed(Failure::Transport(format!("200 with an unreadable body: {e}"))),
        },
        s => {
            let kind = if problem_json { problem_type(&body).unwrap_or_default() } else { String::new() };
            Answer::Problem { status: s, kind }
        }
    };
    Ok((answer, id))
}
