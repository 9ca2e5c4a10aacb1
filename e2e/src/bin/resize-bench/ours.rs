//! Our side of the comparison: `worker::resize` called in a loop in this
//! process, exactly as the worker's job loop calls it, over inputs already in
//! memory (as the node and Python drivers hold theirs).

use crate::driver::Invocation;
use anyhow::Context;
use contracts::ResizeOp;
use std::time::Instant;
use worker::resize::{Limits, resize};

pub fn run(inv: &Invocation) -> anyhow::Result<()> {
    let op = ResizeOp::parse_canonical(&inv.query).map_err(|e| anyhow::anyhow!("{}: {e:?}", inv.query))?;
    let inputs = inv
        .files
        .iter()
        .map(|f| std::fs::read(f).with_context(|| format!("reading {}", f.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let limits = Limits::default();
    let (started, cpu_started) = (Instant::now(), cpu_seconds());
    let mut count = 0;
    for pass in 0..inv.passes {
        for (file, input) in inv.files.iter().zip(&inputs) {
            let out = resize(input, &op, &limits).with_context(|| format!("resizing {}", file.display()))?;
            if let (Some(dir), 0) = (&inv.out, pass) {
                let stem = file.file_stem().context("file name")?.to_string_lossy();
                std::fs::write(dir.join(format!("{stem}.{}", inv.format)), &out.bytes)?;
            }
            count += 1;
        }
    }
    let (elapsed, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu_started);
    println!("elapsed={elapsed} cpu={cpu} count={count}");
    Ok(())
}

fn cpu_seconds() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}
