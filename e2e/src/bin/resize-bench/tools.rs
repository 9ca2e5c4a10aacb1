//! The tools compared and how each is started, single-threaded.

use crate::driver::Spec;
use std::{
    path::{Path, PathBuf},
    process::Command,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Ours,
    Vipsthumbnail,
    Sharp,
    PillowSimd,
    Imgproxy,
    Gifsicle,
}

pub const ALL: [Tool; 6] =
    [Tool::Ours, Tool::Vipsthumbnail, Tool::Sharp, Tool::PillowSimd, Tool::Imgproxy, Tool::Gifsicle];

impl Tool {
    /// Whether the tool can perform `spec` at all: Pillow has no attention
    /// crop, and Pillow-SIMD no AVIF encoder; gifsicle only does GIF, and
    /// animated GIF is compared among the tools that keep every frame from
    /// the command line (ours, libvips with `[n=-1]`, gifsicle).
    pub fn supports(self, spec: &Spec) -> bool {
        match self {
            Tool::Gifsicle => spec.format == "gif",
            _ if spec.format == "gif" => matches!(self, Tool::Ours | Tool::Vipsthumbnail),
            Tool::PillowSimd => !(spec.crop == Some("attention") || spec.format == "avif"),
            _ => true,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tool::Ours => "ours",
            Tool::Vipsthumbnail => "vipsthumbnail",
            Tool::Sharp => "sharp",
            Tool::PillowSimd => "pillow-simd",
            Tool::Imgproxy => "imgproxy",
            Tool::Gifsicle => "gifsicle",
        }
    }
}

/// Where the peers were installed (`scripts/install-bench-peers.sh`).
pub struct Peers {
    pub dir: PathBuf,
    drivers: PathBuf,
}

impl Peers {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir, drivers: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/bench")) }
    }

    /// Why `tool` cannot run here, if it cannot.
    pub fn unavailable(&self, tool: Tool) -> Option<String> {
        let note = std::fs::read_to_string(self.dir.join(format!("{}.unavailable", tool.name())));
        if let Ok(note) = note {
            return Some(note.trim().to_string());
        }
        let missing = |p: PathBuf| {
            (!p.exists()).then(|| format!("{} is missing: run scripts/install-bench-peers.sh", p.display()))
        };
        match tool {
            Tool::Ours => None,
            Tool::Vipsthumbnail => which("vipsthumbnail").is_none().then(|| "vipsthumbnail is not on PATH".into()),
            Tool::Gifsicle => which("gifsicle").is_none().then(|| "gifsicle is not on PATH".into()),
            Tool::Sharp => missing(self.dir.join("node/node_modules/sharp")),
            Tool::PillowSimd => missing(self.dir.join("pillow-simd/bin/python")),
            Tool::Imgproxy => Some(match missing(self.dir.join("imgproxy")) {
                Some(m) => m,
                None => "built, but this harness has no HTTP driver for it yet".into(),
            }),
        }
    }

    /// The command converting `files` `passes` times, writing outputs to `out`;
    /// `None` as the count when the tool reports its own timing.
    pub fn command(
        &self,
        tool: Tool,
        spec: &Spec,
        files: &[PathBuf],
        passes: usize,
        out: &Path,
    ) -> (Command, Option<u64>) {
        let mut driver_args = spec.args();
        driver_args.extend(["--passes".into(), passes.to_string(), "--out".into(), out.display().to_string()]);
        driver_args.extend(files.iter().map(|f| f.display().to_string()));
        match tool {
            Tool::Ours => {
                let mut c = Command::new(std::env::current_exe().expect("own path"));
                c.arg(crate::OURS_DRIVER).args(driver_args);
                (c, None)
            }
            Tool::Sharp => {
                let mut c = Command::new("node");
                c.arg(self.drivers.join("sharp.js")).args(driver_args);
                c.env("NODE_PATH", self.dir.join("node/node_modules")).env("UV_THREADPOOL_SIZE", "1");
                (c, None)
            }
            Tool::PillowSimd => {
                let mut c = Command::new(self.dir.join("pillow-simd/bin/python"));
                c.arg(self.drivers.join("pillow.py")).args(driver_args);
                (c, None)
            }
            Tool::Imgproxy => unreachable!("imgproxy is never started: see Peers::unavailable"),
            Tool::Gifsicle => {
                // One process per file, as gifsicle is used; its default
                // resampling ("mix") and the input's colormap, as out of the box.
                let script = r#"n=$1; w=$2; out=$3; shift 3
                    for _ in $(seq "$n"); do for f in "$@"; do
                      gifsicle --resize-fit "$w" "$f" -o "$out/$(basename "$f")" || exit 1
                    done; done"#;
                let mut c = Command::new("sh");
                c.args(["-c", script, "sh"])
                    .arg(passes.to_string())
                    .arg(format!("{}x{}", spec.width, spec.height))
                    .arg(out)
                    .args(files);
                (c, Some((files.len() * passes) as u64))
            }
            Tool::Vipsthumbnail => {
                // One process over every file (start-up is ≈ 60 ms, so it must not be paid per file);
                // the operation cache is off so that later passes are not answered from it.
                let mut c = Command::new("vipsthumbnail");
                c.args(["--vips-concurrency=1", "--vips-cache-max=0"])
                    .arg(format!("--size={}x{}", spec.width, spec.height))
                    .args(spec.crop.map(|crop| format!("--smartcrop={crop}")))
                    .arg(format!("--output={}/%s.{}[{}]", out.display(), spec.format, vips_save_options(spec)));
                // `[n=-1]`: every page (frame) of an animation, not the first.
                let pages = if spec.format == "gif" { "[n=-1]" } else { "" };
                for _ in 0..passes {
                    c.args(files.iter().map(|f| format!("{}{pages}", f.display())));
                }
                c.env("VIPS_CONCURRENCY", "1");
                (c, Some((files.len() * passes) as u64))
            }
        }
    }
}

fn vips_save_options(spec: &Spec) -> String {
    match spec.format {
        "png" | "gif" => "strip".into(),
        _ => format!("Q={},strip", spec.quality),
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}
