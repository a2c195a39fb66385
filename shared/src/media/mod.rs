//! Everything that looks inside image files: format sniffing, header dimensions, structural
//! validation, EXIF metadata, metadata stripping and the variant pipeline.
//!
//! Ingest only ever reads headers and walks container structure here; pixels are decoded once,
//! in the variant pipeline of the background worker.

pub mod exif;
pub mod strip;
pub mod variants;

use serde::{Deserialize, Serialize};

/// The image formats imghost accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jpeg,
    Png,
    Gif,
    Webp,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Jpeg, Format::Png, Format::Gif, Format::Webp];

    pub fn mime(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Gif => "image/gif",
            Format::Webp => "image/webp",
        }
    }

    /// The file extension used in links and object keys.
    pub fn ext(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::Gif => "gif",
            Format::Webp => "webp",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Gif => "gif",
            Format::Webp => "webp",
        }
    }

    pub fn from_ext(ext: &str) -> Option<Self> {
        match ext.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" => Some(Format::Jpeg),
            "png" => Some(Format::Png),
            "gif" => Some(Format::Gif),
            "webp" => Some(Format::Webp),
            _ => None,
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::from_ext(name)
    }

    fn image_format(self) -> image::ImageFormat {
        match self {
            Format::Jpeg => image::ImageFormat::Jpeg,
            Format::Png => image::ImageFormat::Png,
            Format::Gif => image::ImageFormat::Gif,
            Format::Webp => image::ImageFormat::WebP,
        }
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

/// Why a file that looks like an image cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("the image header cannot be read: {0}")]
    BadHeader(String),
    #[error("the image is damaged: {0}")]
    Damaged(String),
}

/// Reads width and height from the header alone: no pixel data is decoded and nothing past the
/// header is needed, so a 50-megapixel limit can refuse a file before any work is done.
pub fn dimensions(bytes: &[u8], format: Format) -> Result<(u32, u32), MediaError> {
    let short = || MediaError::BadHeader("the header is cut short".into());
    let le16 = |at: usize| Some(u32::from(u16::from_le_bytes([*bytes.get(at)?, *bytes.get(at + 1)?])));
    let le24 = |at: usize| Some(u32::from_le_bytes([*bytes.get(at)?, *bytes.get(at + 1)?, *bytes.get(at + 2)?, 0]));
    let be32 = |at: usize| Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let (w, h) = match format {
        Format::Png => {
            if bytes.get(12..16) != Some(b"IHDR") {
                return Err(MediaError::BadHeader("the PNG does not start with its IHDR chunk".into()));
            }
            (be32(16).ok_or_else(short)?, be32(20).ok_or_else(short)?)
        }
        Format::Gif => {
            if bytes.len() < 13 {
                return Err(short());
            }
            gif_dimensions(bytes)?
        }
        Format::Webp => match bytes.get(12..16).ok_or_else(short)? {
            b"VP8 " => (le16(26).ok_or_else(short)? & 0x3FFF, le16(28).ok_or_else(short)? & 0x3FFF),
            b"VP8L" => {
                let b = bytes.get(21..25).ok_or_else(short)?;
                let (b0, b1, b2, b3) = (u32::from(b[0]), u32::from(b[1]), u32::from(b[2]), u32::from(b[3]));
                (1 + (b0 | (b1 & 0x3F) << 8), 1 + ((b1 >> 6) | b2 << 2 | (b3 & 0x0F) << 10))
            }
            b"VP8X" => (1 + le24(24).ok_or_else(short)?, 1 + le24(27).ok_or_else(short)?),
            _ => return Err(MediaError::BadHeader("the WebP has no image header".into())),
        },
        Format::Jpeg => {
            jpeg_dimensions(bytes).ok_or_else(|| MediaError::BadHeader("the JPEG has no frame header".into()))?
        }
    };
    if w == 0 || h == 0 {
        return Err(MediaError::BadHeader("zero width or height".into()));
    }
    Ok((w, h))
}

/// Finds the first frame header (SOFn) and reads its dimensions.
fn jpeg_dimensions(b: &[u8]) -> Option<(u32, u32)> {
    let mut i = 2;
    loop {
        while b.get(i) == Some(&0xFF) && b.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        if *b.get(i)? != 0xFF {
            return None;
        }
        let marker = *b.get(i + 1)?;
        if matches!(marker, 0xD0..=0xD9 | 0x01) {
            i += 2;
            continue;
        }
        let len = be16(b, i + 2)?;
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let h = be16(b, i + 5)? as u32;
            let w = be16(b, i + 7)? as u32;
            return Some((w, h));
        }
        if marker == 0xDA || len < 2 {
            return None;
        }
        i += 2 + len;
    }
}

/// Walks the container structure of the file without decoding pixels, so truncated and
/// damaged files are refused at upload rather than discovered by the background worker.
pub fn validate_structure(bytes: &[u8], format: Format) -> Result<(), MediaError> {
    match format {
        Format::Jpeg => validate_jpeg(bytes),
        Format::Png => validate_png(bytes),
        Format::Gif => validate_gif(bytes),
        Format::Webp => validate_webp(bytes),
    }
}

fn damaged(msg: &str) -> MediaError {
    MediaError::Damaged(msg.to_owned())
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]) as usize)
}

/// Frame facts needed to check restart markers of a sequential JPEG.
struct JpegFrame {
    sequential: bool,
    width: usize,
    height: usize,
    /// (component id, horizontal sampling, vertical sampling)
    components: Vec<(u8, usize, usize)>,
}

/// Checks a JPEG from SOI to EOI: every segment length fits, every scan's entropy-coded data
/// ends in a marker, restart markers run in sequence, and for a sequential frame whose first
/// scan holds every component the number of restart intervals matches the number of MCUs.
/// That last check is what catches files whose middle is missing but whose end is intact.
fn validate_jpeg(b: &[u8]) -> Result<(), MediaError> {
    let mut i = 2;
    let mut frame: Option<JpegFrame> = None;
    let mut restart_interval = 0usize;
    let mut scans = 0;
    loop {
        // Skip fill bytes before a marker, as the standard allows.
        while b.get(i) == Some(&0xFF) && b.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        if b.get(i) != Some(&0xFF) {
            return Err(damaged("the JPEG data ends before its end-of-image marker"));
        }
        let marker = *b.get(i + 1).ok_or_else(|| damaged("the JPEG ends inside a marker"))?;
        i += 2;
        match marker {
            0xD9 => {
                return if scans > 0 { Ok(()) } else { Err(damaged("the JPEG has no image data")) };
            }
            0xD0..=0xD7 | 0x01 => continue,
            _ => {}
        }
        let len = be16(b, i).ok_or_else(|| damaged("the JPEG ends inside a segment header"))?;
        if len < 2 || i + len > b.len() {
            return Err(damaged("a JPEG segment runs past the end of the file"));
        }
        let seg = &b[i + 2..i + len];
        match marker {
            0xC0..=0xCF if marker != 0xC4 && marker != 0xC8 && marker != 0xCC => {
                if seg.len() < 6 {
                    return Err(damaged("the JPEG frame header is too short"));
                }
                let n = seg[5] as usize;
                if seg.len() < 6 + 3 * n {
                    return Err(damaged("the JPEG frame header is too short"));
                }
                let components = (0..n)
                    .map(|k| {
                        let c = &seg[6 + 3 * k..9 + 3 * k];
                        (c[0], (c[1] >> 4) as usize, (c[1] & 15) as usize)
                    })
                    .collect::<Vec<_>>();
                if components.iter().any(|&(_, h, v)| h == 0 || v == 0) {
                    return Err(damaged("the JPEG frame has a zero sampling factor"));
                }
                if frame.is_some() {
                    // One image per file: a second frame header is either damage or a second
                    // image the header check did not measure.
                    return Err(damaged("the JPEG has more than one frame header"));
                }
                frame = Some(JpegFrame {
                    sequential: matches!(marker, 0xC0 | 0xC1),
                    height: be16(seg, 1).unwrap_or(0),
                    width: be16(seg, 3).unwrap_or(0),
                    components,
                });
            }
            0xDD => restart_interval = be16(seg, 0).unwrap_or(0),
            0xDA => {
                let f = frame.as_ref().ok_or_else(|| damaged("a JPEG scan comes before its frame header"))?;
                let scan_components = seg.first().copied().unwrap_or(0) as usize;
                i += len;
                let (end, restarts) = walk_entropy_data(b, i)?;
                if scans == 0 && f.sequential && restart_interval > 0 && scan_components == f.components.len() {
                    let hmax = f.components.iter().map(|c| c.1).max().unwrap_or(1);
                    let vmax = f.components.iter().map(|c| c.2).max().unwrap_or(1);
                    let mcus = f.width.div_ceil(8 * hmax) * f.height.div_ceil(8 * vmax);
                    let expected = mcus.div_ceil(restart_interval).saturating_sub(1);
                    if restarts != expected {
                        return Err(damaged("the JPEG image data is incomplete (restart markers missing)"));
                    }
                }
                scans += 1;
                i = end;
                continue;
            }
            _ => {}
        }
        i += len;
    }
}

/// Walks entropy-coded data from `start` to the next non-restart marker. Returns that marker's
/// offset and the number of restart markers seen; fails when they are out of sequence or when
/// the data runs to the end of the file.
fn walk_entropy_data(b: &[u8], start: usize) -> Result<(usize, usize), MediaError> {
    let mut j = start;
    let mut restarts = 0usize;
    let mut expected_rst = 0u8;
    while j + 1 < b.len() {
        if b[j] != 0xFF {
            j += 1;
            continue;
        }
        match b[j + 1] {
            0x00 | 0xFF => j += 1 + usize::from(b[j + 1] == 0x00),
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

/// Checks a PNG's chunk sequence: every chunk fits, its CRC matches, and IEND is reached.
fn validate_png(b: &[u8]) -> Result<(), MediaError> {
    let mut i = 8;
    let mut saw_idat = false;
    loop {
        let len = b
            .get(i..i + 4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
            .ok_or_else(|| damaged("the PNG ends before its IEND chunk"))?;
        let end = i.checked_add(12 + len).filter(|&e| e <= b.len());
        let end = end.ok_or_else(|| damaged("a PNG chunk runs past the end of the file"))?;
        let kind = &b[i + 4..i + 8];
        let crc = u32::from_be_bytes([b[end - 4], b[end - 3], b[end - 2], b[end - 1]]);
        if crc32(&b[i + 4..end - 4]) != crc {
            return Err(damaged("a PNG chunk checksum does not match"));
        }
        match kind {
            b"IDAT" => saw_idat = true,
            b"IEND" => {
                return if saw_idat { Ok(()) } else { Err(damaged("the PNG has no image data")) };
            }
            _ => {}
        }
        i = end;
    }
}

/// CRC-32 as PNG defines it (ISO 3309). Small and table-free: PNG validation is not hot.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// One top-level block of a GIF, as a byte range of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GifBlock {
    /// An image: descriptor, local colour table and data. Carries the frame's extent
    /// (left + width, top + height) on the logical screen.
    Image { range: std::ops::Range<usize>, extent: (u32, u32) },
    /// An extension, with its label (0xF9 graphic control, 0xFF application, 0xFE comment...).
    Extension { range: std::ops::Range<usize>, label: u8 },
}

/// Walks a GIF's blocks after the header, logical screen descriptor and global colour table
/// (which end at the returned offset). Browsers tolerate a missing trailer after a complete
/// frame, so that is accepted too.
pub(crate) fn gif_blocks(b: &[u8]) -> Result<(usize, Vec<GifBlock>), MediaError> {
    if b.len() < 13 {
        return Err(damaged("the GIF header is incomplete"));
    }
    let mut i = 13;
    if b[10] & 0x80 != 0 {
        i += 3 << ((b[10] & 7) + 1);
    }
    let header_end = i;
    let skip_sub_blocks = |mut j: usize| -> Option<usize> {
        loop {
            let n = *b.get(j)? as usize;
            j += 1 + n;
            if n == 0 {
                return (j <= b.len()).then_some(j);
            }
        }
    };
    let le16 = |at: usize| u32::from(u16::from_le_bytes([b[at], b[at + 1]]));
    let mut blocks = Vec::new();
    loop {
        match b.get(i) {
            Some(0x3B) => break,
            None if blocks.iter().any(|x| matches!(x, GifBlock::Image { .. })) => break,
            Some(0x21) => {
                let label = *b.get(i + 1).ok_or_else(|| damaged("a GIF extension is cut short"))?;
                let end = skip_sub_blocks(i + 2).ok_or_else(|| damaged("a GIF extension is cut short"))?;
                blocks.push(GifBlock::Extension { range: i..end, label });
                i = end;
            }
            Some(0x2C) => {
                if i + 10 > b.len() {
                    return Err(damaged("a GIF frame header is cut short"));
                }
                let extent = (le16(i + 1) + le16(i + 5), le16(i + 3) + le16(i + 7));
                let flags = b[i + 9];
                let mut j = i + 10;
                if flags & 0x80 != 0 {
                    j += 3 << ((flags & 7) + 1);
                }
                // One byte of LZW minimum code size, then the image data sub-blocks.
                let end = skip_sub_blocks(j + 1).ok_or_else(|| damaged("the GIF image data is cut short"))?;
                blocks.push(GifBlock::Image { range: i..end, extent });
                i = end;
            }
            _ => return Err(damaged("the GIF block structure is broken")),
        }
    }
    if !blocks.iter().any(|x| matches!(x, GifBlock::Image { .. })) {
        return Err(damaged("the GIF has no frames"));
    }
    Ok((header_end, blocks))
}

fn validate_gif(b: &[u8]) -> Result<(), MediaError> {
    gif_blocks(b).map(|_| ())
}

/// The GIF's size: its logical screen, grown to hold any frame that reaches past it, so that
/// the pixel limit counts what a decoder would allocate.
fn gif_dimensions(b: &[u8]) -> Result<(u32, u32), MediaError> {
    let screen = (u32::from(u16::from_le_bytes([b[6], b[7]])), u32::from(u16::from_le_bytes([b[8], b[9]])));
    let (_, blocks) = gif_blocks(b).map_err(|e| MediaError::BadHeader(e.to_string()))?;
    Ok(blocks.iter().fold(screen, |(w, h), block| match block {
        GifBlock::Image { extent: (fw, fh), .. } => (w.max(*fw), h.max(*fh)),
        GifBlock::Extension { .. } => (w, h),
    }))
}

/// Checks a WebP's RIFF container: the declared size fits the file and every chunk fits.
fn validate_webp(b: &[u8]) -> Result<(), MediaError> {
    let riff = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    if riff + 8 > b.len() || riff < 4 {
        return Err(damaged("the WebP file is shorter than its header declares"));
    }
    let body = &b[12..riff + 8];
    let mut i = 0;
    let mut saw_image = false;
    while i < body.len() {
        let head = body.get(i..i + 8).ok_or_else(|| damaged("a WebP chunk header is cut short"))?;
        let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        if matches!(&head[0..4], b"VP8 " | b"VP8L" | b"ANMF") {
            saw_image = true;
        }
        i += 8 + size + (size & 1);
        if i > body.len() + 1 {
            return Err(damaged("a WebP chunk runs past the end of the file"));
        }
    }
    if !saw_image {
        return Err(damaged("the WebP has no image data"));
    }
    Ok(())
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

    #[test]
    fn dimensions_come_from_headers_of_every_format() {
        // Given images of each format written by a real encoder,
        let img = image::RgbaImage::from_pixel(37, 21, image::Rgba([1, 2, 3, 128]));
        for (format, fmt) in [
            (Format::Png, image::ImageFormat::Png),
            (Format::Gif, image::ImageFormat::Gif),
            (Format::Webp, image::ImageFormat::WebP),
            (Format::Jpeg, image::ImageFormat::Jpeg),
        ] {
            let mut out = Cursor::new(Vec::new());
            let dynamic = image::DynamicImage::ImageRgba8(img.clone());
            let dynamic =
                if format == Format::Jpeg { image::DynamicImage::ImageRgb8(dynamic.to_rgb8()) } else { dynamic };
            dynamic.write_to(&mut out, fmt).unwrap();
            // then the header parser reads the size and the structure validates.
            assert_eq!(dimensions(out.get_ref(), format).unwrap(), (37, 21), "{format:?}");
            validate_structure(out.get_ref(), format).unwrap();
        }
    }

    #[test]
    fn gif_frames_larger_than_the_screen_count_against_the_size() {
        // Given a GIF whose logical screen is 1x1 but whose one frame is 300x200,
        let mut gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00".to_vec();
        gif.extend_from_slice(&[0x2C, 0, 0, 0, 0, 0x2C, 0x01, 0xC8, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3B]);
        // then its size is the frame's, not the screen's.
        assert_eq!(dimensions(&gif, Format::Gif).unwrap(), (300, 200));
    }

    #[test]
    fn crc32_matches_the_png_reference_value() {
        // The CRC of the IEND chunk type is fixed by the PNG specification.
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
    }

    fn png_bytes(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([10, 20, 30]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_whole_png_validates_and_a_truncated_one_does_not() {
        let png = png_bytes(16, 8);
        assert_eq!(dimensions(&png, Format::Png).unwrap(), (16, 8));
        validate_structure(&png, Format::Png).unwrap();
        let cut = &png[..png.len() - 5];
        assert!(validate_structure(cut, Format::Png).is_err());
    }

    #[test]
    fn a_truncated_jpeg_is_damaged() {
        let img = image::RgbImage::from_pixel(64, 64, image::Rgb([200, 10, 10]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        let jpeg = out.into_inner();
        validate_structure(&jpeg, Format::Jpeg).unwrap();
        assert!(validate_structure(&jpeg[..jpeg.len() / 2], Format::Jpeg).is_err());
    }
}
