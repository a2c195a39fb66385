//! PNG (and APNG): one chunk walk behind inspection and stripping.
//!
//! Inspection checks what the `png` decoder and browsers need: a valid header, a palette where
//! one is required, and image data that inflates to exactly the rows the header promises, with
//! a valid filter byte on every row. The data is inflated in constant memory (a 32 KiB window and
//! a 32 KiB buffer), never kept, and never past the size the header promises, so a
//! decompression bomb costs at most the time to inflate the largest accepted image.

use std::ops::Range;

use miniz_oxide::inflate::stream::{InflateState, inflate};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

use super::{Facts, Format, MediaError, damaged, limits, too_large};

pub(crate) const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// One chunk, as byte ranges of the file.
#[derive(Debug, Clone)]
pub(crate) struct Chunk {
    pub kind: [u8; 4],
    /// From the length field to the end of the CRC.
    pub whole: Range<usize>,
    pub data: Range<usize>,
}

impl Chunk {
    fn crc_ok(&self, b: &[u8]) -> bool {
        let stored = &b[self.data.end..self.whole.end];
        crc32fast::hash(&b[self.whole.start + 4..self.data.end]).to_be_bytes() == stored
    }
}

/// Walks the chunks after the signature, up to and including IEND; bytes after IEND are never
/// visited.
pub(crate) struct Chunks<'a> {
    b: &'a [u8],
    i: usize,
    done: bool,
}

impl<'a> Chunks<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Chunks { b, i: SIGNATURE.len(), done: false }
    }
}

impl Iterator for Chunks<'_> {
    type Item = Result<Chunk, MediaError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let b = self.b;
        let i = self.i;
        let Some(len) = b.get(i..i + 8).map(|h| u32::from_be_bytes([h[0], h[1], h[2], h[3]])) else {
            self.done = true;
            return Some(Err(damaged("the PNG ends before its IEND chunk")));
        };
        let end = (len <= 0x7FFF_FFFF).then(|| i + 12 + len as usize).filter(|&e| e <= b.len());
        let Some(end) = end else {
            self.done = true;
            return Some(Err(damaged("a PNG chunk runs past the end of the file")));
        };
        let kind = [b[i + 4], b[i + 5], b[i + 6], b[i + 7]];
        self.i = end;
        if &kind == b"IEND" {
            self.done = true;
        }
        Some(Ok(Chunk { kind, whole: i..end, data: i + 8..end - 4 }))
    }
}

/// The image header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub width: u32,
    pub height: u32,
    pub bit_depth: u8,
    pub color_type: u8,
    pub interlaced: bool,
}

impl Header {
    fn parse(data: &[u8]) -> Result<Header, MediaError> {
        if data.len() != 13 {
            return Err(MediaError::Unreadable("the PNG header chunk has the wrong length".into()));
        }
        let be32 = |at: usize| u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        let (width, height, bit_depth, color_type) = (be32(0), be32(4), data[8], data[9]);
        if width == 0 || height == 0 || width > 0x7FFF_FFFF || height > 0x7FFF_FFFF {
            return Err(MediaError::Unreadable("the PNG has an invalid width or height".into()));
        }
        let depth_ok = match color_type {
            0 => matches!(bit_depth, 1 | 2 | 4 | 8 | 16),
            3 => matches!(bit_depth, 1 | 2 | 4 | 8),
            2 | 4 | 6 => matches!(bit_depth, 8 | 16),
            _ => return Err(damaged(&format!("the PNG colour type {color_type} does not exist"))),
        };
        if !depth_ok {
            return Err(damaged(&format!("a PNG of colour type {color_type} cannot have {bit_depth}-bit samples")));
        }
        if data[10] != 0 || data[11] != 0 {
            return Err(damaged("the PNG names an unknown compression or filter method"));
        }
        if data[12] > 1 {
            return Err(damaged("the PNG names an unknown interlace method"));
        }
        Ok(Header { width, height, bit_depth, color_type, interlaced: data[12] == 1 })
    }

    fn channels(&self) -> u64 {
        match self.color_type {
            0 | 3 => 1,
            4 => 2,
            2 => 3,
            _ => 4,
        }
    }

    /// Bytes of one row of `w` pixels, without its filter byte.
    fn row_bytes(&self, w: u64) -> u64 {
        (w * self.channels() * u64::from(self.bit_depth)).div_ceil(8)
    }
}

/// The rows of one image (the default image or an animation frame) in the order they are
/// stored: each row's length in bytes, filter byte included. Adam7 stores seven passes of
/// smaller images; a pass with no pixels has no rows.
struct Rows {
    header: Header,
    width: u64,
    height: u64,
    pass: usize,
    row: u64,
}

const ADAM7: [(u64, u64, u64, u64); 7] =
    [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];

impl Rows {
    fn new(header: Header, width: u32, height: u32) -> Self {
        Rows { header, width: u64::from(width), height: u64::from(height), pass: 0, row: 0 }
    }

    /// Width and height of the current pass (the whole image when not interlaced).
    fn pass_size(&self) -> (u64, u64) {
        if !self.header.interlaced {
            return (self.width, self.height);
        }
        let (x0, y0, dx, dy) = ADAM7[self.pass];
        let span = |total: u64, start: u64, step: u64| if total > start { (total - start).div_ceil(step) } else { 0 };
        (span(self.width, x0, dx), span(self.height, y0, dy))
    }

    fn total(mut self) -> u64 {
        let mut sum = 0;
        for n in self.by_ref() {
            sum += n;
        }
        sum
    }
}

impl Iterator for Rows {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        let passes = if self.header.interlaced { 7 } else { 1 };
        while self.pass < passes {
            let (w, h) = self.pass_size();
            if w > 0 && self.row < h {
                self.row += 1;
                return Some(1 + self.header.row_bytes(w));
            }
            self.pass += 1;
            self.row = 0;
        }
        None
    }
}

/// Inflates one zlib stream fed in pieces, checking that it holds at least the bytes its rows
/// need and that every row starts with a filter type the format defines (0 to 4). Stops
/// inflating once the rows are complete: what follows is never decoded by anyone.
struct StreamCheck {
    state: Box<InflateState>,
    rows: Rows,
    expected: u64,
    produced: u64,
    next_filter: u64,
    next_row_len: Option<u64>,
    ended: bool,
}

impl StreamCheck {
    fn new(header: Header, width: u32, height: u32) -> Self {
        let expected = Rows::new(header, width, height).total();
        let mut rows = Rows::new(header, width, height);
        let next_row_len = rows.next();
        StreamCheck {
            state: InflateState::new_boxed(DataFormat::Zlib),
            rows,
            expected,
            produced: 0,
            next_filter: 0,
            next_row_len,
            ended: false,
        }
    }

    fn complete(&self) -> bool {
        self.produced >= self.expected
    }

    fn feed(&mut self, mut input: &[u8], out: &mut [u8]) -> Result<(), MediaError> {
        while !self.complete() && !self.ended {
            let r = inflate(&mut self.state, input, out, MZFlush::None);
            input = &input[r.bytes_consumed..];
            self.check_filters(&out[..r.bytes_written])?;
            self.produced += r.bytes_written as u64;
            match r.status {
                Ok(MZStatus::StreamEnd) => self.ended = true,
                Ok(_) => {}
                // No progress possible: more input is needed.
                Err(MZError::Buf) => return Ok(()),
                Err(_) => return Err(damaged("the PNG image data is corrupt")),
            }
            if input.is_empty() && r.bytes_written < out.len() {
                return Ok(());
            }
        }
        Ok(())
    }

    fn check_filters(&mut self, chunk: &[u8]) -> Result<(), MediaError> {
        let end = self.produced + chunk.len() as u64;
        while let Some(len) = self.next_row_len {
            if self.next_filter >= end {
                break;
            }
            if chunk[(self.next_filter - self.produced) as usize] > 4 {
                return Err(damaged("a PNG row has an unknown filter type"));
            }
            self.next_filter += len;
            self.next_row_len = self.rows.next();
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), MediaError> {
        if self.complete() { Ok(()) } else { Err(damaged("the PNG image data is incomplete")) }
    }
}

/// The colour chunks that may precede the palette and the image data.
const COLOUR_CHUNKS: [&[u8; 4]; 5] = [b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"cICP"];

/// What the walk decided about the file, which stripping needs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Extras {
    /// The animation chunks form a valid APNG; otherwise they are dropped and the default image
    /// is shown as a still, as browsers do with a broken animation.
    pub animated: bool,
}

/// Where the walk is, for the ordering rules of kept chunks.
#[derive(Default)]
struct Position {
    palette: bool,
    idat: bool,
    /// Colour chunks, `tRNS` and `acTL` already kept (bit per name), so duplicates go.
    seen: u8,
}

fn bit(kind: &[u8; 4]) -> u8 {
    match kind {
        b"gAMA" => 1,
        b"cHRM" => 2,
        b"sRGB" => 4,
        b"iCCP" => 8,
        b"cICP" => 16,
        b"tRNS" => 32,
        b"acTL" => 64,
        _ => 0,
    }
}

/// Whether an ancillary colour or transparency chunk is valid where it stands; invalid ones are
/// dropped (decoders ignore them too).
fn ancillary_ok(header: &Header, pos: &Position, kind: &[u8; 4], data: &[u8]) -> bool {
    if pos.idat || pos.seen & bit(kind) != 0 {
        return false;
    }
    match kind {
        b"tRNS" => match header.color_type {
            0 => data.len() == 2,
            2 => data.len() == 6,
            3 => pos.palette && (1..=256).contains(&data.len()),
            _ => false,
        },
        b"gAMA" => !pos.palette && data.len() == 4 && data != [0, 0, 0, 0],
        b"cHRM" => !pos.palette && data.len() == 32,
        b"sRGB" => !pos.palette && data.len() == 1 && data[0] <= 3,
        b"cICP" => !pos.palette && data.len() == 4,
        b"iCCP" => !pos.palette && iccp_profile(data).is_some(),
        b"acTL" => data.len() == 8,
        _ => false,
    }
}

/// The compressed profile of an iCCP chunk: a 1 to 79 byte name, a NUL, method 0, then zlib.
fn iccp_profile(data: &[u8]) -> Option<&[u8]> {
    let nul = data.iter().take(80).position(|&c| c == 0).filter(|&n| n >= 1)?;
    (data.get(nul + 1) == Some(&0)).then(|| &data[nul + 2..])
}

/// Whether a compressed ICC profile inflates to at most [`limits::MAX_ICC_BYTES`].
fn icc_size_ok(compressed: &[u8], out: &mut [u8]) -> bool {
    let mut state = InflateState::new_boxed(DataFormat::Zlib);
    let mut input = compressed;
    let mut total = 0usize;
    loop {
        let r = inflate(&mut state, input, out, MZFlush::None);
        input = &input[r.bytes_consumed..];
        total += r.bytes_written;
        if total > limits::MAX_ICC_BYTES {
            return false;
        }
        match r.status {
            Ok(MZStatus::StreamEnd) => return true,
            Ok(_) if r.bytes_written > 0 || r.bytes_consumed > 0 => {}
            _ => return false,
        }
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Frame control: sequence, size and offset, with the dispose and blend operations checked.
struct FrameControl {
    sequence: u32,
    width: u32,
    height: u32,
    x: u32,
    y: u32,
}

fn parse_fctl(data: &[u8], header: &Header) -> Option<FrameControl> {
    if data.len() != 26 || data[24] > 2 || data[25] > 1 {
        return None;
    }
    let f = FrameControl {
        sequence: be32(data, 0),
        width: be32(data, 4),
        height: be32(data, 8),
        x: be32(data, 12),
        y: be32(data, 16),
    };
    let fits = |offset: u32, size: u32, total: u32| u64::from(offset) + u64::from(size) <= u64::from(total);
    (f.width > 0 && f.height > 0 && fits(f.x, f.width, header.width) && fits(f.y, f.height, header.height)).then_some(f)
}

/// The state of the APNG checks: valid so far, and where the sequence stands.
struct Animation {
    valid: bool,
    declared: u32,
    frames: u32,
    /// Frames whose fcTL came after the image data.
    after_idat: u32,
    next_sequence: u32,
    pixels: u64,
    /// The frame whose fdAT chunks are being read, with its stream.
    current: Option<StreamCheck>,
    /// The default image is the first frame (its fcTL came before IDAT).
    default_is_frame: bool,
}

/// The checks of [`super::inspect`] for a PNG, and what stripping needs to know.
pub(crate) fn inspect(b: &[u8]) -> Result<(Facts, Extras), MediaError> {
    let mut chunks = Chunks::new(b);
    let first = chunks.next().transpose()?.filter(|c| &c.kind == b"IHDR");
    let first = first.ok_or_else(|| MediaError::Unreadable("the PNG does not start with its IHDR chunk".into()))?;
    let header = Header::parse(&b[first.data.clone()])?;
    if !first.crc_ok(b) {
        return Err(damaged("a PNG chunk checksum does not match"));
    }
    let pixels = u64::from(header.width) * u64::from(header.height);
    if pixels > limits::MAX_PIXELS {
        // Said before the data is inflated: the limit is the first thing a client needs to hear.
        return Err(super::too_many_pixels(header.width, header.height));
    }
    let mut out = vec![0u8; 32 * 1024];
    let mut pos = Position::default();
    let mut image = StreamCheck::new(header, header.width, header.height);
    let mut anim: Option<Animation> = None;
    for chunk in chunks {
        let chunk = chunk?;
        let data = &b[chunk.data.clone()];
        let kind = &chunk.kind;
        // Checksums matter for what is kept: a critical chunk that fails it is damage, a kept
        // ancillary one that fails it is dropped like any other invalid chunk.
        let critical = matches!(kind, b"IHDR" | b"PLTE" | b"IDAT" | b"IEND");
        if critical && !chunk.crc_ok(b) {
            return Err(damaged("a PNG chunk checksum does not match"));
        }
        match kind {
            b"IHDR" => return Err(damaged("the PNG has a second header chunk")),
            b"PLTE" => {
                let valid =
                    !pos.palette && !pos.idat && data.len().is_multiple_of(3) && (3..=768).contains(&data.len());
                if header.color_type == 3 && !valid && !pos.palette {
                    return Err(damaged("the PNG palette is invalid"));
                }
                pos.palette |= valid;
            }
            b"IDAT" => {
                if header.color_type == 3 && !pos.palette {
                    return Err(damaged("the PNG needs a palette before its image data"));
                }
                // Image data after the animation's own frames began breaks the animation.
                if let Some(a) = anim.as_mut().filter(|a| a.current.is_some() || a.after_idat > 0) {
                    a.valid = false;
                }
                pos.idat = true;
                image.feed(data, &mut out)?;
            }
            b"IEND" => {
                if !pos.idat {
                    return Err(damaged("the PNG has no image data"));
                }
                image.finish()?;
                let (mut frames, mut frame_pixels, mut animated) = (1, pixels, false);
                if let Some(mut a) = anim {
                    finish_frame(&mut a);
                    if a.valid && a.frames == a.declared {
                        animated = true;
                        frames = a.frames;
                        frame_pixels = a.pixels + if a.default_is_frame { 0 } else { pixels };
                    }
                }
                let facts = Facts {
                    format: Format::Png,
                    width: header.width,
                    height: header.height,
                    frames,
                    frame_pixels,
                    still_cost: decode_cost(&header, pos.seen & bit(b"tRNS") != 0),
                    decode_cost: 0,
                    check_by_decoding: false,
                };
                return Ok((facts.costed(), Extras { animated }));
            }
            b"acTL" => {
                if ancillary_ok(&header, &pos, kind, data) && data.len() == 8 && chunk.crc_ok(b) {
                    let declared = be32(data, 0);
                    if declared > limits::MAX_FRAMES {
                        return Err(too_many_frames(declared));
                    }
                    pos.seen |= bit(kind);
                    anim = Some(Animation {
                        valid: declared >= 1,
                        declared,
                        frames: 0,
                        after_idat: 0,
                        next_sequence: 0,
                        pixels: 0,
                        current: None,
                        default_is_frame: false,
                    });
                }
            }
            b"fcTL" => {
                let Some(a) = anim.as_mut().filter(|a| a.valid) else { continue };
                finish_frame(a);
                let fctl = parse_fctl(data, &header).filter(|f| f.sequence == a.next_sequence && chunk.crc_ok(b));
                let Some(fctl) = fctl else {
                    a.valid = false;
                    continue;
                };
                a.next_sequence += 1;
                a.frames += 1;
                if a.frames > limits::MAX_FRAMES {
                    return Err(too_many_frames(a.frames));
                }
                a.pixels += u64::from(fctl.width) * u64::from(fctl.height);
                if a.pixels > limits::MAX_ANIMATION_PIXELS {
                    return Err(too_many_animation_pixels());
                }
                if pos.idat {
                    a.after_idat += 1;
                    a.current = Some(StreamCheck::new(header, fctl.width, fctl.height));
                } else {
                    // The default image is the first frame: it must cover the whole canvas.
                    let whole = (fctl.width, fctl.height, fctl.x, fctl.y) == (header.width, header.height, 0, 0);
                    a.valid &= a.frames == 1 && whole;
                    a.default_is_frame = true;
                }
            }
            b"fdAT" => {
                let Some(a) = anim.as_mut().filter(|a| a.valid) else { continue };
                let sequence_ok = data.len() > 4 && be32(data, 0) == a.next_sequence && chunk.crc_ok(b);
                match a.current.as_mut() {
                    Some(stream) if sequence_ok => {
                        a.next_sequence += 1;
                        if stream.feed(&data[4..], &mut out).is_err() {
                            a.valid = false;
                        }
                    }
                    _ => a.valid = false,
                }
            }
            _ => {
                if ancillary_ok(&header, &pos, kind, data) && chunk.crc_ok(b) {
                    let icc_ok = kind != b"iCCP" || iccp_profile(data).is_some_and(|p| icc_size_ok(p, &mut out));
                    if icc_ok {
                        pos.seen |= bit(kind);
                    }
                }
            }
        }
    }
    Err(damaged("the PNG ends before its IEND chunk"))
}

/// Ends the frame being read: its data must have been complete.
fn finish_frame(a: &mut Animation) {
    if let Some(stream) = a.current.take()
        && stream.finish().is_err()
    {
        a.valid = false;
    }
}

fn too_many_frames(frames: u32) -> MediaError {
    too_large("too_many_frames", format!("the animation has {frames} frames; the limit is {}", limits::MAX_FRAMES))
}

pub(crate) fn too_many_animation_pixels() -> MediaError {
    too_large(
        "too_many_pixels",
        format!("the animation's frames hold more than {} pixels in all", limits::MAX_ANIMATION_PIXELS),
    )
}

/// The most memory decoding the image and making its variants may take, in bytes. The decoder
/// writes 8 bits a sample (16-bit samples are reduced, palettes and low bit depths expanded) and
/// keeps two rows at the stored depth; grey images are widened to colour for resizing.
fn decode_cost(header: &Header, trns: bool) -> u64 {
    let pixels = u64::from(header.width) * u64::from(header.height);
    let decoded = match (header.color_type, trns) {
        (0, false) => 1 + 3,
        (0, true) | (4, _) => 2 + 4,
        (2, false) | (3, false) => 3,
        _ => 4,
    };
    let rows = 2 * header.row_bytes(u64::from(header.width));
    let alpha = trns || matches!(header.color_type, 4 | 6);
    super::pipeline_cost(pixels * decoded + rows, header.width, header.height, alpha)
}

/// Writes a chunk with its length and checksum.
fn push_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let crc_start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[crc_start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// The keep-list: IHDR, PLTE, tRNS, IDAT and IEND; the colour chunks gAMA, cHRM, sRGB, iCCP
/// (its profile name replaced by a neutral one, since the name is free text) and cICP where they
/// are valid; and acTL, fcTL and fdAT when they form a valid animation. Every other chunk goes,
/// whatever its spelling, and so does anything after IEND.
///
/// Expects input that [`inspect`] accepted, with its [`Extras`].
pub(crate) fn strip(b: &[u8], extras: &Extras) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(SIGNATURE);
    let mut chunks = Chunks::new(b);
    let Some(Ok(first)) = chunks.next() else { return out };
    let Ok(header) = Header::parse(&b[first.data.clone()]) else { return out };
    out.extend_from_slice(&b[first.whole]);
    let mut pos = Position::default();
    let mut icc_buffer = vec![0u8; 32 * 1024];
    for chunk in chunks {
        let Ok(chunk) = chunk else { break };
        let data = &b[chunk.data.clone()];
        let kind = &chunk.kind;
        let keep = match kind {
            b"PLTE" => {
                let keep = !pos.palette
                    && !pos.idat
                    && matches!(header.color_type, 2 | 3 | 6)
                    && data.len().is_multiple_of(3)
                    && (3..=768).contains(&data.len());
                pos.palette |= keep;
                keep
            }
            b"IDAT" | b"IEND" => true,
            b"acTL" => {
                let keep =
                    extras.animated && ancillary_ok(&header, &pos, kind, data) && data.len() == 8 && chunk.crc_ok(b);
                if keep {
                    pos.seen |= bit(kind);
                }
                keep
            }
            b"fcTL" | b"fdAT" => extras.animated,
            b"iCCP" => {
                let profile = (ancillary_ok(&header, &pos, kind, data) && chunk.crc_ok(b))
                    .then(|| iccp_profile(data))
                    .flatten()
                    .filter(|p| icc_size_ok(p, &mut icc_buffer));
                if let Some(profile) = profile {
                    let mut rebuilt = b"ICC profile\0\0".to_vec();
                    rebuilt.extend_from_slice(profile);
                    push_chunk(&mut out, b"iCCP", &rebuilt);
                    pos.seen |= bit(kind);
                }
                false
            }
            _ => {
                let keep = (COLOUR_CHUNKS.contains(&kind) || kind == b"tRNS")
                    && ancillary_ok(&header, &pos, kind, data)
                    && chunk.crc_ok(b);
                if keep {
                    pos.seen |= bit(kind);
                }
                keep
            }
        };
        if keep {
            out.extend_from_slice(&b[chunk.whole.clone()]);
        }
        pos.idat |= kind == b"IDAT";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(img: image::DynamicImage) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn rgb(w: u32, h: u32) -> Vec<u8> {
        png(image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([x as u8, y as u8, (x ^ y) as u8])
        })))
    }

    /// The PNG with its IHDR fields replaced (and the checksum fixed).
    fn with_ihdr(b: &[u8], depth: u8, colour: u8) -> Vec<u8> {
        let mut b = b.to_vec();
        b[24] = depth;
        b[25] = colour;
        let crc = crc32fast::hash(&b[12..29]);
        b[29..33].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn colour_type_and_bit_depth_pairs_follow_the_specification() {
        let base = rgb(8, 8);
        let valid: &[(u8, &[u8])] =
            &[(0, &[1, 2, 4, 8, 16]), (2, &[8, 16]), (3, &[1, 2, 4, 8]), (4, &[8, 16]), (6, &[8, 16])];
        for colour in 0..=8u8 {
            for depth in [0u8, 1, 2, 3, 4, 5, 8, 12, 16, 32] {
                let ok = valid.iter().any(|(c, ds)| *c == colour && ds.contains(&depth));
                let got = Header::parse(&with_ihdr(&base, depth, colour)[16..29]);
                assert_eq!(got.is_ok(), ok, "colour type {colour}, depth {depth}: {got:?}");
            }
        }
    }

    #[test]
    fn image_data_must_inflate_to_every_row() {
        // Given a whole PNG, then it passes;
        let base = rgb(40, 30);
        inspect(&base).unwrap();
        // given the same header claiming twice the height (checksum fixed), then the data is
        // incomplete;
        let mut taller = base.clone();
        taller[20..24].copy_from_slice(&60u32.to_be_bytes());
        let crc = crc32fast::hash(&taller[12..29]);
        taller[29..33].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(inspect(&taller), Err(MediaError::Damaged(m)) if m.contains("incomplete")));
        // and the same for an interlaced image's seven passes.
        let interlaced = with_interlace(&base);
        assert!(inspect(&interlaced).is_err(), "non-interlaced data read as Adam7 is too short");
    }

    fn with_interlace(b: &[u8]) -> Vec<u8> {
        let mut b = b.to_vec();
        b[28] = 1;
        let crc = crc32fast::hash(&b[12..29]);
        b[29..33].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn adam7_rows_add_up_to_the_interlaced_size() {
        // For a 5x3 8-bit RGB image the seven passes are 1x1, 1x1, empty (it starts at row 4),
        // 1x1, 3x1, 2x2 and 5x1: each row is a filter byte and 3 bytes a pixel.
        let header = Header { width: 5, height: 3, bit_depth: 8, color_type: 2, interlaced: true };
        let rows: Vec<u64> = Rows::new(header, 5, 3).collect();
        assert_eq!(rows, vec![4, 4, 4, 10, 7, 7, 16]);
    }

    #[test]
    fn metadata_chunks_of_any_spelling_go_and_the_pixels_stay() {
        // Given a PNG with text, EXIF and unknown chunks in every position and case,
        let base = rgb(16, 16);
        let mut b = base[..33].to_vec();
        push_chunk(&mut b, b"EXIF", b"secret-1");
        push_chunk(&mut b, b"tEXt", b"Comment\0secret-2");
        push_chunk(&mut b, b"gAMA", &45455u32.to_be_bytes());
        for c in Chunks::new(&base).skip(1) {
            let c = c.unwrap();
            if &c.kind == b"IEND" {
                push_chunk(&mut b, b"zxIf", b"secret-3");
            }
            b.extend_from_slice(&base[c.whole]);
        }
        b.extend_from_slice(b"secret-4");
        // when it is stripped,
        let (facts, extras) = inspect(&b).unwrap();
        assert_eq!((facts.width, facts.height, facts.frames), (16, 16, 1));
        let out = strip(&b, &extras);
        // then no secret remains, gAMA stays, and the pixels are the same.
        assert!(!out.windows(6).any(|w| w == b"secret"));
        assert!(out.windows(4).any(|w| w == b"gAMA"));
        let kinds: Vec<[u8; 4]> = Chunks::new(&out).map(|c| c.unwrap().kind).collect();
        assert!(kinds.iter().all(|k| [b"IHDR", b"gAMA", b"IDAT", b"IEND"].contains(&k)), "{kinds:?}");
        let want = image::load_from_memory(&base).unwrap().to_rgb8();
        assert_eq!(image::load_from_memory(&out).unwrap().to_rgb8(), want);
        assert_eq!(strip(&out, &inspect(&out).unwrap().1), out, "stripping is idempotent");
    }
}
