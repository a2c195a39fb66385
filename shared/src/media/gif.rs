//! GIF: one block walk behind inspection and stripping.
//!
//! The walk visits one block at a time and keeps nothing per block, so a file made of millions
//! of tiny blocks costs time in proportion to its size and no memory. Every frame's LZW data is
//! decoded into a fixed 32 KiB buffer and counted, to be sure it fills its frame as the `gif`
//! decoder requires, and thrown away.

use std::ops::Range;

use weezl::decode::Decoder as LzwDecoder;
use weezl::{BitOrder, LzwStatus};

use super::{Facts, Format, MediaError, damaged, limits, too_large};

/// The logical screen and where the blocks start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Screen {
    pub width: u32,
    pub height: u32,
    pub global_table: bool,
    /// Offset of the first block, after the header, the screen descriptor and the global table.
    pub blocks_start: usize,
}

pub(crate) fn screen(b: &[u8]) -> Result<Screen, MediaError> {
    if b.len() < 13 {
        return Err(damaged("the GIF header is incomplete"));
    }
    let global_table = b[10] & 0x80 != 0;
    let table = if global_table { 3usize << ((b[10] & 7) + 1) } else { 0 };
    Ok(Screen {
        width: u32::from(u16::from_le_bytes([b[6], b[7]])),
        height: u32::from(u16::from_le_bytes([b[8], b[9]])),
        global_table,
        blocks_start: 13 + table,
    })
}

/// One top-level block, as byte ranges of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Block {
    /// An image: descriptor, local colour table and data.
    Image {
        range: Range<usize>,
        left: u32,
        top: u32,
        width: u32,
        height: u32,
        local_table: bool,
        /// The LZW minimum code size byte and the data sub-blocks after it.
        data: Range<usize>,
    },
    /// An extension, with its label (0xF9 graphic control, 0xFF application, 0xFE comment...).
    Extension { range: Range<usize>, label: u8 },
}

/// Walks the blocks after the global colour table, up to the trailer. Browsers tolerate a
/// missing trailer after a complete frame, and so does this walk.
pub(crate) struct Blocks<'a> {
    b: &'a [u8],
    i: usize,
    saw_image: bool,
    done: bool,
}

impl<'a> Blocks<'a> {
    pub(crate) fn new(b: &'a [u8], screen: &Screen) -> Self {
        Blocks { b, i: screen.blocks_start, saw_image: false, done: false }
    }

    /// Skips data sub-blocks from `j`; returns the offset after the terminating empty one.
    fn skip_sub_blocks(&self, mut j: usize) -> Option<usize> {
        loop {
            let n = *self.b.get(j)? as usize;
            j += 1 + n;
            if n == 0 {
                return (j <= self.b.len()).then_some(j);
            }
        }
    }

    fn step(&mut self) -> Result<Option<Block>, MediaError> {
        let b = self.b;
        let i = self.i;
        let le16 = |at: usize| u32::from(u16::from_le_bytes([b[at], b[at + 1]]));
        match b.get(i) {
            Some(0x3B) => Ok(None),
            None if self.saw_image => Ok(None),
            None => Err(damaged("the GIF has no frames")),
            Some(0x21) => {
                let label = *b.get(i + 1).ok_or_else(|| damaged("a GIF extension is cut short"))?;
                let end = self.skip_sub_blocks(i + 2).ok_or_else(|| damaged("a GIF extension is cut short"))?;
                self.i = end;
                Ok(Some(Block::Extension { range: i..end, label }))
            }
            Some(0x2C) => {
                if i + 10 > b.len() {
                    return Err(damaged("a GIF frame header is cut short"));
                }
                let flags = b[i + 9];
                let local_table = flags & 0x80 != 0;
                let table = if local_table { 3usize << ((flags & 7) + 1) } else { 0 };
                let data_start = i + 10 + table;
                let end =
                    self.skip_sub_blocks(data_start + 1).ok_or_else(|| damaged("the GIF image data is cut short"))?;
                self.i = end;
                self.saw_image = true;
                Ok(Some(Block::Image {
                    range: i..end,
                    left: le16(i + 1),
                    top: le16(i + 3),
                    width: le16(i + 5),
                    height: le16(i + 7),
                    local_table,
                    data: data_start..end,
                }))
            }
            Some(_) => Err(damaged("the GIF block structure is broken")),
        }
    }
}

impl Iterator for Blocks<'_> {
    type Item = Result<Block, MediaError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.step();
        if !matches!(item, Ok(Some(_))) {
            self.done = true;
        }
        item.transpose()
    }
}

/// Decodes one frame's LZW data into a scratch buffer and checks that it yields at least
/// `pixels` indices without error, as the decoder needs to fill the frame.
fn check_lzw(b: &[u8], data: Range<usize>, pixels: u64, scratch: &mut [u8]) -> Result<(), MediaError> {
    let min_code_size = b[data.start];
    if !(1..=8).contains(&min_code_size) {
        return Err(damaged("a GIF frame has an invalid LZW code size"));
    }
    let mut lzw = LzwDecoder::new(BitOrder::Lsb, min_code_size);
    let mut produced = 0u64;
    let mut j = data.start + 1;
    // Each sub-block is a length byte and that many bytes of the code stream.
    while j < data.end && produced < pixels {
        let n = usize::from(b[j]);
        let mut input = &b[j + 1..j + 1 + n];
        j += 1 + n;
        loop {
            let r = lzw.decode_bytes(input, scratch);
            input = &input[r.consumed_in..];
            produced += r.consumed_out as u64;
            match r.status {
                Err(_) => return Err(damaged("a GIF frame's image data is corrupt")),
                Ok(LzwStatus::Done) => {
                    return if produced >= pixels { Ok(()) } else { Err(incomplete()) };
                }
                Ok(_) if produced >= pixels => return Ok(()),
                Ok(_) if input.is_empty() && r.consumed_out < scratch.len() => break,
                Ok(LzwStatus::NoProgress) if input.is_empty() => break,
                Ok(_) => {}
            }
        }
    }
    if produced >= pixels { Ok(()) } else { Err(incomplete()) }
}

fn incomplete() -> MediaError {
    damaged("a GIF frame's image data is incomplete")
}

/// The checks of [`super::inspect`] for a GIF: block structure, a colour table for every frame,
/// image data that fills every frame, and the frame and pixel limits. The size is the logical
/// screen grown to hold any frame that reaches past it, since that is what a decoder allocates.
pub(crate) fn inspect(b: &[u8]) -> Result<Facts, MediaError> {
    let screen = screen(b)?;
    let (mut width, mut height) = (screen.width, screen.height);
    let mut frames = 0u32;
    let mut frame_pixels = 0u64;
    let mut first_frame_pixels = 0u64;
    // Whether the first frame may leave pixels transparent: a transparent colour in its graphic
    // control, or a frame smaller than the canvas. It decides between an RGB and an RGBA canvas.
    let mut transparency = false;
    let mut first_covers = false;
    let mut scratch = vec![0u8; 32 * 1024];
    for block in Blocks::new(b, &screen) {
        let block = block?;
        if let Block::Extension { range, label: 0xF9 } = &block {
            if frames == 0 && b.get(range.start + 3).is_some_and(|flags| flags & 1 == 1) {
                transparency = true;
            }
            continue;
        }
        let Block::Image { left, top, width: w, height: h, local_table, data, .. } = block else { continue };
        if w == 0 || h == 0 {
            return Err(damaged("a GIF frame has no width or height"));
        }
        if !local_table && !screen.global_table {
            return Err(damaged("a GIF frame has no colour table"));
        }
        frames += 1;
        if frames > limits::MAX_FRAMES {
            return Err(too_large(
                "too_many_frames",
                format!("the animation has more than {} frames", limits::MAX_FRAMES),
            ));
        }
        width = width.max(left + w);
        height = height.max(top + h);
        let pixels = u64::from(w) * u64::from(h);
        frame_pixels += pixels;
        if frame_pixels > limits::MAX_ANIMATION_PIXELS {
            return Err(super::png::too_many_animation_pixels());
        }
        if u64::from(width) * u64::from(height) > limits::MAX_PIXELS {
            return Err(super::too_many_pixels(width, height));
        }
        if frames == 1 {
            first_frame_pixels = pixels;
            first_covers = (left, top) == (0, 0) && w >= screen.width && h >= screen.height;
        }
        check_lzw(b, data, pixels, &mut scratch)?;
    }
    if frames == 0 {
        return Err(damaged("the GIF has no frames"));
    }
    if width == 0 || height == 0 {
        return Err(MediaError::Unreadable("the GIF has no width or height".into()));
    }
    let canvas = u64::from(width) * u64::from(height);
    // A frame reaching past the screen grows the canvas, which the frame then no longer covers.
    let rgba = transparency || !first_covers || (width, height) != (screen.width, screen.height);
    let canvas_bytes = if rgba { 4 } else { 3 };
    Ok(Facts {
        format: Format::Gif,
        width,
        height,
        frames,
        frame_pixels,
        // The first frame's indices (1 byte a pixel) and the canvas (3 or 4).
        still_cost: super::pipeline_cost(first_frame_pixels + canvas_bytes * canvas, width, height, rgba),
        decode_cost: 0,
        check_by_decoding: false,
    }
    .costed())
}

/// How many times the animation plays, 0 for ever: a GIF without a loop block plays once, and
/// its loop count counts the repeats after the first play (0 is for ever), as browsers read it.
pub(crate) fn plays(b: &[u8]) -> u32 {
    let Ok(screen) = screen(b) else { return 1 };
    for block in Blocks::new(b, &screen) {
        let Ok(Block::Extension { range, label: 0xFF }) = block else { continue };
        if let Some(count) = loop_count(b, &range) {
            return match u16::from_le_bytes(count) {
                0 => 0,
                n => u32::from(n) + 1,
            };
        }
    }
    1
}

/// The loop count of a NETSCAPE2.0 or ANIMEXTS1.0 application extension, if the block is one.
fn loop_count(b: &[u8], range: &Range<usize>) -> Option<[u8; 2]> {
    let block = &b[range.clone()];
    let id = block.get(3..14)?;
    if block.get(2) != Some(&11) || (id != b"NETSCAPE2.0" && id != b"ANIMEXTS1.0") {
        return None;
    }
    // The first data sub-block: length 3, id 1, then the count.
    match block.get(14..18)? {
        [3, 1, lo, hi] => Some([*lo, *hi]),
        _ => None,
    }
}

/// The keep-list: the header and screen descriptor with the global colour table, every frame,
/// each well-formed graphic control block (rebuilt to its four bytes), and the animation loop
/// count (rebuilt as a minimal NETSCAPE2.0 block). Comments, plain text, XMP, ICC and every other
/// extension go, and so does anything after the trailer.
///
/// Expects input that [`inspect`] accepted.
pub(crate) fn strip(b: &[u8]) -> Vec<u8> {
    let Ok(screen) = screen(b) else { return b.to_vec() };
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..screen.blocks_start.min(b.len())]);
    let mut looped = false;
    for block in Blocks::new(b, &screen) {
        let Ok(block) = block else { break };
        match block {
            Block::Image { range, .. } => out.extend_from_slice(&b[range]),
            Block::Extension { range, label: 0xF9 } => {
                let block = &b[range];
                if block.len() == 8 && block[2] == 4 {
                    out.extend_from_slice(&[0x21, 0xF9, 4, block[3], block[4], block[5], block[6], 0]);
                }
            }
            Block::Extension { range, label: 0xFF } => {
                if let Some([lo, hi]) = loop_count(b, &range).filter(|_| !looped) {
                    out.extend_from_slice(&[0x21, 0xFF, 11]);
                    out.extend_from_slice(b"NETSCAPE2.0");
                    out.extend_from_slice(&[3, 1, lo, hi, 0]);
                    looped = true;
                }
            }
            Block::Extension { .. } => {}
        }
    }
    out.push(0x3B);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1x1 frame: descriptor, LZW code size 2, data (clear, index 0, end) and terminator.
    const FRAME: &[u8] = &[0x2C, 0, 0, 0, 0, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00];

    fn gif_with(blocks: &[&[u8]]) -> Vec<u8> {
        let mut gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff".to_vec();
        for block in blocks {
            gif.extend_from_slice(block);
        }
        gif
    }

    #[test]
    fn only_frames_graphic_controls_and_the_loop_count_stay() {
        // Given a GIF with a comment, plain text, an XMP block, a loop block with extra data
        // sub-blocks and bytes after its trailer,
        let mut netscape = vec![0x21, 0xFF, 11];
        netscape.extend_from_slice(b"NETSCAPE2.0");
        netscape.extend_from_slice(&[3, 1, 5, 0, 4, b'g', b'p', b's', b'!', 0]);
        let mut xmp = vec![0x21, 0xFF, 11];
        xmp.extend_from_slice(b"XMP DataXMP");
        xmp.extend_from_slice(&[3, b'g', b'p', b's', 0]);
        let gif = gif_with(&[
            &[0x21, 0xFE, 5, b's', b'e', b'c', b'r', b't', 0],
            &netscape,
            &[0x21, 0x01, 12, 0, 0, 0, 0, 1, 0, 1, 0, 1, 1, 0, 0, 4, b't', b'e', b'x', b't', 0],
            &xmp,
            &[0x21, 0xF9, 4, 0x01, 10, 0, 0, 0],
            FRAME,
            b";appended secret",
        ]);
        // when it is stripped,
        let facts = inspect(&gif).unwrap();
        assert_eq!((facts.width, facts.height, facts.frames), (1, 1, 1));
        let out = strip(&gif);
        // then only the header, the minimal loop block, the graphic control, the frame and the
        // trailer remain.
        let mut minimal_loop = vec![0x21, 0xFF, 11];
        minimal_loop.extend_from_slice(b"NETSCAPE2.0");
        minimal_loop.extend_from_slice(&[3, 1, 5, 0, 0]);
        assert_eq!(out, gif_with(&[&minimal_loop, &[0x21, 0xF9, 4, 0x01, 10, 0, 0, 0], FRAME, b";"]));
        assert_eq!(strip(&out), out, "stripping is idempotent");
    }

    #[test]
    fn frames_must_have_colours_and_complete_data() {
        let cases: &[(&str, Vec<u8>, bool)] = &[
            ("whole", gif_with(&[FRAME, b";"]), true),
            ("no trailer", gif_with(&[FRAME]), true),
            ("no frames", gif_with(&[b";"]), false),
            ("zero-size frame", gif_with(&[&[0x2C, 0, 0, 0, 0, 0, 0, 1, 0, 0, 2, 2, 0x44, 1, 0], b";"]), false),
            ("code size 12", gif_with(&[&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 12, 2, 0x44, 1, 0], b";"]), false),
            // Clear then end at once: no pixel for a 1x1 frame.
            ("no pixels", gif_with(&[&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 1, 0x2C, 0], b";"]), false),
            (
                "2x2 frame with one pixel",
                gif_with(&[&[0x2C, 0, 0, 0, 0, 2, 0, 2, 0, 0, 2, 2, 0x44, 1, 0], b";"]),
                false,
            ),
            ("unknown block", gif_with(&[FRAME, b"\x99;"]), false),
        ];
        for (name, gif, ok) in cases {
            assert_eq!(inspect(gif).is_ok(), *ok, "{name}: {:?}", inspect(gif));
        }
        let mut no_table = gif_with(&[FRAME]);
        no_table[10] = 0;
        no_table.drain(13..19);
        assert!(inspect(&no_table).is_err(), "a frame without any colour table");
    }

    #[test]
    fn a_block_bomb_walks_in_constant_memory() {
        // Given a million empty comment blocks around one frame, the walk visits them all and
        // stripping keeps none.
        let mut gif = gif_with(&[]);
        for _ in 0..1_000_000 {
            gif.extend_from_slice(&[0x21, 0xFE, 0]);
        }
        gif.extend_from_slice(FRAME);
        gif.push(0x3B);
        inspect(&gif).unwrap();
        assert_eq!(strip(&gif), gif_with(&[FRAME, b";"]));
    }
}
