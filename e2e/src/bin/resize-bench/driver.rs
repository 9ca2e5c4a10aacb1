//! The command line every peer driver shares (`e2e/bench/*.{js,py}` and our
//! own in-process loop), so that the harness builds one argument list per
//! operation whatever the tool.

use anyhow::Context;
use std::path::PathBuf;

/// One resize operation as every tool is asked to perform it: fit inside
/// `width`×`height`, or cover it when `crop` says how.
#[derive(Debug, Clone)]
pub struct Spec {
    pub width: u32,
    pub height: u32,
    /// `jpeg`, `webp`, `png`, `avif` or `gif`.
    pub format: &'static str,
    pub quality: u8,
    /// `None`: fit inside. `centre` or `attention`: cover the box, cropping
    /// the centre or what draws the eye (`gravity=smart`).
    pub crop: Option<&'static str>,
}

impl Spec {
    pub fn args(&self) -> Vec<String> {
        let (w, h, q) = (self.width.to_string(), self.height.to_string(), self.quality.to_string());
        let mut args: Vec<String> =
            ["--width", &w, "--height", &h, "--format", self.format, "--quality", &q].map(String::from).to_vec();
        if let Some(crop) = self.crop {
            args.extend(["--crop".to_owned(), crop.to_owned()]);
        }
        args
    }
}

/// A parsed driver command line: `--width W --height H --format F --quality Q [--crop centre|attention] --passes N [--out DIR] FILE...`.
pub struct Invocation {
    pub query: String,
    pub format: String,
    pub passes: usize,
    pub out: Option<PathBuf>,
    pub files: Vec<PathBuf>,
}

pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Invocation> {
    let (mut width, mut height, mut format, mut quality) = (None, None, None, 80u8);
    let (mut passes, mut out, mut files, mut crop) = (1, None, Vec::new(), None);
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
            "--crop" => crop = Some(v),
            other => anyhow::bail!("unknown driver flag {other}"),
        }
    }
    let format = format.context("--format is required")?;
    let (w, h) = (width.context("--width is required")?, height.context("--height is required")?);
    let fit = match crop.as_deref() {
        None => "fit=inside",
        Some("centre") => "fit=cover",
        Some("attention") => "fit=cover&gravity=smart",
        Some(other) => anyhow::bail!("--crop {other}: not centre or attention"),
    };
    let query = format!("w={w}&h={h}&{fit}&format={format}&quality={quality}");
    Ok(Invocation { query, format, passes, out, files })
}
