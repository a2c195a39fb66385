//! AVIF encoding, the one thing this crate does, for `imghost::media::variants`.
//!
//! Why a crate of its own: rav1e is generic over its pixel type, and ravif's entry points are
//! `#[inline]`, so the encoder is instantiated in whichever crate calls them, at that crate's
//! optimisation level. Called from `imghost`, which debug builds leave unoptimised, one 600 x 450
//! photo took 25 s to encode in the tests; called from here, a leaf that every profile compiles
//! optimised (`[profile.dev.package.imghost-avif]` in the root `Cargo.toml`), it takes as long
//! as in a release build. The crate knows nothing of imghost.

use rgb::FromSlice;

/// The pixels to encode: 8-bit RGB, or RGBA with straight (not premultiplied) alpha, row-major
/// without padding.
#[derive(Debug, Clone, Copy)]
pub enum Pixels<'a> {
    Rgb(&'a [u8]),
    Rgba(&'a [u8]),
}

/// Encodes `pixels` of `width` x `height` as an AVIF file: rav1e at `speed` (1, slowest and
/// smallest, to 10), `quality` from 1 to 100 (ravif's scale) for colour and alpha alike, 8 bits,
/// YCbCr 4:4:4 (ravif's only subsampling), tagged sRGB by the `nclx` colour box, one thread.
/// Alpha is written only where some pixel is not opaque. An error is a message: the input did
/// not match its dimensions, or the encoder refused it.
pub fn encode(pixels: Pixels<'_>, width: usize, height: usize, quality: f32, speed: u8) -> Result<Vec<u8>, String> {
    let channels = match pixels {
        Pixels::Rgb(_) => 3,
        Pixels::Rgba(_) => 4,
    };
    let (Pixels::Rgb(bytes) | Pixels::Rgba(bytes)) = pixels;
    if width.checked_mul(height).and_then(|n| n.checked_mul(channels)) != Some(bytes.len()) {
        return Err(format!("{} bytes are not {width} x {height} pixels of {channels} bytes", bytes.len()));
    }
    let quality = if quality.is_finite() { quality.clamp(1.0, 100.0) } else { 100.0 };
    let encoder = ravif::Encoder::new()
        .with_quality(quality)
        .with_alpha_quality(quality)
        .with_speed(speed.clamp(1, 10))
        .with_bit_depth(ravif::BitDepth::Eight)
        .with_num_threads(Some(1));
    let encoded = match pixels {
        Pixels::Rgb(rgb) => encoder.encode_rgb(ravif::Img::new(rgb.as_rgb(), width, height)),
        Pixels::Rgba(rgba) => encoder.encode_rgba(ravif::Img::new(rgba.as_rgba(), width, height)),
    };
    encoded.map(|e| e.avif_file).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_becomes_an_avif_file_and_a_mismatched_buffer_an_error() {
        // Given a small opaque image and a transparent one,
        let rgb: Vec<u8> = (0..64 * 48).flat_map(|i| [(i % 256) as u8, 90, 200]).collect();
        let rgba: Vec<u8> = (0..64 * 48).flat_map(|i| [200, 30, 30, if i % 64 < 32 { 0 } else { 255 }]).collect();
        // when each is encoded, then each is an AVIF file (its `ftyp` box names the brand),
        for pixels in [Pixels::Rgb(&rgb), Pixels::Rgba(&rgba)] {
            let file = encode(pixels, 64, 48, 80.0, 8).unwrap();
            assert_eq!(&file[4..12], b"ftypavif");
        }
        // and a buffer that does not hold the dimensions given is refused, not read past.
        assert!(encode(Pixels::Rgb(&rgb), 64, 49, 80.0, 8).is_err());
        assert!(encode(Pixels::Rgba(&rgb), 64, 48, 80.0, 8).is_err());
    }
}
