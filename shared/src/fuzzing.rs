//! Fuzz targets: one function per parser of untrusted bytes, asserting the invariants that
//! parser promises, not merely that it does not panic. The same functions are driven by
//! coverage-guided fuzzing (`fuzz/`, `cargo fuzz` on nightly) and, on stable, by the seeded
//! mutation run in `tests/fuzz_targets.rs`, so CI exercises them on every change.
//!
//! Each target panics when an invariant breaks; that is how both drivers notice.
//!
//! Memory bounds are checked with [`alloc::CountingAlloc`]: a binary that installs it as its
//! global allocator gets every target's allocations measured per thread.

use bytes::Bytes;

use crate::media::{self, Format, decode, limits};

/// Peak heap growth allowed while inspecting any input: the fixed buffers of the walks (inflate
/// state and a 32 KiB window, LZW tables and a 32 KiB buffer), whatever the input's size.
pub const INSPECT_ALLOC_BOUND: usize = 256 << 10;
/// Heap growth allowed for stripping beyond the size of the input (the output is at most the
/// input plus rebuilt blocks: orientation, Adobe, standard Huffman tables).
pub const STRIP_ALLOC_EXTRA: usize = 256 << 10;
/// Heap allowed for reading EXIF, per byte of the EXIF block read (at most
/// `media::exif::MAX_EXIF_BYTES`), plus a fixed amount: about 4 MiB at the most, whatever the file.
pub const EXIF_ALLOC_PER_BYTE: usize = 48;
pub const EXIF_ALLOC_EXTRA: usize = 256 << 10;
/// Images small enough that the fuzz targets decode them to compare with inspection.
const DECODE_CHECK_PIXELS: u64 = 1 << 20;
/// Images (all their frames together) small enough that the fuzz targets also make their
/// variants, which is the one path through the animation encoders and libwebp.
const VARIANTS_CHECK_PIXELS: u64 = 1 << 16;

pub mod alloc {
    //! A global allocator that counts, per thread, the bytes in use and their peak.

    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static IN_USE: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    /// Wraps the system allocator; install it with `#[global_allocator]`.
    pub struct CountingAlloc;

    fn record(delta: isize) {
        // `try_with` fails only while the thread is being torn down; such allocations are not
        // part of any measurement.
        let _ = IN_USE.try_with(|u| {
            let now = u.get() + delta;
            u.set(now);
            let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
        });
    }

    // SAFETY: every call is forwarded unchanged to the system allocator; the counting touches
    // only thread-local cells, which never allocate.
    unsafe impl GlobalAlloc for CountingAlloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded with the caller's layout.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                record(layout.size() as isize);
            }
            p
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded with the caller's layout.
            let p = unsafe { System.alloc_zeroed(layout) };
            if !p.is_null() {
                record(layout.size() as isize);
            }
            p
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded with the caller's pointer and layout.
            unsafe { System.dealloc(ptr, layout) };
            record(-(layout.size() as isize));
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: forwarded with the caller's pointer, layout and size.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                record(new_size as isize - layout.size() as isize);
            }
            p
        }
    }

    /// Runs `f` and returns its result with the peak heap growth it caused on this thread.
    pub fn measure<R>(f: impl FnOnce() -> R) -> (R, usize) {
        let start = IN_USE.with(Cell::get);
        PEAK.with(|p| p.set(start));
        let r = f();
        let peak = PEAK.with(Cell::get);
        (r, (peak - start).max(0) as usize)
    }

    /// Whether the counting allocator is the global one (otherwise nothing is measured).
    pub fn installed() -> bool {
        let (v, peak) = measure(|| vec![1u8; 4096]);
        drop(v);
        peak >= 4096
    }
}

fn check_bound(what: &str, peak: usize, bound: usize) {
    assert!(peak <= bound, "{what} allocated {peak} bytes; the bound is {bound}");
}

/// Format sniffing, inspection (header, structure, what can be shown, limits), stripping and
/// decoding. Invariants: inspection allocates at most [`INSPECT_ALLOC_BOUND`]; an accepted file
/// strips to a file that is accepted with the same format, size and frame count, that strips to
/// itself, that holds only what its keep-list allows, and (for small images) that decodes to
/// the size inspection read, within the memory inspection estimated, and (for smaller ones)
/// that has its six variants made, frame by frame for an animation, within the memory
/// inspection estimated for that (the Rust side of it: libwebp allocates through C).
pub fn inspect(data: &[u8]) {
    let (inspected, peak) = alloc::measure(|| media::inspect(data));
    check_bound("inspect", peak, INSPECT_ALLOC_BOUND);
    let Ok(inspected) = inspected else { return };
    let facts = inspected.facts;
    let orientation = media::exif::read(data).effective_orientation();
    let (stripped, peak) = alloc::measure(|| inspected.strip(data, orientation));
    check_bound("strip", peak, data.len() + STRIP_ALLOC_EXTRA);
    // Upload refuses what fails this check too (`images::prepare`).
    if media::verify_decodes(&stripped, &facts).is_err() {
        return;
    }
    let again = media::inspect(&stripped).unwrap_or_else(|e| panic!("the stripped file is refused: {e}"));
    let same = |f: &media::Facts| (f.format, f.width, f.height, f.frames);
    assert_eq!(same(&again.facts), same(&facts), "stripping changed what the file is");
    assert!(again.strip(&stripped, orientation) == stripped, "stripping is not idempotent");
    if let Err(e) = keep_list_violation(&stripped, facts.format) {
        panic!("the stripped file holds something off the keep-list: {e}");
    }
    let pixels = u64::from(facts.width) * u64::from(facts.height);
    if pixels <= DECODE_CHECK_PIXELS {
        let (decoded, peak) = alloc::measure(|| decode::decode(&stripped, limits::DECODE_BUDGET).map(|d| d.image));
        let image = decoded.unwrap_or_else(|e| panic!("an accepted image does not decode: {e}"));
        assert_eq!((image.width(), image.height()), (facts.width, facts.height), "the decoder sees another size");
        check_bound("decode", peak, again.facts.still_cost as usize);
    }
    if facts.frame_pixels <= VARIANTS_CHECK_PIXELS {
        let (made, peak) = alloc::measure(|| media::variants::make_variants(&stripped, orientation));
        check_bound("variants", peak, again.facts.decode_cost as usize);
        // A variant may fail to encode (an animated one over its size cap), but never panic.
        if let Ok(made) = made {
            assert_eq!(made.len(), 6, "every size in two formats");
        }
    }
}

/// Checks, independently of stripping's own decisions, that a stripped file's parts are all on
/// its format's keep-list and that nothing follows its end.
pub fn keep_list_violation(b: &[u8], format: Format) -> Result<(), String> {
    match format {
        Format::Jpeg => {
            use media::jpeg::{Segment, Segments};
            let mut end = None;
            for s in Segments::new(b) {
                match s.map_err(|e| e.to_string())? {
                    Segment::Marker { marker, payload, .. } => {
                        let p = &b[payload.clone()];
                        let ok = match marker {
                            0xC0..=0xC2 | 0xC4 | 0xDB | 0xDD => true,
                            0xE2 => p.starts_with(b"ICC_PROFILE\0"),
                            0xEE => p.len() == 12 && p.starts_with(b"Adobe"),
                            // Only the minimal orientation block: one IFD entry, tag 0x0112.
                            0xE1 => p.len() == 32 && p.starts_with(b"Exif\0\0MM\0\x2A\0\0\0\x08\0\x01\x01\x12"),
                            _ => false,
                        };
                        if !ok {
                            return Err(format!("JPEG marker {marker:02X} of {} bytes", p.len()));
                        }
                    }
                    Segment::Standalone { marker } => return Err(format!("JPEG marker {marker:02X} outside a scan")),
                    Segment::Scan { .. } => {}
                    Segment::End => end = Some(()),
                }
            }
            end.ok_or("no end of image")?;
            if !b.ends_with(&[0xFF, 0xD9]) {
                return Err("bytes after the end of image".into());
            }
            Ok(())
        }
        Format::Png => {
            let mut last = None;
            for c in media::png::Chunks::new(b) {
                let c = c.map_err(|e| e.to_string())?;
                let kept = [
                    b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"cICP", b"acTL",
                    b"fcTL", b"fdAT",
                ];
                if !kept.contains(&&c.kind) {
                    return Err(format!("PNG chunk {:?}", String::from_utf8_lossy(&c.kind)));
                }
                if &c.kind == b"iCCP" && !b[c.data.clone()].starts_with(b"ICC profile\0") {
                    return Err("an iCCP chunk keeps its own profile name".into());
                }
                last = Some(c.whole.end);
            }
            if last != Some(b.len()) {
                return Err("bytes after IEND".into());
            }
            Ok(())
        }
        Format::Gif => {
            use media::gif::{Block, Blocks, screen};
            let s = screen(b).map_err(|e| e.to_string())?;
            for block in Blocks::new(b, &s) {
                match block.map_err(|e| e.to_string())? {
                    Block::Image { .. } => {}
                    Block::Extension { range, label: 0xF9 } if range.len() == 8 => {}
                    Block::Extension { range, label: 0xFF }
                        if range.len() == 19 && b[range.start + 3..range.start + 14] == *b"NETSCAPE2.0" => {}
                    Block::Extension { label, range } => {
                        return Err(format!("GIF extension {label:02X} of {} bytes", range.len()));
                    }
                }
            }
            if b.last() != Some(&0x3B) {
                return Err("no trailer at the end".into());
            }
            Ok(())
        }
        Format::Webp => {
            use media::webp::Chunks;
            let riff = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
            if riff + 8 != b.len() {
                return Err("bytes after the RIFF body".into());
            }
            for c in Chunks::new(b, 12..b.len()) {
                let c = c.map_err(|e| e.to_string())?;
                match &c.fourcc {
                    b"VP8 " | b"VP8L" | b"VP8X" | b"ALPH" | b"ANIM" | b"ICCP" => {}
                    b"ANMF" => {
                        for inner in Chunks::new(b, c.payload.start + 16..c.payload.end) {
                            let inner = inner.map_err(|e| e.to_string())?;
                            if !matches!(&inner.fourcc, b"ALPH" | b"VP8 " | b"VP8L") {
                                return Err(format!("WebP frame chunk {:?}", String::from_utf8_lossy(&inner.fourcc)));
                            }
                        }
                    }
                    other => return Err(format!("WebP chunk {:?}", String::from_utf8_lossy(other))),
                }
                if &c.fourcc == b"VP8X" && b[c.payload.start] & !0x32 != 0 {
                    return Err("VP8X flags claim EXIF, XMP or reserved bits".into());
                }
            }
            Ok(())
        }
        Format::Avif => Err("an AVIF file is never an original".into()),
    }
}

/// EXIF reading: never panics, allocates in proportion to the input, and never reports a
/// coordinate outside the globe or an orientation outside 1 to 8.
pub fn exif(data: &[u8]) {
    let (meta, peak) = alloc::measure(|| media::exif::read(data));
    let block = data.len().min(media::exif::MAX_EXIF_BYTES);
    check_bound("exif", peak, EXIF_ALLOC_PER_BYTE * block + EXIF_ALLOC_EXTRA);
    assert!(meta.orientation.is_none_or(|o| (1..=8).contains(&o)));
    assert!(meta.gps_lat.is_none_or(|v| v.abs() <= 90.0) && meta.gps_lon.is_none_or(|v| v.abs() <= 180.0));
    assert_eq!(meta.gps_lat.is_some(), meta.gps_lon.is_some(), "half a position");
}

/// Multipart bodies (direct uploads, uploads through links, and the local stand-in for the
/// bucket's signed form): the first line of the input is the boundary, the rest the body. No
/// panic; the files found hold no more bytes than the body; at most the limit of files plus the
/// one that tripped it.
pub fn multipart(data: &[u8]) {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let boundary = String::from_utf8_lossy(&data[..split]).into_owned();
    let body = Bytes::copy_from_slice(data.get(split + 1..).unwrap_or_default());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    let len = body.len();
    let (parsed, peak) = alloc::measure(|| runtime.block_on(crate::http::upload::multipart_files(&content_type, body)));
    check_bound("multipart", peak, 4 * len + (64 << 10));
    if let Ok(files) = parsed {
        assert!(!files.is_empty() && files.len() <= crate::http::upload::MAX_FILES + 1);
        assert!(files.iter().map(|f| f.bytes.len()).sum::<usize>() <= len, "files larger than the body");
    }
}

/// The Imgur URL rule: what it accepts names one of the three hosts, and its canonical form is
/// accepted again unchanged.
pub fn imgur_url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(canonical) = crate::keepalive::url::canonical_imgur_url(text) else { return };
    let host = canonical.strip_prefix("https://").and_then(|r| r.split('/').next());
    assert!(host.is_some_and(|h| crate::keepalive::url::IMGUR_HOSTS.contains(&h)), "{canonical}");
    let again = crate::keepalive::url::canonical_imgur_url(&canonical).expect("the canonical form is accepted");
    assert_eq!(again, canonical, "the canonical form is not a fixed point");
}

/// The import URL checks that need no network: what passes is http(s) without credentials, and
/// an IP literal host is a public address.
pub fn import_url(data: &[u8]) {
    use std::sync::OnceLock;
    static FETCHER: OnceLock<crate::fetch::Fetcher> = OnceLock::new();
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(url) = crate::fetch::check_url(text) else { return };
    assert!(matches!(url.scheme(), "http" | "https") && url.username().is_empty() && url.password().is_none());
    let fetcher = FETCHER.get_or_init(crate::fetch::Fetcher::public);
    if fetcher.check_literal(&url).is_ok() {
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        assert!(ip.is_none_or(crate::fetch::is_public), "a non-public literal passed: {url}");
    }
    let reparsed = crate::fetch::check_url(url.as_str()).expect("a checked URL parses again");
    assert_eq!(reparsed, url, "checking is not idempotent");
}

/// Query strings: decoding is strict (UTF-8 or a 400) and what it returns encodes back to the
/// same parameters.
pub fn query(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match crate::http::input::parse_query(text) {
        Ok(params) => {
            let encoded: String =
                url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params.iter()).finish();
            let again = crate::http::input::parse_query(&encoded).expect("an encoded query decodes");
            assert_eq!(again, params);
        }
        Err(e) => assert_eq!(e.status(), http::StatusCode::BAD_REQUEST),
    }
}

/// JSON bodies and cursors: a client's bytes give a 400 or 422 with a message, never a panic.
pub fn json_and_cursor(data: &[u8]) {
    if let Err(e) = crate::http::input::parse_json::<serde_json::Value>(data, "the body") {
        assert!(e.status().is_client_error());
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(cursor) = crate::http::input::decode_cursor(text)
    {
        assert_eq!(crate::http::input::decode_cursor(&crate::http::input::encode_cursor(&cursor)), Some(cursor));
    }
}

pub mod seeds {
    //! Starting inputs for the fuzz targets: small files of every format and container feature
    //! the parsers handle, and the test photos. Used by the stable driver and written out for
    //! `cargo fuzz` by `examples/fuzz_seeds.rs`.
    //!
    //! Generating these files only ever fails on a bug in this code, so failures panic.

    use std::io::Cursor;
    use std::path::Path;

    fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    /// Files of every format and container feature the parsers handle, small so that each case is
    /// quick: PNG (colour, alpha, grey, palette with transparency, 16-bit), an APNG, GIFs still and
    /// animated with metadata blocks, WebP simple and extended, JPEGs baseline, progressive and
    /// with restart intervals, and the test photos under 200 KB (real cameras' EXIF and layouts).
    /// The seeds of the target called `name` (see [`super::TARGETS`]).
    pub fn for_target(name: &str, photos: &Path) -> Vec<Vec<u8>> {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\
                    Content-Type: image/png\r\n\r\nPNG-bytes\r\n--XyZ\r\nContent-Disposition: form-data; \
                    name=\"key\"\r\n\r\nincoming/abc\r\n--XyZ--\r\n";
        let multipart = format!("XyZ\n{body}");
        let texts: Vec<&str> = match name {
            "inspect" | "exif" => return images(photos),
            "multipart" => vec![&multipart, "b\n--b--\r\n", "\"quoted\"\n--\"quoted\"\r\n\r\n"],
            "imgur_url" => vec![
                "https://i.imgur.com/AbCdE12.jpg",
                "http://imgur.com/gallery/AbCdE",
                "https://m.imgur.com/a/AbCdE12",
                "https://imgur.com.evil.example/AbCdE",
                "https://IMGUR.com/AbCdE?x=1#y",
            ],
            "import_url" => vec![
                "https://example.com/a.jpg",
                "http://127.0.0.1:8080/x",
                "http://[::1]/x",
                "http://0x7f.1/x",
                "https://user:pw@example.com/",
                "http://169.254.169.254/latest/meta-data",
                "http://[::ffff:10.0.0.1]/",
            ],
            "query" => vec!["lat=1.5&lon=2&query=a+b%20c&format=image", "cursor=eyJwayI6IkEifQ&limit=5", "q=%E2%9C%93"],
            "json_and_cursor" => vec![
                "{\"urls\": [\"https://example.com/a.png\", \"b\"]}",
                "{\"name\": \"x\", \"n\": [1, {\"y\": \"z\"}]}",
                "eyJwayI6IklNRyNhIiwic2siOiJNRVRBIiwiZ3NpMXBrIjoiSU1BR0VTIiwiZ3NpMXNrIjoidCNhIn0",
            ],
            _ => vec![],
        };
        texts.into_iter().map(|t| t.as_bytes().to_vec()).collect()
    }

    pub fn images(photos: &Path) -> Vec<Vec<u8>> {
        let rgba = image::RgbaImage::from_fn(24, 16, |x, y| {
            image::Rgba([x as u8 * 9, y as u8 * 13, 77, if x < 2 { 0 } else { 255 }])
        });
        let rgb = image::DynamicImage::ImageRgba8(rgba.clone()).to_rgb8();
        let mut seeds = vec![
            encode(image::DynamicImage::ImageRgb8(rgb.clone()), image::ImageFormat::Png),
            encode(image::DynamicImage::ImageRgba8(rgba.clone()), image::ImageFormat::Png),
            encode(
                image::DynamicImage::ImageLuma8(image::DynamicImage::ImageRgb8(rgb.clone()).to_luma8()),
                image::ImageFormat::Png,
            ),
            encode(
                image::DynamicImage::ImageRgb16(image::DynamicImage::ImageRgb8(rgb.clone()).to_rgb16()),
                image::ImageFormat::Png,
            ),
            encode(image::DynamicImage::ImageRgba8(rgba.clone()), image::ImageFormat::Gif),
            encode(image::DynamicImage::ImageRgba8(rgba.clone()), image::ImageFormat::WebP),
            encode(image::DynamicImage::ImageRgb8(rgb.clone()), image::ImageFormat::Jpeg),
        ];
        for (progressive, restart) in [(true, 0), (false, 2)] {
            let mut out = Vec::new();
            let mut e = jpeg_encoder::Encoder::new(&mut out, 80);
            e.set_progressive(progressive);
            e.set_restart_interval(restart);
            e.encode(rgb.as_raw(), 24, 16, jpeg_encoder::ColorType::Rgb).unwrap();
            seeds.push(out);
        }
        seeds.push(palette_png(&rgb));
        seeds.push(apng(&rgba));
        seeds.push(animated_webp(&rgba));
        seeds.push(animated_gif_with_metadata(&rgba));
        seeds.push(extended_webp(&seeds[5]));
        let mut stack = vec![photos.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "jpg")
                    && path.metadata().is_ok_and(|m| m.len() < 200_000)
                    && let Ok(bytes) = std::fs::read(&path)
                {
                    seeds.push(bytes);
                }
            }
        }
        seeds
    }

    fn palette_png(rgb: &image::RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = png::Encoder::new(&mut out, rgb.width(), rgb.height());
        e.set_color(png::ColorType::Indexed);
        e.set_depth(png::BitDepth::Four);
        e.set_palette((0..16u8).flat_map(|i| [i * 16, 255 - i * 16, 7]).collect::<Vec<_>>());
        e.set_trns(vec![0u8, 128]);
        let mut w = e.write_header().unwrap();
        let row = rgb.width().div_ceil(2) as usize;
        w.write_image_data(&(0..row * rgb.height() as usize).map(|i| (i * 37) as u8).collect::<Vec<_>>()).unwrap();
        w.finish().unwrap();
        out
    }

    fn apng(rgba: &image::RgbaImage) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = png::Encoder::new(&mut out, rgba.width(), rgba.height());
        e.set_color(png::ColorType::Rgba);
        e.set_animated(3, 0).unwrap();
        let mut w = e.write_header().unwrap();
        for shift in 0..3u8 {
            let frame: Vec<u8> = rgba.as_raw().iter().map(|v| v.wrapping_add(shift * 40)).collect();
            w.write_image_data(&frame).unwrap();
        }
        w.finish().unwrap();
        out
    }

    fn animated_webp(rgba: &image::RgbaImage) -> Vec<u8> {
        let mut config = webp::WebPConfig::new().unwrap();
        config.lossless = 1;
        let frames: Vec<Vec<u8>> =
            (0..3u8).map(|shift| rgba.as_raw().iter().map(|v| v.wrapping_add(shift * 40)).collect()).collect();
        let mut e = webp::AnimEncoder::new(rgba.width(), rgba.height(), &config);
        e.set_loop_count(2);
        for (i, frame) in frames.iter().enumerate() {
            e.add_frame(webp::AnimFrame::from_rgba(frame, rgba.width(), rgba.height(), 50 * i as i32));
        }
        e.try_encode().unwrap().to_vec()
    }

    fn animated_gif_with_metadata(rgba: &image::RgbaImage) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut e = gif::Encoder::new(&mut out, rgba.width() as u16, rgba.height() as u16, &[]).unwrap();
            e.set_repeat(gif::Repeat::Infinite).unwrap();
            for shift in 0..2u8 {
                let mut pixels: Vec<u8> = rgba.as_raw().iter().map(|v| v.wrapping_add(shift * 60)).collect();
                let frame = gif::Frame::from_rgba(rgba.width() as u16, rgba.height() as u16, &mut pixels);
                e.write_frame(&frame).unwrap();
            }
        }
        // A comment and an XMP block before the trailer.
        let trailer = out.pop();
        out.extend_from_slice(&[0x21, 0xFE, 7, b'c', b'o', b'm', b'm', b'e', b'n', b't', 0]);
        out.extend_from_slice(&[0x21, 0xFF, 11]);
        out.extend_from_slice(b"XMP DataXMP");
        out.extend_from_slice(&[4, b'<', b'x', b'/', b'>', 0]);
        out.extend(trailer);
        out
    }

    /// The simple WebP `simple` rewritten in the extended format with EXIF and XMP chunks.
    fn extended_webp(simple: &[u8]) -> Vec<u8> {
        let (w, h) = image::load_from_memory(simple).map(|i| (i.width(), i.height())).unwrap();
        let mut body = b"WEBP".to_vec();
        let mut push = |fourcc: &[u8; 4], payload: &[u8]| {
            body.extend_from_slice(fourcc);
            body.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            body.extend_from_slice(payload);
            if payload.len() % 2 == 1 {
                body.push(0);
            }
        };
        let mut vp8x = vec![0x1C, 0, 0, 0];
        vp8x.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
        vp8x.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
        push(b"VP8X", &vp8x);
        push(b"VP8L", &simple[20..]);
        push(b"EXIF", b"MM\0*\0\0\0\x08\0\0");
        push(b"XMP ", b"<x:xmpmeta/>");
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend(body);
        out
    }
}

/// A fuzz target: it panics when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target by name, for the drivers.
pub const TARGETS: [(&str, Target); 7] = [
    ("inspect", inspect),
    ("exif", exif),
    ("multipart", multipart),
    ("imgur_url", imgur_url),
    ("import_url", import_url),
    ("query", query),
    ("json_and_cursor", json_and_cursor),
];
