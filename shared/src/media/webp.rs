//! WebP: one RIFF chunk walk behind inspection and stripping.
//!
//! Inspection reads the VP8 and VP8L bitstream headers and the extended format's frames and
//! checks that they agree with the canvas, as the `image-webp` decoder and browsers require.
//! Stripping rebuilds the file in the order the format specifies from the chunks on the
//! keep-list, with the VP8X flags set to what the file then holds.

use std::ops::Range;

use super::{Facts, Format, MediaError, damaged, limits, too_large, unsupported};

fn le24(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], 0])
}

/// One chunk: its FourCC and its payload's range in the file.
#[derive(Debug, Clone)]
pub(crate) struct Chunk {
    pub fourcc: [u8; 4],
    pub payload: Range<usize>,
}

/// Walks the chunks in `range` (the RIFF body, or an ANMF frame's data).
pub(crate) struct Chunks<'a> {
    b: &'a [u8],
    i: usize,
    end: usize,
}

impl<'a> Chunks<'a> {
    pub(crate) fn new(b: &'a [u8], range: Range<usize>) -> Self {
        Chunks { b, i: range.start, end: range.end }
    }
}

impl Iterator for Chunks<'_> {
    type Item = Result<Chunk, MediaError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.i >= self.end {
            return None;
        }
        let b = self.b;
        let Some(head) = b.get(self.i..self.i + 8).filter(|_| self.i + 8 <= self.end) else {
            self.i = self.end;
            return Some(Err(damaged("a WebP chunk header is cut short")));
        };
        let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let start = self.i + 8;
        if start + size > self.end {
            self.i = self.end;
            return Some(Err(damaged("a WebP chunk runs past the end of the file")));
        }
        let fourcc = [head[0], head[1], head[2], head[3]];
        // Chunks are padded to an even size; a missing pad byte at the very end is tolerated.
        self.i = (start + size + (size & 1)).min(self.end);
        Some(Ok(Chunk { fourcc, payload: start..start + size }))
    }
}

/// The end of the RIFF body: the declared size, which must fit the file. Bytes after it are
/// not part of the image.
fn riff_end(b: &[u8]) -> Result<usize, MediaError> {
    let riff = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    if riff < 4 || riff + 8 > b.len() {
        return Err(damaged("the WebP file is shorter than its header declares"));
    }
    Ok(riff + 8)
}

/// Reads a VP8 (lossy) key frame header and returns its size.
fn vp8_size(p: &[u8]) -> Result<(u32, u32), MediaError> {
    if p.len() < 10 {
        return Err(damaged("the WebP lossy frame header is cut short"));
    }
    let tag = le24(p, 0);
    if tag & 1 != 0 {
        return Err(damaged("the WebP lossy data does not start with a key frame"));
    }
    if (tag >> 1) & 7 > 3 {
        return Err(unsupported("the WebP lossy data has an unknown version"));
    }
    if (tag >> 5) as usize > p.len() - 10 {
        return Err(damaged("the WebP lossy frame is cut short"));
    }
    if p[3..6] != [0x9D, 0x01, 0x2A] {
        return Err(damaged("the WebP lossy frame has no start code"));
    }
    let w = u32::from(u16::from_le_bytes([p[6], p[7]]) & 0x3FFF);
    let h = u32::from(u16::from_le_bytes([p[8], p[9]]) & 0x3FFF);
    if w == 0 || h == 0 {
        return Err(damaged("the WebP lossy frame has no width or height"));
    }
    Ok((w, h))
}

/// Reads a VP8L (lossless) header and returns its size and whether it uses alpha.
fn vp8l_size(p: &[u8]) -> Result<(u32, u32, bool), MediaError> {
    if p.len() < 5 {
        return Err(damaged("the WebP lossless header is cut short"));
    }
    if p[0] != 0x2F {
        return Err(damaged("the WebP lossless data has no signature"));
    }
    let bits = u32::from_le_bytes([p[1], p[2], p[3], p[4]]);
    if bits >> 29 != 0 {
        return Err(unsupported("the WebP lossless data has an unknown version"));
    }
    Ok((1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF), (bits >> 28) & 1 == 1))
}

/// The image of a still or a frame: an optional ALPH chunk and a VP8 chunk, or a VP8L chunk.
#[derive(Debug, Clone, Default)]
pub(crate) struct Image {
    alpha: Option<Range<usize>>,
    bitstream: Option<Range<usize>>,
    lossless: bool,
    uses_alpha: bool,
}

/// Finds the image among `chunks` and checks that its size is `(w, h)`.
fn find_image(b: &[u8], chunks: Chunks<'_>, size: (u32, u32)) -> Result<Image, MediaError> {
    let mut image = Image::default();
    for chunk in chunks {
        let chunk = chunk?;
        let p = &b[chunk.payload.clone()];
        match &chunk.fourcc {
            b"ALPH" if image.alpha.is_none() && image.bitstream.is_none() => {
                if p.is_empty() || p[0] & 3 > 1 || (p[0] >> 4) & 3 > 1 {
                    return Err(damaged("the WebP alpha chunk has an unknown method"));
                }
                image.alpha = Some(chunk.payload);
            }
            b"VP8 " if image.bitstream.is_none() => {
                if vp8_size(p)? != size {
                    return Err(damaged("the WebP image size does not match its canvas"));
                }
                image.uses_alpha = image.alpha.is_some();
                image.bitstream = Some(chunk.payload);
            }
            b"VP8L" if image.bitstream.is_none() => {
                let (w, h, alpha) = vp8l_size(p)?;
                if (w, h) != size {
                    return Err(damaged("the WebP image size does not match its canvas"));
                }
                // A lossless image carries its own alpha; an ALPH chunk before it is ignored.
                image.alpha = None;
                image.lossless = true;
                image.uses_alpha = alpha;
                image.bitstream = Some(chunk.payload);
            }
            _ => {}
        }
    }
    if image.bitstream.is_none() {
        return Err(damaged("the WebP has no image data"));
    }
    Ok(image)
}

/// One frame of an animation.
struct Frame {
    header: Range<usize>,
    image: Image,
}

/// The layout inspection found, which stripping rebuilds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extras {
    extended: bool,
    canvas: (u32, u32),
    iccp: Option<Range<usize>>,
    anim: Option<Range<usize>>,
    still: Option<Image>,
}

fn parse_frame(b: &[u8], chunk: &Chunk, canvas: (u32, u32)) -> Result<Frame, MediaError> {
    let p = &b[chunk.payload.clone()];
    if p.len() < 24 {
        return Err(damaged("a WebP animation frame is cut short"));
    }
    let (x, y) = (2 * le24(p, 0), 2 * le24(p, 3));
    let (w, h) = (1 + le24(p, 6), 1 + le24(p, 9));
    if x + w > canvas.0 || y + h > canvas.1 {
        return Err(damaged("a WebP animation frame lies outside its canvas"));
    }
    let frame_data = chunk.payload.start + 16..chunk.payload.end;
    let image = find_image(b, Chunks::new(b, frame_data), (w, h))?;
    Ok(Frame { header: chunk.payload.start..chunk.payload.start + 16, image })
}

/// The checks of [`super::inspect`] for a WebP.
pub(crate) fn inspect(b: &[u8]) -> Result<(Facts, Extras), MediaError> {
    let end = riff_end(b)?;
    let mut chunks = Chunks::new(b, 12..end);
    let first =
        chunks.next().transpose()?.ok_or_else(|| MediaError::Unreadable("the WebP has no image header".into()))?;
    let p = &b[first.payload.clone()];
    // Only a plain lossy bitstream has no alpha; the others may.
    let facts = |w: u32, h: u32, frames: u32, frame_pixels: u64, per_pixel: u64| {
        Facts {
            format: Format::Webp,
            width: w,
            height: h,
            frames,
            frame_pixels,
            still_cost: super::pipeline_cost(u64::from(w) * u64::from(h) * per_pixel, w, h, &first.fourcc != b"VP8 "),
            decode_cost: 0,
            check_by_decoding: true,
        }
        .costed()
    };
    // The decoder's working set per pixel, with room to spare: lossy frames keep YUV planes
    // beside the RGB(A) output, lossless ones decode into their 4-byte output (measured: 4.1
    // bytes a pixel at 20 megapixels), and an animation's first frame is composited onto an
    // RGBA canvas beside the frame itself.
    const LOSSY: u64 = 6;
    const LOSSLESS: u64 = 5;
    const ANIMATED: u64 = 10;
    match &first.fourcc {
        b"VP8 " => {
            let (w, h) = vp8_size(p)?;
            check_pixels(w, h)?;
            let still = Image { bitstream: Some(first.payload), ..Image::default() };
            Ok((
                facts(w, h, 1, u64::from(w) * u64::from(h), LOSSY),
                Extras { still: Some(still), canvas: (w, h), ..Extras::default() },
            ))
        }
        b"VP8L" => {
            let (w, h, alpha) = vp8l_size(p)?;
            check_pixels(w, h)?;
            let still = Image { bitstream: Some(first.payload), lossless: true, uses_alpha: alpha, alpha: None };
            Ok((
                facts(w, h, 1, u64::from(w) * u64::from(h), LOSSLESS),
                Extras { still: Some(still), canvas: (w, h), ..Extras::default() },
            ))
        }
        b"VP8X" => {
            if p.len() < 10 {
                return Err(MediaError::Unreadable("the WebP extended header is cut short".into()));
            }
            let canvas = (1 + le24(p, 4), 1 + le24(p, 7));
            check_pixels(canvas.0, canvas.1)?;
            let animated = p[0] & 0x02 != 0;
            let mut extras = Extras { extended: true, canvas, ..Extras::default() };
            let body = first.payload.end + (first.payload.len() & 1);
            let mut frames = 0u32;
            let mut frame_pixels = 0u64;
            for chunk in Chunks::new(b, body.min(end)..end) {
                let chunk = chunk?;
                match &chunk.fourcc {
                    b"ICCP" if extras.iccp.is_none() && chunk.payload.len() <= limits::MAX_ICC_BYTES => {
                        extras.iccp = Some(chunk.payload);
                    }
                    b"ANIM" if animated && extras.anim.is_none() && chunk.payload.len() >= 6 => {
                        extras.anim = Some(chunk.payload);
                    }
                    b"ANMF" if animated => {
                        if extras.anim.is_none() {
                            return Err(damaged("a WebP animation frame comes before the animation header"));
                        }
                        let frame = parse_frame(b, &chunk, canvas)?;
                        frames += 1;
                        if frames > limits::MAX_FRAMES {
                            return Err(too_large(
                                "too_many_frames",
                                format!("the animation has more than {} frames", limits::MAX_FRAMES),
                            ));
                        }
                        let fp = &b[frame.header.clone()];
                        frame_pixels += u64::from(1 + le24(fp, 6)) * u64::from(1 + le24(fp, 9));
                        if frame_pixels > limits::MAX_ANIMATION_PIXELS {
                            return Err(super::png::too_many_animation_pixels());
                        }
                    }
                    _ => {}
                }
            }
            if animated {
                if frames == 0 {
                    return Err(damaged("the animated WebP has no frames"));
                }
                return Ok((facts(canvas.0, canvas.1, frames, frame_pixels, ANIMATED), extras));
            }
            let still = find_image(b, Chunks::new(b, body.min(end)..end), canvas)?;
            let per_pixel = if still.lossless { LOSSLESS } else { LOSSY };
            extras.still = Some(still);
            Ok((facts(canvas.0, canvas.1, 1, u64::from(canvas.0) * u64::from(canvas.1), per_pixel), extras))
        }
        _ => Err(MediaError::Unreadable("the WebP has no image header".into())),
    }
}

fn check_pixels(w: u32, h: u32) -> Result<(), MediaError> {
    if u64::from(w) * u64::from(h) > limits::MAX_PIXELS { Err(super::too_many_pixels(w, h)) } else { Ok(()) }
}

/// Appends a chunk with its header and padding.
fn push_chunk(out: &mut Vec<u8>, fourcc: &[u8; 4], payload: &[u8]) {
    out.extend_from_slice(fourcc);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    if payload.len() % 2 == 1 {
        out.push(0);
    }
}

fn push_image(out: &mut Vec<u8>, b: &[u8], image: &Image) {
    if let Some(alpha) = &image.alpha {
        push_chunk(out, b"ALPH", &b[alpha.clone()]);
    }
    if let Some(bitstream) = &image.bitstream {
        push_chunk(out, if image.lossless { b"VP8L" } else { b"VP8 " }, &b[bitstream.clone()]);
    }
}

/// The keep-list: VP8, VP8L, VP8X, ALPH, ANIM, ANMF (each frame rebuilt from its header and its
/// ALPH, VP8 or VP8L chunks) and ICCP, in the order the format specifies. EXIF, XMP, unknown
/// chunks inside or outside frames, and bytes after the RIFF body go. The VP8X flags are rebuilt:
/// ICC when a profile is kept, alpha when an image uses it, animation as inspected, and no EXIF
/// or XMP.
///
/// Expects input that [`inspect`] accepted, with its [`Extras`].
pub(crate) fn strip(b: &[u8], extras: &Extras) -> Vec<u8> {
    let mut out = b"RIFF\0\0\0\0WEBP".to_vec();
    if !extras.extended {
        if let Some(still) = &extras.still {
            push_image(&mut out, b, still);
        }
    } else {
        let Ok(end) = riff_end(b) else { return b.to_vec() };
        let animated = extras.anim.is_some();
        let mut frames = Vec::new();
        let mut uses_alpha = extras.still.as_ref().is_some_and(|s| s.uses_alpha);
        if animated {
            let first = Chunks::new(b, 12..end).next().and_then(Result::ok);
            let body = first.map_or(end, |c| c.payload.end + (c.payload.len() & 1)).min(end);
            for chunk in Chunks::new(b, body..end).flatten() {
                if &chunk.fourcc == b"ANMF"
                    && let Ok(frame) = parse_frame(b, &chunk, extras.canvas)
                {
                    uses_alpha |= frame.image.uses_alpha;
                    frames.push(frame);
                }
            }
        }
        let flags = (if extras.iccp.is_some() { 0x20 } else { 0 })
            | (if uses_alpha { 0x10 } else { 0 })
            | (if animated { 0x02 } else { 0 });
        let mut vp8x = vec![flags, 0, 0, 0];
        vp8x.extend_from_slice(&(extras.canvas.0 - 1).to_le_bytes()[..3]);
        vp8x.extend_from_slice(&(extras.canvas.1 - 1).to_le_bytes()[..3]);
        push_chunk(&mut out, b"VP8X", &vp8x);
        if let Some(iccp) = &extras.iccp {
            push_chunk(&mut out, b"ICCP", &b[iccp.clone()]);
        }
        if let Some(anim) = &extras.anim {
            push_chunk(&mut out, b"ANIM", &b[anim.start..anim.start + 6]);
            for frame in &frames {
                let mut payload = b[frame.header.clone()].to_vec();
                push_image(&mut payload, b, &frame.image);
                push_chunk(&mut out, b"ANMF", &payload);
            }
        } else if let Some(still) = &extras.still {
            push_image(&mut out, b, still);
        }
    }
    let riff = u32::try_from(out.len() - 8).unwrap_or(u32::MAX);
    out[4..8].copy_from_slice(&riff.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lossless(w: u32, h: u32) -> Vec<u8> {
        let img =
            image::RgbaImage::from_fn(w, h, |x, y| image::Rgba([x as u8, y as u8, 7, if x == 0 { 0 } else { 255 }]));
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgba8(img).write_to(&mut out, image::ImageFormat::WebP).unwrap();
        out.into_inner()
    }

    /// Wraps a simple file's image chunk in the extended format with metadata around it.
    fn extended_with_metadata(simple: &[u8], w: u32, h: u32) -> Vec<u8> {
        let image = Chunks::new(simple, 12..simple.len()).next().unwrap().unwrap();
        let mut out = b"RIFF\0\0\0\0WEBP".to_vec();
        // Flags claim EXIF and XMP, and a reserved bit.
        let mut vp8x = vec![0x0C | 0x80, 0, 0, 0];
        vp8x.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
        vp8x.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
        push_chunk(&mut out, b"VP8X", &vp8x);
        push_chunk(&mut out, b"exif", b"secret-1");
        push_chunk(&mut out, b"VP8L", &simple[image.payload]);
        push_chunk(&mut out, b"EXIF", b"MM\0*secret-2");
        push_chunk(&mut out, b"XMP ", b"<x:xmpmeta>secret-3</x:xmpmeta>");
        let riff = (out.len() - 8) as u32;
        out[4..8].copy_from_slice(&riff.to_le_bytes());
        out.extend_from_slice(b"secret-4");
        out
    }

    #[test]
    fn metadata_goes_flags_are_rebuilt_and_pixels_stay() {
        // Given an extended WebP with EXIF, XMP, an unknown chunk and trailing bytes,
        let simple = lossless(9, 7);
        let b = extended_with_metadata(&simple, 9, 7);
        // when it is stripped,
        let (facts, extras) = inspect(&b).unwrap();
        assert_eq!((facts.width, facts.height), (9, 7));
        let out = strip(&b, &extras);
        // then no secret remains, the flags say alpha only, and the pixels are the same.
        assert!(!out.windows(6).any(|w| w == b"secret"));
        let first = Chunks::new(&out, 12..out.len()).next().unwrap().unwrap();
        assert_eq!(&first.fourcc, b"VP8X");
        assert_eq!(out[first.payload.start], 0x10);
        let want = image::load_from_memory(&simple).unwrap().to_rgba8();
        assert_eq!(image::load_from_memory(&out).unwrap().to_rgba8(), want);
        assert_eq!(strip(&out, &inspect(&out).unwrap().1), out, "stripping is idempotent");
    }

    #[test]
    fn sizes_must_agree_with_the_canvas() {
        let simple = lossless(9, 7);
        let b = extended_with_metadata(&simple, 10, 7);
        assert!(matches!(inspect(&b), Err(MediaError::Damaged(m)) if m.contains("canvas")));
    }
}
