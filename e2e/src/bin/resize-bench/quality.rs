//! The quality guard: our outputs against libvips' (Lanczos3) outputs of the same operation.

use e2e::ssim::ssim;
use std::path::Path;

pub struct Similarity {
    pub mean: f64,
    pub compared: usize,
    /// Outputs whose size differs from the reference by a rounding choice; not scored.
    pub size_mismatches: Vec<String>,
    /// File bytes of the scored outputs, and of the reference's files of the same names.
    pub bytes: u64,
    pub reference_bytes: u64,
}

impl Similarity {
    /// The scored outputs' total size against the reference's (1.0: the same bytes).
    pub fn size_ratio(&self) -> f64 {
        self.bytes as f64 / self.reference_bytes.max(1) as f64
    }
}

/// Decodes an output to RGB: AVIF through libvips (the `image` crate is
/// built without an AV1 decoder), everything else in process.
fn open(path: &Path) -> anyhow::Result<image::RgbImage> {
    if path.extension().is_some_and(|e| e == "avif") {
        let png = std::env::temp_dir().join(format!("resize-bench-{}.png", std::process::id()));
        let status = std::process::Command::new("vips").arg("copy").arg(path).arg(&png).status()?;
        anyhow::ensure!(status.success(), "vips could not decode {}", path.display());
        let img = image::open(&png)?.to_rgb8();
        std::fs::remove_file(&png)?;
        return Ok(img);
    }
    Ok(image::open(path)?.to_rgb8())
}

/// Mean SSIM of every output in `ours` against the file of the same name in
/// `reference` (with its extension replaced by `reference_ext`, if given).
pub fn compare(ours: &Path, reference: &Path, reference_ext: Option<&str>) -> anyhow::Result<Similarity> {
    let mut names: Vec<_> = std::fs::read_dir(ours)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
    names.sort();
    let (mut sum, mut compared, mut size_mismatches) = (0.0, 0, Vec::new());
    let (mut bytes, mut reference_bytes) = (0, 0);
    for name in names {
        let other = match reference_ext {
            Some(ext) => reference.join(Path::new(&name).with_extension(ext)),
            None => reference.join(&name),
        };
        if !other.exists() {
            continue;
        }
        let a = open(&ours.join(&name))?;
        let b = open(&other)?;
        match ssim(&a, &b) {
            Some(s) => {
                sum += s;
                compared += 1;
                bytes += std::fs::metadata(ours.join(&name))?.len();
                reference_bytes += std::fs::metadata(&other)?.len();
            }
            None => size_mismatches.push(format!(
                "{}: {}×{} vs {}×{}",
                name.to_string_lossy(),
                a.width(),
                a.height(),
                b.width(),
                b.height()
            )),
        }
    }
    Ok(Similarity { mean: sum / compared.max(1) as f64, compared, size_mismatches, bytes, reference_bytes })
}
