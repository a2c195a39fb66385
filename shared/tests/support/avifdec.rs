//! AVIF read back by libavif's `avifdec` (Debian's `libavif-bin`), the oracle for what a
//! browser decodes: imghost writes AVIF but reads none itself.

// Each test binary that includes this file uses part of it.
#![allow(dead_code)]

/// Whether `bytes` are an AVIF file (its `ftyp` box names the brand).
pub fn is_avif(bytes: &[u8]) -> bool {
    bytes.get(4..12) == Some(b"ftypavif")
}

/// An AVIF decoded by `avifdec`, as RGBA.
pub fn decode(bytes: &[u8]) -> image::RgbaImage {
    let dir = tempfile::tempdir().unwrap();
    let (avif, png) = (dir.path().join("v.avif"), dir.path().join("v.png"));
    std::fs::write(&avif, bytes).unwrap();
    let out = std::process::Command::new("avifdec").arg(&avif).arg(&png).output().expect("avifdec (libavif-bin) runs");
    assert!(out.status.success(), "avifdec: {}", String::from_utf8_lossy(&out.stderr));
    image::open(&png).unwrap().to_rgba8()
}
