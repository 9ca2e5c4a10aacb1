//! Compiles the raw-plane JPEG decoder (src/resize/jpeg_planes.c, with its
//! entropy decoder jpeg_huffman.c) against the libjpeg-turbo that
//! turbojpeg-sys builds, so both share one library; and the shim over the
//! system's libheif (src/resize/heif_shim.c: AVIF out, AVIF and HEIC in),
//! found with pkg-config.

fn main() {
    let include = std::env::var("DEP_TURBOJPEG_INCLUDE").expect("turbojpeg-sys reports its include directory");
    let mut build = cc::Build::new();
    for dir in include.split(',') {
        build.include(dir);
    }
    build
        .file("src/resize/jpeg_planes.c")
        .file("src/resize/jpeg_huffman.c")
        .opt_level(2)
        .warnings(true)
        .compile("jpeg_planes");
    // libheif-dev (scripts/install-system-packages.sh); its include directory
    // and link line come from its pkg-config file.
    let heif = std::process::Command::new("pkg-config")
        .args(["--cflags-only-I", "libheif"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .expect("pkg-config finds libheif (Debian: libheif-dev)");
    let mut shim = cc::Build::new();
    for dir in String::from_utf8_lossy(&heif.stdout).split_whitespace() {
        shim.include(dir.trim_start_matches("-I"));
    }
    shim.file("src/resize/heif_shim.c").opt_level(2).warnings(true).compile("heif_shim");
    println!("cargo:rustc-link-lib=heif");
    for file in ["jpeg_planes.c", "jpeg_huffman.c", "jpeg_huffman.h", "heif_shim.c", "heif_shim.h"] {
        println!("cargo:rerun-if-changed=src/resize/{file}");
    }
}
