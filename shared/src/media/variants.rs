//! The variant pipeline: decode once, derive every size from that decode, apply the EXIF
//! orientation, encode without metadata (the encoders write none; JPEG gets only JFIF's header).
//!
//! Speed choices, measured in `docs/benchmarks.md`:
//! - Each size is resized from the next larger one (large from the original, medium from large,
//!   small from medium), so only the first resize reads the full-resolution frame.
//! - Orientation is applied after resizing, to the small result, rather than to the full frame.
//! - Resizing uses `fast_image_resize` (SIMD convolution); JPEG encoding uses `jpeg-encoder`.

use std::io::Cursor;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::DynamicImage;
use serde::{Deserialize, Serialize};

use super::{Format, decode};

/// JPEG quality of every variant. 82 is where artefacts stop being visible on photos at these
/// sizes while files stay small; sharp's benchmarks use the same value.
pub const JPEG_QUALITY: u8 = 82;

/// The variant sizes: the long edge in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    Small,
    Medium,
    Large,
}

impl Size {
    pub const ALL: [Size; 3] = [Size::Small, Size::Medium, Size::Large];

    pub fn long_edge(self) -> u32 {
        match self {
            Size::Small => 320,
            Size::Medium => 1024,
            Size::Large => 2048,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Medium => "medium",
            Size::Large => "large",
        }
    }

    pub fn parse(s: &str) -> Option<Size> {
        Size::ALL.into_iter().find(|z| z.name() == s)
    }
}

/// One encoded variant.
#[derive(Debug, Clone)]
pub struct Variant {
    pub size: Size,
    /// Dimensions as displayed, after orientation.
    pub width: u32,
    pub height: u32,
    pub format: Format,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum VariantError {
    /// The file is not one inspection accepts now, or over the decode budget.
    #[error("the image is refused: {0}")]
    Refused(String),
    #[error("the image cannot be decoded: {0}")]
    Decode(String),
    #[error("the image cannot be resized: {0}")]
    Resize(String),
    #[error("the variant cannot be encoded: {0}")]
    Encode(String),
}

/// Fits `(w, h)` inside a square of `edge` without upscaling, keeping the aspect ratio.
pub fn fit_inside(w: u32, h: u32, edge: u32) -> (u32, u32) {
    let long = w.max(h);
    if long <= edge {
        return (w, h);
    }
    let scale = |v: u32| ((u64::from(v) * u64::from(edge) + u64::from(long) / 2) / u64::from(long)).max(1) as u32;
    if w >= h { (edge, scale(h)) } else { (scale(w), edge) }
}

/// Decodes the image once (through [`decode::decode`], holding its share of the decode budget
/// until the last variant is encoded) and produces every variant, smallest first.
///
/// An image with visible transparency is resized with premultiplied alpha, done in place, so
/// transparent pixels do not bleed their colour into their neighbours; an RGBA image that is
/// opaque everywhere is resized as it is and becomes JPEG. Either way no second full-size buffer
/// is made.
pub fn make_variants(bytes: &[u8], orientation: u16) -> Result<Vec<Variant>, VariantError> {
    let decoded = decode::decode(bytes, u64::MAX).map_err(|e| match e {
        decode::DecodeError::Failed(m) => VariantError::Decode(m),
        other => VariantError::Refused(other.to_string()),
    })?;
    let (image, _permit) = decoded.into_parts();
    let (w, h) = (image.width(), image.height());
    let alpha = has_visible_alpha(&image);
    let (pixel_type, buf) = match image {
        DynamicImage::ImageRgba8(b) => (PixelType::U8x4, b.into_raw()),
        other => (PixelType::U8x3, other.into_rgb8().into_raw()),
    };
    let mut current = Image::from_vec_u8(w, h, buf, pixel_type).map_err(|e| VariantError::Resize(e.to_string()))?;
    let mul_div = fast_image_resize::MulDiv::default();
    if alpha {
        mul_div.multiply_alpha_inplace(&mut current).map_err(|e| VariantError::Resize(e.to_string()))?;
    }
    let mut resizer = Resizer::new();
    // Alpha is premultiplied above (or irrelevant), so the resizer must not do it again.
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)).use_alpha(false);
    let mut out = Vec::with_capacity(3);
    for size in [Size::Large, Size::Medium, Size::Small] {
        let (tw, th) = fit_inside(w, h, size.long_edge());
        if (tw, th) != (current.width(), current.height()) {
            let mut next = Image::new(tw, th, pixel_type);
            resizer.resize(&current, &mut next, &options).map_err(|e| VariantError::Resize(e.to_string()))?;
            current = next;
        }
        out.push(encode(size, &current, alpha, orientation, &mul_div)?);
    }
    out.reverse();
    Ok(out)
}

/// Whether any pixel is not fully opaque. An RGBA file that is opaque everywhere becomes JPEG.
fn has_visible_alpha(img: &DynamicImage) -> bool {
    match img {
        DynamicImage::ImageRgba8(b) => b.pixels().any(|p| p.0[3] != 255),
        _ => false,
    }
}

fn encode(
    size: Size,
    img: &Image<'_>,
    alpha: bool,
    orientation: u16,
    mul_div: &fast_image_resize::MulDiv,
) -> Result<Variant, VariantError> {
    let (w, h) = (img.width(), img.height());
    let encode_error = |e: &dyn std::fmt::Display| VariantError::Encode(e.to_string());
    let mut dynamic = if alpha {
        let mut straight = img.copy();
        mul_div.divide_alpha_inplace(&mut straight).map_err(|e| encode_error(&e))?;
        let raw = straight.into_vec();
        DynamicImage::ImageRgba8(image::RgbaImage::from_raw(w, h, raw).ok_or_else(|| encode_error(&"buffer size"))?)
    } else if img.pixel_type() == PixelType::U8x4 {
        // Opaque RGBA: drop the alpha channel of this (already resized) image only.
        let rgb: Vec<u8> = img.buffer().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, rgb).ok_or_else(|| encode_error(&"buffer size"))?)
    } else {
        let raw = img.buffer().to_vec();
        DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, raw).ok_or_else(|| encode_error(&"buffer size"))?)
    };
    if let Some(o) = image::metadata::Orientation::from_exif(orientation as u8) {
        dynamic.apply_orientation(o);
    }
    let (dw, dh) = (dynamic.width(), dynamic.height());
    let (format, bytes) = if alpha {
        let mut out = Cursor::new(Vec::new());
        let encoder = image::codecs::png::PngEncoder::new_with_quality(
            &mut out,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::Adaptive,
        );
        dynamic.write_with_encoder(encoder).map_err(|e| encode_error(&e))?;
        (Format::Png, out.into_inner())
    } else {
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, JPEG_QUALITY);
        encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
        let (ew, eh) = (u16::try_from(dw), u16::try_from(dh));
        let (Ok(ew), Ok(eh)) = (ew, eh) else { return Err(encode_error(&"variant too large for JPEG")) };
        encoder.encode(dynamic.as_bytes(), ew, eh, jpeg_encoder::ColorType::Rgb).map_err(|e| encode_error(&e))?;
        (Format::Jpeg, out)
    };
    Ok(Variant { size, width: dw, height: dh, format, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_inside_never_upscales_and_keeps_the_ratio() {
        let cases = [
            ((4032, 3024, 2048), (2048, 1536)),
            ((3024, 4032, 320), (240, 320)),
            ((100, 68, 320), (100, 68)),
            ((2048, 1536, 2048), (2048, 1536)),
            ((5000, 1, 320), (320, 1)),
            ((1, 5000, 320), (1, 320)),
        ];
        for ((w, h, edge), want) in cases {
            assert_eq!(fit_inside(w, h, edge), want, "{w}x{h} in {edge}");
        }
    }

    #[test]
    fn transparent_images_become_png_and_opaque_ones_jpeg() {
        // Given an RGBA PNG with a transparent pixel and an opaque one,
        for (alpha, want) in [(0u8, Format::Png), (255u8, Format::Jpeg)] {
            let mut img = image::RgbaImage::from_pixel(600, 400, image::Rgba([9, 9, 9, 255]));
            img.put_pixel(0, 0, image::Rgba([0, 0, 0, alpha]));
            let mut png = Cursor::new(Vec::new());
            img.write_to(&mut png, image::ImageFormat::Png).unwrap();
            // when the variants are made,
            let variants = make_variants(png.get_ref(), 1).unwrap();
            // then each has the expected format and sizes.
            let dims: Vec<_> = variants.iter().map(|v| (v.size, v.width, v.height, v.format)).collect();
            assert_eq!(
                dims,
                vec![(Size::Small, 320, 213, want), (Size::Medium, 600, 400, want), (Size::Large, 600, 400, want)]
            );
        }
    }

    #[test]
    fn orientation_six_turns_landscape_storage_into_a_portrait_variant() {
        let img = image::RgbImage::from_pixel(400, 300, image::Rgb([50, 60, 70]));
        let mut jpeg = Cursor::new(Vec::new());
        img.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
        let variants = make_variants(jpeg.get_ref(), 6).unwrap();
        assert_eq!((variants[0].width, variants[0].height), (240, 320));
    }
}
