//! EXIF metadata: the few fields imghost stores, read with `kamadak-exif`.
//!
//! Files with a broken EXIF block still upload: whatever can be read is kept and the rest is
//! left empty. The readings agree with ExifTool's on the test photos (`tests/photos.rs`).

use exif::{In, Reader, Tag};
use serde::{Deserialize, Serialize};

use super::Format;

/// The metadata imghost keeps for an image. GPS is stored but never shown publicly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// EXIF orientation, 1 to 8; `None` when the file has no readable EXIF orientation.
    pub orientation: Option<u16>,
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
    /// DateTimeOriginal as written by the camera, in ISO 8601 form without an offset
    /// (`2008-05-30T15:56:01`), because EXIF records local time with no zone.
    pub taken_at: Option<String>,
    pub gps_lat: Option<f64>,
    pub gps_lon: Option<f64>,
}

impl Metadata {
    /// Orientation to apply when rendering; files without one are upright.
    pub fn effective_orientation(&self) -> u16 {
        self.orientation.filter(|o| (1..=8).contains(o)).unwrap_or(1)
    }
}

/// The largest EXIF block read. A JPEG cannot hold more in its APP1 segment; PNG and WebP could
/// carry megabytes, and the parser spends about 25 bytes of memory per byte of EXIF (measured by
/// the `exif` fuzz target), so a larger block is not read at all (it is stripped anyway).
pub const MAX_EXIF_BYTES: usize = 64 * 1024;

/// Finds the EXIF block (the TIFF data) the way browsers and cameras place it: the first APP1
/// `Exif` segment of a JPEG, the `eXIf` chunk of a PNG, the `EXIF` chunk of a WebP. Found by
/// our own walks, so the parser only ever sees that block.
fn exif_block(bytes: &[u8]) -> Option<&[u8]> {
    use super::jpeg::{Segment, Segments};
    let block = match super::sniff(bytes)? {
        Format::Jpeg => Segments::new(bytes).map_while(Result::ok).find_map(|s| match s {
            Segment::Marker { marker: 0xE1, payload, .. } => bytes[payload].strip_prefix(b"Exif\0\0"),
            _ => None,
        })?,
        Format::Png => {
            super::png::Chunks::new(bytes).map_while(Result::ok).find(|c| &c.kind == b"eXIf").map(|c| &bytes[c.data])?
        }
        Format::Webp => {
            let end = (u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?) as usize + 8).min(bytes.len());
            let chunk =
                super::webp::Chunks::new(bytes, 12..end).map_while(Result::ok).find(|c| &c.fourcc == b"EXIF")?;
            let payload = &bytes[chunk.payload];
            // Some writers keep JPEG's "Exif\0\0" prefix in the chunk.
            payload.strip_prefix(b"Exif\0\0").unwrap_or(payload)
        }
        Format::Gif | Format::Avif => return None,
    };
    (block.len() <= MAX_EXIF_BYTES).then_some(block)
}

/// Reads metadata from a JPEG, PNG or WebP container. Never fails: unreadable EXIF yields
/// empty metadata.
pub fn read(bytes: &[u8]) -> Metadata {
    let Some(block) = exif_block(bytes) else { return Metadata::default() };
    let mut reader = Reader::new();
    // Keep the fields that parse when others in the same block are malformed.
    reader.continue_on_error(true);
    let exif = match reader.read_raw(block.to_vec()) {
        Ok(exif) => exif,
        Err(exif::Error::PartialResult(partial)) => partial.into_inner().0,
        Err(_) => return Metadata::default(),
    };
    let text = |tag| {
        let field = exif.get_field(tag, In::PRIMARY)?;
        match &field.value {
            exif::Value::Ascii(parts) => {
                let raw = parts.first()?;
                let s = String::from_utf8_lossy(raw);
                let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
                (!s.is_empty()).then(|| s.to_owned())
            }
            _ => None,
        }
    };
    let orientation = exif
        .get_field(Tag::Orientation, In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .and_then(|o| u16::try_from(o).ok())
        .filter(|o| (1..=8).contains(o));
    let taken_at = text(Tag::DateTimeOriginal).and_then(|s| exif_datetime_to_iso(&s));
    let coord = |value_tag, ref_tag, negative: &[u8]| -> Option<f64> {
        let field = exif.get_field(value_tag, In::PRIMARY)?;
        let exif::Value::Rational(parts) = &field.value else { return None };
        if parts.len() < 3 || parts.iter().any(|r| r.denom == 0) {
            return None;
        }
        let deg = parts[0].to_f64() + parts[1].to_f64() / 60.0 + parts[2].to_f64() / 3600.0;
        let sign = match exif.get_field(ref_tag, In::PRIMARY).map(|f| &f.value) {
            Some(exif::Value::Ascii(v)) if v.first().and_then(|s| s.first()).is_some_and(|c| negative.contains(c)) => {
                -1.0
            }
            _ => 1.0,
        };
        deg.is_finite().then_some(sign * deg)
    };
    let gps_lat = coord(Tag::GPSLatitude, Tag::GPSLatitudeRef, b"Ss").filter(|v| v.abs() <= 90.0);
    let gps_lon = coord(Tag::GPSLongitude, Tag::GPSLongitudeRef, b"Ww").filter(|v| v.abs() <= 180.0);
    Metadata {
        orientation,
        camera_make: text(Tag::Make),
        camera_model: text(Tag::Model),
        taken_at,
        // A position is only meaningful with both halves.
        gps_lat: gps_lat.and(gps_lon).and(gps_lat),
        gps_lon: gps_lat.and(gps_lon),
    }
}

/// `2008:05:30 15:56:01` → `2008-05-30T15:56:01`; anything that is not a plausible date-time
/// (cameras write all zeros or blanks when the clock was never set) yields `None`.
fn exif_datetime_to_iso(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b':' || b[7] != b':' || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| {
        s.get(r.clone())?.parse::<u32>().ok().filter(|_| b[r].iter().all(u8::is_ascii_digit))
    };
    let (y, mo, d, h, mi, se) =
        (digits(0..4)?, digits(5..7)?, digits(8..10)?, digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if y == 0 || !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some(format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exif_datetimes_become_iso_or_nothing() {
        let cases = [
            ("2008:05:30 15:56:01", Some("2008-05-30T15:56:01")),
            ("2008:05:30 15:56:01\0", Some("2008-05-30T15:56:01")),
            ("0000:00:00 00:00:00", None),
            ("    :  :     :  :  ", None),
            ("2008-05-30 15:56:01", None),
            ("2008:13:30 15:56:01", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(exif_datetime_to_iso(input).as_deref(), want, "{input:?}");
        }
    }

    #[test]
    fn bytes_without_exif_give_empty_metadata() {
        assert_eq!(read(b"\xFF\xD8\xFF\xD9"), Metadata::default());
        assert_eq!(read(b"not an image"), Metadata::default());
    }

    #[test]
    fn an_exif_block_over_the_limit_is_not_read() {
        // Given a PNG whose eXIf chunk says orientation 6, once small and once padded past the
        // limit,
        let mut tiff = b"MM\0\x2A\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0".to_vec();
        let png_with = |tiff: &[u8]| {
            let mut png = super::super::png::SIGNATURE.to_vec();
            for (kind, data) in [(&b"IHDR"[..], &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0][..]), (b"eXIf", tiff)] {
                png.extend_from_slice(&(data.len() as u32).to_be_bytes());
                png.extend_from_slice(kind);
                png.extend_from_slice(data);
                png.extend_from_slice(&crc32fast::hash(&[kind, data].concat()).to_be_bytes());
            }
            png
        };
        // then the small one is read and the large one is not.
        assert_eq!(read(&png_with(&tiff)).orientation, Some(6));
        tiff.resize(MAX_EXIF_BYTES + 1, 0);
        assert_eq!(read(&png_with(&tiff)).orientation, None);
    }
}
