//! Removes metadata from originals without re-encoding them.
//!
//! What is removed: EXIF (with its GPS block), XMP, IPTC/Photoshop blocks, comments and maker
//! segments. What is kept: everything needed to show the same pixels — JFIF, ICC colour
//! profiles, Adobe colour transform flags — and, for JPEG, the EXIF orientation, rewritten as a
//! minimal EXIF block holding only that tag, so browsers still show the photo upright.
//!
//! Input is assumed to have passed [`super::validate_structure`].

use super::{Format, GifBlock, gif_blocks, walk_entropy_data};

/// Returns the file with its metadata removed. The pixel data is copied byte for byte.
pub fn strip(bytes: &[u8], format: Format, orientation: u16) -> Vec<u8> {
    match format {
        Format::Jpeg => strip_jpeg(bytes, orientation),
        Format::Png => strip_png(bytes),
        Format::Webp => strip_webp(bytes),
        Format::Gif => strip_gif(bytes),
    }
}

/// A minimal EXIF APP1 segment holding only the orientation tag (big-endian TIFF, one IFD).
fn orientation_app1(orientation: u16) -> Vec<u8> {
    let mut seg = vec![0xFF, 0xE1, 0x00, 34];
    seg.extend_from_slice(b"Exif\0\0");
    seg.extend_from_slice(b"MM\0\x2A\0\0\0\x08");
    seg.extend_from_slice(&1u16.to_be_bytes()); // One IFD entry.
    seg.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation.
    seg.extend_from_slice(&3u16.to_be_bytes()); // SHORT.
    seg.extend_from_slice(&1u32.to_be_bytes()); // One value.
    seg.extend_from_slice(&orientation.to_be_bytes());
    seg.extend_from_slice(&[0, 0]); // Value padding to four bytes.
    seg.extend_from_slice(&0u32.to_be_bytes()); // No next IFD.
    seg
}

fn keep_jpeg_segment(marker: u8, payload: &[u8]) -> bool {
    match marker {
        // JFIF/JFXX.
        0xE0 => true,
        // ICC profiles live in APP2; so does MPF, whose offsets would dangle once trailing
        // images are dropped.
        0xE2 => payload.starts_with(b"ICC_PROFILE\0"),
        // Adobe's transform flag changes how colours decode.
        0xEE => true,
        // Every other APPn (EXIF, XMP, IPTC, maker data) and comments go.
        0xE1 | 0xE3..=0xED | 0xEF | 0xFE => false,
        _ => true,
    }
}

fn strip_jpeg(b: &[u8], orientation: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..2]);
    let mut i = 2;
    let mut inserted = orientation <= 1;
    let mut first = true;
    while i + 1 < b.len() {
        if b[i] != 0xFF {
            break;
        }
        let marker = b[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        // The orientation block goes right after SOI, or after JFIF's APP0, which must come first.
        if !inserted && (!first || marker != 0xE0) {
            out.extend_from_slice(&orientation_app1(orientation));
            inserted = true;
        }
        first = false;
        if marker == 0xD9 {
            out.extend_from_slice(&[0xFF, 0xD9]);
            // Anything after EOI (appended previews, vendor trailers) is metadata too.
            return out;
        }
        if matches!(marker, 0xD0..=0xD7 | 0x01) {
            out.extend_from_slice(&b[i..i + 2]);
            i += 2;
            continue;
        }
        let len = match super::be16(b, i + 2) {
            Some(l) if l >= 2 && i + 2 + l <= b.len() => l,
            _ => break,
        };
        let seg_end = i + 2 + len;
        if marker == 0xDA {
            let data_end = walk_entropy_data(b, seg_end).map(|(e, _)| e).unwrap_or(b.len());
            out.extend_from_slice(&b[i..data_end]);
            i = data_end;
            continue;
        }
        if keep_jpeg_segment(marker, &b[i + 4..seg_end]) {
            out.extend_from_slice(&b[i..seg_end]);
        }
        i = seg_end;
    }
    // Validation guarantees an EOI; copy whatever remains rather than lose image data.
    out.extend_from_slice(&b[i..]);
    out
}

fn strip_png(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..8]);
    let mut i = 8;
    while i + 12 <= b.len() {
        let len = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
        let end = (i + 12 + len).min(b.len());
        let kind = &b[i + 4..i + 8];
        if !matches!(kind, b"eXIf" | b"tEXt" | b"zTXt" | b"iTXt" | b"tIME") {
            out.extend_from_slice(&b[i..end]);
        }
        if kind == b"IEND" {
            break;
        }
        i = end;
    }
    out
}

fn strip_webp(b: &[u8]) -> Vec<u8> {
    let riff_end = (u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize + 8).min(b.len());
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..12]);
    let mut i = 12;
    while i + 8 <= riff_end {
        let size = u32::from_le_bytes([b[i + 4], b[i + 5], b[i + 6], b[i + 7]]) as usize;
        let end = (i + 8 + size + (size & 1)).min(riff_end);
        let kind = &b[i..i + 4];
        match kind {
            b"EXIF" | b"XMP " => {}
            b"VP8X" => {
                let start = out.len();
                out.extend_from_slice(&b[i..end]);
                // Clear the EXIF (0x08) and XMP (0x04) presence flags.
                if let Some(flags) = out.get_mut(start + 8) {
                    *flags &= !0x0C;
                }
            }
            _ => out.extend_from_slice(&b[i..end]),
        }
        i = end;
    }
    let riff = u32::try_from(out.len() - 8).unwrap_or(u32::MAX);
    out[4..8].copy_from_slice(&riff.to_le_bytes());
    out
}

/// Keeps a GIF's frames, graphic controls and animation loop settings; drops comments, XMP and
/// other application data, and anything after the trailer.
fn strip_gif(b: &[u8]) -> Vec<u8> {
    let Ok((header_end, blocks)) = gif_blocks(b) else { return b.to_vec() };
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..header_end]);
    for block in blocks {
        match block {
            GifBlock::Image { range, .. } => out.extend_from_slice(&b[range]),
            GifBlock::Extension { range, label } => {
                // Application extensions name themselves in an 11-byte block; only the looping
                // ones change how the image plays.
                let app_id = b.get(range.start + 3..range.start + 14).unwrap_or_default();
                let keep = match label {
                    0xF9 | 0x01 => true,
                    0xFF => app_id == b"NETSCAPE2.0" || app_id == b"ANIMEXTS1.0",
                    _ => false,
                };
                if keep {
                    out.extend_from_slice(&b[range]);
                }
            }
        }
    }
    out.push(0x3B);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::exif;

    #[test]
    fn the_orientation_block_reads_back_as_exif() {
        // Given a bare JPEG, when an orientation block is inserted, then EXIF readers see it.
        let img = image::RgbImage::from_pixel(8, 8, image::Rgb([1, 2, 3]));
        let mut jpeg = std::io::Cursor::new(Vec::new());
        img.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
        let stripped = strip(jpeg.get_ref(), Format::Jpeg, 6);
        let meta = exif::read(&stripped);
        assert_eq!(meta.orientation, Some(6));
        assert_eq!(meta.camera_make, None);
        super::super::validate_structure(&stripped, Format::Jpeg).unwrap();
    }

    #[test]
    fn gif_comments_and_trailing_bytes_go_and_frames_stay() {
        // Given a GIF with a comment, an XMP application block and bytes after its trailer,
        let frame: &[u8] = &[0x2C, 0, 0, 0, 0, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00];
        let mut gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00".to_vec();
        gif.extend_from_slice(&[0x21, 0xFE, 0x05, b's', b'e', b'c', b'r', b't', 0x00]);
        gif.extend_from_slice(&[0x21, 0xFF, 0x0B]);
        gif.extend_from_slice(b"XMP DataXMP");
        gif.extend_from_slice(&[0x03, b'g', b'p', b's', 0x00]);
        gif.extend_from_slice(frame);
        gif.extend_from_slice(b";appended secret");
        // when it is stripped,
        let out = strip(&gif, Format::Gif, 1);
        // then only the header, the frame and the trailer remain.
        let mut want = b"GIF89a\x01\x00\x01\x00\x00\x00\x00".to_vec();
        want.extend_from_slice(frame);
        want.push(0x3B);
        assert_eq!(out, want);
        super::super::validate_structure(&out, Format::Gif).unwrap();
    }
}
