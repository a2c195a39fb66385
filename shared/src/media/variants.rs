//! The variant pipeline: decode once, derive every size from that decode, apply the EXIF
//! orientation, encode without metadata (the encoders write none; JPEG gets only JFIF's header).
//!
//! Speed choices, measured in `docs/benchmarks.md`:
//! - Each size is resized from the next larger one (large from the original, medium from large,
//!   small from medium), so only the first resize reads the full-resolution frame.
//! - Orientation is applied after resizing, to the small result, rather than to the full frame.
//! - Resizing uses `fast_image_resize` (SIMD convolution); JPEG encoding uses `jpeg-encoder`,
//!   WebP encoding libwebp.
//! - Colour is converted to sRGB after the first resize, not at full resolution.

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::DynamicImage;
use serde::{Deserialize, Serialize};

use super::{Format, animation, decode};

/// JPEG quality of every variant. 82 is where artefacts stop being visible on photos at these
/// sizes while files stay small; sharp's benchmarks use the same value.
pub const JPEG_QUALITY: u8 = 82;

/// WebP quality of each size's variant: the lowest whose mean SSIM against the resized pixels
/// matches the JPEG's at [`JPEG_QUALITY`] on the test photos (`scripts/bench quality`, figures
/// in `docs/benchmarks.md`). It differs by size: on the test photos libwebp matches the JPEG at
/// 76 for small variants, where it saves a third of the bytes, but needs 90 for medium and large
/// ones, where it saves nothing.
pub fn webp_quality(size: Size) -> f32 {
    size.pick(WEBP_QUALITY_SMALL, WEBP_QUALITY_MEDIUM, WEBP_QUALITY_LARGE)
}

const WEBP_QUALITY_SMALL: f32 = 76.0;
const WEBP_QUALITY_MEDIUM: f32 = 90.0;
const WEBP_QUALITY_LARGE: f32 = 90.0;

/// AVIF quality (ravif's scale, 1 to 100) of each size's variant, chosen as [`webp_quality`] is:
/// the lowest whose mean SSIM matches the JPEG's on the test photos (`scripts/bench quality`).
/// At those, on the test photos, AVIF weighs 0.68 of the JPEG for small variants, 0.71 for
/// medium and 0.82 for large ones, where WebP saves nothing.
pub fn avif_quality(size: Size) -> f32 {
    size.pick(AVIF_QUALITY_SMALL, AVIF_QUALITY_MEDIUM, AVIF_QUALITY_LARGE)
}

const AVIF_QUALITY_SMALL: f32 = 82.0;
const AVIF_QUALITY_MEDIUM: f32 = 85.0;
const AVIF_QUALITY_LARGE: f32 = 88.0;

/// rav1e's speed preset, 1 (slowest, smallest) to 10. At matched SSIM, speed 8 gave the same
/// bytes as 6 in 13 to 38 % less time, and speed 10 files larger than the JPEG
/// (`AVIF_SPEEDS=6,8,10 scripts/bench quality`, `docs/benchmarks.md`).
pub const AVIF_SPEED: u8 = 8;

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
        self.pick(320, 1024, 2048)
    }

    pub fn name(self) -> &'static str {
        self.pick("small", "medium", "large")
    }

    pub fn parse(s: &str) -> Option<Size> {
        Size::ALL.into_iter().find(|z| z.name() == s)
    }

    /// The one of three values that belongs to this size.
    pub fn pick<T>(self, small: T, medium: T, large: T) -> T {
        match self {
            Size::Small => small,
            Size::Medium => medium,
            Size::Large => large,
        }
    }
}

/// The formats a variant is also made in, chosen by the request's `Accept` header, best first.
/// Each size is made in these and in its classic format, which every browser shows.
pub const MODERN_FORMATS: [Format; 2] = [Format::Avif, Format::Webp];

/// The modern formats made by a later pass than the others ([`make_avif`]), because encoding
/// them takes several times as long; never for animations.
pub const LATER_FORMATS: [Format; 1] = [Format::Avif];

/// Whether `format` is one of [`MODERN_FORMATS`] (a variant in it is the alternative to the
/// classic one of its size).
pub fn is_modern(format: Format) -> bool {
    MODERN_FORMATS.contains(&format)
}

/// The modern formats a request for a variant takes, best first; none for the classic one.
/// The first is the one asked for; the others are what it gets where that one is not made:
/// - an explicit extension wins: `.avif` asks for AVIF (and takes WebP, as every browser that
///   decodes AVIF decodes WebP, and as the edge's AVIF keys hold until AVIF is made), `.webp`
///   for WebP, `.jpg`, `.png` or `.gif` for the classic variant;
/// - otherwise the [`MODERN_FORMATS`] that `accept` names with a quality above zero, in that
///   order. Only explicit media types count: `*/*` and `image/*` are what browsers that decode
///   neither WebP nor AVIF send. The header is read up to 1,024 bytes, which holds every
///   browser's.
///
/// `cdn/images.js` makes the same choice of the first at the edge (a test runs both on one
/// table of cases).
pub fn negotiate(ext: Option<Format>, accept: Option<&str>) -> Vec<Format> {
    match ext {
        Some(Format::Avif) => return vec![Format::Avif, Format::Webp],
        Some(ext) => return if is_modern(ext) { vec![ext] } else { vec![] },
        None => {}
    }
    let Some(accept) = accept else { return vec![] };
    let accept = &accept.as_bytes()[..accept.len().min(1024)];
    let accept = String::from_utf8_lossy(accept).to_ascii_lowercase();
    let admitted = |format: Format| {
        let mut admitted = false;
        for item in accept.split(',') {
            let mut params = item.split(';');
            let media_type = params.next().unwrap_or("").trim();
            if media_type.strip_prefix("image/") != Some(format.name()) {
                continue;
            }
            let quality = params
                .filter_map(|p| p.trim().strip_prefix("q="))
                .map(|q| q.trim().parse::<f32>().unwrap_or(0.0))
                .next_back()
                .unwrap_or(1.0);
            // A later mention of the same type overrides an earlier one, as in the edge's code.
            admitted = quality > 0.0;
        }
        admitted
    };
    MODERN_FORMATS.into_iter().filter(|&f| admitted(f)).collect()
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

/// Every variant of the image, smallest first: for each size the classic one ([`Format::Jpeg`],
/// or [`Format::Png`] with transparency) and then the WebP one, encoded as [`encode`] does at
/// [`JPEG_QUALITY`] and [`webp_quality`].
///
/// An animation ([`animation::is_animated`]) keeps every frame: its variants are GIF and
/// animated WebP ([`animation`]).
pub fn make_variants(bytes: &[u8], orientation: u16) -> Result<Vec<Variant>, VariantError> {
    let (facts, permit) = decode::reserve(bytes, u64::MAX).map_err(refused)?;
    if animation::is_animated(&facts) {
        return animation::make_variants(bytes, &facts, orientation, &animation::FORMATS, permit);
    }
    let mut out = Vec::with_capacity(2 * Size::ALL.len());
    render_reserved(bytes, facts, permit, orientation, |size, upright| {
        for format in [Format::Webp, classic_format(upright)] {
            let bytes = encode(upright, format, quality(size, format))?;
            out.push(Variant { size, width: upright.width(), height: upright.height(), format, bytes });
        }
        Ok(())
    })?;
    out.reverse();
    Ok(out)
}

/// The AVIF variant of every size, smallest first, encoded at [`avif_quality`]: the later pass
/// ([`LATER_FORMATS`]). None for an animation, whose variants are GIF and animated WebP. The
/// image is decoded again, holding [`super::avif_cost`] of the decode budget: the first pass's
/// pixels are long gone when this runs.
pub fn make_avif(bytes: &[u8], orientation: u16) -> Result<Vec<Variant>, VariantError> {
    let cost = |facts: &super::Facts| super::avif_cost(facts, bytes.len() as u64);
    let (facts, permit) = decode::reserve_cost(bytes, u64::MAX, cost).map_err(refused)?;
    if animation::is_animated(&facts) {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(Size::ALL.len());
    render_reserved(bytes, facts, permit, orientation, |size, upright| {
        let bytes = encode(upright, Format::Avif, avif_quality(size))?;
        out.push(Variant { size, width: upright.width(), height: upright.height(), format: Format::Avif, bytes });
        Ok(())
    })?;
    out.reverse();
    Ok(out)
}

/// Decodes the image once (through [`decode::decode`], holding its share of the decode budget
/// until `each` has seen the last size) and hands `each` every size, largest first, as it is
/// shown: resized, in sRGB, turned upright, RGBA only where there is transparency. Of an
/// animation it renders the first frame ([`make_variants`] renders every frame).
///
/// An image with visible transparency is resized with premultiplied alpha, done in place, so
/// transparent pixels do not bleed their colour into their neighbours; an RGBA image that is
/// opaque everywhere is resized as it is and becomes JPEG. Either way no second full-size buffer
/// is made.
///
/// Pixels in another colour space than sRGB are converted once, to the first (largest) resize
/// of an opaque image, whose smaller sizes are made from it; a transparent image is converted
/// before its alpha is premultiplied, since the conversion needs straight colour.
pub fn render(
    bytes: &[u8],
    orientation: u16,
    each: impl FnMut(Size, &DynamicImage) -> Result<(), VariantError>,
) -> Result<(), VariantError> {
    render_decoded(decode::decode(bytes, u64::MAX).map_err(refused)?, orientation, each)
}

/// [`render`] of a file whose cost [`decode::reserve`] reserved.
pub fn render_reserved(
    bytes: &[u8],
    facts: super::Facts,
    permit: decode::Permit,
    orientation: u16,
    each: impl FnMut(Size, &DynamicImage) -> Result<(), VariantError>,
) -> Result<(), VariantError> {
    render_decoded(decode::decode_reserved(bytes, facts, permit).map_err(refused)?, orientation, each)
}

fn render_decoded(
    decoded: decode::Decoded,
    orientation: u16,
    mut each: impl FnMut(Size, &DynamicImage) -> Result<(), VariantError>,
) -> Result<(), VariantError> {
    let (image, colour, _permit) = decoded.into_parts();
    let (w, h) = (image.width(), image.height());
    let alpha = has_visible_alpha(&image);
    let (pixel_type, buf) = match image {
        DynamicImage::ImageRgba8(b) => (PixelType::U8x4, b.into_raw()),
        other => (PixelType::U8x3, other.into_rgb8().into_raw()),
    };
    let mut current = Image::from_vec_u8(w, h, buf, pixel_type).map_err(|e| VariantError::Resize(e.to_string()))?;
    let mut to_srgb = colour.to_srgb(pixel_type == PixelType::U8x4);
    let mul_div = fast_image_resize::MulDiv::default();
    if alpha {
        if let Some(conversion) = to_srgb.take() {
            conversion.apply(current.buffer_mut()).map_err(|e| VariantError::Resize(e.to_string()))?;
        }
        mul_div.multiply_alpha_inplace(&mut current).map_err(|e| VariantError::Resize(e.to_string()))?;
    }
    let mut resizer = Resizer::new();
    // Alpha is premultiplied above (or irrelevant), so the resizer must not do it again.
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)).use_alpha(false);
    for size in [Size::Large, Size::Medium, Size::Small] {
        let (tw, th) = fit_inside(w, h, size.long_edge());
        if (tw, th) != (current.width(), current.height()) {
            let mut next = Image::new(tw, th, pixel_type);
            resizer.resize(&current, &mut next, &options).map_err(|e| VariantError::Resize(e.to_string()))?;
            current = next;
        }
        if let Some(conversion) = to_srgb.take() {
            conversion.apply(current.buffer_mut()).map_err(|e| VariantError::Resize(e.to_string()))?;
        }
        each(size, &upright(&current, alpha, orientation, &mul_div)?)?;
    }
    Ok(())
}

fn refused(e: decode::DecodeError) -> VariantError {
    match e {
        decode::DecodeError::Failed(m) => VariantError::Decode(m),
        other => VariantError::Refused(other.to_string()),
    }
}

/// Whether any pixel is not fully opaque. An RGBA file that is opaque everywhere becomes JPEG.
fn has_visible_alpha(img: &DynamicImage) -> bool {
    match img {
        DynamicImage::ImageRgba8(b) => b.pixels().any(|p| p.0[3] != 255),
        _ => false,
    }
}

fn encode_error(e: &dyn std::fmt::Display) -> VariantError {
    VariantError::Encode(e.to_string())
}

/// The resized pixels as they are shown: straight (not premultiplied) RGBA when transparent,
/// RGB otherwise, turned by the EXIF orientation.
fn upright(
    img: &Image<'_>,
    alpha: bool,
    orientation: u16,
    mul_div: &fast_image_resize::MulDiv,
) -> Result<DynamicImage, VariantError> {
    let (w, h) = (img.width(), img.height());
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
    Ok(dynamic)
}

/// The quality a variant of `size` is encoded at in `format` (PNG ignores it).
pub fn quality(size: Size, format: Format) -> f32 {
    match format {
        Format::Webp => webp_quality(size),
        Format::Avif => avif_quality(size),
        _ => f32::from(JPEG_QUALITY),
    }
}

/// The classic format of a variant: PNG when it has transparency, JPEG otherwise.
pub fn classic_format(img: &DynamicImage) -> Format {
    if img.color().has_alpha() { Format::Png } else { Format::Jpeg }
}

/// Encodes shown pixels (RGB, or RGBA with transparency) as a variant in `format`, at `quality`
/// from 0 to 100 where the format is lossy:
/// - JPEG with 4:2:0 chroma, untagged, which the web reads as sRGB (an embedded sRGB profile
///   would add half a kilobyte to every small variant and change nothing);
/// - PNG, lossless with fast compression, tagged with PNG's `sRGB` chunk (13 bytes);
/// - WebP, lossy (with a lossless alpha plane where there is transparency), with libwebp's
///   default effort (method 4), as sharp makes it.
/// - AVIF, by rav1e at [`AVIF_SPEED`] ([`encode_avif`]).
pub fn encode(img: &DynamicImage, format: Format, quality: f32) -> Result<Vec<u8>, VariantError> {
    let (w, h) = (img.width(), img.height());
    let mut out = Vec::new();
    match (format, img) {
        (Format::Png, DynamicImage::ImageRgba8(rgba)) => {
            let mut encoder = png::Encoder::new(&mut out, w, h);
            encoder.set_color(png::ColorType::Rgba);
            encoder.set_depth(png::BitDepth::Eight);
            encoder.set_compression(png::Compression::Fast);
            encoder.set_source_srgb(png::SrgbRenderingIntent::Perceptual);
            let mut writer = encoder.write_header().map_err(|e| encode_error(&e))?;
            writer.write_image_data(rgba.as_raw()).map_err(|e| encode_error(&e))?;
            writer.finish().map_err(|e| encode_error(&e))?;
        }
        (Format::Jpeg, DynamicImage::ImageRgb8(rgb)) => {
            let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1.0, 100.0) as u8);
            encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
            let (Ok(ew), Ok(eh)) = (u16::try_from(w), u16::try_from(h)) else {
                return Err(encode_error(&"variant too large for JPEG"));
            };
            encoder.encode(rgb.as_raw(), ew, eh, jpeg_encoder::ColorType::Rgb).map_err(|e| encode_error(&e))?;
        }
        (Format::Webp, DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_)) => {
            let encoder = match img {
                DynamicImage::ImageRgba8(rgba) => webp::Encoder::from_rgba(rgba.as_raw(), w, h),
                other => webp::Encoder::from_rgb(other.as_bytes(), w, h),
            };
            let mut config = webp::WebPConfig::new().map_err(|()| encode_error(&"libwebp refused its own defaults"))?;
            config.quality = quality.clamp(0.0, 100.0);
            config.method = 4;
            out = encoder.encode_advanced(&config).map_err(|e| encode_error(&format!("{e:?}")))?.to_vec();
        }
        (Format::Avif, DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_)) => {
            out = encode_avif(img, quality, AVIF_SPEED)?;
        }
        (format, img) => {
            return Err(encode_error(&format!("no {} variant of {:?} pixels", format.name(), img.color())));
        }
    }
    Ok(out)
}

/// AVIF by rav1e at `speed` (the pipeline's is [`AVIF_SPEED`]) through `imghost_avif`, 8 bits,
/// YCbCr 4:4:4, tagged sRGB; alpha, where there is transparency, at the colour's quality.
/// Public for the measurement that chose the speed.
pub fn encode_avif(img: &DynamicImage, quality: f32, speed: u8) -> Result<Vec<u8>, VariantError> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let pixels = match img {
        DynamicImage::ImageRgba8(rgba) => imghost_avif::Pixels::Rgba(rgba.as_raw()),
        DynamicImage::ImageRgb8(rgb) => imghost_avif::Pixels::Rgb(rgb.as_raw()),
        other => return Err(encode_error(&format!("no AVIF variant of {:?} pixels", other.color()))),
    };
    imghost_avif::encode(pixels, w, h, quality, speed).map_err(|e| encode_error(&e))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

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
            // then each size comes in the expected classic format and in WebP.
            let dims: Vec<_> = variants.iter().map(|v| (v.size, v.width, v.height, v.format)).collect();
            let webp = Format::Webp;
            assert_eq!(
                dims,
                vec![
                    (Size::Small, 320, 213, want),
                    (Size::Small, 320, 213, webp),
                    (Size::Medium, 600, 400, want),
                    (Size::Medium, 600, 400, webp),
                    (Size::Large, 600, 400, want),
                    (Size::Large, 600, 400, webp),
                ]
            );
            // and the WebP keeps the transparency.
            let small_webp = image::load_from_memory(&variants[1].bytes).unwrap();
            assert_eq!(small_webp.color().has_alpha(), alpha == 0);
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
