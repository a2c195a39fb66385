//! The metadata matrix, end to end: PNG, WebP, JPEG and GIF files are generated with metadata
//! (EXIF with GPS taken from a real photo, XMP, IPTC, comments, text, unknown blocks) in every
//! position of their container and in upper/lower-case spellings of every chunk name or
//! identifier, uploaded to a real local server, and the served original and every variant are
//! read back and checked: by one batch run of ExifTool against a keep-list of groups and tags,
//! byte-wise for the canary string each payload carries, structurally against the format's
//! keep-list, and for pixels against the file before the metadata went in.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::files::{
    PNG_SIGNATURE, encode_with_image, gif_image_descriptor, gif_lzw, gif_screen, jpeg_segment, png_chunk, sub_blocks,
    zlib_stored,
};
use common::{Server, photos_dir};
use serde_json::Value;

const W: u32 = 48;
const H: u32 = 32;
const SIZES: [&str; 3] = ["small", "medium", "large"];
const VARIANT_TIMEOUT: Duration = Duration::from_secs(60);
/// Every canary starts with this; what follows names the payload (see [`Canaries`]).
const CANARY: &[u8] = b"CANARY~";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fmt {
    Png,
    Webp,
    Jpeg,
    Gif,
}

impl Fmt {
    fn ext(self) -> &'static str {
        match self {
            Fmt::Png => "png",
            Fmt::Webp => "webp",
            Fmt::Jpeg => "jpg",
            Fmt::Gif => "gif",
        }
    }

    fn mime(self) -> &'static str {
        match self {
            Fmt::Png => "image/png",
            Fmt::Webp => "image/webp",
            Fmt::Jpeg => "image/jpeg",
            Fmt::Gif => "image/gif",
        }
    }

    fn sniff(b: &[u8]) -> Option<Fmt> {
        if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Fmt::Jpeg)
        } else if b.starts_with(PNG_SIGNATURE) {
            Some(Fmt::Png)
        } else if b.starts_with(b"GIF8") {
            Some(Fmt::Gif)
        } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
            Some(Fmt::Webp)
        } else {
            None
        }
    }
}

/// Unique canary strings, each remembering which payload (format, position, spelling) holds it.
#[derive(Default)]
struct Canaries(Vec<String>);

impl Canaries {
    fn mint(&mut self, label: impl Into<String>) -> String {
        let canary = format!("{}{:05}~", std::str::from_utf8(CANARY).unwrap(), self.0.len());
        self.0.push(label.into());
        canary
    }

    /// The payloads whose canary occurs in `bytes` (an unreadable one is reported as such).
    fn found_in(&self, bytes: &[u8]) -> Vec<String> {
        let mut found = vec![];
        let mut i = 0;
        while let Some(k) = find(&bytes[i..], CANARY) {
            let at = i + k + CANARY.len();
            let n = bytes.get(at..at + 5).and_then(|d| std::str::from_utf8(d).ok()?.parse::<usize>().ok());
            found.push(match n.and_then(|n| self.0.get(n)) {
                Some(label) => format!("canary of {label}"),
                None => format!("canary fragment at byte {}", i + k),
            });
            i = at;
        }
        found
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One generated upload.
struct Case {
    /// File name stem, e.g. `png-after-IHDR-05`.
    name: String,
    fmt: Fmt,
    bytes: Vec<u8>,
    /// The pixels of the clean base before any metadata went in (first frame for animations).
    reference: image::RgbaImage,
    /// The file carries an ICC profile the keep-list keeps.
    icc: bool,
    /// What is in it, for messages.
    what: String,
}

// ---------------------------------------------------------------------------------------------
// Spellings
// ---------------------------------------------------------------------------------------------

/// Upper/lower-case spellings of `word`, generated rather than listed. A word of at most four
/// letters gets all 2^n of them. A longer one gets 16: as written, all lower, all upper, then
/// patterns where letter i is upper-case when bit (i mod 4) of the pattern is set.
fn spellings(word: &str) -> Vec<Vec<u8>> {
    let letters: Vec<usize> =
        word.bytes().enumerate().filter(|(_, c)| c.is_ascii_alphabetic()).map(|(i, _)| i).collect();
    let spell = |upper: &dyn Fn(usize) -> bool| -> Vec<u8> {
        let mut b = word.as_bytes().to_vec();
        for (n, &i) in letters.iter().enumerate() {
            b[i] = if upper(n) { b[i].to_ascii_uppercase() } else { b[i].to_ascii_lowercase() };
        }
        b
    };
    let mut out: Vec<Vec<u8>> = vec![];
    let mut push = |s: Vec<u8>| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    if letters.len() <= 4 {
        push(word.as_bytes().to_vec());
        for mask in 0..1usize << letters.len() {
            push(spell(&|n| mask & (1 << n) != 0));
        }
    } else {
        push(word.as_bytes().to_vec());
        push(spell(&|_| false));
        push(spell(&|_| true));
        for mask in 1..15usize {
            push(spell(&|n| mask & (1 << (n % 4)) != 0));
        }
        out.truncate(16);
    }
    out
}

/// Spelling `k` of `word` (cycling when it has fewer than `k + 1`).
fn spelling(word: &str, k: usize) -> Vec<u8> {
    let all = spellings(word);
    all[k % all.len()].clone()
}

fn fourcc(s: &[u8]) -> [u8; 4] {
    s.try_into().unwrap()
}

fn show(s: &[u8]) -> String {
    String::from_utf8_lossy(s).replace('\0', "\\0")
}

// ---------------------------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------------------------

/// The TIFF body of the EXIF block of a real GPS photo (maker notes, thumbnail and all).
fn photo_tiff() -> Vec<u8> {
    let photo = std::fs::read(photos_dir().join("gps/DSCN0010.jpg")).unwrap();
    let segs = jpeg_walk(&photo).unwrap();
    let app1 = segs.iter().find(|s| s.marker == 0xE1 && photo[s.payload.clone()].starts_with(b"Exif\0\0")).unwrap();
    photo[app1.payload.start + 6..app1.payload.end].to_vec()
}

/// The photo's EXIF with the canary as its ImageDescription (31 spaces in the photo) and the
/// given orientation.
fn exif_tiff(template: &[u8], canary: &str, orientation: u16) -> Vec<u8> {
    let mut t = template.to_vec();
    let at = t.windows(32).position(|w| w[..31].iter().all(|&c| c == b' ') && w[31] == 0).expect("ImageDescription");
    t[at..at + 31].copy_from_slice(format!("{canary:<31}").as_bytes());
    let le = &t[..2] == b"II";
    let u16_at = |t: &[u8], i: usize| {
        if le { u16::from_le_bytes([t[i], t[i + 1]]) } else { u16::from_be_bytes([t[i], t[i + 1]]) }
    };
    let ifd0 = if le {
        u32::from_le_bytes(t[4..8].try_into().unwrap())
    } else {
        u32::from_be_bytes(t[4..8].try_into().unwrap())
    } as usize;
    let entries = u16_at(&t, ifd0) as usize;
    let entry = (0..entries).map(|e| ifd0 + 2 + 12 * e).find(|&e| u16_at(&t, e) == 0x0112).expect("Orientation");
    let value = if le { orientation.to_le_bytes() } else { orientation.to_be_bytes() };
    t[entry + 8..entry + 10].copy_from_slice(&value);
    t
}

/// An XMP packet with GPS coordinates and a description holding the canary.
fn xmp(canary: &str) -> Vec<u8> {
    format!(
        "<?xpacket begin=\"\u{feff}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n\
         <x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n\
         <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n\
         <rdf:Description rdf:about=\"\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\" \
         xmlns:exif=\"http://ns.adobe.com/exif/1.0/\">\n\
         <exif:GPSLatitude>43,28.0469N</exif:GPSLatitude>\n\
         <exif:GPSLongitude>11,53.1076E</exif:GPSLongitude>\n\
         <dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">{canary} secret place</rdf:li></rdf:Alt></dc:description>\n\
         </rdf:Description>\n</rdf:RDF>\n</x:xmpmeta>\n<?xpacket end=\"w\"?>"
    )
    .into_bytes()
}

/// A Photoshop image resource block holding IPTC (resource 0x0404) with a caption.
fn iptc_irb(canary: &str) -> Vec<u8> {
    let caption = format!("{canary} caption");
    let mut iptc = vec![0x1C, 2, 0, 0, 2, 0, 4];
    iptc.extend_from_slice(&[0x1C, 2, 120]);
    iptc.extend_from_slice(&(caption.len() as u16).to_be_bytes());
    iptc.extend_from_slice(caption.as_bytes());
    let mut irb = b"8BIM".to_vec();
    irb.extend_from_slice(&0x0404u16.to_be_bytes());
    irb.extend_from_slice(&[0, 0]);
    irb.extend_from_slice(&(iptc.len() as u32).to_be_bytes());
    irb.extend_from_slice(&iptc);
    if iptc.len() % 2 == 1 {
        irb.push(0);
    }
    irb
}

/// A minimal ICC profile: a display RGB header and one tag (the media white point), followed by
/// `extra` bytes counted in its size.
fn icc_profile(extra: &[u8]) -> Vec<u8> {
    const D50: [u8; 12] = [0, 0, 0xF6, 0xD6, 0, 1, 0, 0, 0, 0, 0xD3, 0x2D];
    let mut p = vec![0u8; 128];
    p[8..12].copy_from_slice(&[2, 0x10, 0, 0]);
    p[12..16].copy_from_slice(b"mntr");
    p[16..20].copy_from_slice(b"RGB ");
    p[20..24].copy_from_slice(b"XYZ ");
    p[24..36].copy_from_slice(&[0x07, 0xE8, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5]);
    p[36..40].copy_from_slice(b"acsp");
    p[68..80].copy_from_slice(&D50);
    p.extend_from_slice(&1u32.to_be_bytes());
    p.extend_from_slice(b"wtpt");
    p.extend_from_slice(&144u32.to_be_bytes());
    p.extend_from_slice(&20u32.to_be_bytes());
    p.extend_from_slice(b"XYZ \0\0\0\0");
    p.extend_from_slice(&D50);
    p.extend_from_slice(extra);
    let size = p.len() as u32;
    p[0..4].copy_from_slice(&size.to_be_bytes());
    p
}

// ---------------------------------------------------------------------------------------------
// Containers: small writers and walkers
// ---------------------------------------------------------------------------------------------

/// Chunk types and data.
type PngChunks = Vec<([u8; 4], Vec<u8>)>;

/// A PNG's chunks after the signature, up to IEND, and the offset after IEND.
fn png_chunks(b: &[u8]) -> Result<(PngChunks, usize), String> {
    if !b.starts_with(PNG_SIGNATURE) {
        return Err("no PNG signature".into());
    }
    let mut i = PNG_SIGNATURE.len();
    let mut out = vec![];
    while i + 12 <= b.len() {
        let len = u32::from_be_bytes(b[i..i + 4].try_into().unwrap()) as usize;
        let kind = fourcc(&b[i + 4..i + 8]);
        let end = i + 12 + len;
        if end > b.len() {
            return Err(format!("chunk {} runs past the end", show(&kind)));
        }
        out.push((kind, b[i + 8..i + 8 + len].to_vec()));
        i = end;
        if &kind == b"IEND" {
            return Ok((out, i));
        }
    }
    Err("no IEND".into())
}

fn webp_chunk(fourcc: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = fourcc.to_vec();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    if payload.len() % 2 == 1 {
        out.push(0);
    }
    out
}

fn riff(body: &[u8]) -> Vec<u8> {
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32 + 4).to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend_from_slice(body);
    out
}

/// FourCCs and payload ranges.
type WebpChunks = Vec<([u8; 4], std::ops::Range<usize>)>;

/// The chunks in `b[range]`: FourCC and payload range.
fn webp_chunks(b: &[u8], range: std::ops::Range<usize>) -> Result<WebpChunks, String> {
    let mut out = vec![];
    let mut i = range.start;
    while i < range.end {
        if i + 8 > range.end {
            return Err(format!("a chunk header is cut short at {i}"));
        }
        let size = u32::from_le_bytes(b[i + 4..i + 8].try_into().unwrap()) as usize;
        if i + 8 + size > range.end {
            return Err(format!("chunk {} runs past its container", show(&b[i..i + 4])));
        }
        out.push((fourcc(&b[i..i + 4]), i + 8..i + 8 + size));
        i += 8 + size + (size & 1);
    }
    Ok(out)
}

fn le24(v: u32) -> [u8; 3] {
    let b = v.to_le_bytes();
    [b[0], b[1], b[2]]
}

fn vp8x(flags: u8, w: u32, h: u32) -> Vec<u8> {
    let mut p = vec![flags, 0, 0, 0];
    p.extend_from_slice(&le24(w - 1));
    p.extend_from_slice(&le24(h - 1));
    webp_chunk(b"VP8X", &p)
}

/// One JPEG segment: marker, offset of its 0xFF, payload (after the length), and its end (for a
/// scan, the end of its entropy-coded data).
#[derive(Debug, Clone)]
struct Seg {
    marker: u8,
    start: usize,
    payload: std::ops::Range<usize>,
    end: usize,
}

/// The segments of a JPEG after SOI, up to and including EOI (whose `end` is where the image
/// ends). Strict: bytes between segments are an error.
fn jpeg_walk(b: &[u8]) -> Result<Vec<Seg>, String> {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return Err("no SOI".into());
    }
    let mut out = vec![];
    let mut i = 2;
    loop {
        if i + 1 >= b.len() {
            return Err("the JPEG ends before EOI".into());
        }
        if b[i] != 0xFF {
            return Err(format!("stray byte {:#04x} at {i}", b[i]));
        }
        let m = b[i + 1];
        if m == 0xFF {
            i += 1;
            continue;
        }
        if m == 0xD9 || (0xD0..=0xD7).contains(&m) || m == 0x01 {
            out.push(Seg { marker: m, start: i, payload: i + 2..i + 2, end: i + 2 });
            i += 2;
            if m == 0xD9 {
                return Ok(out);
            }
            continue;
        }
        let len = b.get(i + 2..i + 4).map(|l| u16::from_be_bytes([l[0], l[1]]) as usize).ok_or("cut short")?;
        let end = i + 2 + len;
        if len < 2 || end > b.len() {
            return Err(format!("segment {m:#04x} at {i} runs past the end"));
        }
        let mut seg = Seg { marker: m, start: i, payload: i + 4..end, end };
        if m == 0xDA {
            let mut j = end;
            loop {
                if j + 1 >= b.len() {
                    return Err("a scan runs to the end of the file".into());
                }
                if b[j] == 0xFF && b[j + 1] != 0 && !(0xD0..=0xD7).contains(&b[j + 1]) {
                    break;
                }
                j += 1;
            }
            seg.end = j;
        }
        i = seg.end;
        out.push(seg);
    }
}

fn gif_app(id: &[u8], data_blocks: &[u8]) -> Vec<u8> {
    assert_eq!(id.len(), 11);
    let mut out = vec![0x21, 0xFF, 11];
    out.extend_from_slice(id);
    out.extend_from_slice(data_blocks);
    out
}

/// Introducer or extension label, and range.
type GifBlocks = Vec<(u8, std::ops::Range<usize>)>;

/// GIF blocks: (introducer or extension label, range) after the screen and global table, and
/// the offset after the trailer.
fn gif_blocks(b: &[u8]) -> Result<(GifBlocks, usize), String> {
    if b.len() < 13 {
        return Err("GIF header cut short".into());
    }
    let table = if b[10] & 0x80 != 0 { 3usize << ((b[10] & 7) + 1) } else { 0 };
    let mut i = 13 + table;
    let mut out = vec![];
    let skip = |mut j: usize| -> Result<usize, String> {
        loop {
            let n = *b.get(j).ok_or("sub-blocks cut short")? as usize;
            j += 1 + n;
            if n == 0 {
                return Ok(j);
            }
        }
    };
    loop {
        match b.get(i) {
            Some(0x3B) => return Ok((out, i + 1)),
            Some(0x21) => {
                let label = *b.get(i + 1).ok_or("extension cut short")?;
                let end = skip(i + 2)?;
                out.push((label, i..end));
                i = end;
            }
            Some(0x2C) => {
                let flags = *b.get(i + 9).ok_or("frame cut short")?;
                let table = if flags & 0x80 != 0 { 3usize << ((flags & 7) + 1) } else { 0 };
                let end = skip(i + 10 + table + 1)?;
                out.push((0x2C, i..end));
                i = end;
            }
            other => return Err(format!("unexpected block {other:?} at {i}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Base images
// ---------------------------------------------------------------------------------------------

/// A 48x32 picture, different for every `seed` (one pixel), with partial transparency when
/// `alpha` is set.
fn picture(seed: usize, alpha: bool) -> image::RgbaImage {
    let mut img = image::RgbaImage::from_fn(W, H, |x, y| {
        let a = if alpha { 120 + ((x * 4 + y * 2) % 136) as u8 } else { 255 };
        image::Rgba([(x * 5) as u8, (y * 7) as u8, ((x ^ y) * 3) as u8, a])
    });
    let (x, y) = ((seed as u32 * 7) % W, (seed as u32 / W) % H);
    img.put_pixel(x, y, image::Rgba([seed as u8, 255 - seed as u8, 99, 255]));
    img
}

fn decode(bytes: &[u8]) -> Result<image::RgbaImage, String> {
    image::load_from_memory(bytes).map(|i| i.to_rgba8()).map_err(|e| e.to_string())
}

fn jpeg_base(img: &image::RgbImage, progressive: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = jpeg_encoder::Encoder::new(&mut out, 90);
    e.set_progressive(progressive);
    e.encode(img.as_raw(), img.width() as u16, img.height() as u16, jpeg_encoder::ColorType::Rgb).unwrap();
    out
}

// ---------------------------------------------------------------------------------------------
// The matrix
// ---------------------------------------------------------------------------------------------

const PNG_NAMES: [&str; 6] = ["eXIf", "tEXt", "zTXt", "iTXt", "tIME", "prVt"];
const PNG_POSITIONS: [&str; 4] = ["after-IHDR", "between-IDAT", "after-last-IDAT", "after-IEND"];

/// PNG: for each of the 16 spellings and each position, one file with every metadata chunk
/// (each name in that spelling) at that position. The image data is split into three IDAT
/// chunks; files with metadata after IHDR also carry an iCCP chunk whose profile name is a
/// canary.
fn png_cases(c: &mut Canaries, tiff: &[u8], seed: &mut usize) -> Vec<Case> {
    let mut cases = vec![];
    for (p, position) in PNG_POSITIONS.iter().enumerate() {
        for k in 0..16 {
            *seed += 1;
            let alpha = k % 2 == 1;
            let pic = picture(*seed, alpha);
            let dynamic = if alpha {
                image::DynamicImage::ImageRgba8(pic.clone())
            } else {
                image::DynamicImage::ImageRgb8(image::DynamicImage::ImageRgba8(pic.clone()).to_rgb8())
            };
            let base = encode_with_image(dynamic, image::ImageFormat::Png);
            let reference = decode(&base).unwrap();
            let (chunks, _) = png_chunks(&base).unwrap();
            let idat: Vec<u8> = chunks.iter().filter(|(k, _)| k == b"IDAT").flat_map(|(_, d)| d.clone()).collect();
            let third = idat.len().div_ceil(3);
            let names: Vec<[u8; 4]> = PNG_NAMES.iter().map(|n| fourcc(&spelling(n, k))).collect();
            let label = |n: &[u8; 4], what: &str| format!("png {position} {} ({what})", show(n));
            let mut items = vec![];
            let exif = c.mint(label(&names[0], "EXIF with GPS"));
            items.extend(png_chunk(&names[0], &exif_tiff(tiff, &exif, 1)));
            let text = c.mint(label(&names[1], "Comment"));
            items.extend(png_chunk(&names[1], format!("Comment\0{text} a comment").as_bytes()));
            let ztxt = c.mint(label(&names[2], "Description"));
            let mut z = b"Description\0\0".to_vec();
            z.extend(zlib_stored(format!("{ztxt} a description").as_bytes()));
            items.extend(png_chunk(&names[2], &z));
            let itxt_xmp = c.mint(label(&names[3], "XMP"));
            let mut x = b"XML:com.adobe.xmp\0\0\0\0\0".to_vec();
            x.extend(xmp(&itxt_xmp));
            items.extend(png_chunk(&names[3], &x));
            let itxt = c.mint(label(&names[3], "Comment"));
            items.extend(png_chunk(&names[3], format!("Comment\0\0\0en\0Comment\0{itxt} international").as_bytes()));
            items.extend(png_chunk(&names[4], &[0x07, 0xE8, 5, 6, 7, 8, 9]));
            let unknown = c.mint(label(&names[5], "unknown"));
            items.extend(png_chunk(&names[5], unknown.as_bytes()));

            let mut b = PNG_SIGNATURE.to_vec();
            b.extend(png_chunk(b"IHDR", &chunks[0].1));
            let icc = *position == "after-IHDR";
            if icc {
                let name = c.mint(format!("png {position} iCCP profile name"));
                let mut iccp = name.into_bytes();
                iccp.extend_from_slice(&[0, 0]);
                iccp.extend(zlib_stored(&icc_profile(b"")));
                b.extend(png_chunk(b"iCCP", &iccp));
            }
            if p == 0 {
                b.extend_from_slice(&items);
            }
            for (n, part) in idat.chunks(third.max(1)).enumerate() {
                if n == 1 && p == 1 {
                    b.extend_from_slice(&items);
                }
                b.extend(png_chunk(b"IDAT", part));
            }
            if p == 2 {
                b.extend_from_slice(&items);
            }
            b.extend(png_chunk(b"IEND", b""));
            if p == 3 {
                b.extend_from_slice(&items);
            }
            let spelled: Vec<String> = names.iter().map(|n| show(n)).collect();
            cases.push(Case {
                name: format!("png-{position}-{k:02}"),
                fmt: Fmt::Png,
                bytes: b,
                reference,
                icc,
                what: format!("PNG {}, {position}: {}", if alpha { "RGBA" } else { "RGB" }, spelled.join(" ")),
            });
        }
    }
    cases
}

const WEBP_POSITIONS: [&str; 5] =
    ["after-VP8X", "after-image-chunk", "simple-after-image-chunk", "inside-ANMF", "after-RIFF-body"];

/// WebP: for each of the 16 spellings of EXIF (and the 8 of "XMP ", repeated) and each
/// position, one file with an EXIF, an XMP and an unknown chunk at that position. Positions:
/// after VP8X (behind an ICCP chunk), after the image chunk of an extended file, after the
/// image chunk of a simple (VP8L only) file, inside both frames of a two-frame animation (after
/// the first frame's bitstream, before the second's), and after the RIFF body.
fn webp_cases(c: &mut Canaries, tiff: &[u8], seed: &mut usize) -> Vec<Case> {
    let mut cases = vec![];
    for position in WEBP_POSITIONS {
        for k in 0..16 {
            *seed += 1;
            let alpha = k % 2 == 1;
            let pic = picture(*seed, alpha);
            let dynamic = if alpha {
                image::DynamicImage::ImageRgba8(pic.clone())
            } else {
                image::DynamicImage::ImageRgb8(image::DynamicImage::ImageRgba8(pic.clone()).to_rgb8())
            };
            let simple = encode_with_image(dynamic, image::ImageFormat::WebP);
            let reference = decode(&simple).unwrap();
            let (kind, payload) = webp_chunks(&simple, 12..simple.len()).unwrap().remove(0);
            assert_eq!(&kind, b"VP8L");
            let vp8l_chunk = webp_chunk(b"VP8L", &simple[payload]);
            let exif_name = fourcc(&spelling("EXIF", k));
            let xmp_name = fourcc(&spelling("XMP ", k));
            let unknown_name = fourcc(&spelling("cnry", k));
            let items = |c: &mut Canaries, at: &str| {
                let label = |n: &[u8; 4], what: &str| format!("webp {at} {} ({what})", show(n));
                let mut items = vec![];
                let e = c.mint(label(&exif_name, "EXIF with GPS"));
                items.extend(webp_chunk(&exif_name, &exif_tiff(tiff, &e, 1)));
                let x = c.mint(label(&xmp_name, "XMP"));
                items.extend(webp_chunk(&xmp_name, &xmp(&x)));
                let u = c.mint(label(&unknown_name, "unknown"));
                items.extend(webp_chunk(&unknown_name, u.as_bytes()));
                items
            };
            let alpha_flag = if alpha { 0x10 } else { 0 };
            let mut icc = false;
            let b = match position {
                "after-VP8X" => {
                    icc = true;
                    let mut body = vp8x(0x20 | 0x08 | 0x04 | alpha_flag, W, H);
                    body.extend(webp_chunk(b"ICCP", &icc_profile(b"")));
                    body.extend(items(c, position));
                    body.extend(&vp8l_chunk);
                    riff(&body)
                }
                "after-image-chunk" => {
                    let mut body = vp8x(0x08 | 0x04 | alpha_flag, W, H);
                    body.extend(&vp8l_chunk);
                    body.extend(items(c, position));
                    riff(&body)
                }
                "simple-after-image-chunk" => {
                    let mut body = vp8l_chunk.clone();
                    body.extend(items(c, position));
                    riff(&body)
                }
                "inside-ANMF" => {
                    let mut body = vp8x(0x08 | 0x04 | 0x02 | alpha_flag, W, H);
                    body.extend(webp_chunk(b"ANIM", &[0, 0, 0, 0, 0, 0]));
                    // Frame 1 covers the canvas and is not blended, so the first frame shows
                    // exactly the picture; frame 2 is a patch.
                    let mut f1 = [le24(0), le24(0), le24(W - 1), le24(H - 1), le24(100)].concat();
                    f1.push(0x02);
                    f1.extend(&vp8l_chunk);
                    f1.extend(items(c, "inside-ANMF-1-after-bitstream"));
                    body.extend(webp_chunk(b"ANMF", &f1));
                    let patch = image::RgbaImage::from_pixel(16, 16, image::Rgba([200, 30, 30, 255]));
                    let patch = encode_with_image(image::DynamicImage::ImageRgba8(patch), image::ImageFormat::WebP);
                    let mut f2 = [le24(4), le24(4), le24(15), le24(15), le24(100)].concat();
                    f2.push(0x02);
                    f2.extend(items(c, "inside-ANMF-2-before-bitstream"));
                    f2.extend_from_slice(&patch[12..]);
                    body.extend(webp_chunk(b"ANMF", &f2));
                    riff(&body)
                }
                "after-RIFF-body" => {
                    let mut body = vp8x(0x08 | 0x04 | alpha_flag, W, H);
                    body.extend(&vp8l_chunk);
                    let mut b = riff(&body);
                    b.extend(items(c, position));
                    b
                }
                _ => unreachable!(),
            };
            cases.push(Case {
                name: format!("webp-{position}-{k:02}"),
                fmt: Fmt::Webp,
                bytes: b,
                reference,
                icc,
                what: format!(
                    "WebP lossless {}, {position}: {} {} {}",
                    if alpha { "RGBA" } else { "RGB" },
                    show(&exif_name),
                    show(&xmp_name),
                    show(&unknown_name)
                ),
            });
        }
    }
    cases
}

const JPEG_POSITIONS: [&str; 6] =
    ["after-SOI", "between-DQT-tables", "after-SOF", "before-SOS", "between-scans", "after-EOI"];

/// JPEG: for each of 16 spellings of every identifier and each position, one file with EXIF
/// (APP1 "Exif\0\0"), XMP (APP1 "http://ns.adobe.com/xap/1.0/\0"), IPTC (APP13 "Photoshop
/// 3.0\0"), a JFIF header with trailing data (APP0), a vendor block (APP15), an Adobe block with
/// trailing data (APP14), a multi-picture block (APP2 "MPF"), a Ducky block (APP12), a JUMBF box
/// (APP11 "JP") and a comment (COM) at that position; files with metadata after SOI also carry
/// an ICC profile (APP2 "ICC_PROFILE\0" in the same spelling), and files with metadata after SOF
/// also stray bytes between segments. The base is baseline (progressive for "between scans").
/// EXIF says orientation 6 in every other position.
fn jpeg_cases(c: &mut Canaries, tiff: &[u8], seed: &mut usize) -> Vec<Case> {
    let mut cases = vec![];
    for (p, position) in JPEG_POSITIONS.iter().enumerate() {
        for k in 0..16 {
            *seed += 1;
            let pic = image::DynamicImage::ImageRgba8(picture(*seed, false)).to_rgb8();
            let base = jpeg_base(&pic, *position == "between-scans");
            let reference = decode(&base).unwrap();
            let segs = jpeg_walk(&base).unwrap();
            let at = match *position {
                "after-SOI" => 2,
                "between-DQT-tables" => segs.iter().find(|s| s.marker == 0xDB).unwrap().end,
                "after-SOF" => segs.iter().find(|s| matches!(s.marker, 0xC0 | 0xC2)).unwrap().end,
                "before-SOS" => segs.iter().find(|s| s.marker == 0xDA).unwrap().start,
                "between-scans" => segs.iter().find(|s| s.marker == 0xDA).unwrap().end,
                _ => base.len(),
            };
            let orientation = if p % 2 == 0 { 6 } else { 1 };
            let ids: Vec<Vec<u8>> = [
                "Exif",
                "http://ns.adobe.com/xap/1.0/",
                "Photoshop 3.0",
                "JFIF",
                "Vendor",
                "Adobe",
                "MPF",
                "Ducky",
                "JP",
            ]
            .iter()
            .map(|w| spelling(w, k))
            .collect();
            let label = |marker: &str, id: &[u8]| format!("jpeg {position} {marker} {}", show(id));
            let mut items = vec![];
            let mut icc = false;
            if p == 0 {
                let id = spelling("ICC_PROFILE", k);
                icc = id == b"ICC_PROFILE";
                let mut app2 = id;
                app2.extend_from_slice(&[0, 1, 1]);
                app2.extend(icc_profile(b""));
                items.extend(jpeg_segment(0xE2, &app2));
            }
            let e = c.mint(label("APP1", &ids[0]));
            items.extend(jpeg_segment(0xE1, &[&ids[0][..], b"\0\0", &exif_tiff(tiff, &e, orientation)].concat()));
            let x = c.mint(label("APP1", &ids[1]));
            items.extend(jpeg_segment(0xE1, &[&ids[1][..], b"\0", &xmp(&x)].concat()));
            let i = c.mint(label("APP13", &ids[2]));
            items.extend(jpeg_segment(0xED, &[&ids[2][..], b"\0", &iptc_irb(&i)].concat()));
            let j = c.mint(label("APP0", &ids[3]));
            items.extend(jpeg_segment(0xE0, &[&ids[3][..], b"\0\x01\x02\x01\0\x48\0\x48\0\0", j.as_bytes()].concat()));
            let v = c.mint(label("APP15", &ids[4]));
            items.extend(jpeg_segment(0xEF, &[&ids[4][..], b"\0", v.as_bytes()].concat()));
            let a = c.mint(label("APP14", &ids[5]));
            items.extend(jpeg_segment(0xEE, &[&ids[5][..], b"\0\x64\0\0\0\0\x01", a.as_bytes()].concat()));
            let mpf = c.mint(label("APP2", &ids[6]));
            items.extend(jpeg_segment(
                0xE2,
                &[&ids[6][..], b"\0MM\0\x2A\0\0\0\x08\0\0\0\0\0\0", mpf.as_bytes()].concat(),
            ));
            let ducky = c.mint(label("APP12", &ids[7]));
            items.extend(jpeg_segment(0xEC, &[&ids[7][..], b"\0\x01\0\x04\0\0\0\x50\0\0", ducky.as_bytes()].concat()));
            let jumbf = c.mint(label("APP11", &ids[8]));
            items.extend(jpeg_segment(0xEB, &[&ids[8][..], b"\0\x01\0\0\0\x01", jumbf.as_bytes()].concat()));
            let m = c.mint(format!("jpeg {position} COM"));
            let comment_word = spelling("Comment", k);
            items.extend(jpeg_segment(0xFE, &[&comment_word[..], b": ", m.as_bytes()].concat()));
            if *position == "after-SOF" {
                // Bytes between segments that belong to none (libjpeg skips them with a warning).
                let stray = c.mint(format!("jpeg {position} stray bytes between segments"));
                items.extend_from_slice(stray.as_bytes());
            }
            let mut b = base[..at].to_vec();
            b.extend(items);
            b.extend_from_slice(&base[at..]);
            let spelled: Vec<String> = ids.iter().map(|i| show(i)).collect();
            cases.push(Case {
                name: format!("jpeg-{position}-{k:02}"),
                fmt: Fmt::Jpeg,
                bytes: b,
                reference,
                icc,
                what: format!("JPEG, {position}, orientation {orientation}: {}", spelled.join(" | ")),
            });
        }
    }
    cases
}

const GIF_POSITIONS: [&str; 4] = ["before-first-frame", "between-frames", "after-last-frame", "after-trailer"];

/// GIF: for each of 16 spellings of every application identifier and each position, one
/// two-frame animated GIF with a comment, a plain text block, XMP ("XMP DataXMP"), an ICC
/// profile ("ICCRGBG1012"), Photoshop IPTC ("MGK8BIM0000") and two more loop blocks with an
/// extra data sub-block ("NETSCAPE2.0", "ANIMEXTS1.0") at that position.
fn gif_cases(c: &mut Canaries, seed: &mut usize) -> Vec<Case> {
    let mut cases = vec![];
    for (p, position) in GIF_POSITIONS.iter().enumerate() {
        for k in 0..16 {
            *seed += 1;
            let ids: Vec<Vec<u8>> = ["XMP DataXMP", "ICCRGBG1012", "NETSCAPE2.0", "MGK8BIM0000", "ANIMEXTS1.0"]
                .iter()
                .map(|w| spelling(w, k))
                .collect();
            let label = |what: &str| format!("gif {position} {what}");
            let mut items = vec![];
            let cm = c.mint(label("comment"));
            items.extend([0x21, 0xFE]);
            items.extend(sub_blocks(format!("{} {cm}", show(&spelling("Comment", k))).as_bytes()));
            let pt = c.mint(label("plain text"));
            items.extend([0x21, 0x01, 12, 0, 0, 0, 0, 48, 0, 16, 0, 8, 16, 1, 0]);
            items.extend(sub_blocks(pt.as_bytes()));
            let x = c.mint(label(&show(&ids[0])));
            // XMP is written raw, followed by its 258-byte "magic trailer" of sub-block lengths.
            let mut magic = vec![1u8];
            magic.extend((0..=255u8).rev());
            magic.push(0);
            items.extend(gif_app(&ids[0], &[xmp(&x), magic].concat()));
            let i = c.mint(label(&show(&ids[1])));
            items.extend(gif_app(&ids[1], &sub_blocks(&icc_profile(i.as_bytes()))));
            let n = c.mint(label(&show(&ids[2])));
            items.extend(gif_app(&ids[2], &[&[3u8, 1, 7, 0][..], &sub_blocks(n.as_bytes())].concat()));
            let m = c.mint(label(&show(&ids[3])));
            items.extend(gif_app(&ids[3], &sub_blocks(&iptc_irb(&m))));
            let a = c.mint(label(&show(&ids[4])));
            items.extend(gif_app(&ids[4], &[&[3u8, 1, 9, 0][..], &sub_blocks(a.as_bytes())].concat()));

            let mut palette = vec![];
            for i in 0..=255u8 {
                palette.extend_from_slice(&[i, 255 - i, i.wrapping_mul(7)]);
            }
            let frame1: Vec<u8> = (0..W * H).map(|i| ((i * 5 + (i / W) * 3) as usize + *seed) as u8).collect();
            let mut b = gif_screen(W as u16, H as u16, 0xF7, &palette);
            b.extend(gif_app(b"NETSCAPE2.0", &[3, 1, 0, 0, 0]));
            if p == 0 {
                b.extend_from_slice(&items);
            }
            b.extend_from_slice(&[0x21, 0xF9, 4, 0x04, 10, 0, 0, 0]);
            b.extend(gif_image_descriptor(0, 0, W as u16, H as u16, 0));
            b.extend(gif_lzw(&frame1));
            if p == 1 {
                b.extend_from_slice(&items);
            }
            b.extend_from_slice(&[0x21, 0xF9, 4, 0x04, 10, 0, 0, 0]);
            b.extend(gif_image_descriptor(8, 8, 16, 16, 0));
            b.extend(gif_lzw(&[200u8; 256]));
            if p == 2 {
                b.extend_from_slice(&items);
            }
            b.push(0x3B);
            if p == 3 {
                b.extend_from_slice(&items);
            }
            let clean: Vec<u8> = {
                // The same GIF without the metadata, for the reference pixels.
                let (blocks, _) = gif_blocks(&b).unwrap();
                let mut clean = b[..13 + 768].to_vec();
                for (label, range) in blocks {
                    if matches!(label, 0x2C | 0xF9)
                        || (label == 0xFF
                            && &b[range.start + 3..range.start + 14] == b"NETSCAPE2.0"
                            && range.len() == 19)
                    {
                        clean.extend_from_slice(&b[range]);
                    }
                }
                clean.push(0x3B);
                clean
            };
            let reference = decode(&clean).unwrap();
            let spelled: Vec<String> = ids.iter().map(|i| show(i)).collect();
            cases.push(Case {
                name: format!("gif-{position}-{k:02}"),
                fmt: Fmt::Gif,
                bytes: b,
                reference,
                icc: false,
                what: format!("GIF two frames, {position}: {}", spelled.join(" | ")),
            });
        }
    }
    cases
}

// ---------------------------------------------------------------------------------------------
// Checks of served files
// ---------------------------------------------------------------------------------------------

/// Structural keep-list of a served file: only the chunks, segments or blocks the format's
/// keep-list allows, and nothing after the end of the image. `variant`: a file the variant
/// encoders wrote (a JPEG variant has its JFIF header).
fn structure_problems(b: &[u8], variant: bool) -> Vec<String> {
    let mut problems = vec![];
    match Fmt::sniff(b) {
        Some(Fmt::Png) => match png_chunks(b) {
            Ok((chunks, end)) => {
                const KEEP: [&[u8; 4]; 13] = [
                    b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"cICP", b"acTL",
                    b"fcTL", b"fdAT",
                ];
                for (kind, data) in &chunks {
                    if !KEEP.contains(&kind) {
                        problems.push(format!("PNG chunk {} kept", show(kind)));
                    }
                    if kind == b"iCCP" && !data.starts_with(b"ICC profile\0") {
                        problems.push("iCCP profile name kept".into());
                    }
                }
                if end != b.len() {
                    problems.push(format!("{} bytes after IEND", b.len() - end));
                }
            }
            Err(e) => problems.push(format!("PNG unreadable: {e}")),
        },
        Some(Fmt::Webp) => {
            let riff_end = u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize + 8;
            if riff_end != b.len() {
                problems.push(format!("RIFF body ends at {riff_end}, file at {}", b.len()));
            }
            match webp_chunks(b, 12..riff_end.min(b.len())) {
                Ok(chunks) => {
                    for (kind, payload) in chunks {
                        match &kind {
                            b"VP8X" => {
                                if b[payload.start] & !0x32 != 0 {
                                    problems.push(format!("VP8X flags {:#04x}", b[payload.start]));
                                }
                            }
                            b"ANMF" => match webp_chunks(b, payload.start + 16..payload.end) {
                                Ok(inner) => {
                                    for (k, _) in inner {
                                        if !matches!(&k, b"ALPH" | b"VP8 " | b"VP8L") {
                                            problems.push(format!("chunk {} kept inside ANMF", show(&k)));
                                        }
                                    }
                                }
                                Err(e) => problems.push(format!("ANMF unreadable: {e}")),
                            },
                            b"VP8 " | b"VP8L" | b"ALPH" | b"ANIM" | b"ICCP" => {}
                            other => problems.push(format!("WebP chunk {} kept", show(other))),
                        }
                    }
                }
                Err(e) => problems.push(format!("WebP unreadable: {e}")),
            }
        }
        Some(Fmt::Jpeg) => match jpeg_walk(b) {
            Ok(segs) => {
                for s in &segs {
                    let p = &b[s.payload.clone()];
                    let ok = match s.marker {
                        0xC0..=0xC2 | 0xC4 | 0xDB | 0xDD | 0xDA | 0xD0..=0xD7 | 0xD9 => true,
                        0xE2 => p.starts_with(b"ICC_PROFILE\0"),
                        0xEE => p.len() == 12 && p.starts_with(b"Adobe"),
                        0xE1 => p.len() == 6 + 8 + 2 + 12 + 4 && p.starts_with(b"Exif\0\0"),
                        0xE0 => variant && p.len() == 14 && p.starts_with(b"JFIF\0"),
                        _ => false,
                    };
                    if !ok {
                        problems.push(format!("JPEG segment {:#04x} ({}) kept", s.marker, show(&p[..p.len().min(12)])));
                    }
                }
                let end = segs.last().map_or(0, |s| s.end);
                if end != b.len() {
                    problems.push(format!("{} bytes after EOI", b.len() - end));
                }
            }
            Err(e) => problems.push(format!("JPEG unreadable: {e}")),
        },
        Some(Fmt::Gif) => match gif_blocks(b) {
            Ok((blocks, end)) => {
                for (label, range) in blocks {
                    let block = &b[range];
                    let ok = match label {
                        0x2C => true,
                        0xF9 => block.len() == 8,
                        0xFF => block.len() == 19 && &block[3..14] == b"NETSCAPE2.0",
                        _ => false,
                    };
                    if !ok {
                        problems.push(format!("GIF block {label:#04x} ({}) kept", show(&block[..block.len().min(14)])));
                    }
                }
                if end != b.len() {
                    problems.push(format!("{} bytes after the trailer", b.len() - end));
                }
            }
            Err(e) => problems.push(format!("GIF unreadable: {e}")),
        },
        None => problems.push("not an image".into()),
    }
    problems
}

/// The ExifTool keep-list: the groups and tags a served file may show. `original`: the served
/// original (not a variant); `icc`: the upload carried a profile the keep-list keeps;
/// `orientation`: what the API says the upload's EXIF orientation is.
fn exiftool_allows(key: &str, value: &Value, served: Fmt, original: bool, icc: bool, orientation: u16) -> bool {
    let Some((group, tag)) = key.split_once(':') else { return key == "SourceFile" };
    match group {
        "System" => true,
        "ExifTool" => tag == "ExifToolVersion",
        "File" => {
            matches!(
                tag,
                "FileType"
                    | "FileTypeExtension"
                    | "MIMEType"
                    | "ImageWidth"
                    | "ImageHeight"
                    | "EncodingProcess"
                    | "BitsPerSample"
                    | "ColorComponents"
                    | "YCbCrSubSampling"
            ) || (tag == "ExifByteOrder" && served == Fmt::Jpeg && original && orientation > 1)
        }
        "Composite" => matches!(tag, "ImageSize" | "Megapixels"),
        "PNG" => {
            served == Fmt::Png
                && (matches!(
                    tag,
                    "ImageWidth"
                        | "ImageHeight"
                        | "BitDepth"
                        | "ColorType"
                        | "Compression"
                        | "Filter"
                        | "Interlace"
                        | "Gamma"
                        | "WhitePointX"
                        | "WhitePointY"
                        | "RedX"
                        | "RedY"
                        | "GreenX"
                        | "GreenY"
                        | "BlueX"
                        | "BlueY"
                        | "SRGBRendering"
                        | "AnimationFrames"
                        | "AnimationPlays"
                ) || (tag == "ProfileName" && original && icc && value == "ICC profile"))
        }
        "RIFF" => {
            served == Fmt::Webp
                && matches!(
                    tag,
                    "VP8Version"
                        | "ImageWidth"
                        | "ImageHeight"
                        | "HorizontalScale"
                        | "VerticalScale"
                        | "WebP_Flags"
                        | "AlphaPreprocessing"
                        | "AlphaFiltering"
                        | "AlphaCompression"
                        | "BackgroundColor"
                        | "AnimationLoopCount"
                        | "Duration"
                )
        }
        "GIF" => {
            served == Fmt::Gif
                && matches!(
                    tag,
                    "GIFVersion"
                        | "ImageWidth"
                        | "ImageHeight"
                        | "HasColorMap"
                        | "ColorResolutionDepth"
                        | "BitsPerPixel"
                        | "BackgroundColor"
                        | "AnimationIterations"
                        | "FrameCount"
                        | "Duration"
                        | "TransparentColor"
                )
        }
        "JFIF" => {
            served == Fmt::Jpeg
                && !original
                && matches!(tag, "JFIFVersion" | "ResolutionUnit" | "XResolution" | "YResolution")
        }
        // The rebuilt orientation block: the one EXIF tag an original may keep.
        "IFD0" => served == Fmt::Jpeg && original && tag == "Orientation" && orientation > 1 && value == orientation,
        "Adobe" => {
            served == Fmt::Jpeg
                && original
                && matches!(tag, "DCTEncodeVersion" | "APP14Flags0" | "APP14Flags1" | "ColorTransform")
        }
        g if g.starts_with("ICC") => original && icc,
        _ => false,
    }
}

/// Runs ExifTool once over `files` and returns its reading of each, by path.
fn exiftool(files: &[PathBuf], dir: &Path) -> BTreeMap<PathBuf, serde_json::Map<String, Value>> {
    let args = dir.join("exiftool.args");
    let list: String = files.iter().map(|f| format!("{}\n", f.display())).collect();
    std::fs::write(&args, list).unwrap();
    let out = std::process::Command::new("exiftool")
        .args(["-j", "-a", "-u", "-G1", "-n", "-@"])
        .arg(&args)
        .output()
        .expect("exiftool (Debian: libimage-exiftool-perl) must be installed");
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed: Vec<serde_json::Map<String, Value>> = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("exiftool output is not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(parsed.len(), files.len(), "exiftool read every file: {}", String::from_utf8_lossy(&out.stderr));
    parsed.into_iter().map(|m| (PathBuf::from(m["SourceFile"].as_str().unwrap()), m)).collect()
}

/// Waits until every variant is ready; a failed variant or the timeout is an error.
async fn get_bytes(server: &Server, url: &str) -> (u16, String, Vec<u8>) {
    let resp = server.client.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (status, ct, resp.bytes().await.unwrap().to_vec())
}

/// Every object key in a JSON value, at any depth.
fn json_keys(v: &Value) -> Vec<String> {
    match v {
        Value::Object(m) => m.iter().flat_map(|(k, v)| std::iter::once(k.clone()).chain(json_keys(v))).collect(),
        Value::Array(a) => a.iter().flat_map(json_keys).collect(),
        _ => vec![],
    }
}

/// GPS in the API's JSON: a key that names it, or one of `coordinates` as decimal degrees (to
/// four places) anywhere but in the upload time.
fn gps_in_json(body: &Value, coordinates: &[f64]) -> Vec<String> {
    let mut found: Vec<String> = json_keys(body)
        .into_iter()
        .filter(|k| {
            let k = k.to_ascii_lowercase();
            k.contains("gps") || k.contains("lat") || k.contains("lon")
        })
        .collect();
    let mut text = body.clone();
    if let Some(m) = text.as_object_mut() {
        m.remove("created_at");
    }
    let text = text.to_string();
    for c in coordinates {
        let c = format!("{:.4}", c.abs());
        if text.contains(&c) {
            found.push(c);
        }
    }
    found
}

/// The GPS coordinates ExifTool reads in a test photo (`expected.json`).
fn photo_gps(file: &str) -> Vec<f64> {
    let oracle: Value =
        serde_json::from_str(&std::fs::read_to_string(photos_dir().join("expected.json")).unwrap()).unwrap();
    let e = oracle
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["file"] == file)
        .unwrap_or_else(|| panic!("{file} in expected.json"));
    [&e["gps_lat"], &e["gps_lon"]].iter().filter_map(|v| v.as_f64()).collect()
}

/// A served file to check: its path, the case it belongs to, and whether it is the original.
struct Served {
    path: PathBuf,
    case: usize,
    role: &'static str,
    orientation: u16,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_in_every_position_and_spelling_is_stripped_from_everything_served() {
    let started = Instant::now();
    // Given generated files of every format with metadata in every position and spelling,
    let tiff = photo_tiff();
    let matrix_gps = photo_gps("gps/DSCN0010.jpg");
    assert_eq!(matrix_gps.len(), 2);
    let mut canaries = Canaries::default();
    let mut seed = 0;
    let mut cases = png_cases(&mut canaries, &tiff, &mut seed);
    cases.extend(webp_cases(&mut canaries, &tiff, &mut seed));
    cases.extend(jpeg_cases(&mut canaries, &tiff, &mut seed));
    cases.extend(gif_cases(&mut canaries, &mut seed));
    for case in &cases {
        // (the checks below see what is wrong with each upload itself),
        assert!(!canaries.found_in(&case.bytes).is_empty(), "{}: the generated file carries canaries", case.name);
        assert!(
            !structure_problems(&case.bytes, false).is_empty(),
            "{}: the structure check sees the metadata",
            case.name
        );
    }
    let mut dir = tempfile::tempdir().unwrap();
    let server = Server::start().await;
    let generated = started.elapsed();

    // when each is uploaded,
    let mut failures: Vec<String> = vec![];
    let mut uploads: Vec<(usize, Value)> = vec![];
    for (i, case) in cases.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{}.in.{}", case.name, case.fmt.ext())), &case.bytes).unwrap();
        let (status, body) = server.upload_raw(case.bytes.clone(), case.fmt.mime()).await;
        if status != 201 {
            failures.push(format!("{} ({}): upload answered {status}: {body}", case.name, case.what));
            continue;
        }
        let gps = gps_in_json(&body, &matrix_gps);
        if !gps.is_empty() {
            failures.push(format!("{}: the API's metadata shows GPS: {gps:?}", case.name));
        }
        uploads.push((i, body));
    }
    let uploaded = started.elapsed();

    // then the served original and every variant are read back,
    let mut served: Vec<Served> = vec![];
    for (i, body) in &uploads {
        let case = &cases[*i];
        let id = body["id"].as_str().unwrap();
        let orientation = body["orientation"].as_u64().unwrap_or(1) as u16;
        let body = match server.variants_ready(id, VARIANT_TIMEOUT).await {
            Ok(body) => body,
            Err(e) => {
                failures.push(format!("{} ({}): {e}", case.name, case.what));
                continue;
            }
        };
        let (status, _, original) = get_bytes(&server, body["link"].as_str().unwrap()).await;
        assert_eq!(status, 200, "{}", case.name);
        let path = dir.path().join(format!("{}.original.{}", case.name, case.fmt.ext()));
        std::fs::write(&path, &original).unwrap();
        served.push(Served { path, case: *i, role: "original", orientation });
        // The original renders exactly as the file did before its metadata went in.
        match decode(&original) {
            Ok(pixels) if pixels == case.reference => {}
            Ok(_) => failures.push(format!("{}: the served original's pixels differ from the base", case.name)),
            Err(e) => failures.push(format!("{}: the served original does not decode: {e}", case.name)),
        }
        // (and as the uploaded file itself, where the decoder reads that one).
        if let Ok(pixels) = decode(&case.bytes)
            && pixels != case.reference
        {
            failures.push(format!("{}: the upload's own pixels differ from its base", case.name));
        }
        for size in SIZES {
            let v = &body["variants"][size];
            let (status, ct, bytes) = get_bytes(&server, v["url"].as_str().unwrap()).await;
            assert_eq!(status, 200, "{} {size}", case.name);
            let ext = match ct.as_str() {
                "image/jpeg" => "jpg",
                "image/png" => "png",
                // An animated source keeps its frames in a GIF variant.
                "image/gif" => "gif",
                other => panic!("{} {size}: variant served as {other}", case.name),
            };
            let path = dir.path().join(format!("{}.{size}.{ext}", case.name));
            std::fs::write(&path, &bytes).unwrap();
            match image::load_from_memory(&bytes) {
                Ok(img) => {
                    let want = (v["width"].as_u64().unwrap_or(0) as u32, v["height"].as_u64().unwrap_or(0) as u32);
                    if (img.width(), img.height()) != want {
                        failures.push(format!(
                            "{} {size}: {}x{} served, the API says {want:?}",
                            case.name,
                            img.width(),
                            img.height()
                        ));
                    }
                }
                Err(e) => failures.push(format!("{} {size}: the variant does not decode: {e}", case.name)),
            }
            served.push(Served { path, case: *i, role: size, orientation });
        }
    }
    let downloaded = started.elapsed();

    // and no canary and no chunk, segment or block off the keep-list survives in any of them,
    for s in &served {
        let case = &cases[s.case];
        let bytes = std::fs::read(&s.path).unwrap();
        let mut problems = canaries.found_in(&bytes);
        problems.extend(structure_problems(&bytes, s.role != "original"));
        if !problems.is_empty() {
            failures.push(format!("{} {} ({}): {}", case.name, s.role, case.what, problems.join("; ")));
        }
    }

    // and ExifTool, run once over everything served and every upload, finds only what the
    // keep-list allows in what is served, while it does find the metadata in the uploads.
    let inputs: Vec<PathBuf> =
        cases.iter().map(|c| dir.path().join(format!("{}.in.{}", c.name, c.fmt.ext()))).collect();
    let mut all: Vec<PathBuf> = served.iter().map(|s| s.path.clone()).collect();
    all.extend(inputs.iter().cloned());
    let readings = {
        let all = all.clone();
        let dir = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || exiftool(&all, &dir)).await.unwrap()
    };
    let exiftool_done = started.elapsed();
    for s in &served {
        let case = &cases[s.case];
        let tags = &readings[&s.path];
        let served_fmt = Fmt::sniff(&std::fs::read(&s.path).unwrap()).unwrap();
        let original = s.role == "original";
        let bad: Vec<String> = tags
            .iter()
            .filter(|(k, v)| !exiftool_allows(k, v, served_fmt, original, case.icc, s.orientation))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !bad.is_empty() {
            failures.push(format!("{} {} ({}): ExifTool reads {}", case.name, s.role, case.what, bad.join(", ")));
        }
        // What the keep-list keeps is still there: the ICC profile and the orientation.
        if original && case.icc && !tags.contains_key("ICC_Profile:MediaWhitePoint") {
            failures.push(format!("{} original ({}): the ICC profile was not kept", case.name, case.what));
        }
        if original
            && served_fmt == Fmt::Jpeg
            && s.orientation > 1
            && tags.get("IFD0:Orientation") != Some(&Value::from(s.orientation))
        {
            failures.push(format!("{} original: orientation {} not kept", case.name, s.orientation));
        }
    }
    let mut seen_in_uploads: BTreeMap<Fmt, BTreeSet<String>> = BTreeMap::new();
    for (case, path) in cases.iter().zip(&inputs) {
        seen_in_uploads.entry(case.fmt).or_default().extend(readings[path].keys().cloned());
    }
    let evidence: [(Fmt, &[&str]); 4] = [
        (
            Fmt::Png,
            &["GPS:GPSLatitude", "XMP-exif:GPSLatitude", "XMP-dc:Description", "PNG:Comment", "PNG:Description"],
        ),
        (Fmt::Webp, &["GPS:GPSLatitude", "XMP-exif:GPSLatitude", "XMP-dc:Description"]),
        (
            Fmt::Jpeg,
            &["GPS:GPSLatitude", "XMP-exif:GPSLatitude", "XMP-dc:Description", "IPTC:Caption-Abstract", "File:Comment"],
        ),
        (Fmt::Gif, &["XMP-exif:GPSLatitude", "XMP-dc:Description", "File:Comment", "GIF:Text"]),
    ];
    for (fmt, keys) in evidence {
        let seen = &seen_in_uploads[&fmt];
        for key in keys {
            if !seen.contains(*key) {
                failures.push(format!("ExifTool does not read {key} in any {fmt:?} upload; it reads {seen:?}"));
            }
            // (and the keep-list would not let it through).
            assert!(!exiftool_allows(key, &Value::Null, fmt, true, true, 6), "the keep-list allows {key}");
        }
    }

    let counts: BTreeMap<Fmt, usize> = cases.iter().fold(BTreeMap::new(), |mut m, c| {
        *m.entry(c.fmt).or_default() += 1;
        m
    });
    eprintln!(
        "metadata matrix: {} uploads {counts:?}, {} canaries, {} served files; generated {generated:?}, \
         uploaded {uploaded:?}, downloaded {downloaded:?}, ExifTool done {exiftool_done:?}",
        cases.len(),
        canaries.0.len(),
        served.len()
    );
    if !failures.is_empty() {
        // Keep every file for a look.
        dir.disable_cleanup(true);
        panic!("{} problems (files kept in {}):\n{}", failures.len(), dir.path().display(), failures.join("\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_gps_photos_are_served_without_gps_or_any_exif_but_orientation() {
    // Given the real photos with GPS,
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![];
    let mut orientations = vec![];
    for name in ["DSCN0010.jpg", "DSCN0012.jpg", "DSCN0021.jpg", "DSCN0025.jpg"] {
        let bytes = std::fs::read(photos_dir().join("gps").join(name)).unwrap();
        std::fs::write(dir.path().join(format!("in-{name}")), &bytes).unwrap();
        // when each is uploaded as it is,
        let (status, body) = server.upload_raw(bytes, "image/jpeg").await;
        assert_eq!(status, 201, "{name}: {body}");
        // then the API's metadata has no GPS,
        let gps = photo_gps(&format!("gps/{name}"));
        assert_eq!(gps.len(), 2, "{name} has GPS");
        assert_eq!(gps_in_json(&body, &gps), Vec::<String>::new(), "{name}: {body}");
        let id = body["id"].as_str().unwrap();
        let (status, fetched) = server.get_json(&format!("/v1/images/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(gps_in_json(&fetched, &gps), Vec::<String>::new(), "{name}: {fetched}");
        let (status, _, original) = get_bytes(&server, body["link"].as_str().unwrap()).await;
        assert_eq!(status, 200);
        let path = dir.path().join(name);
        std::fs::write(&path, &original).unwrap();
        assert_eq!(structure_problems(&original, false), Vec::<String>::new(), "{name}");
        files.push(path);
        orientations.push(body["orientation"].as_u64().unwrap_or(1) as u16);
    }
    // and ExifTool, which reads GPS in each photo, finds none in the served originals, and of
    // the EXIF only the orientation.
    let inputs: Vec<PathBuf> =
        files.iter().map(|f| f.with_file_name(format!("in-{}", f.file_name().unwrap().to_str().unwrap()))).collect();
    let readings = exiftool(&[files.clone(), inputs.clone()].concat(), dir.path());
    for input in &inputs {
        assert!(readings[input].contains_key("GPS:GPSLatitude"), "ExifTool reads GPS in {}", input.display());
    }
    for (path, orientation) in files.iter().zip(orientations) {
        let tags = &readings[path];
        let gps: Vec<&String> = tags.keys().filter(|k| k.starts_with("GPS:") || k.contains("GPS")).collect();
        assert!(gps.is_empty(), "{}: {gps:?}", path.display());
        let bad: Vec<String> = tags
            .iter()
            .filter(|(k, v)| !exiftool_allows(k, v, Fmt::Jpeg, true, false, orientation))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert!(bad.is_empty(), "{}: ExifTool reads {bad:?}", path.display());
    }
}
