//! The resize entry point on arbitrary bytes: whatever the input, `resize`
//! returns (an image or an error) without crashing, hanging or reading out
//! of bounds, in our code or in the C decoders under it.
//!
//!   cd worker/fuzz && cargo +nightly fuzz run resize seeds -- -max_len=65536
//!
//! Built that way, only Rust code reports coverage to libFuzzer. With clang,
//! the C under `worker` (libjpeg-turbo, our JPEG plane and entropy decoders,
//! libwebp's encoder) is instrumented too, for coverage and for the address
//! sanitizer:
//!
//!   CC=clang CFLAGS="-fsanitize=fuzzer-no-link,address" cargo +nightly fuzz run -O resize corpus/resize seeds

#![no_main]

use contracts::ResizeOp;
use libfuzzer_sys::fuzz_target;
use worker::resize::{Limits, resize};

/// One operation per execution, picked by the input's length so that the
/// input stays a plain image file (seeds are real files, mutations keep
/// their structure) while every fit and output format gets exercised.
const OPS: [&str; 6] = [
    "w=320&h=320&format=jpeg&quality=80",
    "w=64&format=png",
    "w=100&h=50&fit=cover&format=jpeg&quality=90",
    "w=33&h=33&fit=contain&format=webp&quality=50",
    "h=17&format=jpeg&quality=20",
    "w=120&h=90&fit=fill&format=png",
];

fuzz_target!(|data: &[u8]| {
    let op = ResizeOp::parse_canonical(OPS[data.len() % OPS.len()]).expect("valid operation");
    // Well under the production limit: a mutated header claiming 50 MP would
    // otherwise make single executions take seconds; bombs are refused either way.
    let _ = resize(data, &op, &Limits::with_max_pixels(4_000_000));
});
