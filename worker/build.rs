//! Compiles the raw-plane JPEG decoder (src/resize/jpeg_planes.c, with its
//! entropy decoder jpeg_huffman.c) against the libjpeg-turbo that
//! turbojpeg-sys builds, so both share one library.

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
    for file in ["jpeg_planes.c", "jpeg_huffman.c", "jpeg_huffman.h"] {
        println!("cargo:rerun-if-changed=src/resize/{file}");
    }
}
