//! EXIF metadata: the few fields imghost stores, read with `kamadak-exif`.
//!
//! Files with a broken EXIF block still upload: whatever can be read is kept and the rest is
//! left empty. The readings agree with ExifTool's on the test photos (`tests/photos.rs`).

use std::io::Cursor;

use exif::{In, Reader, Tag};
use serde::{Deserialize, Serialize};

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

/// Reads metadata from a JPEG, PNG or WebP container. Never fails: unreadable EXIF yields
/// empty metadata.
pub fn read(bytes: &[u8]) -> Metadata {
    let mut reader = Reader::new();
    // Keep the fields that parse when others in the same block are malformed.
    reader.continue_on_error(true);
    let exif = match reader.read_from_container(&mut Cursor::new(bytes)) {
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
}
