//! The report on stdout: a table per operation, the targets, and the
//! machine-readable last line.

use crate::{HEADLINE, Measured, OpResult, tools::Tool};

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn get(r: &OpResult, tool: Tool) -> Option<&Measured> {
    r.tools.iter().find(|(t, _)| *t == tool).map(|(_, m)| m)
}

/// ours/peer on medians of conversions per CPU-second, for every peer that ran on `r`.
fn ratios(r: &OpResult) -> Vec<(Tool, f64)> {
    ratios_of(r, |m| &m.cpu_rates)
}

fn ratios_of(r: &OpResult, rates: impl Fn(&Measured) -> &Vec<f64>) -> Vec<(Tool, f64)> {
    let Some(ours) = get(r, Tool::Ours) else { return Vec::new() };
    let ours = median(rates(ours));
    r.tools.iter().filter(|(t, _)| *t != Tool::Ours).map(|(t, m)| (*t, ours / median(rates(m)))).collect()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn print(results: &[OpResult], skipped: &[(Tool, String)], cores: usize, reps: usize) {
    for r in results {
        println!();
        println!("== {}: {} ({} input files, {reps} repetitions, {cores} core(s))", r.op.name, r.op.what, r.files);
        println!("conversions per CPU-second and per wall-clock second: median [min–max]");
        println!("{:<14} {:>23} {:>23} {:>10}", "tool", "per CPU-s", "per wall-s", "peak RSS");
        for (tool, m) in &r.tools {
            let span = |v: &[f64]| format!("{:.1} [{:.1}–{:.1}]", median(v), min(v), max(v));
            let (cpu, wall) = (span(&m.cpu_rates), span(&m.rates));
            println!("{:<14} {cpu:>23} {wall:>23} {:>6.1} MiB", tool.name(), mib(m.peak_rss_kib));
        }
        let wall = ratios_of(r, |m| &m.rates);
        for ((peer, ratio), (_, wall)) in ratios(r).into_iter().zip(wall) {
            println!("ratio ours/{} = {ratio:.2} (per wall-clock second: {wall:.2})", peer.name());
        }
        if r.op.spec.crop == Some("attention") {
            // Each tool picks its own crop: SSIM then measures where they
            // disagree, not how well they resample (see scripts/crop-sheet.sh).
            println!("(ssim below compares crops each tool chose for itself: agreement on the crop, not quality)");
        }
        for (tool, s) in &r.ssim {
            print!(
                "ssim {} vs vipsthumbnail (Lanczos3, same operation) = {:.4} over {} images, bytes {:.3} × vipsthumbnail's",
                tool.name(),
                s.mean,
                s.compared,
                s.size_ratio()
            );
            if !s.size_mismatches.is_empty() {
                print!("; {} not scored, size differs: {}", s.size_mismatches.len(), s.size_mismatches.join(", "));
            }
            println!();
        }
        for (tool, s) in &r.fidelity {
            println!(
                "fidelity {}: ssim vs its own lossless output (PNG, same operation) = {:.4} over {} images",
                tool.name(),
                s.mean,
                s.compared
            );
        }
    }
    println!();
    for (tool, why) in skipped {
        println!("{}: not run: {why}", tool.name());
    }
    targets(results);
}

fn targets(results: &[OpResult]) {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    for r in results {
        for (peer, ratio) in ratios(r).into_iter().filter(|(p, _)| matches!(p, Tool::Vipsthumbnail | Tool::Sharp)) {
            let libvips = if peer == Tool::Sharp { "libvips 8.18 via sharp" } else { "libvips 8.14 via vipsthumbnail" };
            println!("target {}: ours ≥ 0.90 × {libvips}: {ratio:.2} {}", r.op.name, verdict(ratio >= 0.9));
        }
    }
    if let Some(r) = results.iter().find(|r| r.op.inputs.starts_with("large/"))
        && let (Some(ours), Some(vips)) = (get(r, Tool::Ours), get(r, Tool::Vipsthumbnail))
    {
        let ratio = ours.peak_rss_kib as f64 / vips.peak_rss_kib as f64;
        println!(
            "target {} peak RSS ≤ 1.5 × vipsthumbnail: {:.1} MiB vs {:.1} MiB = {ratio:.2} × {}",
            r.op.name,
            mib(ours.peak_rss_kib),
            mib(vips.peak_rss_kib),
            verdict(ratio <= 1.5)
        );
    }
    if let Some(r) = results.iter().find(|r| r.op.spec.format == "avif")
        && let Some((_, ratio)) = ratios(r).into_iter().find(|(p, _)| *p == Tool::Vipsthumbnail)
    {
        let fidelity = |t: Tool| r.fidelity.iter().find(|(x, _)| *x == t).map_or(f64::NAN, |(_, s)| s.mean);
        let (ours, vips) = (fidelity(Tool::Ours), fidelity(Tool::Vipsthumbnail));
        let bytes = r.ssim.iter().find(|(t, _)| *t == Tool::Ours).map_or(f64::NAN, |(_, s)| s.size_ratio());
        println!(
            "target {}: ≥ 1.20 × vipsthumbnail per CPU-second: {ratio:.2} {}; fidelity ≥ vipsthumbnail's: {ours:.4} vs {vips:.4} {}; bytes within 10 %: {bytes:.3} × {}",
            r.op.name,
            verdict(ratio >= 1.2),
            verdict(ours >= vips),
            verdict((bytes - 1.0).abs() <= 0.10)
        );
    }
    if let Some(r) = results.iter().find(|r| r.op.spec.format == "gif")
        && let Some((peer, ratio)) = ratios(r).into_iter().min_by(|a, b| a.1.total_cmp(&b.1))
    {
        println!(
            "target {}: ≥ 1.20 × the fastest peer keeping every frame ({}): {ratio:.2} {}",
            r.op.name,
            peer.name(),
            verdict(ratio >= 1.2)
        );
        for (tool, m) in r.tools.iter().filter(|(t, _)| *t != Tool::Ours) {
            if let Some(ours) = get(r, Tool::Ours) {
                println!(
                    "{} peak RSS: ours {:.1} MiB vs {} {:.1} MiB",
                    r.op.name,
                    mib(ours.peak_rss_kib),
                    tool.name(),
                    mib(m.peak_rss_kib)
                );
            }
        }
    }
    let Some(head) = results.iter().find(|r| r.op.name == HEADLINE) else {
        println!("min_ratio=nan worst_peer=none ssim=nan");
        return;
    };
    let worst = ratios(head).into_iter().min_by(|a, b| a.1.total_cmp(&b.1));
    let ssim = head.ssim.iter().find(|(t, _)| *t == Tool::Ours).map(|(_, s)| s.mean).unwrap_or(f64::NAN);
    if let Some((peer, ratio)) = worst {
        println!(
            "target {HEADLINE}: ours ≥ 1.20 × the fastest peer ({}): {ratio:.2} {}",
            peer.name(),
            verdict(ratio >= 1.2)
        );
    }
    println!("target {HEADLINE}: SSIM ≥ 0.98 against libvips: {ssim:.4} {}", verdict(ssim >= 0.98));
    match worst {
        Some((peer, ratio)) => println!("min_ratio={ratio:.2} worst_peer={} ssim={ssim:.3}", peer.name()),
        None => println!("min_ratio=nan worst_peer=none ssim={ssim:.3}"),
    }
}
