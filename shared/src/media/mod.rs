//! Everything that looks inside image files: format sniffing, inspection (header, structure,
//! what can be shown, limits), EXIF metadata, metadata stripping by keep-lists, the one decode
//! function and the variant pipeline.
//!
//! Each container has its own module (`jpeg`, `png`, `gif`, `webp`) holding its walk, its
//! checks and its keep-list, so that inspection and stripping read the file the same way.
//! Ingest never holds decoded pixels; they are decoded in the background worker (and for a meme
//! background), always through [`decode::decode`] and its memory budget.

pub mod animation;
pub mod colour;
pub mod decode;
pub mod exif;
pub(crate) mod gif;
pub(crate) mod jpeg;
pub(crate) mod png;
pub mod variants;
pub(crate) mod webp;

use serde::{Deserialize, Serialize};

/// The image formats imghost reads or writes: an original is one of [`Format::ORIGINALS`]; AVIF
/// is only ever a variant (the pipeline writes it, nothing reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jpeg,
    Png,
    Gif,
    Webp,
    Avif,
}

impl Format {
    /// The formats an upload may be in.
    pub const ORIGINALS: [Format; 4] = [Format::Jpeg, Format::Png, Format::Gif, Format::Webp];

    pub fn mime(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Gif => "image/gif",
            Format::Webp => "image/webp",
            Format::Avif => "image/avif",
        }
    }

    /// The file extension used in links and object keys.
    pub fn ext(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::Gif => "gif",
            Format::Webp => "webp",
            Format::Avif => "avif",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Gif => "gif",
            Format::Webp => "webp",
            Format::Avif => "avif",
        }
    }

    pub fn from_ext(ext: &str) -> Option<Self> {
        match ext.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" => Some(Format::Jpeg),
            "png" => Some(Format::Png),
            "gif" => Some(Format::Gif),
            "webp" => Some(Format::Webp),
            "avif" => Some(Format::Avif),
            _ => None,
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::from_ext(name)
    }
}

/// Identifies the format from the file's magic bytes. The Content-Type and file name a client
/// sends are never trusted for this.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(Format::Gif)
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(Format::Webp)
    } else {
        None
    }
}

/// Why a file that looks like an image cannot be accepted. Each maps to one status and code
/// (see `images::prepare`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The header cannot be read: no dimensions can be known (422 `unreadable_image`).
    #[error("the image header cannot be read: {0}")]
    Unreadable(String),
    /// The file breaks its format's rules (422 `damaged_image`).
    #[error("the image is damaged: {0}")]
    Damaged(String),
    /// A valid file in a variant of its format that browsers or the decoder cannot show (415
    /// `unsupported_image`).
    #[error("{0}")]
    Unsupported(String),
    /// Over a limit (413 with the limit's code).
    #[error("{message}")]
    TooLarge { code: &'static str, message: String },
}

pub(crate) fn damaged(msg: &str) -> MediaError {
    MediaError::Damaged(msg.to_owned())
}

pub(crate) fn unsupported(msg: &str) -> MediaError {
    MediaError::Unsupported(msg.to_owned())
}

pub(crate) fn too_large(code: &'static str, message: String) -> MediaError {
    MediaError::TooLarge { code, message }
}

pub(crate) fn too_many_pixels(width: u32, height: u32) -> MediaError {
    let pixels = u64::from(width) * u64::from(height);
    too_large(
        "too_many_pixels",
        format!("the image is {width}x{height} ({pixels} pixels); the limit is {} pixels", limits::MAX_PIXELS),
    )
}

/// Every limit on what is accepted and on the memory spent on it, in one place.
pub mod limits {
    /// The largest image, in pixels (of the canvas, for an animation), that is accepted.
    pub const MAX_PIXELS: u64 = 50_000_000;
    /// The most frames an animation may have.
    pub const MAX_FRAMES: u32 = 1_000;
    /// The most pixels an animation may hold over all its frames, counted both ways: the
    /// frames' own rectangles together, and the canvas times the frames, since each frame is
    /// composited onto the whole canvas and resized from it (a thousand 1-pixel frames on a
    /// large canvas are as much work as a thousand whole ones).
    pub const MAX_ANIMATION_PIXELS: u64 = 250_000_000;
    /// The most scans a JPEG may have. Encoders write at most a few dozen; every scan of a
    /// progressive JPEG makes the decoder pass over the whole image again.
    pub const MAX_JPEG_SCANS: usize = 100;
    /// ICC profiles larger than this are dropped from originals (real profiles stay far below).
    pub const MAX_ICC_BYTES: usize = 2 << 20;
    /// The largest an encoded animated variant may be. Animations whose variants would be
    /// larger keep only their original, served in every size.
    pub const MAX_ANIMATED_VARIANT_BYTES: u64 = 32 << 20;
    /// Memory a decode needs beyond what grows with its pixels: decoder state, tables, the
    /// encoders' buffers.
    pub const DECODE_OVERHEAD: u64 = 16 << 20;
    /// What libwebp's lossless coder takes per pixel to encode the alpha plane of a
    /// transparent WebP variant (its ARGB copy, hash chain and backward references), with room
    /// to spare: `tests/decode_memory.rs` measured 163 MiB in all for a 2048 x 2048 variant.
    pub const WEBP_ALPHA_BYTES_PER_PIXEL: u64 = 36;
    /// What rav1e takes per pixel of the large variant to encode it as AVIF (its source,
    /// reconstruction and analysis planes, with padding), with room to spare:
    /// `tests/decode_memory.rs` measured the AVIF pass of a 2500 x 2500 image at 151 MiB in all
    /// (opaque) and 173 MiB (transparent) against 208 MiB estimated by [`super::avif_cost`].
    pub const AVIF_BYTES_PER_PIXEL: u64 = 40;
    /// Memory all decodes of one process may hold at once. A decode waits for its share; an
    /// image whose decode alone would need more is refused at upload.
    pub const DECODE_BUDGET: u64 = 288 << 20;
}

/// What inspection learns about an accepted file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub format: Format,
    /// Stored dimensions (before orientation): for a GIF, the logical screen grown to hold every
    /// frame.
    pub width: u32,
    pub height: u32,
    /// 1 for a still image.
    pub frames: u32,
    /// Pixels of every frame together.
    pub frame_pixels: u64,
    /// The most memory, in bytes, that decoding the image and making its variants takes, the
    /// file itself included: what making the variants reserves from [`limits::DECODE_BUDGET`].
    /// For an animation, the larger of [`animation::cost`] and `still_cost`.
    pub decode_cost: u64,
    /// The same for the still image, or an animation's first frame alone: what a decode of it
    /// ([`decode::decode`], for a meme background) reserves.
    pub still_cost: u64,
    /// Whether the image data can only be checked by decoding it ([`verify_decodes`]): WebP
    /// bitstreams, and progressive JPEG, whose decoder needs every scan to end where its data
    /// ends.
    pub check_by_decoding: bool,
}

impl Facts {
    /// The facts with `decode_cost` set from `still_cost` and, for an animation, the cost of
    /// making its variants a frame at a time.
    pub(crate) fn costed(mut self) -> Self {
        self.decode_cost = if animation::is_animated(&self) {
            self.still_cost.max(animation::cost(self.width, self.height, self.frames, self.frame_pixels))
        } else {
            self.still_cost
        };
        self
    }
}

/// The result of [`inspect`]: the facts, and what stripping that file needs to know.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub facts: Facts,
    extras: Extras,
}

#[derive(Debug, Clone)]
enum Extras {
    Jpeg(jpeg::Extras),
    Png(png::Extras),
    Gif,
    Webp(webp::Extras),
}

/// Checks a file without decoding its pixels, and refuses what cannot be shown: the format by
/// its magic bytes (`None` of `sniff`'s caller), the header, the container's structure, what
/// the decoder and browsers support (JPEG coding process and precision, PNG colour type and bit
/// depth, WebP bitstream headers and canvas, GIF colour tables), image data that fills its
/// image (PNG inflated and GIF LZW decoded in constant memory, and thrown away), and the limits
/// of [`limits`], including a decode that would not fit the decode budget.
///
/// Memory: a fixed amount whatever the file (a few buffers of 32 KiB); time: in proportion to
/// the file, plus inflating at most the bytes the header promises.
pub fn inspect(bytes: &[u8]) -> Result<Inspected, MediaError> {
    let format = sniff(bytes).ok_or_else(|| unsupported("the file is not a JPEG, PNG, GIF or WebP image"))?;
    let (mut facts, extras) = match format {
        Format::Jpeg => jpeg::inspect(bytes).map(|(f, e)| (f, Extras::Jpeg(e)))?,
        Format::Png => png::inspect(bytes).map(|(f, e)| (f, Extras::Png(e)))?,
        Format::Gif => (gif::inspect(bytes)?, Extras::Gif),
        Format::Webp => webp::inspect(bytes).map(|(f, e)| (f, Extras::Webp(e)))?,
        // `sniff` never answers AVIF: it is a variant format only.
        Format::Avif => return Err(unsupported("the file is not a JPEG, PNG, GIF or WebP image")),
    };
    // The file itself is held while it is decoded, so it counts against the budget too.
    facts.decode_cost += bytes.len() as u64;
    facts.still_cost += bytes.len() as u64;
    let pixels = u64::from(facts.width) * u64::from(facts.height);
    if pixels > limits::MAX_PIXELS {
        return Err(too_many_pixels(facts.width, facts.height));
    }
    let shown = u64::from(facts.frames) * pixels;
    if facts.frames > 1 && shown > limits::MAX_ANIMATION_PIXELS {
        return Err(too_large(
            "too_many_pixels",
            format!(
                "the animation shows {} frames of {}x{} ({shown} pixels); the limit is {} pixels",
                facts.frames,
                facts.width,
                facts.height,
                limits::MAX_ANIMATION_PIXELS
            ),
        ));
    }
    if facts.decode_cost > limits::DECODE_BUDGET {
        return Err(too_large(
            "too_complex",
            format!(
                "making variants of this {}x{} image would take {} MiB of memory; the limit is {} MiB",
                facts.width,
                facts.height,
                facts.decode_cost >> 20,
                limits::DECODE_BUDGET >> 20
            ),
        ));
    }
    Ok(Inspected { facts, extras })
}

impl Inspected {
    /// The file with everything off the format's keep-list removed, without re-encoding: the
    /// pixel data is copied byte for byte. A JPEG that is not upright keeps its orientation as
    /// a minimal EXIF block holding only that tag. `bytes` must be the file inspected.
    pub fn strip(&self, bytes: &[u8], orientation: u16) -> Vec<u8> {
        match &self.extras {
            Extras::Jpeg(e) => jpeg::strip(bytes, e, orientation),
            Extras::Png(e) => png::strip(bytes, e),
            Extras::Gif => gif::strip(bytes),
            Extras::Webp(e) => webp::strip(bytes, e),
        }
    }
}

/// Checks by decoding what inspection cannot check in constant memory
/// ([`Facts::check_by_decoding`]): WebP bitstreams decode only as a whole, and the progressive
/// JPEG decoder fails on scans whose data does not end where it expects. Such a file is decoded
/// once here, within the decode budget, and refused as damaged when that fails; PNG, GIF and
/// sequential JPEG were checked to their last byte by [`inspect`] and pass untouched. `bytes` is
/// the stripped file that will be served.
pub fn verify_decodes(bytes: &[u8], facts: &Facts) -> Result<(), MediaError> {
    if !facts.check_by_decoding {
        return Ok(());
    }
    match decode::decode(bytes, limits::DECODE_BUDGET) {
        Ok(_) => Ok(()),
        Err(decode::DecodeError::Refused(e)) => Err(e),
        Err(e) => Err(damaged(&format!("the image data is corrupt ({e})"))),
    }
}

/// The most memory making the variants takes, given what the decode alone takes (`decode`): the
/// larger of its two phases, plus the fixed overhead.
/// - Decoding and the first resize: the decoded image, the horizontal pass (the large size's
///   width times the source height) and the large result, at 4 bytes a pixel.
/// - Encoding, once the full-size pixels are freed: the large result, its upright copy and the
///   encoders' buffers. libwebp's lossless coder, which WebP uses for an alpha plane, is the
///   largest of those ([`limits::WEBP_ALPHA_BYTES_PER_PIXEL`]); `alpha` says whether the file
///   can have transparency at all.
pub(crate) fn pipeline_cost(decode: u64, width: u32, height: u32, alpha: bool) -> u64 {
    let (tw, th) = variants::fit_inside(width, height, variants::Size::Large.long_edge());
    let first = decode + 4 * u64::from(tw) * u64::from(height) + 4 * u64::from(tw) * u64::from(th);
    let per_pixel = 8 + if alpha { limits::WEBP_ALPHA_BYTES_PER_PIXEL } else { 0 };
    let encode = per_pixel * u64::from(tw) * u64::from(th);
    first.max(encode) + limits::DECODE_OVERHEAD
}

/// The most memory the AVIF pass ([`variants::make_avif`]) takes for a file of `file_bytes`:
/// the larger of its two phases, as [`pipeline_cost`] counts them. Decoding and the first resize
/// are the first pass's (bounded by `still_cost`, which also counts WebP's encoders); encoding
/// holds the file, the large result and its upright copy and rav1e's planes
/// ([`limits::AVIF_BYTES_PER_PIXEL`]).
pub fn avif_cost(facts: &Facts, file_bytes: u64) -> u64 {
    let (tw, th) = variants::fit_inside(facts.width, facts.height, variants::Size::Large.long_edge());
    let encode = (8 + limits::AVIF_BYTES_PER_PIXEL) * u64::from(tw) * u64::from(th);
    facts.still_cost.max(file_bytes + encode + limits::DECODE_OVERHEAD)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    #[test]
    fn sniff_recognises_formats_by_magic_bytes_only() {
        let cases: &[(&[u8], Option<Format>)] = &[
            (b"\xFF\xD8\xFF\xE0rest", Some(Format::Jpeg)),
            (b"\x89PNG\r\n\x1a\nrest", Some(Format::Png)),
            (b"GIF89a....", Some(Format::Gif)),
            (b"GIF87a....", Some(Format::Gif)),
            (b"RIFF\x10\0\0\0WEBPVP8 ", Some(Format::Webp)),
            (b"RIFF\x10\0\0\0WAVEfmt ", None),
            (b"<svg xmlns=", None),
            (b"BM\0\0", None),
            (b"", None),
        ];
        for (bytes, want) in cases {
            assert_eq!(sniff(bytes), *want, "{bytes:?}");
        }
    }

    fn encode(img: image::DynamicImage, fmt: image::ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, fmt).unwrap();
        out.into_inner()
    }

    #[test]
    fn every_format_written_by_a_real_encoder_is_inspected_with_its_size() {
        // Given images of each format written by a real encoder,
        let img = image::RgbaImage::from_pixel(37, 21, image::Rgba([1, 2, 3, 128]));
        for (format, fmt) in [
            (Format::Png, image::ImageFormat::Png),
            (Format::Gif, image::ImageFormat::Gif),
            (Format::Webp, image::ImageFormat::WebP),
            (Format::Jpeg, image::ImageFormat::Jpeg),
        ] {
            let dynamic = image::DynamicImage::ImageRgba8(img.clone());
            let dynamic =
                if format == Format::Jpeg { image::DynamicImage::ImageRgb8(dynamic.to_rgb8()) } else { dynamic };
            let bytes = encode(dynamic, fmt);
            // then inspection reads the format and the size.
            let facts = inspect(&bytes).unwrap().facts;
            assert_eq!((facts.format, facts.width, facts.height, facts.frames), (format, 37, 21, 1), "{format:?}");
            assert!(facts.decode_cost > 37 * 21, "{format:?}");
        }
    }

    #[test]
    fn gif_frames_larger_than_the_screen_count_against_the_size() {
        // Given a GIF whose logical screen is 1x1 but whose one frame is 300x200,
        let mut gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff".to_vec();
        gif.extend_from_slice(&[0x2C, 0, 0, 0, 0, 0x2C, 0x01, 0xC8, 0x00, 0x00, 0x08]);
        // with data that fills it (clear, then a run of index 0 long enough),
        let mut lzw = weezl::encode::Encoder::new(weezl::BitOrder::Lsb, 8);
        let data = lzw.encode(&vec![0u8; 300 * 200]).unwrap();
        for block in data.chunks(255) {
            gif.push(block.len() as u8);
            gif.extend_from_slice(block);
        }
        gif.extend_from_slice(&[0, 0x3B]);
        // then its size is the frame's, not the screen's.
        let facts = inspect(&gif).unwrap().facts;
        assert_eq!((facts.width, facts.height), (300, 200));
    }

    #[test]
    fn the_pixel_limit_is_checked_from_the_header() {
        // Given a PNG header claiming 20000 x 20000 and nothing else,
        let mut png = png::SIGNATURE.to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&20_000u32.to_be_bytes());
        ihdr.extend_from_slice(&20_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(b"IHDR");
        png.extend_from_slice(&ihdr);
        png.extend_from_slice(&crc32fast::hash(&[b"IHDR".as_slice(), &ihdr].concat()).to_be_bytes());
        // then it is refused for its pixels before anything else is read.
        assert!(matches!(inspect(&png), Err(MediaError::TooLarge { code: "too_many_pixels", .. })));
    }

    #[test]
    fn a_whole_png_passes_and_a_truncated_one_does_not() {
        let png = encode(
            image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(16, 8, image::Rgb([1, 2, 3]))),
            image::ImageFormat::Png,
        );
        assert_eq!(inspect(&png).unwrap().facts.width, 16);
        assert!(inspect(&png[..png.len() - 5]).is_err());
    }

    #[test]
    fn a_truncated_jpeg_is_damaged() {
        let jpeg = encode(
            image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(64, 64, image::Rgb([200, 10, 10]))),
            image::ImageFormat::Jpeg,
        );
        inspect(&jpeg).unwrap();
        assert!(matches!(inspect(&jpeg[..jpeg.len() / 2]), Err(MediaError::Damaged(_))));
    }

    #[test]
    fn a_decode_over_the_budget_is_refused_at_inspection() {
        // Given small JPEGs whose frame headers are rewritten to 7000 x 7000 (49 megapixels),
        let small = image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8, y as u8, 9]));
        let cases = [
            // Baseline: 3 bytes a pixel of output, within the budget.
            (false, jpeg_encoder::SamplingFactor::F_2_2, true),
            // Progressive with full-resolution colour: 6 more bytes a pixel of coefficients.
            (true, jpeg_encoder::SamplingFactor::F_1_1, false),
        ];
        for (progressive, sampling, fits) in cases {
            let mut bytes = Vec::new();
            let mut encoder = jpeg_encoder::Encoder::new(&mut bytes, 80);
            encoder.set_progressive(progressive);
            encoder.set_sampling_factor(sampling);
            encoder.encode(small.as_raw(), 64, 64, jpeg_encoder::ColorType::Rgb).unwrap();
            let sof = bytes.windows(2).position(|w| w == [0xFF, if progressive { 0xC2 } else { 0xC0 }]).unwrap();
            bytes[sof + 5..sof + 9].copy_from_slice(&[0x1B, 0x58, 0x1B, 0x58]);
            // and whose first scan is padded to a bit a block, as a whole file of that size
            // would at least be (a shorter one is refused as cut short before any cost),
            let sos = bytes.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
            let data = sos + 2 + usize::from(u16::from_be_bytes([bytes[sos + 2], bytes[sos + 3]]));
            let next = data + bytes[data..].windows(2).position(|w| w[0] == 0xFF && w[1] != 0).unwrap();
            bytes.splice(next..next, std::iter::repeat_n(0u8, 7000 * 7000 / 64 / 8 + 1));
            // then the cost decides.
            match inspect(&bytes) {
                Ok(i) => assert!(fits && i.facts.decode_cost <= limits::DECODE_BUDGET, "{progressive}"),
                Err(MediaError::TooLarge { code, .. }) => assert!(!fits && code == "too_complex", "{progressive}"),
                Err(e) => panic!("{progressive}: {e}"),
            }
        }
    }
}
