//! Benchmark (not a test): conversions per second on one core, our worker's
//! resize function against libvips (`vipsthumbnail`), sharp and Pillow-SIMD,
//! on the shared corpus, with peak memory and an SSIM quality guard.
//!
//!   scripts/bench-resize.sh [--reps 3] [--seconds 3] [--ops jpeg-320,webp-1024,png-320,24mp-320,cover-320,smart-320,avif-320,gif-320]
//!
//! Run it under `taskset -c 1` (the script does): every tool is a child
//! process that inherits the affinity and is told to use one thread. Each tool
//! gets an untimed warm-up pass (whose outputs the SSIM guard reads), then
//! `--reps` timed repetitions of about `--seconds` each, interleaved across
//! tools so that noise from other load on the machine is shared out.
//! Progress goes to stderr, the report to stdout; its last line is
//! `min_ratio=<x.xx> worst_peer=<name> ssim=<0.xxx>` for the headline operation.
//!
//! Two rates are reported per tool: conversions per wall-clock second, and per
//! CPU-second of the tool's process (all its threads). On a quiet core they
//! agree; on a core shared with other work only the second stays put, so the
//! ratios and the last line use it.

mod animations;
mod child;
mod driver;
mod ours;
mod quality;
mod report;
mod tools;

use anyhow::Context;
use driver::Spec;
use e2e::corpus;
use std::path::PathBuf;
use tools::{Peers, Tool};

/// First argument that turns this binary into our own driver, in a child process.
pub const OURS_DRIVER: &str = "--ours-driver";

pub struct Op {
    pub name: &'static str,
    pub what: &'static str,
    /// A corpus sub-directory or file, or [`ANIMATED`].
    pub inputs: &'static str,
    pub spec: Spec,
}

const fn spec(width: u32, height: u32, format: &'static str) -> Spec {
    Spec { width, height, format, quality: 80, crop: None }
}

const fn cropped(width: u32, height: u32, crop: &'static str) -> Spec {
    Spec { width, height, format: "jpeg", quality: 80, crop: Some(crop) }
}

pub const HEADLINE: &str = "jpeg-320";

/// The inputs of `gif-320`: the directory `$ANIMATED_DIR` ([`animations`]).
pub const ANIMATED: &str = "@animated";

const OPS: [Op; 8] = [
    Op { name: HEADLINE, what: "JPEG → fit 320×320 → JPEG q80", inputs: "jpeg", spec: spec(320, 320, "jpeg") },
    Op {
        name: "webp-1024", what: "JPEG → fit 1024×1024 → WebP q80", inputs: "jpeg", spec: spec(1024, 1024, "webp")
    },
    Op { name: "png-320", what: "PNG → fit 320×320 → PNG", inputs: "png", spec: spec(320, 320, "png") },
    Op {
        name: "24mp-320",
        what: "24 MP JPEG → fit 320×320 → JPEG q80",
        inputs: "large/kleiber-24mp-q95.jpg",
        spec: spec(320, 320, "jpeg"),
    },
    Op {
        name: "cover-320",
        what: "JPEG → cover 320×320, centre crop → JPEG q80",
        inputs: "jpeg",
        spec: cropped(320, 320, "centre"),
    },
    Op {
        name: "smart-320",
        what: "JPEG → cover 320×320, attention crop (gravity=smart) → JPEG q80",
        inputs: "jpeg",
        spec: cropped(320, 320, "attention"),
    },
    Op { name: "avif-320", what: "JPEG → fit 320×320 → AVIF q80", inputs: "jpeg", spec: spec(320, 320, "avif") },
    Op {
        name: "gif-320",
        what: "animated GIF (16 frames of 640×360) → fit 320×320 → animated GIF, every frame kept",
        inputs: ANIMATED,
        spec: spec(320, 320, "gif"),
    },
];

struct Config {
    reps: usize,
    seconds: f64,
    ops: Vec<&'static Op>,
    peers_dir: PathBuf,
}

fn config(args: impl Iterator<Item = String>) -> anyhow::Result<Config> {
    let cache = std::env::var_os("RESIZER_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/resizer"));
    let mut c = Config { reps: 3, seconds: 3.0, ops: OPS.iter().collect(), peers_dir: cache.join("bench") };
    let mut it = args;
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--reps" => c.reps = value.parse()?,
            "--seconds" => c.seconds = value.parse()?,
            "--peers-dir" => c.peers_dir = value.into(),
            "--ops" => {
                c.ops = value
                    .split(',')
                    .map(|n| OPS.iter().find(|o| o.name == n).with_context(|| format!("no operation {n}")))
                    .collect::<anyhow::Result<_>>()?
            }
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    anyhow::ensure!(c.reps >= 1, "--reps must be at least 1");
    Ok(c)
}

fn inputs(op: &Op) -> anyhow::Result<Vec<PathBuf>> {
    if op.inputs == ANIMATED {
        let dir =
            std::env::var_os("ANIMATED_DIR").context("ANIMATED_DIR is not set (scripts/bench-resize.sh sets it)")?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
        files.retain(|f| f.extension().is_some_and(|e| e == "gif"));
        files.sort();
        anyhow::ensure!(!files.is_empty(), "no animated GIFs in $ANIMATED_DIR");
        return Ok(files);
    }
    let p = corpus::dir().join(op.inputs);
    Ok(if p.is_dir() { corpus::files(op.inputs) } else { vec![p] })
}

/// What one tool measured on one operation.
#[derive(Default)]
pub struct Measured {
    /// Conversions per wall-clock second, one per repetition.
    pub rates: Vec<f64>,
    /// Conversions per CPU-second, one per repetition.
    pub cpu_rates: Vec<f64>,
    pub peak_rss_kib: u64,
}

pub struct OpResult {
    pub op: &'static Op,
    pub files: usize,
    pub tools: Vec<(Tool, Measured)>,
    /// Against vipsthumbnail's output, per tool other than vipsthumbnail.
    pub ssim: Vec<(Tool, quality::Similarity)>,
    /// Lossy operations: every tool's output against its own lossless (PNG) output of the same operation.
    pub fidelity: Vec<(Tool, quality::Similarity)>,
}

fn measure(
    op: &'static Op,
    tools: &[Tool],
    peers: &Peers,
    cfg: &Config,
    scratch: &std::path::Path,
) -> anyhow::Result<OpResult> {
    let files = inputs(op)?;
    let mut passes = Vec::new();
    let mut measured: Vec<(Tool, Measured)> = Vec::new();
    for &tool in tools {
        let out = scratch.join(op.name).join(tool.name());
        std::fs::create_dir_all(&out)?;
        let (cmd, expected) = peers.command(tool, &op.spec, &files, 1, &out);
        let warm = child::run(&cmd, expected).with_context(|| format!("{} warm-up on {}", tool.name(), op.name))?;
        let n = ((cfg.seconds * warm.rate() / files.len() as f64).ceil() as usize).max(1);
        eprintln!("[{}] {} warm-up: {:.1} conv/s → {n} passes per repetition", op.name, tool.name(), warm.rate());
        passes.push(n);
        measured.push((tool, Measured::default()));
    }
    let discard = scratch.join(op.name).join("timed");
    std::fs::create_dir_all(&discard)?;
    for rep in 1..=cfg.reps {
        for (i, &tool) in tools.iter().enumerate() {
            let (cmd, expected) = peers.command(tool, &op.spec, &files, passes[i], &discard);
            let o = child::run(&cmd, expected).with_context(|| format!("{} on {}", tool.name(), op.name))?;
            eprintln!(
                "[{}] rep {rep}/{} {}: {:.1} conv/s, {:.1} per CPU-s ({} in {:.2} s, peak RSS {} MiB)",
                op.name,
                cfg.reps,
                tool.name(),
                o.rate(),
                o.cpu_rate(),
                o.count,
                o.secs,
                o.peak_rss_kib / 1024
            );
            let m = &mut measured[i].1;
            m.rates.push(o.rate());
            m.cpu_rates.push(o.cpu_rate());
            m.peak_rss_kib = m.peak_rss_kib.max(o.peak_rss_kib);
        }
    }
    let mut ssim = Vec::new();
    if tools.contains(&Tool::Vipsthumbnail) {
        let reference = scratch.join(op.name).join(Tool::Vipsthumbnail.name());
        for &tool in tools.iter().filter(|t| **t != Tool::Vipsthumbnail) {
            ssim.push((tool, quality::compare(&scratch.join(op.name).join(tool.name()), &reference, None)?));
        }
    }
    // Lossy outputs also against the same tool's lossless output of the same
    // operation (PNG): what its encoder lost at this quality, apart from how
    // it resampled. Closeness to libvips' own lossy file cannot say which of
    // the two lost more.
    let mut fidelity = Vec::new();
    // GIF's loss is its palette, and gifsicle writes nothing else: no lossless reference.
    if !matches!(op.spec.format, "png" | "gif") {
        let lossless = Spec { format: "png", ..op.spec.clone() };
        for &tool in tools {
            let reference = scratch.join(op.name).join(format!("{}-lossless", tool.name()));
            std::fs::create_dir_all(&reference)?;
            let (cmd, expected) = peers.command(tool, &lossless, &files, 1, &reference);
            child::run(&cmd, expected).with_context(|| format!("{}'s lossless reference", tool.name()))?;
            let outputs = scratch.join(op.name).join(tool.name());
            fidelity.push((tool, quality::compare(&outputs, &reference, Some("png"))?));
        }
    }
    Ok(OpResult { op, files: files.len(), tools: measured, ssim, fidelity })
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    match args.peek().map(String::as_str) {
        Some(OURS_DRIVER) => {
            args.next();
            return ours::run(&driver::parse(args)?);
        }
        Some(child::RSS_HELPER) => {
            args.next();
            std::process::exit(child::spawn_and_report(args)?);
        }
        Some(animations::MAKE) => {
            args.next();
            let out = PathBuf::from(args.next().context("--make-animations DIR")?);
            return animations::make(&corpus::files("jpeg"), &out);
        }
        _ => {}
    }
    let cfg = config(args)?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    if cores != 1 {
        eprintln!("warning: {cores} cores available; run under `taskset -c 1` for per-core figures");
    }
    let peers = Peers::new(cfg.peers_dir.clone());
    let mut tools = Vec::new();
    let mut skipped = Vec::new();
    for tool in tools::ALL {
        match peers.unavailable(tool) {
            None => tools.push(tool),
            Some(why) => {
                eprintln!("{}: not run: {why}", tool.name());
                skipped.push((tool, why));
            }
        }
    }
    let scratch_root = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
    let scratch = tempfile::Builder::new().prefix("resize-bench").tempdir_in(scratch_root)?;
    let mut results = Vec::new();
    for op in &cfg.ops {
        eprintln!("[{}] {}", op.name, op.what);
        let able: Vec<Tool> = tools.iter().copied().filter(|t| t.supports(&op.spec)).collect();
        results.push(measure(op, &able, &peers, &cfg, scratch.path())?);
    }
    report::print(&results, &skipped, cores, cfg.reps);
    Ok(())
}
