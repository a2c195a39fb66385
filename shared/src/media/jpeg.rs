//! JPEG: one segment walk behind both inspection (what the file is, and whether the decoder and
//! browsers can show it) and stripping (the keep-list).
//!
//! The walk holds a fixed amount of state whatever the file: a frame has at most four
//! components, tables are tracked as bit sets, and entropy-coded data is scanned, not buffered.

use std::ops::Range;

use super::{Facts, Format, MediaError, damaged, limits, too_large, unsupported};

fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]) as usize)
}

/// One piece of a JPEG file, as byte ranges of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A marker segment with a length: `start` is the offset of its `0xFF`, `payload` what
    /// follows the two length bytes.
    Marker { marker: u8, start: usize, payload: Range<usize> },
    /// A marker without a length (a restart marker or `TEM` outside a scan).
    Standalone { marker: u8 },
    /// A scan: its header's payload and the entropy-coded data after it, restart markers
    /// included, with the number of restart markers seen.
    Scan { start: usize, header: Range<usize>, data: Range<usize>, restarts: usize },
    /// The end-of-image marker.
    End,
}

/// Walks a JPEG's segments after SOI. Extraneous bytes between segments are skipped, as
/// libjpeg does (with a warning); anything after EOI is never visited.
pub(crate) struct Segments<'a> {
    b: &'a [u8],
    i: usize,
    done: bool,
}

impl<'a> Segments<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Segments { b, i: 2, done: false }
    }

    fn step(&mut self) -> Result<Segment, MediaError> {
        let b = self.b;
        // Find the next marker: an 0xFF followed by a byte that is neither 0x00 nor 0xFF.
        loop {
            match (b.get(self.i), b.get(self.i + 1)) {
                (Some(0xFF), Some(0xFF)) => self.i += 1,
                (Some(0xFF), Some(0x00)) => self.i += 2,
                (Some(0xFF), Some(_)) => break,
                (Some(_), _) => self.i += 1,
                (None, _) => return Err(damaged("the JPEG data ends before its end-of-image marker")),
            }
        }
        let start = self.i;
        let marker = b[start + 1];
        self.i += 2;
        match marker {
            0xD9 => return Ok(Segment::End),
            0xD8 => return Err(damaged("the JPEG has a second start-of-image marker")),
            0xD0..=0xD7 | 0x01 => return Ok(Segment::Standalone { marker }),
            _ => {}
        }
        let len = be16(b, self.i).ok_or_else(|| damaged("the JPEG ends inside a segment header"))?;
        if len < 2 || self.i + len > b.len() {
            return Err(damaged("a JPEG segment runs past the end of the file"));
        }
        let payload = self.i + 2..self.i + len;
        self.i += len;
        if marker != 0xDA {
            return Ok(Segment::Marker { marker, start, payload });
        }
        let (end, restarts) = walk_entropy_data(b, self.i)?;
        let data = self.i..end;
        self.i = end;
        Ok(Segment::Scan { start, header: payload, data, restarts })
    }
}

impl Iterator for Segments<'_> {
    type Item = Result<Segment, MediaError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.step();
        if matches!(item, Ok(Segment::End) | Err(_)) {
            self.done = true;
        }
        Some(item)
    }
}

/// Walks entropy-coded data from `start` to the next marker that is not a restart marker.
/// Returns that marker's offset and the number of restart markers seen; fails when they are out
/// of sequence or when the data runs to the end of the file.
pub(crate) fn walk_entropy_data(b: &[u8], start: usize) -> Result<(usize, usize), MediaError> {
    let mut j = start;
    let mut restarts = 0usize;
    let mut expected_rst = 0u8;
    while j + 1 < b.len() {
        // Most bytes are not 0xFF: find the next one quickly.
        match b[j..].iter().position(|&x| x == 0xFF) {
            Some(k) => j += k,
            None => break,
        }
        if j + 1 >= b.len() {
            break;
        }
        match b[j + 1] {
            0x00 => j += 2,
            0xFF => j += 1,
            m @ 0xD0..=0xD7 => {
                if m - 0xD0 != expected_rst {
                    return Err(damaged("the JPEG restart markers are out of sequence"));
                }
                expected_rst = (expected_rst + 1) % 8;
                restarts += 1;
                j += 2;
            }
            _ => return Ok((j, restarts)),
        }
    }
    Err(damaged("the JPEG data ends inside the image data"))
}

/// The coding processes a browser and the decoder can show: baseline and extended sequential
/// (Huffman), and progressive (Huffman).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Process {
    Sequential,
    Progressive,
}

#[derive(Debug, Clone, Copy, Default)]
struct Component {
    id: u8,
    h: u8,
    v: u8,
    tq: u8,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    process: Process,
    width: u32,
    height: u32,
    components: [Component; 4],
    count: usize,
}

impl Frame {
    fn components(&self) -> &[Component] {
        &self.components[..self.count]
    }

    fn hmax(&self) -> usize {
        self.components().iter().map(|c| usize::from(c.h)).max().unwrap_or(1)
    }

    fn vmax(&self) -> usize {
        self.components().iter().map(|c| usize::from(c.v)).max().unwrap_or(1)
    }
}

/// What a walk learns about a JPEG beyond its frame: what stripping needs to rebuild.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Extras {
    /// The Adobe APP14 colour transform byte (0: none/CMYK, 1: YCbCr, 2: YCCK), if present.
    pub adobe_transform: Option<u8>,
    /// Huffman tables that scans use but the file never defines (bit `4 * class + id`); motion
    /// JPEG frames rely on the standard tables this way, and stripping inserts them.
    pub missing_tables: u8,
    /// Total bytes of ICC profile segments.
    pub icc_bytes: usize,
}

/// Reads the frame header and refuses what cannot be shown.
fn parse_frame(marker: u8, seg: &[u8]) -> Result<Frame, MediaError> {
    let process = match marker {
        0xC0 | 0xC1 => Process::Sequential,
        0xC2 => Process::Progressive,
        0xC3 => return Err(unsupported("lossless JPEG is not supported; save it as a baseline or progressive JPEG")),
        0xC5..=0xC7 => return Err(unsupported("hierarchical JPEG is not supported")),
        0xC9..=0xCB | 0xCD..=0xCF => {
            return Err(unsupported("arithmetic-coded JPEG is not supported by browsers"));
        }
        _ => return Err(damaged("the JPEG frame header is unknown")),
    };
    if seg.len() < 6 {
        return Err(damaged("the JPEG frame header is too short"));
    }
    match seg[0] {
        8 => {}
        12 | 16 => return Err(unsupported("JPEGs with more than 8 bits per sample are not supported by browsers")),
        p => return Err(damaged(&format!("the JPEG sample precision {p} is invalid"))),
    }
    let height = u32::from(u16::from_be_bytes([seg[1], seg[2]]));
    let width = u32::from(u16::from_be_bytes([seg[3], seg[4]]));
    if width == 0 || height == 0 {
        // A height of zero defers to a DNL marker, which neither browsers nor the decoder read.
        return Err(MediaError::Unreadable("the JPEG frame has no width or height".into()));
    }
    let count = usize::from(seg[5]);
    if !matches!(count, 1 | 3 | 4) {
        return Err(unsupported(&format!("JPEGs with {count} colour components are not supported")));
    }
    if seg.len() != 6 + 3 * count {
        return Err(damaged("the JPEG frame header has the wrong length"));
    }
    let mut components = [Component::default(); 4];
    for (k, slot) in components.iter_mut().take(count).enumerate() {
        let c = &seg[6 + 3 * k..9 + 3 * k];
        let (h, v) = (c[1] >> 4, c[1] & 15);
        // The decoder, like libjpeg-turbo, takes sampling factors of 1 to 4 and needs the
        // horizontal one to be a power of two.
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) || !h.is_power_of_two() {
            return Err(damaged("the JPEG frame has an invalid sampling factor"));
        }
        if c[2] > 3 {
            return Err(damaged("the JPEG frame names a quantization table that cannot exist"));
        }
        *slot = Component { id: c[0], h, v, tq: c[2] };
    }
    let ids = &components[..count];
    if ids.iter().enumerate().any(|(k, c)| ids[..k].iter().any(|d| d.id == c.id)) {
        return Err(damaged("the JPEG frame has two components with the same id"));
    }
    Ok(Frame { process, width, height, components, count })
}

/// Checks a DHT segment and records which tables it defines.
fn parse_dht(seg: &[u8], defined: &mut u8) -> Result<(), MediaError> {
    let mut i = 0;
    while i < seg.len() {
        let info = seg[i];
        let (class, id) = (info >> 4, info & 15);
        if class > 1 || id > 3 {
            return Err(damaged("a JPEG Huffman table has an invalid class or slot"));
        }
        let counts = seg.get(i + 1..i + 17).ok_or_else(|| damaged("a JPEG Huffman table is cut short"))?;
        let total: usize = counts.iter().map(|&n| usize::from(n)).sum();
        if total > 256 || i + 17 + total > seg.len() {
            return Err(damaged("a JPEG Huffman table is too long"));
        }
        // The code lengths must describe a prefix code in which no code is all ones (as the
        // decoder checks).
        let mut code = 0u32;
        for (len, &n) in counts.iter().enumerate() {
            code += u32::from(n);
            if code >= 1 << (len + 1) && n > 0 {
                return Err(damaged("a JPEG Huffman table is not a valid code"));
            }
            code <<= 1;
        }
        if class == 0 && seg[i + 17..i + 17 + total].iter().any(|&s| s > 15) {
            return Err(damaged("a JPEG DC Huffman table has an invalid symbol"));
        }
        *defined |= 1 << (4 * class + id);
        i += 17 + total;
    }
    Ok(())
}

/// Checks a DQT segment and records which tables it defines.
fn parse_dqt(seg: &[u8], defined: &mut u8) -> Result<(), MediaError> {
    let mut i = 0;
    while i < seg.len() {
        let (precision, id) = (seg[i] >> 4, seg[i] & 15);
        if precision > 1 || id > 3 {
            return Err(damaged("a JPEG quantization table has an invalid precision or slot"));
        }
        let size = 64 * (usize::from(precision) + 1);
        if i + 1 + size > seg.len() {
            return Err(damaged("a JPEG quantization table is cut short"));
        }
        *defined |= 1 << id;
        i += 1 + size;
    }
    Ok(())
}

/// Checks a scan header against the frame and the tables defined so far.
fn check_scan(frame: &Frame, seg: &[u8], huffman: u8, quant: u8, extras: &mut Extras) -> Result<(), MediaError> {
    let n = usize::from(*seg.first().unwrap_or(&0));
    if !(1..=4).contains(&n) || seg.len() != 4 + 2 * n {
        return Err(damaged("a JPEG scan header is malformed"));
    }
    let (ss, se, ah, al) = (seg[1 + 2 * n], seg[2 + 2 * n], seg[3 + 2 * n] >> 4, seg[3 + 2 * n] & 15);
    match frame.process {
        Process::Sequential => {
            if ss != 0 || se != 63 || ah != 0 || al != 0 {
                return Err(damaged("a sequential JPEG scan has progressive parameters"));
            }
        }
        Process::Progressive => {
            let dc = ss == 0;
            if se > 63 || ss > se || ah > 13 || al > 13 || (dc && se != 0) || (!dc && n != 1) {
                return Err(damaged("a progressive JPEG scan has invalid parameters"));
            }
        }
    }
    let needs_dc = ss == 0 && ah == 0;
    let needs_ac = se > 0;
    for k in 0..n {
        let (id, tables) = (seg[1 + 2 * k], seg[2 + 2 * k]);
        if seg[1..1 + 2 * k].chunks(2).any(|c| c[0] == id) {
            return Err(damaged("a JPEG scan names a component twice"));
        }
        let component = frame
            .components()
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| damaged("a JPEG scan names a component the frame does not have"))?;
        if quant & (1 << component.tq) == 0 {
            return Err(damaged("a JPEG scan comes before the quantization table it needs"));
        }
        let (td, ta) = (tables >> 4, tables & 15);
        if td > 3 || ta > 3 {
            return Err(damaged("a JPEG scan names a Huffman table that cannot exist"));
        }
        for (needed, bit) in [(needs_dc, td), (needs_ac, 4 + ta)] {
            if !needed || huffman & (1 << bit) != 0 {
                continue;
            }
            // Motion JPEG frames leave out the standard tables (slots 0 and 1); decoders fill
            // them in, and stripping writes them into the file. Anything else is missing.
            if frame.process == Process::Sequential && bit % 4 <= 1 {
                extras.missing_tables |= 1 << bit;
            } else {
                return Err(damaged("a JPEG scan comes before the Huffman table it needs"));
            }
        }
    }
    Ok(())
}

/// The most table segments (DHT, DQT, DRI) between two scans. The decoder gives up after 64
/// markers between scans; encoders write a few.
const MAX_TABLES_BETWEEN_SCANS: usize = 32;

/// The checks of [`super::inspect`] for a JPEG, and what stripping needs to know.
pub(crate) fn inspect(b: &[u8]) -> Result<(Facts, Extras), MediaError> {
    let mut frame: Option<Frame> = None;
    let mut restart_interval = 0usize;
    let mut scans = 0usize;
    // Table segments since the last scan: the decoder reads at most 64 markers between two
    // scans (a guard of its own against floods), so more are refused here.
    let mut since_scan = 0usize;
    let (mut huffman, mut quant) = (0u8, 0u8);
    let mut extras = Extras::default();
    for segment in Segments::new(b) {
        match segment? {
            Segment::End => {
                let frame = frame.ok_or_else(|| MediaError::Unreadable("the JPEG has no frame header".into()))?;
                if scans == 0 {
                    return Err(damaged("the JPEG has no image data"));
                }
                // The decoder mis-handles four-component frames read as CMYK (no Adobe block
                // saying YCCK) whose channels are sampled unevenly, when the frame is
                // progressive or a factor is 4: it fails or, worse, panics. Such files are rare
                // (CMYK is written at full resolution), and they are refused.
                let first = (frame.components[0].h, frame.components[0].v);
                let uniform = frame.components().iter().all(|c| (c.h, c.v) == first);
                let small = frame.components().iter().all(|c| c.h <= 2 && c.v <= 2);
                let cmyk = frame.count == 4 && extras.adobe_transform != Some(2);
                if cmyk && !uniform && (frame.process == Process::Progressive || !small) {
                    return Err(unsupported("CMYK JPEGs with unevenly sampled channels are not supported"));
                }
                let pixels = u64::from(frame.width) * u64::from(frame.height);
                let facts = Facts {
                    format: Format::Jpeg,
                    width: frame.width,
                    height: frame.height,
                    frames: 1,
                    frame_pixels: pixels,
                    still_cost: decode_cost(&frame, b.len()),
                    decode_cost: 0,
                    check_by_decoding: frame.process == Process::Progressive,
                }
                .costed();
                return Ok((facts, extras));
            }
            Segment::Standalone { .. } => {}
            Segment::Marker { marker, payload, .. } => {
                let seg = &b[payload];
                if scans > 0 && matches!(marker, 0xC4 | 0xDB | 0xDD) {
                    since_scan += 1;
                    if since_scan > MAX_TABLES_BETWEEN_SCANS {
                        return Err(damaged("the JPEG has too many table segments between two scans"));
                    }
                }
                match marker {
                    0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                        if frame.is_some() {
                            // One image per file: a second frame is damage, or a second image
                            // nothing measured.
                            return Err(damaged("the JPEG has more than one frame header"));
                        }
                        frame = Some(parse_frame(marker, seg)?);
                    }
                    0xF7 => return Err(unsupported("JPEG-LS is not supported by browsers")),
                    0xC4 => parse_dht(seg, &mut huffman)?,
                    0xDB => parse_dqt(seg, &mut quant)?,
                    0xDD => {
                        restart_interval = be16(seg, 0)
                            .filter(|_| seg.len() == 2)
                            .ok_or_else(|| damaged("the JPEG restart interval segment is malformed"))?;
                    }
                    0xEE if seg.starts_with(b"Adobe") && seg.len() >= 12 => extras.adobe_transform = Some(seg[11]),
                    0xE2 if is_icc(seg) => extras.icc_bytes += seg.len(),
                    _ => {}
                }
            }
            Segment::Scan { header, data, restarts, .. } => {
                let f = frame.as_ref().ok_or_else(|| damaged("a JPEG scan comes before its frame header"))?;
                let seg = &b[header];
                check_scan(f, seg, huffman, quant, &mut extras)?;
                scans += 1;
                // Every block of the first scan is coded with at least one bit (a Huffman code
                // is never shorter), so a first scan with fewer bits than blocks is cut short.
                // This refuses a few bytes claiming millions of pixels before anything decodes
                // them (fuzzing found 2 KiB taking seconds to decode), and no whole file fails.
                let coded_bits = (data.len().saturating_sub(2 * restarts) as u64) * 8;
                if scans == 1 && coded_bits < first_scan_blocks(f, seg) {
                    return Err(damaged("the JPEG image data is incomplete (its first scan is too short)"));
                }
                since_scan = 0;
                if scans > limits::MAX_JPEG_SCANS {
                    return Err(too_large(
                        "too_many_scans",
                        format!("the JPEG has more than {} scans", limits::MAX_JPEG_SCANS),
                    ));
                }
                // In the first scan of a sequential frame that holds every component, the
                // number of restart intervals must match the number of MCUs: this catches files
                // whose middle is missing but whose end is intact.
                let interleaved = usize::from(seg[0]) == f.count;
                if scans == 1 && f.process == Process::Sequential && restart_interval > 0 && interleaved {
                    let mcus = (f.width as usize).div_ceil(8 * f.hmax()) * (f.height as usize).div_ceil(8 * f.vmax());
                    if restarts != mcus.div_ceil(restart_interval).saturating_sub(1) {
                        return Err(damaged("the JPEG image data is incomplete (restart markers missing)"));
                    }
                }
            }
        }
    }
    Err(damaged("the JPEG data ends before its end-of-image marker"))
}

/// A lower bound on the blocks a scan codes: the MCUs of the frame for a scan of several
/// components, or the blocks of its one component.
fn first_scan_blocks(f: &Frame, seg: &[u8]) -> u64 {
    let (w, h) = (u64::from(f.width), u64::from(f.height));
    let (hmax, vmax) = (f.hmax() as u64, f.vmax() as u64);
    if usize::from(seg[0]) > 1 {
        return w.div_ceil(8 * hmax) * h.div_ceil(8 * vmax);
    }
    let c = f.components().iter().find(|c| c.id == seg[1]).copied().unwrap_or(f.components[0]);
    let cw = (w * u64::from(c.h)).div_ceil(hmax);
    let ch = (h * u64::from(c.v)).div_ceil(vmax);
    cw.div_ceil(8) * ch.div_ceil(8)
}

/// An APP2 segment that carries part of an ICC profile: the identifier, then its sequence
/// number and the count of parts.
fn is_icc(seg: &[u8]) -> bool {
    seg.len() > 14 && seg.starts_with(b"ICC_PROFILE\0")
}

/// The most memory decoding this frame and making its variants may take, in bytes: measured per
/// kind of frame (`tests/decode_memory.rs` checks it), with room to spare. The decoder copies
/// the file, writes 3 bytes a pixel of RGB (grey is widened to RGB for resizing; CMYK takes 4
/// on the way) beside its own row buffers (counted as half a byte a pixel more: a 6-megapixel
/// baseline frame measured 3.3 bytes a pixel in all), and a progressive frame keeps 2 bytes of
/// coefficients for every sample of every component.
fn decode_cost(frame: &Frame, file_len: usize) -> u64 {
    let pixels = u64::from(frame.width) * u64::from(frame.height);
    // A CMYK or YCCK frame with a CMYK profile is decoded to its four samples a pixel, then
    // converted in place to RGB (`decode::decode_cmyk`): one more byte a pixel.
    let output_x8 = if frame.count == 4 { 34 } else { 28 };
    let per_pixel_x8 = match frame.process {
        Process::Sequential => output_x8,
        Process::Progressive => {
            let (h, v) = (frame.hmax() as u64, frame.vmax() as u64);
            let samples_x8: u64 =
                frame.components().iter().map(|c| 8 * u64::from(c.h) * u64::from(c.v) / (h * v)).sum();
            output_x8 + 2 * samples_x8
        }
    };
    super::pipeline_cost(pixels * per_pixel_x8 / 8 + file_len as u64, frame.width, frame.height, false)
}

/// The standard Huffman tables of ITU T.81 Annex K.3, as one DHT payload per table, in slot
/// order: DC 0 (luminance), DC 1 (chrominance), AC 0, AC 1.
fn standard_table(bit: u8) -> Vec<u8> {
    const DC_LUMA_COUNTS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    const DC_CHROMA_COUNTS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
    const DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    const AC_LUMA_COUNTS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D];
    const AC_CHROMA_COUNTS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
    const AC_LUMA_VALUES: [u8; 162] = [
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71,
        0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0, 0x24, 0x33, 0x62, 0x72,
        0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x34, 0x35, 0x36, 0x37,
        0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59,
        0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83,
        0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3,
        0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3,
        0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2,
        0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
    ];
    const AC_CHROMA_VALUES: [u8; 162] = [
        0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13, 0x22,
        0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0, 0x15, 0x62, 0x72, 0xD1,
        0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x35, 0x36,
        0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58,
        0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A,
        0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A,
        0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA,
        0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA,
        0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
    ];
    let (info, counts, values): (u8, &[u8], &[u8]) = match bit {
        0 => (0x00, &DC_LUMA_COUNTS, &DC_VALUES),
        1 => (0x01, &DC_CHROMA_COUNTS, &DC_VALUES),
        4 => (0x10, &AC_LUMA_COUNTS, &AC_LUMA_VALUES),
        _ => (0x11, &AC_CHROMA_COUNTS, &AC_CHROMA_VALUES),
    };
    let mut out = vec![info];
    out.extend_from_slice(counts);
    out.extend_from_slice(values);
    out
}

/// Appends a marker segment with its length.
fn push_segment(out: &mut Vec<u8>, marker: u8, payload: &[u8]) {
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(payload);
}

/// A minimal EXIF APP1 payload holding only the orientation tag (big-endian TIFF, one IFD).
fn orientation_exif(orientation: u16) -> Vec<u8> {
    let mut p = b"Exif\0\0MM\0\x2A\0\0\0\x08".to_vec();
    p.extend_from_slice(&1u16.to_be_bytes()); // One IFD entry.
    p.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation.
    p.extend_from_slice(&3u16.to_be_bytes()); // SHORT.
    p.extend_from_slice(&1u32.to_be_bytes()); // One value.
    p.extend_from_slice(&orientation.to_be_bytes());
    p.extend_from_slice(&[0, 0]); // Value padding to four bytes.
    p.extend_from_slice(&0u32.to_be_bytes()); // No next IFD.
    p
}

/// The keep-list: SOI, then a minimal orientation block when the photo is not upright, the
/// frame, quantization and Huffman tables, the restart interval, ICC profile parts (up to
/// [`limits::MAX_ICC_BYTES`]), a rebuilt Adobe colour-transform block, and the scans with their
/// restart markers, then EOI. Every other segment goes whatever it holds: APP0 to APP15
/// otherwise, comments, arithmetic conditioning, reserved markers, and anything after EOI.
///
/// Expects input that [`inspect`] accepted, with its [`Extras`].
pub(crate) fn strip(b: &[u8], extras: &Extras, orientation: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len().min(64 << 20));
    out.extend_from_slice(&[0xFF, 0xD8]);
    if orientation > 1 {
        push_segment(&mut out, 0xE1, &orientation_exif(orientation));
    }
    if let Some(transform) = extras.adobe_transform {
        // Only the transform flag changes how colours decode; version 100, no other flags.
        push_segment(&mut out, 0xEE, &[b'A', b'd', b'o', b'b', b'e', 0, 100, 0, 0, 0, 0, transform]);
    }
    let keep_icc = extras.icc_bytes <= limits::MAX_ICC_BYTES;
    let mut tables_pending = extras.missing_tables;
    for segment in Segments::new(b) {
        let Ok(segment) = segment else { break };
        match segment {
            Segment::End => break,
            Segment::Standalone { .. } => {}
            Segment::Marker { marker, start, payload } => {
                let keep = match marker {
                    0xC0..=0xC2 | 0xC4 | 0xDB | 0xDD => true,
                    0xE2 => keep_icc && is_icc(&b[payload.clone()]),
                    _ => false,
                };
                if keep {
                    out.extend_from_slice(&b[start..payload.end]);
                }
            }
            Segment::Scan { start, data, .. } => {
                // Standard tables the scans rely on go in just before the first scan.
                for bit in [0u8, 1, 4, 5] {
                    if tables_pending & (1 << bit) != 0 {
                        push_segment(&mut out, 0xC4, &standard_table(bit));
                    }
                }
                tables_pending = 0;
                out.extend_from_slice(&b[start..data.end]);
            }
        }
    }
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 128]));
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, 80);
        encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
        encoder.encode(img.as_raw(), w as u16, h as u16, jpeg_encoder::ColorType::Rgb).unwrap();
        out
    }

    /// Offset of the first marker `m` in a JPEG.
    fn find_marker(b: &[u8], m: u8) -> usize {
        Segments::new(b)
            .find_map(|s| match s.unwrap() {
                Segment::Marker { marker, start, .. } if marker == m => Some(start),
                Segment::Scan { start, .. } if m == 0xDA => Some(start),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn coding_processes_browsers_cannot_show_are_refused_as_unsupported() {
        // Given a baseline JPEG whose frame marker is rewritten to each other process,
        let base = jpeg(32, 16);
        let sof = find_marker(&base, 0xC0);
        let cases: &[(u8, Option<&str>)] = &[
            (0xC0, None),
            (0xC1, None),
            (0xC3, Some("lossless")),
            (0xC5, Some("hierarchical")),
            (0xC9, Some("arithmetic")),
            (0xCA, Some("arithmetic")),
            (0xCB, Some("arithmetic")),
            (0xCD, Some("arithmetic")),
        ];
        for &(marker, refusal) in cases {
            let mut b = base.clone();
            b[sof + 1] = marker;
            // then the accepted ones pass and the others are refused, saying why.
            match (inspect(&b), refusal) {
                (Ok(_), None) => {}
                (Err(MediaError::Unsupported(m)), Some(word)) => assert!(m.contains(word), "{marker:X}: {m}"),
                (other, _) => panic!("{marker:X}: {other:?}"),
            }
        }
    }

    #[test]
    fn precision_components_and_sampling_are_checked() {
        let base = jpeg(32, 16);
        let sof = find_marker(&base, 0xC0);
        // The frame payload starts 4 bytes after the marker: precision, height, width, count,
        // then id, sampling and table of each component.
        let cases: &[(usize, u8, &str)] = &[
            (4, 12, "unsupported"),
            (4, 9, "damaged"),
            (9, 2, "unsupported"), // Two components.
            (11, 0x30, "damaged"), // Horizontal sampling 3 is not a power of two.
            (11, 0x50, "damaged"),
            (11, 0x10, "damaged"), // Vertical sampling 0.
            (11, 0x11, "ok"),
            (12, 7, "damaged"),    // Quantization table 7.
            (13, 0xFF, "damaged"), // The second component takes the first one's id (0xFF below).
        ];
        for &(offset, value, want) in cases {
            let mut b = base.clone();
            b[sof + offset] = if value == 0xFF { b[sof + 10] } else { value };
            let got = match inspect(&b) {
                Ok(_) => "ok",
                Err(MediaError::Unsupported(_)) => "unsupported",
                Err(MediaError::Damaged(_)) => "damaged",
                Err(e) => panic!("{e:?}"),
            };
            assert_eq!(got, want, "byte {offset} = {value}: {:?}", inspect(&b).err());
        }
    }

    #[test]
    fn stripping_keeps_only_the_keep_list_and_inserts_missing_standard_tables() {
        // Given a JPEG with a comment, an APP5 block and its Huffman tables removed,
        let base = jpeg(40, 24);
        let mut b = base[..2].to_vec();
        push_segment(&mut b, 0xFE, b"secret comment");
        push_segment(&mut b, 0xE5, b"vendor data");
        for s in Segments::new(&base) {
            match s.unwrap() {
                Segment::Marker { marker: 0xC4, .. } | Segment::End | Segment::Standalone { .. } => {}
                Segment::Marker { start, payload, .. } => b.extend_from_slice(&base[start..payload.end]),
                Segment::Scan { start, data, .. } => b.extend_from_slice(&base[start..data.end]),
            }
        }
        b.extend_from_slice(&[0xFF, 0xD9]);
        b.extend_from_slice(b"trailing bytes");
        // when it is inspected and stripped,
        let (facts, extras) = inspect(&b).unwrap();
        assert_eq!((facts.width, facts.height), (40, 24));
        assert_eq!(extras.missing_tables, 0b11_0011, "both DC and both AC standard tables");
        let out = strip(&b, &extras, 1);
        // then nothing of the comment or the vendor block remains, and the result decodes to
        // the same pixels as the original.
        assert!(!out.windows(6).any(|w| w == b"secret" || w == b"vendor"));
        assert!(!out.ends_with(b"bytes"));
        let want = image::load_from_memory(&base).unwrap().to_rgb8();
        let got = image::load_from_memory(&out).unwrap().to_rgb8();
        assert_eq!(want, got);
        // and stripping again changes nothing.
        let (_, again) = inspect(&out).unwrap();
        assert_eq!(strip(&out, &again, 1), out);
    }
}
