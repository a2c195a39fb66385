//! Animated GIF, APNG and animated WebP: every frame kept, resized frame by frame.
//!
//! The frames come one at a time from the `image` crate's animation decoders, each already
//! composited onto the canvas with the source's disposal and blending applied, so what is
//! resized is what a viewer sees at that moment. Each distinct variant size has two streaming
//! encoders: the `gif` crate's, fed the rectangle that changed from one frame to the next
//! ([`GifAnimation`], one palette per frame, quantised with NeuQuant), and libwebp's
//! `WebPAnimEncoder`, which finds the changed rectangles itself. Every frame
//! keeps its duration and the loop count is carried over, so the variants play as the source
//! does.
//!
//! Memory is bounded by a few frames, not by the animation: the decoder holds at most three
//! canvases (the frame, the canvas it is painted on and the one kept for disposal), each size
//! one resized frame and its encoders' state, and the encoded variants themselves, each capped
//! at [`limits::MAX_ANIMATED_VARIANT_BYTES`] and at [`OUTPUT_BYTES_PER_PIXEL`] of its frames.
//! [`cost`] states that ceiling; inspection reserves it from the decode budget.

use std::io::{Cursor, Write};
use std::ptr::NonNull;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{AnimationDecoder, DynamicImage, ImageDecoder, RgbaImage};
use libwebp_sys as sys;

use super::decode::Permit;
use super::variants::{Size, Variant, VariantError, fit_inside, webp_quality};
use super::{Facts, Format, colour, limits};

/// What an encoded animated variant may take per pixel of all its frames, at most, and the
/// bound [`cost`] counts on: above GIF's worst case (LZW writes at most 12 bits for each 8-bit
/// index) and far above what GIF and lossy WebP make of real animations (a tenth of a byte to
/// half a byte). A variant that would be larger is not made.
pub const OUTPUT_BYTES_PER_PIXEL: u64 = 2;

/// What an encoded animated variant may take per frame beyond its pixels: a GIF frame's own
/// colour table (768 bytes) and headers, a WebP frame's header.
const OUTPUT_BYTES_PER_FRAME: u64 = 1024;

/// Memory per pixel of a variant size while frames are encoded: the resized frame, its upright
/// copy, the GIF encoder's held frame and palette indices, and libwebp's canvases (previous,
/// current, disposed) and the candidate sub-frames it encodes to choose the smallest, with room
/// to spare.
/// `tests/decode_memory.rs` measures it.
const ENCODE_BYTES_PER_PIXEL: u64 = 56;

/// Canvases (4 bytes a pixel) the frame decoders hold at once, at most.
const DECODE_CANVASES: u64 = 3;

/// NeuQuant's speed, from 1 (best) to 30 (fastest): 10 is the `gif` crate's own default and
/// ImageMagick's middle ground, and keeps a 2048-pixel frame under a tenth of a second.
const GIF_QUANTISER_SPEED: i32 = 10;

/// Whether the file is an animation (more than one frame), whose variants [`make_variants`] makes.
pub fn is_animated(facts: &Facts) -> bool {
    facts.frames > 1
}

/// The most memory making the variants of an animation takes: the decoders' canvases, each
/// size's encoders, and the encoded variants, GIF once and WebP twice (libwebp holds its frames
/// while it assembles the file).
pub(crate) fn cost(width: u32, height: u32, frames: u32, frame_pixels: u64) -> u64 {
    let canvas = u64::from(width) * u64::from(height);
    let mut total = DECODE_CANVASES * 4 * canvas + limits::DECODE_OVERHEAD;
    for ((tw, th), _) in targets(width, height) {
        let pixels = u64::from(tw) * u64::from(th);
        let output = output_cap(frames, frame_pixels, pixels, canvas);
        total += ENCODE_BYTES_PER_PIXEL * pixels + 3 * output;
    }
    total
}

/// The largest an encoded variant of `pixels` a frame may be, for `frames` frames of `canvas`
/// pixels whose own rectangles hold `frame_pixels` together.
fn output_cap(frames: u32, frame_pixels: u64, pixels: u64, canvas: u64) -> u64 {
    let scaled = frame_pixels.saturating_mul(pixels) / canvas.max(1);
    let bound = OUTPUT_BYTES_PER_PIXEL * scaled + OUTPUT_BYTES_PER_FRAME * u64::from(frames) + (64 << 10);
    bound.min(limits::MAX_ANIMATED_VARIANT_BYTES)
}

/// The distinct dimensions of the variant sizes of a `width` x `height` canvas, largest first,
/// each with the largest size it serves (sizes that the canvas does not exceed share the
/// canvas's own dimensions, and are encoded once).
fn targets(width: u32, height: u32) -> Vec<((u32, u32), Size)> {
    let mut out: Vec<((u32, u32), Size)> = Vec::with_capacity(Size::ALL.len());
    for size in [Size::Large, Size::Medium, Size::Small] {
        let dims = fit_inside(width, height, size.long_edge());
        if out.last().is_none_or(|(d, _)| *d != dims) {
            out.push((dims, size));
        }
    }
    out
}

/// How many times an animation plays: 0 for ever, as WebP and APNG count.
type Plays = u32;

/// The frames of an animation, decoded one at a time, with what they need to be shown right.
struct Source<'a> {
    frames: image::Frames<'a>,
    colour: colour::Space,
    plays: Plays,
}

fn source<'a>(bytes: &'a [u8], facts: &Facts) -> Result<Source<'a>, VariantError> {
    let failed = |e: &dyn std::fmt::Display| VariantError::Decode(e.to_string());
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(facts.decode_cost);
    let limited = |d: &mut dyn ImageDecoder| d.set_limits(image_limits.clone()).map_err(|e| failed(&e));
    fn frames<'a>(d: impl AnimationDecoder<'a>) -> (image::Frames<'a>, Plays) {
        let plays = match d.loop_count() {
            image::metadata::LoopCount::Infinite => 0,
            image::metadata::LoopCount::Finite(n) => n.get(),
        };
        (d.into_frames(), plays)
    }
    let reader = Cursor::new(bytes);
    match facts.format {
        Format::Gif => {
            let mut d = image::codecs::gif::GifDecoder::new(reader).map_err(|e| failed(&e))?;
            limited(&mut d)?;
            let (frames, _) = frames(d);
            // `image` reads a GIF without a loop block as looping for ever; browsers play it once.
            Ok(Source { frames, colour: colour::Space::Srgb, plays: super::gif::plays(bytes) })
        }
        Format::Png => {
            let colour = png_colour(bytes);
            let mut d = image::codecs::png::PngDecoder::new(reader).map_err(|e| failed(&e))?;
            limited(&mut d)?;
            let (frames, plays) = frames(d.apng().map_err(|e| failed(&e))?);
            Ok(Source { frames, colour, plays })
        }
        Format::Webp => {
            let mut d = image::codecs::webp::WebPDecoder::new(reader).map_err(|e| failed(&e))?;
            let colour =
                d.icc_profile().ok().flatten().map_or(colour::Space::Srgb, |icc| colour::Space::from_icc(&icc));
            limited(&mut d)?;
            let (frames, plays) = frames(d);
            Ok(Source { frames, colour, plays })
        }
        Format::Jpeg | Format::Avif => {
            Err(VariantError::Decode(format!("a {} original is never animated", facts.format.name())))
        }
    }
}

/// The colour space a PNG's chunks declare (read from its header chunks only).
fn png_colour(bytes: &[u8]) -> colour::Space {
    let mut d = png::Decoder::new(Cursor::new(bytes));
    d.set_ignore_text_chunk(true);
    d.read_info().map_or(colour::Space::Srgb, |r| colour::Space::from_png(r.info()))
}

/// The formats an animated variant is made in: GIF, the classic one every browser plays, and
/// animated WebP.
pub const FORMATS: [Format; 2] = [Format::Gif, Format::Webp];

/// Every variant of an animation in `formats` (some of [`FORMATS`]), as
/// [`super::variants::make_variants`] lists them: for each size, smallest first, one variant in
/// each format, in the order of `formats`. `facts` and `permit` come from
/// [`super::decode::reserve`]; the budget share is held until the last variant is made.
pub fn make_variants(
    bytes: &[u8],
    facts: &Facts,
    orientation: u16,
    formats: &[Format],
    _permit: Permit,
) -> Result<Vec<Variant>, VariantError> {
    if let Some(other) = formats.iter().find(|f| !FORMATS.contains(f)) {
        return Err(VariantError::Encode(format!("no animated {} variant", other.name())));
    }
    let (gif, webp) = (formats.contains(&Format::Gif), formats.contains(&Format::Webp));
    let Source { mut frames, colour, plays } = source(bytes, facts)?;
    let first = frames.next().ok_or_else(|| VariantError::Decode("the animation has no frames".into()))?;
    let first = first.map_err(|e| VariantError::Decode(e.to_string()))?;
    let (cw, ch) = first.buffer().dimensions();
    let canvas = u64::from(cw) * u64::from(ch);
    let turned = matches!(orientation, 5..=8);
    let mut outputs = targets(cw, ch)
        .into_iter()
        .map(|((tw, th), size)| {
            let (w, h) = if turned { (th, tw) } else { (tw, th) };
            let cap = output_cap(facts.frames, facts.frame_pixels, u64::from(tw) * u64::from(th), canvas);
            Output::new(w, h, plays, webp_quality(size), cap, gif, webp)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let to_srgb = colour.to_srgb(true);
    let mut resizer = Resizer::new();
    // Alpha is premultiplied by hand (or absent), so the resizer must not do it again.
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)).use_alpha(false);
    let mul_div = fast_image_resize::MulDiv::default();
    let resize_error = |e: &dyn std::fmt::Display| VariantError::Resize(e.to_string());
    // Milliseconds since the start, kept exact as a fraction so rounding never accumulates.
    let mut elapsed = 0f64;
    for frame in std::iter::once(Ok(first)).chain(frames) {
        let frame = frame.map_err(|e| VariantError::Decode(e.to_string()))?;
        let (numer, denom) = frame.delay().numer_denom_ms();
        let duration = f64::from(numer) / f64::from(denom.max(1));
        let buffer = frame.into_buffer();
        if buffer.dimensions() != (cw, ch) {
            return Err(VariantError::Decode("the animation's frames change size".into()));
        }
        let alpha = buffer.pixels().any(|p| p.0[3] != 255);
        let mut source =
            Image::from_vec_u8(cw, ch, buffer.into_raw(), PixelType::U8x4).map_err(|e| resize_error(&e))?;
        if alpha {
            mul_div.multiply_alpha_inplace(&mut source).map_err(|e| resize_error(&e))?;
        }
        for output in &mut outputs {
            let (tw, th) = if turned { (output.height, output.width) } else { (output.width, output.height) };
            let mut resized = if (tw, th) == (cw, ch) {
                source.copy()
            } else {
                let mut next = Image::new(tw, th, PixelType::U8x4);
                resizer.resize(&source, &mut next, &options).map_err(|e| resize_error(&e))?;
                next
            };
            if alpha {
                mul_div.divide_alpha_inplace(&mut resized).map_err(|e| resize_error(&e))?;
            }
            let mut pixels = resized.into_vec();
            if let Some(conversion) = &to_srgb {
                conversion.apply(&mut pixels).map_err(|e| resize_error(&e))?;
            }
            let rgba = RgbaImage::from_raw(tw, th, pixels).ok_or_else(|| resize_error(&"buffer size"))?;
            let mut shown = DynamicImage::ImageRgba8(rgba);
            if let Some(o) = image::metadata::Orientation::from_exif(orientation as u8) {
                shown.apply_orientation(o);
            }
            let DynamicImage::ImageRgba8(shown) = shown else { unreachable!("orientation keeps the pixel type") };
            output.add(shown.into_raw(), elapsed, duration)?;
        }
        elapsed += duration;
    }
    let mut made = Vec::with_capacity(formats.len() * Size::ALL.len());
    let finished = outputs.into_iter().map(|o| o.finish(elapsed)).collect::<Result<Vec<_>, _>>()?;
    for size in Size::ALL {
        let (tw, th) = fit_inside(cw, ch, size.long_edge());
        let (width, height) = if turned { (th, tw) } else { (tw, th) };
        let encoded = finished
            .iter()
            .find(|f| (f.width, f.height) == (width, height))
            .ok_or_else(|| resize_error(&"a size without its encoders"))?;
        for &format in formats {
            let bytes = if format == Format::Gif { &encoded.gif } else { &encoded.webp };
            let bytes = bytes.clone().ok_or_else(|| resize_error(&"a format without its encoder"))?;
            made.push(Variant { size, width, height, format, bytes });
        }
    }
    Ok(made)
}

/// The encoders of one variant size.
struct Output {
    width: u32,
    height: u32,
    gif: Option<GifAnimation>,
    webp: Option<WebpAnimation>,
    cap: u64,
}

/// What [`Output`] made.
struct Encoded {
    width: u32,
    height: u32,
    gif: Option<Vec<u8>>,
    webp: Option<Vec<u8>>,
}

impl Output {
    fn new(
        width: u32,
        height: u32,
        plays: Plays,
        quality: f32,
        cap: u64,
        gif: bool,
        webp: bool,
    ) -> Result<Self, VariantError> {
        let gif = if gif { Some(GifAnimation::new(width, height, plays, cap)?) } else { None };
        let webp = if webp { Some(WebpAnimation::new(width, height, plays, quality)?) } else { None };
        Ok(Output { width, height, gif, webp, cap })
    }

    /// Adds one frame, shown from `start` milliseconds for `duration`.
    fn add(&mut self, rgba: Vec<u8>, start: f64, duration: f64) -> Result<(), VariantError> {
        if let Some(webp) = &mut self.webp {
            webp.add(&rgba, start.round() as i32)?;
        }
        if let Some(gif) = &mut self.gif {
            // Delays are in hundredths of a second; the end is rounded, not each frame, so the
            // whole animation keeps its length.
            let end = ((start + duration) / 10.0).round() as i64;
            let delay = u16::try_from(end - (start / 10.0).round() as i64).unwrap_or(u16::MAX);
            gif.add(rgba, delay)?;
        }
        Ok(())
    }

    fn finish(self, end: f64) -> Result<Encoded, VariantError> {
        let gif = self.gif.map(GifAnimation::finish).transpose()?;
        let webp = self.webp.map(|w| w.finish(end.round() as i32, self.cap)).transpose()?;
        Ok(Encoded { width: self.width, height: self.height, gif, webp })
    }
}

fn encode_error(e: &dyn std::fmt::Display) -> VariantError {
    VariantError::Encode(e.to_string())
}

/// A rectangle of a frame: left, top, width, height.
type Rect = (u32, u32, u32, u32);

/// The GIF encoder of one size, which writes only what changed from one frame to the next.
///
/// A frame is held back until the next one arrives, since how it is disposed of depends on the
/// next: when the next frame is opaque everywhere, the held frame stays on the canvas
/// (disposal "keep") and the next one is written as the rectangle of pixels that differ, which
/// is most of the saving on animations with a still background; when the next frame has
/// transparent pixels, the held frame is written whole and cleared after it is shown
/// (disposal "background"), so that the next one, written whole too, shows nothing where it is
/// transparent. Memory: the held frame and the previous one, 4 bytes a pixel each.
struct GifAnimation {
    encoder: gif::Encoder<Capped>,
    width: u32,
    height: u32,
    /// The frame not written yet: its pixels (alpha 0 or 255), its delay, and the rectangle
    /// (left, top, width, height) it needs to cover if the canvas is kept under it.
    held: Option<(Vec<u8>, u16, Rect)>,
}

impl GifAnimation {
    fn new(width: u32, height: u32, plays: Plays, cap: u64) -> Result<Self, VariantError> {
        let (Ok(w16), Ok(h16)) = (u16::try_from(width), u16::try_from(height)) else {
            return Err(encode_error(&"the animation is too large for GIF"));
        };
        let mut encoder =
            gif::Encoder::new(Capped { out: Vec::new(), cap }, w16, h16, &[]).map_err(|e| encode_error(&e))?;
        // GIF counts repeats after the first play, and a file without the loop block plays once.
        match plays {
            0 => encoder.set_repeat(gif::Repeat::Infinite).map_err(|e| encode_error(&e))?,
            1 => {}
            n => encoder
                .set_repeat(gif::Repeat::Finite(u16::try_from(n - 1).unwrap_or(u16::MAX)))
                .map_err(|e| encode_error(&e))?,
        }
        Ok(GifAnimation { encoder, width, height, held: None })
    }

    /// Adds a frame of straight RGBA pixels shown for `delay` hundredths of a second.
    fn add(&mut self, mut rgba: Vec<u8>, delay: u16) -> Result<(), VariantError> {
        // GIF has one transparent colour and no partial transparency: half-transparent edges
        // become opaque or vanish, whichever is nearer.
        let mut opaque = true;
        for p in rgba.chunks_exact_mut(4) {
            p[3] = if p[3] < 128 { 0 } else { 255 };
            opaque &= p[3] == 255;
        }
        let whole = (0, 0, self.width, self.height);
        let rect = match self.held.take() {
            None => whole,
            Some((held, held_delay, held_rect)) => {
                if opaque {
                    let rect = changed(&held, &rgba, self.width, self.height);
                    self.write(&held, held_delay, held_rect, gif::DisposalMethod::Keep)?;
                    rect
                } else {
                    self.write(&held, held_delay, whole, gif::DisposalMethod::Background)?;
                    whole
                }
            }
        };
        self.held = Some((rgba, delay, rect));
        Ok(())
    }

    fn write(
        &mut self,
        rgba: &[u8],
        delay: u16,
        (left, top, w, h): Rect,
        dispose: gif::DisposalMethod,
    ) -> Result<(), VariantError> {
        let mut part = Vec::with_capacity(4 * (w * h) as usize);
        for y in top..top + h {
            let row = 4 * (y * self.width + left) as usize;
            part.extend_from_slice(&rgba[row..row + 4 * w as usize]);
        }
        let mut frame = gif::Frame::from_rgba_speed(w as u16, h as u16, &mut part, GIF_QUANTISER_SPEED);
        (frame.left, frame.top, frame.delay, frame.dispose) = (left as u16, top as u16, delay, dispose);
        self.encoder.write_frame(&frame).map_err(|e| encode_error(&e))
    }

    fn finish(mut self) -> Result<Vec<u8>, VariantError> {
        if let Some((held, delay, rect)) = self.held.take() {
            self.write(&held, delay, rect, gif::DisposalMethod::Keep)?;
        }
        Ok(self.encoder.into_inner().map_err(|e| encode_error(&e))?.out)
    }
}

/// The smallest rectangle (left, top, width, height) holding every pixel that differs between
/// two frames of `width` x `height`; a single pixel when none does, since a GIF frame cannot be
/// empty and the frame must stay to keep its time.
fn changed(a: &[u8], b: &[u8], width: u32, height: u32) -> Rect {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for y in 0..height {
        let row = (4 * y * width) as usize..(4 * (y + 1) * width) as usize;
        let (ra, rb) = (&a[row.clone()], &b[row]);
        if ra == rb {
            continue;
        }
        let first = ra.chunks_exact(4).zip(rb.chunks_exact(4)).position(|(p, q)| p != q).unwrap_or(0) as u32;
        let last = ra.chunks_exact(4).zip(rb.chunks_exact(4)).rposition(|(p, q)| p != q).unwrap_or(0) as u32;
        (x0, x1, y0, y1) = (x0.min(first), x1.max(last), y0.min(y), y);
    }
    if x0 == u32::MAX { (0, 0, 1, 1) } else { (x0, y0, x1 - x0 + 1, y1 - y0 + 1) }
}

/// A `Vec` writer that refuses to grow past `cap` bytes, so a variant that would be larger than
/// its bound fails instead of taking the memory.
struct Capped {
    out: Vec<u8>,
    cap: u64,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if (self.out.len() + buf.len()) as u64 > self.cap {
            return Err(std::io::Error::other(format!("the variant would exceed {} bytes", self.cap)));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// libwebp's animation encoder, fed one frame at a time. (The `webp` crate's wrapper keeps
/// every frame until the end, which would hold the whole animation.)
struct WebpAnimation {
    encoder: NonNull<sys::WebPAnimEncoder>,
    config: sys::WebPConfig,
    width: u32,
    height: u32,
}

impl WebpAnimation {
    fn new(width: u32, height: u32, plays: Plays, quality: f32) -> Result<Self, VariantError> {
        let error = |m: &str| VariantError::Encode(format!("libwebp: {m}"));
        let mut config = sys::WebPConfig::new().map_err(|()| error("no default configuration"))?;
        config.quality = quality;
        config.method = 4;
        // SAFETY: the options are initialised by libwebp before they are read, and the encoder
        // it returns is owned by this value and deleted once, in `drop`.
        let encoder = unsafe {
            let mut options = std::mem::MaybeUninit::<sys::WebPAnimEncoderOptions>::uninit();
            if sys::WebPAnimEncoderOptionsInitInternal(options.as_mut_ptr(), sys::WEBP_MUX_ABI_VERSION as i32) == 0 {
                return Err(error("no default animation options"));
            }
            let mut options = options.assume_init();
            options.anim_params.loop_count = i32::try_from(plays).unwrap_or(0);
            // Lossy frames only, as the still WebP variants are.
            options.allow_mixed = 0;
            sys::WebPAnimEncoderNewInternal(width as i32, height as i32, &options, sys::WEBP_MUX_ABI_VERSION as i32)
        };
        let encoder = NonNull::new(encoder).ok_or_else(|| error("the animation encoder cannot start"))?;
        Ok(WebpAnimation { encoder, config, width, height })
    }

    fn last_error(&self) -> VariantError {
        // SAFETY: the encoder is alive; libwebp returns a static or encoder-owned C string.
        let message = unsafe {
            let p = sys::WebPAnimEncoderGetError(self.encoder.as_ptr());
            if p.is_null() {
                "unknown error".to_owned()
            } else {
                std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        VariantError::Encode(format!("libwebp: {message}"))
    }

    /// Adds a frame of straight RGBA pixels shown from `timestamp` milliseconds.
    fn add(&mut self, rgba: &[u8], timestamp: i32) -> Result<(), VariantError> {
        assert_eq!(rgba.len(), 4 * self.width as usize * self.height as usize, "a frame of the canvas's size");
        // SAFETY: the picture is initialised by libwebp, imports a copy of `rgba` (whose length
        // is checked above), is handed to the live encoder, which copies it, and is freed once.
        unsafe {
            let mut picture = std::mem::MaybeUninit::<sys::WebPPicture>::uninit();
            if sys::WebPPictureInitInternal(picture.as_mut_ptr(), sys::WEBP_ENCODER_ABI_VERSION as i32) == 0 {
                return Err(VariantError::Encode("libwebp: no picture".into()));
            }
            let mut picture = picture.assume_init();
            picture.use_argb = 1;
            picture.width = self.width as i32;
            picture.height = self.height as i32;
            let imported = sys::WebPPictureImportRGBA(&mut picture, rgba.as_ptr(), 4 * self.width as i32);
            let added = imported != 0
                && sys::WebPAnimEncoderAdd(self.encoder.as_ptr(), &mut picture, timestamp, &self.config) != 0;
            sys::WebPPictureFree(&mut picture);
            if !added {
                return Err(self.last_error());
            }
        }
        Ok(())
    }

    /// Ends the last frame at `end` milliseconds and assembles the file, refused when it is
    /// larger than `cap` bytes.
    fn finish(self, end: i32, cap: u64) -> Result<Vec<u8>, VariantError> {
        // SAFETY: a null frame marks the end (libwebp's documented use); the assembled data is
        // libwebp's allocation, copied out and then freed once.
        unsafe {
            if sys::WebPAnimEncoderAdd(self.encoder.as_ptr(), std::ptr::null_mut(), end, std::ptr::null()) == 0 {
                return Err(self.last_error());
            }
            let mut data = sys::WebPData::default();
            if sys::WebPAnimEncoderAssemble(self.encoder.as_ptr(), &mut data) == 0 {
                return Err(self.last_error());
            }
            let out = if data.size as u64 > cap {
                Err(VariantError::Encode(format!("the variant would exceed {cap} bytes")))
            } else {
                Ok(std::slice::from_raw_parts(data.bytes, data.size).to_vec())
            };
            sys::WebPDataClear(&mut data);
            out
        }
    }
}

impl Drop for WebpAnimation {
    fn drop(&mut self) {
        // SAFETY: the encoder was made by `WebPAnimEncoderNewInternal` and is deleted only here.
        unsafe { sys::WebPAnimEncoderDelete(self.encoder.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use image::AnimationDecoder;

    use super::*;

    #[test]
    fn the_changed_rectangle_holds_every_differing_pixel_and_no_more() {
        // Given frames of 5x4 that differ at these pixels, the rectangle is:
        let cases: [(&[(u32, u32)], Rect); 4] = [
            (&[], (0, 0, 1, 1)),
            (&[(2, 1)], (2, 1, 1, 1)),
            (&[(1, 3), (4, 0)], (1, 0, 4, 4)),
            (&[(0, 0), (4, 3)], (0, 0, 5, 4)),
        ];
        for (pixels, want) in cases {
            let a = vec![7u8; 4 * 5 * 4];
            let mut b = a.clone();
            for &(x, y) in pixels {
                b[4 * (y * 5 + x) as usize] = 8;
            }
            assert_eq!(changed(&a, &b, 5, 4), want, "{pixels:?}");
        }
    }

    /// A 200x150 frame: a grey background with a red square at `x`, and a transparent hole
    /// where `hole` says.
    fn frame(x: u32, hole: bool) -> RgbaImage {
        RgbaImage::from_fn(200, 150, |px, py| {
            if hole && px < 50 && py < 50 {
                image::Rgba([0, 0, 0, 0])
            } else if (x..x + 20).contains(&px) && (60..80).contains(&py) {
                image::Rgba([220, 20, 20, 255])
            } else {
                image::Rgba([90, 90, 90, 255])
            }
        })
    }

    #[test]
    fn a_gif_variant_writes_only_what_changed_and_shows_every_frame_exactly() {
        // Given a GIF of a square moving over a still background, then a frame with a hole,
        // small enough that no variant is resized and with few enough colours to keep them all,
        let sources: Vec<RgbaImage> = (0..5).map(|i| frame(30 * i, false)).chain([frame(120, true)]).collect();
        let mut bytes = Vec::new();
        {
            let mut e = gif::Encoder::new(&mut bytes, 200, 150, &[]).unwrap();
            e.set_repeat(gif::Repeat::Infinite).unwrap();
            for f in &sources {
                let mut raw = f.clone().into_raw();
                let mut g = gif::Frame::from_rgba_speed(200, 150, &mut raw, 10);
                (g.delay, g.dispose) = (7, gif::DisposalMethod::Background);
                e.write_frame(&g).unwrap();
            }
        }
        // when its variants are made,
        let variants = super::super::variants::make_variants(&bytes, 1).unwrap();
        let small = variants.iter().find(|v| v.format == Format::Gif).unwrap();
        // then the frames after the first cover only the square's old and new places, except
        // the one with the hole and the one before it (cleared after it is shown, so that the
        // hole shows nothing), which cover everything,
        let mut d = gif::DecodeOptions::new().read_info(Cursor::new(&small.bytes)).unwrap();
        let mut rects = Vec::new();
        while let Some(f) = d.read_next_frame().unwrap() {
            rects.push((f.left, f.top, f.width, f.height));
        }
        assert_eq!(rects[0], (0, 0, 200, 150));
        for (i, r) in rects.iter().enumerate().take(4).skip(1) {
            assert_eq!(*r, (30 * (i as u16 - 1), 60, 50, 20), "frame {i}");
        }
        assert_eq!(rects[4..], [(0, 0, 200, 150), (0, 0, 200, 150)]);
        // and a browser's compositing shows each source frame exactly.
        let shown = image::codecs::gif::GifDecoder::new(Cursor::new(&small.bytes)).unwrap().into_frames();
        let shown: Vec<RgbaImage> = shown.map(|f| f.unwrap().into_buffer()).collect();
        assert_eq!(shown.len(), sources.len());
        for (i, (got, want)) in shown.iter().zip(&sources).enumerate() {
            let same = got.pixels().zip(want.pixels()).all(|(p, q)| p == q || (p.0[3] == 0 && q.0[3] == 0));
            assert!(same, "frame {i} differs");
        }
    }
}
