//! A TCP relay that can add latency, as toxiproxy's latency toxic does:
//! every chunk read is written on after the delay in force (plus up to the
//! jitter), in order, both ways. api-server 0 reaches each NATS node through
//! one, so its link alone can be slowed; this machine's kernel has no
//! `netem`, and packet loss and partitions are made with iptables in
//! [`super::netns`] instead.

use bytes::Bytes;
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    time::Instant,
};

/// The latency in force, shared by every connection of a relay.
#[derive(Debug, Default)]
struct Latency {
    delay_ms: AtomicU64,
    jitter_ms: AtomicU64,
}

pub struct Relay {
    /// Where clients connect.
    pub addr: SocketAddr,
    latency: Arc<Latency>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Listens on `listen` and relays each connection to `upstream`, at first without delay.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let latency = Arc::new(Latency::default());
        let shared = latency.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let latency = shared.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = (client.set_nodelay(true), server.set_nodelay(true));
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pipe(cr, sw, latency.clone()), pipe(sr, cw, latency));
                });
            }
        });
        Ok(Self { addr, latency, accept })
    }

    /// From now on, every chunk waits `delay` plus up to `jitter`.
    pub fn set(&self, delay: Duration, jitter: Duration) {
        self.latency.delay_ms.store(delay.as_millis() as u64, Ordering::Relaxed);
        self.latency.jitter_ms.store(jitter.as_millis() as u64, Ordering::Relaxed);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// When a chunk read at `now` goes out: `delay` plus `jitter` × `noise`
/// (0–1) after it, never before the chunk ahead of it.
pub fn due(now: Instant, previous: Instant, delay_ms: u64, jitter_ms: u64, noise: f64) -> Instant {
    let wait = Duration::from_millis(delay_ms) + Duration::from_secs_f64(jitter_ms as f64 / 1000.0 * noise);
    (now + wait).max(previous)
}

async fn pipe(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, l: Arc<Latency>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Bytes)>();
    let read = async move {
        let mut buf = vec![0u8; 64 << 10];
        let mut last = Instant::now();
        // xorshift: the jitter needs spread, not quality.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let noise = (x >> 11) as f64 / (1u64 << 53) as f64;
            last = due(
                Instant::now(),
                last,
                l.delay_ms.load(Ordering::Relaxed),
                l.jitter_ms.load(Ordering::Relaxed),
                noise,
            );
            if tx.send((last, Bytes::copy_from_slice(&buf[..n]))).is_err() {
                break;
            }
        }
    };
    let write = async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_waits_the_delay_and_never_overtakes_the_one_ahead() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(due(t0, t0, 100, 0, 0.9), t0 + ms(100));
        assert_eq!(due(t0, t0, 100, 50, 0.5), t0 + ms(125));
        assert_eq!(due(t0, t0 + ms(180), 100, 50, 0.0), t0 + ms(180), "order kept");
        assert_eq!(due(t0, t0, 0, 0, 0.3), t0, "no latency set: at once");
    }

    #[tokio::test]
    async fn bytes_arrive_intact_and_late_by_the_delay() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut b = [0u8; 5];
            s.read_exact(&mut b).await.unwrap();
            s.write_all(&b).await.unwrap();
        });
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), upstream).await.unwrap();
        relay.set(Duration::from_millis(100), Duration::ZERO);
        let started = std::time::Instant::now();
        let mut c = TcpStream::connect(relay.addr).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut back = [0u8; 5];
        c.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"hello");
        assert!(started.elapsed() >= Duration::from_millis(200), "two ways: {:?}", started.elapsed());
    }
}
