//! The real-photo corpus in `../shared/corpus` (override with `CORPUS_DIR`).

use std::path::PathBuf;

pub fn dir() -> PathBuf {
    std::env::var_os("CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus")))
}

pub fn read(rel: &str) -> Vec<u8> {
    let p = dir().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// Every file in a corpus sub-directory, sorted by name.
pub fn files(sub: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir().join(sub))
        .unwrap_or_else(|e| panic!("listing corpus/{sub}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .collect();
    v.sort();
    v
}
