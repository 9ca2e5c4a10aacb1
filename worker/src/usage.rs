//! The usage record of a processed job, and the thread CPU time it reports.

use contracts::{
    Job, Outcome,
    usage::{Source, UsageRecord, record::RECORD_VERSION},
};

/// CPU time of the calling thread, in microseconds: a job runs on one blocking
/// thread from start to end, so the difference across it is the job's own CPU time.
pub fn thread_cpu_us() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is supported on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// What the worker measured about one job.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub finished_us: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub pixels_in: u64,
    pub cpu_us: u64,
    pub queue_us: u64,
}

pub fn record(job: &Job, outcome: &Outcome, m: Measured) -> UsageRecord {
    let (status, problem, pixels_out, format_out) = match outcome {
        Outcome::Ok(r) => (200, None, r.pixels(), Some(r.format)),
        Outcome::Failed { kind, .. } => (kind.status(), Some(kind.slug().to_owned()), 0, None),
    };
    UsageRecord {
        v: RECORD_VERSION,
        request_id: job.request_id.clone(),
        tenant: job.tenant.clone(),
        key_id: job.key_id.clone(),
        received_ms: job.enqueued_us / 1000,
        finished_ms: (m.finished_us / 1000).max(job.enqueued_us / 1000),
        status,
        problem,
        bytes_in: m.bytes_in,
        bytes_out: m.bytes_out,
        pixels_in: m.pixels_in,
        pixels_out,
        format_in: Some(job.input),
        format_out,
        cpu_us: m.cpu_us,
        queue_us: m.queue_us,
        latency_us: m.finished_us.saturating_sub(job.enqueued_us),
        source: Source::Worker,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::{ImageFormat, ProblemKind, Rendered, ResizeOp};

    fn job() -> Job {
        Job {
            request_id: "r1".into(),
            deadline_ms: 2_000_000,
            reply: "x".into(),
            op: ResizeOp::parse_canonical("w=10").unwrap(),
            input: ImageFormat::Png,
            enqueued_us: 1_000_000_000,
            traceparent: None,
            tenant: "anonymous".into(),
            key_id: String::new(),
            staged: None,
        }
    }

    #[test]
    fn records_are_valid_and_carry_the_measurements() {
        let m = Measured {
            finished_us: 1_000_050_000,
            bytes_in: 10,
            bytes_out: 5,
            pixels_in: 400,
            cpu_us: 30_000,
            queue_us: 1_000,
        };
        let ok =
            record(&job(), &Outcome::Ok(Rendered { format: ImageFormat::Webp, width: 10, height: 8, frames: 1 }), m);
        ok.validate().unwrap();
        assert_eq!((ok.status, ok.pixels_out, ok.latency_us, ok.received_ms), (200, 80, 50_000, 1_000_000));
        let failed = record(&job(), &Outcome::Failed { kind: ProblemKind::CorruptImage, detail: "x".into() }, m);
        failed.validate().unwrap();
        assert_eq!((failed.status, failed.problem.as_deref()), (422, Some("corrupt-image")));
    }

    #[test]
    fn thread_cpu_time_advances_with_work() {
        let t0 = thread_cpu_us();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_us() > t0);
    }
}
