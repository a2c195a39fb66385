//! The one way pixels are decoded: variants, meme backgrounds and anything later go through
//! [`decode`], which inspects the file, refuses a decode over the caller's limit, reserves the
//! decode's cost from the process-wide [`limits::DECODE_BUDGET`] for as long as the pixels live,
//! and decodes with the decoder's own allocation limit set to that cost.
//!
//! The output is always 8-bit RGB or RGBA: 16-bit samples are reduced and palettes expanded
//! while decoding (not after), so the largest buffer is the one the variants need. Beside the
//! pixels comes the colour space they are in ([`colour::Space`]); the pixels are not converted
//! here, since converting after the first resize costs a fraction of it.

use std::io::Cursor;
use std::sync::{Condvar, Mutex};

use image::{DynamicImage, ImageDecoder};

use super::{Facts, Format, MediaError, colour, inspect, limits};

/// Why a decode did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The file is not one inspection accepts.
    #[error(transparent)]
    Refused(#[from] MediaError),
    /// Decoding it would take more memory than the caller allows.
    #[error("decoding the image would take {cost} bytes of memory; the limit here is {limit}")]
    OverLimit { cost: u64, limit: u64 },
    /// The decoder failed on a file inspection accepted.
    #[error("the image cannot be decoded: {0}")]
    Failed(String),
}

/// Decoded pixels, holding their share of the decode budget until dropped.
pub struct Decoded {
    pub image: DynamicImage,
    /// What the pixels' values mean; sRGB unless the file says otherwise.
    pub colour: colour::Space,
    pub facts: Facts,
    permit: Permit,
}

impl Decoded {
    /// Splits the pixels from their share of the budget, for a pipeline that turns them into
    /// other buffers and must keep the share until it is done.
    pub fn into_parts(self) -> (DynamicImage, colour::Space, Permit) {
        (self.image, self.colour, self.permit)
    }
}

/// Decodes `bytes` if its cost is at most `max_cost` (and the budget's), waiting for budget
/// as long as other decodes hold it. Blocks: call from a blocking thread.
pub fn decode(bytes: &[u8], max_cost: u64) -> Result<Decoded, DecodeError> {
    let facts = inspect(bytes)?.facts;
    let permit = take(facts.still_cost, max_cost)?;
    decode_reserved(bytes, facts, permit)
}

/// Decodes `bytes` whose cost [`reserve`] reserved: the still image, or an animation's first
/// frame.
pub fn decode_reserved(bytes: &[u8], facts: Facts, permit: Permit) -> Result<Decoded, DecodeError> {
    let (image, colour) = match facts.format {
        Format::Jpeg | Format::Webp => decode_with_image(bytes, facts),
        Format::Png => decode_png(bytes, facts),
        Format::Gif => decode_gif(bytes, facts).map(|image| (image, colour::Space::Srgb)),
        // Inspection never answers AVIF, which is only ever written.
        Format::Avif => Err(failed("AVIF is not read")),
    }?;
    Ok(Decoded { image, colour, facts, permit })
}

/// Inspects `bytes` and reserves the cost of decoding it and making its variants, if that is
/// at most `max_cost` (and the budget's), waiting for budget as long as other decodes hold it:
/// the first step of [`decode`], and of the animation pipeline, which decodes a frame at a time.
/// Blocks: call from a blocking thread.
pub fn reserve(bytes: &[u8], max_cost: u64) -> Result<(Facts, Permit), DecodeError> {
    let facts = inspect(bytes)?.facts;
    let permit = take(facts.decode_cost, max_cost)?;
    Ok((facts, permit))
}

/// [`reserve`] with a cost of the caller's, from the facts inspection gives (a pass that does
/// more than the first one, such as AVIF encoding).
pub fn reserve_cost(
    bytes: &[u8],
    max_cost: u64,
    cost: impl FnOnce(&Facts) -> u64,
) -> Result<(Facts, Permit), DecodeError> {
    let facts = inspect(bytes)?.facts;
    let permit = take(cost(&facts), max_cost)?;
    Ok((facts, permit))
}

/// Reserves `cost` from the budget unless it is over `max_cost` (or the budget's).
fn take(cost: u64, max_cost: u64) -> Result<Permit, DecodeError> {
    let limit = max_cost.min(limits::DECODE_BUDGET);
    if cost > limit {
        return Err(DecodeError::OverLimit { cost, limit });
    }
    Ok(BUDGET.acquire(cost))
}

fn failed(e: impl std::fmt::Display) -> DecodeError {
    DecodeError::Failed(e.to_string())
}

/// JPEG (zune-jpeg) and WebP (image-webp) through the `image` crate, with its allocation limit.
/// CMYK and YCCK JPEGs come out as RGB, their inks converted the way Adobe stores them
/// (inverted, as every CMYK JPEG in circulation is): through their CMYK profile when they
/// embed one ([`decode_cmyk`]), the plain way otherwise, as browsers do.
fn decode_with_image(bytes: &[u8], facts: Facts) -> Result<(DynamicImage, colour::Space), DecodeError> {
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(facts.still_cost);
    fn read(
        mut d: impl ImageDecoder,
        limits: image::Limits,
        icc: Option<Vec<u8>>,
    ) -> Result<(DynamicImage, colour::Space), DecodeError> {
        d.set_limits(limits).map_err(failed)?;
        let image = DynamicImage::from_decoder(d).map_err(failed)?;
        Ok((normalise(image), icc.map_or(colour::Space::Srgb, |icc| colour::Space::from_icc(&icc))))
    }
    if facts.format == Format::Jpeg {
        let mut d = image::codecs::jpeg::JpegDecoder::new(Cursor::new(bytes)).map_err(failed)?;
        let icc = d.icc_profile().ok().flatten();
        if let Some(cmyk) = icc.as_deref().and_then(colour::cmyk_profile) {
            drop(d);
            if let Some(image) = decode_cmyk(bytes, &cmyk)? {
                return Ok((image, colour::Space::Srgb));
            }
            // A CMYK profile on a colour or grey JPEG describes nothing in it: browsers show
            // such a file as if untagged, and so does this.
            let d = image::codecs::jpeg::JpegDecoder::new(Cursor::new(bytes)).map_err(failed)?;
            return read(d, image_limits, None);
        }
        read(d, image_limits, icc)
    } else {
        let mut d = image::codecs::webp::WebPDecoder::new(Cursor::new(bytes)).map_err(failed)?;
        let icc = d.icc_profile().ok().flatten();
        read(d, image_limits, icc)
    }
}

/// A CMYK or YCCK JPEG with a CMYK profile: its samples as stored, turned into ink amounts and
/// converted to sRGB through the profile, in place (3 bytes a pixel written where 4 were
/// read), so the file's four samples a pixel are the only full-size buffer. `None` when the
/// JPEG is not CMYK or YCCK.
fn decode_cmyk(bytes: &[u8], profile: &moxcms::ColorProfile) -> Result<Option<DynamicImage>, DecodeError> {
    use zune_core::colorspace::ColorSpace;
    let options = zune_core::options::DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX);
    let mut d = zune_jpeg::JpegDecoder::new_with_options(zune_core::bytestream::ZCursor::new(bytes), options);
    d.decode_headers().map_err(failed)?;
    let (w, h) = d.dimensions().ok_or_else(|| failed("no dimensions"))?;
    let stored = d.input_colorspace().ok_or_else(|| failed("no colour space"))?;
    if !matches!(stored, ColorSpace::CMYK | ColorSpace::YCCK) {
        return Ok(None);
    }
    // The samples as stored: zune converts between other spaces, not from YCCK to CMYK.
    d.set_options(d.options().jpeg_set_out_colorspace(stored));
    let mut pixels = d.decode().map_err(failed)?;
    for p in pixels.chunks_exact_mut(4) {
        if stored == ColorSpace::YCCK {
            // Adobe's YCCK is YCbCr of the inks of C, M and Y (JFIF's equations), and K inverted.
            let (y, cb, cr) = (f32::from(p[0]), f32::from(p[1]) - 128.0, f32::from(p[2]) - 128.0);
            let ink = |v: f32| v.round().clamp(0.0, 255.0) as u8;
            p[0] = ink(y + 1.402 * cr);
            p[1] = ink(y - 0.344_136 * cb - 0.714_136 * cr);
            p[2] = ink(y + 1.772 * cb);
            p[3] = 255 - p[3];
        } else {
            // Adobe stores CMYK inverted: 255 is no ink.
            for v in p.iter_mut() {
                *v = 255 - *v;
            }
        }
    }
    colour::cmyk_to_srgb_in_place(profile, &mut pixels).map_err(failed)?;
    let wrong = || failed("the CMYK decoder returned a buffer of the wrong size");
    let rgb = image::RgbImage::from_raw(w as u32, h as u32, pixels).ok_or_else(wrong)?;
    Ok(Some(DynamicImage::ImageRgb8(rgb)))
}

/// Makes any decoded image 8-bit RGB or RGBA.
fn normalise(image: DynamicImage) -> DynamicImage {
    match image {
        DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => image,
        other if other.color().has_alpha() => DynamicImage::ImageRgba8(other.into_rgba8()),
        other => DynamicImage::ImageRgb8(other.into_rgb8()),
    }
}

/// PNG through the `png` crate directly: 16-bit samples are reduced to 8 and palettes and low
/// bit depths expanded row by row, so no 16-bit frame is ever held.
fn decode_png(bytes: &[u8], facts: Facts) -> Result<(DynamicImage, colour::Space), DecodeError> {
    let limit = usize::try_from(facts.still_cost).unwrap_or(usize::MAX);
    let mut d = png::Decoder::new_with_limits(Cursor::new(bytes), png::Limits { bytes: limit });
    d.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    d.set_ignore_text_chunk(true);
    let mut reader = d.read_info().map_err(failed)?;
    let colour = colour::Space::from_png(reader.info());
    let size = reader.output_buffer_size().ok_or_else(|| failed("the PNG is too large"))?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(failed)?;
    buf.truncate(info.buffer_size());
    let (w, h) = (info.width, info.height);
    let wrong = || failed("the PNG decoder returned a buffer of the wrong size");
    let image = match info.color_type {
        png::ColorType::Grayscale => DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, buf).ok_or_else(wrong)?),
        png::ColorType::GrayscaleAlpha => {
            DynamicImage::ImageLumaA8(image::GrayAlphaImage::from_raw(w, h, buf).ok_or_else(wrong)?)
        }
        png::ColorType::Rgb => DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, buf).ok_or_else(wrong)?),
        png::ColorType::Rgba => DynamicImage::ImageRgba8(image::RgbaImage::from_raw(w, h, buf).ok_or_else(wrong)?),
        png::ColorType::Indexed => return Err(failed("the PNG palette was not expanded")),
    };
    Ok((normalise(image), colour))
}

/// GIF through the `gif` crate directly: the first frame's palette indices, painted onto a
/// canvas the size inspection measured (frames may reach past the logical screen). The canvas
/// is RGB when the frame covers it without transparent pixels, RGBA otherwise.
fn decode_gif(bytes: &[u8], facts: Facts) -> Result<DynamicImage, DecodeError> {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    options.check_frame_consistency(false);
    options.allow_unknown_blocks(true);
    if let Some(limit) = std::num::NonZeroU64::new(facts.still_cost) {
        options.set_memory_limit(gif::MemoryLimit::Bytes(limit));
    }
    let mut d = options.read_info(Cursor::new(bytes)).map_err(failed)?;
    let global = d.global_palette().map(<[u8]>::to_vec);
    let frame = d.read_next_frame().map_err(failed)?.ok_or_else(|| failed("the GIF has no frames"))?;
    let palette = frame.palette.as_deref().or(global.as_deref()).ok_or_else(|| failed("no colour table"))?;
    let (cw, ch) = (facts.width, facts.height);
    let (fx, fy, fw, fh) =
        (u32::from(frame.left), u32::from(frame.top), u32::from(frame.width), u32::from(frame.height));
    let covers = fx == 0 && fy == 0 && fw >= cw && fh >= ch;
    let transparent = frame.transparent;
    let opaque = covers && transparent.is_none_or(|t| !frame.buffer.contains(&t));
    let colour = |index: u8| -> [u8; 3] {
        let at = 3 * usize::from(index);
        palette.get(at..at + 3).map_or([0, 0, 0], |c| [c[0], c[1], c[2]])
    };
    let index_at = |x: u32, y: u32| -> Option<u8> {
        if x < fx || y < fy || x >= fx + fw || y >= fy + fh {
            return None;
        }
        frame.buffer.get(((y - fy) * fw + (x - fx)) as usize).copied()
    };
    if opaque {
        let canvas = image::RgbImage::from_fn(cw, ch, |x, y| image::Rgb(colour(index_at(x, y).unwrap_or(0))));
        return Ok(DynamicImage::ImageRgb8(canvas));
    }
    let canvas = image::RgbaImage::from_fn(cw, ch, |x, y| match index_at(x, y) {
        Some(i) if Some(i) != transparent => {
            let [r, g, b] = colour(i);
            image::Rgba([r, g, b, 255])
        }
        _ => image::Rgba([0, 0, 0, 0]),
    });
    Ok(DynamicImage::ImageRgba8(canvas))
}

/// A share of the decode budget, given back when dropped.
pub struct Permit {
    cost: u64,
}

impl Drop for Permit {
    fn drop(&mut self) {
        BUDGET.release(self.cost);
    }
}

/// The memory every decode of the process shares. A decode waits until its cost fits beside the
/// others; no single cost exceeds the total (inspection refuses those), so every wait ends.
struct Budget {
    used: Mutex<u64>,
    freed: Condvar,
}

static BUDGET: Budget = Budget { used: Mutex::new(0), freed: Condvar::new() };

impl Budget {
    fn acquire(&'static self, cost: u64) -> Permit {
        let cost = cost.min(limits::DECODE_BUDGET);
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used + cost > limits::DECODE_BUDGET {
            used = self.freed.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        *used += cost;
        Permit { cost }
    }

    fn release(&self, cost: u64) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        *used -= cost;
        self.freed.notify_all();
    }
}

/// How much of the decode budget is held now (for tests and metrics).
pub fn budget_in_use() -> u64 {
    *BUDGET.used.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(img: DynamicImage, fmt: image::ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, fmt).unwrap();
        out.into_inner()
    }

    #[test]
    fn every_format_decodes_to_8_bit_rgb_or_rgba_with_the_same_pixels() {
        // Given images written by real encoders, 16-bit and grey ones among them,
        let rgba = image::RgbaImage::from_fn(30, 20, |x, y| {
            image::Rgba([x as u8 * 8, y as u8 * 12, 99, if x < 3 { 0 } else { 255 }])
        });
        let rgb16 = image::ImageBuffer::<image::Rgb<u16>, Vec<u16>>::from_fn(30, 20, |x, y| {
            image::Rgb([x as u16 * 2000, y as u16 * 3000, 40000])
        });
        let cases: Vec<(Vec<u8>, DynamicImage)> = vec![
            (
                encode(DynamicImage::ImageRgba8(rgba.clone()), image::ImageFormat::Png),
                DynamicImage::ImageRgba8(rgba.clone()),
            ),
            // 16-bit samples keep their high byte.
            (
                encode(DynamicImage::ImageRgb16(rgb16.clone()), image::ImageFormat::Png),
                DynamicImage::ImageRgb8(image::RgbImage::from_fn(30, 20, |x, y| {
                    image::Rgb(rgb16.get_pixel(x, y).0.map(|v| (v >> 8) as u8))
                })),
            ),
            (
                encode(
                    DynamicImage::ImageLuma8(DynamicImage::ImageRgba8(rgba.clone()).to_luma8()),
                    image::ImageFormat::Png,
                ),
                DynamicImage::ImageRgb8(
                    DynamicImage::ImageLuma8(DynamicImage::ImageRgba8(rgba.clone()).to_luma8()).to_rgb8(),
                ),
            ),
            (
                encode(DynamicImage::ImageRgba8(rgba.clone()), image::ImageFormat::WebP),
                DynamicImage::ImageRgba8(rgba.clone()),
            ),
        ];
        for (i, (bytes, want)) in cases.into_iter().enumerate() {
            // when they are decoded,
            let got = decode(&bytes, u64::MAX).unwrap();
            // then the pixels are the reference's, in 8 bits, and the budget is held meanwhile.
            assert!(matches!(got.image, DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_)), "case {i}");
            assert_eq!(got.image.to_rgba8(), want.to_rgba8(), "case {i}");
            assert!(budget_in_use() >= got.facts.still_cost, "case {i}");
        }
    }

    #[test]
    fn gif_transparency_and_frames_past_the_screen_become_alpha() {
        // Given a GIF whose only frame covers half of a 4x2 canvas,
        let mut frame = gif::Frame::from_rgba(2, 2, &mut [255, 0, 0, 255].repeat(4));
        frame.left = 0;
        let mut bytes = Vec::new();
        {
            let mut e = gif::Encoder::new(&mut bytes, 4, 2, &[]).unwrap();
            e.write_frame(&frame).unwrap();
        }
        // when it is decoded, then the uncovered half is transparent and the rest red.
        let got = decode(&bytes, u64::MAX).unwrap().image.to_rgba8();
        assert_eq!(got.get_pixel(0, 0).0, [255, 0, 0, 255]);
        assert_eq!(got.get_pixel(3, 1).0[3], 0);
    }

    #[test]
    fn a_decode_over_the_callers_limit_is_refused_before_any_work() {
        let png = encode(DynamicImage::ImageRgb8(image::RgbImage::new(100, 100)), image::ImageFormat::Png);
        assert!(matches!(decode(&png, 1000), Err(DecodeError::OverLimit { limit: 1000, .. })));
    }
}
