//! The command line every peer driver shares (`e2e/bench/*.{js,py}` and our
//! own in-process loop), so that the harness builds one argument list per
//! operation whatever the tool.

use anyhow::Context;
use std::path::PathBuf;

/// One resize operation as every tool is asked to perform it: fit inside `width`×`height`.
#[derive(Debug, Clone)]
pub struct Spec {
    pub width: u32,
    pub height: u32,
    /// `jpeg`, `webp` or `png`.
    pub format: &'static str,
    pub quality: u8,
}

impl Spec {
    pub fn args(&self) -> Vec<String> {
        let (w, h, q) = (self.width.to_string(), self.height.to_string(), self.quality.to_string());
        ["--width", &w, "--height", &h, "--format", self.format, "--quality", &q].map(String::from).to_vec()
    }
}

/// A parsed driver command line: `--width W --height H --format F --quality Q --passes N [--out DIR] FILE...`.
pub struct Invocation {
    pub query: String,
    pub format: String,
    pub passes: usize,
    pub out: Option<PathBuf>,
    pub files: Vec<PathBuf>,
}

pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Invocation> {
    let (mut width, mut height, mut format, mut quality) = (None, None, None, 80u8);
    let (mut passes, mut out, mut files) = (1, None, Vec::new());
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if !a.starts_with("--") {
            files.push(PathBuf::from(a));
            continue;
        }
        let v = it.next().with_context(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--width" => width = Some(v.parse::<u32>()?),
            "--height" => height = Some(v.parse::<u32>()?),
            "--format" => format = Some(v),
            "--quality" => quality = v.parse()?,
            "--passes" => passes = v.parse()?,
            "--out" => out = Some(PathBuf::from(v)),
            other => anyhow::bail!("unknown driver flag {other}"),
        }
    }
    let format = format.context("--format is required")?;
    let (w, h) = (width.context("--width is required")?, height.context("--height is required")?);
    let query = format!("w={w}&h={h}&fit=inside&format={format}&quality={quality}");
    Ok(Invocation { query, format, passes, out, files })
}
