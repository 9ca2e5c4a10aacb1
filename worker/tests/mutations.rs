//! A seeded random-mutation loop over small JPEG, PNG, GIF, WebP, AVIF and HEIC seeds
//! (`worker/fuzz/seeds`), as a plain test: every mutant must come back as an
//! image or an error, never a crash or a hang. It complements the cargo-fuzz
//! target, whose coverage feedback sees only Rust code: the C decoders
//! (libjpeg-turbo, the plane shim, libwebp) get no guidance there, so JPEG
//! mutants are driven here on purpose, and the loop also runs under valgrind.
//!
//!   MUTATIONS=200000 cargo test --release -p worker --test mutations

use contracts::ResizeOp;
use worker::resize::{Limits, resize};

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four edits: flip a bit, set a byte to an interesting value, cut
/// the tail, duplicate or delete a run. Header bytes are edited as often as
/// entropy-coded data, since the first 600 bytes hold every table.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        if d.is_empty() {
            break;
        }
        let at = if rng.below(2) == 0 { rng.below(d.len().min(600)) } else { rng.below(d.len()) };
        match rng.below(6) {
            0 => d[at] ^= 1 << rng.below(8),
            1 => d[at] = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0xD9, 0xDA, 0xC2][rng.below(8)],
            2 => d.truncate(at.max(2)),
            3 => {
                let len = rng.below(64).min(d.len() - at);
                let run: Vec<u8> = d[at..at + len].to_vec();
                d.splice(at..at, run);
            }
            4 => {
                let len = rng.below(64).min(d.len() - at);
                d.drain(at..at + len);
            }
            _ => d[at] = rng.next() as u8,
        }
    }
    d
}

#[test]
fn mutated_images_are_refused_or_resized_never_crash() {
    // HEIC mutants are decoded by the worker binary, started per input.
    worker::resize::set_heic_helper(env!("CARGO_BIN_EXE_worker").into());
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds");
    let mut seeds: Vec<Vec<u8>> =
        std::fs::read_dir(dir).unwrap().map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect();
    seeds.sort();
    assert!(seeds.len() >= 10, "seeds in {dir}");
    let n: usize = std::env::var("MUTATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let ops: Vec<ResizeOp> = [
        "w=320&h=320&format=jpeg&quality=80",
        "w=64&format=png",
        "w=40&h=40&fit=cover&format=jpeg",
        "w=7&format=webp",
        "w=9&format=avif&speed=9",
        // No format: an animation stays one (GIF or WebP), its frames kept.
        "w=30&h=20&fit=contain",
    ]
    .iter()
    .map(|q| ResizeOp::parse_canonical(q).unwrap())
    .collect();
    let limits = Limits::with_max_pixels(4_000_000);
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let (mut resized, mut refused) = (0, 0);
    for i in 0..n {
        // JPEG seeds twice as often: they exercise the most C code.
        let pick = rng.below(seeds.len() * 2);
        let seed =
            seeds.iter().filter(|s| s.starts_with(&[0xFF, 0xD8])).nth(pick / 2).unwrap_or(&seeds[pick % seeds.len()]);
        let input = mutate(&mut rng, seed);
        match resize(&input, &ops[i % ops.len()], &limits) {
            Ok(_) => resized += 1,
            Err(_) => refused += 1,
        }
    }
    eprintln!("{n} mutants: {resized} resized, {refused} refused");
    assert_eq!(resized + refused, n);
}
