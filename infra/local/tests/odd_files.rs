//! A corpus of real-world odd files, end to end: progressive, restart-interval, CMYK, YCCK and
//! greyscale JPEGs, 1x1 images of every format, 65,500-pixel-long PNGs, 16-bit, interlaced,
//! palette and low-bit-depth PNGs, an APNG, animated and interlaced GIFs and a lossless WebP
//! with alpha. Each one is either refused with a clear 4xx JSON error, or accepted and then
//! served: its original decodes, and every variant becomes ready, decodes, and has the
//! dimensions the API states.

mod common;

use std::time::{Duration, Instant};

use common::files::{
    PNG_SIGNATURE, encode_with_image, gif_image_descriptor, gif_lzw, gif_screen, png_chunk, png_file, png_ihdr,
    zlib_stored,
};
use common::{Server, error_code};
use serde_json::Value;

const SIZES: [(&str, u32); 3] = [("small", 320), ("medium", 1024), ("large", 2048)];
const VARIANT_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Writers
// ---------------------------------------------------------------------------------------------

/// How a hand-written PNG stores its samples.
#[derive(Clone, Copy)]
struct PngLayout {
    width: u32,
    height: u32,
    bit_depth: u8,
    color_type: u8,
    interlaced: bool,
}

impl PngLayout {
    fn channels(&self) -> usize {
        match self.color_type {
            0 | 3 => 1,
            4 => 2,
            2 => 3,
            _ => 4,
        }
    }

    fn ihdr(&self) -> Vec<u8> {
        png_ihdr(self.width, self.height, self.bit_depth, self.color_type, self.interlaced)
    }

    /// The filtered scanlines (filter type 0) of the pixels `(x0, y0)`, `(x0 + dx, y0)`... of
    /// one Adam7 pass, or of the whole image with `(0, 0, 1, 1)`.
    fn pass(&self, (x0, y0, dx, dy): (u32, u32, u32, u32), sample: &dyn Fn(u32, u32) -> Vec<u16>) -> Vec<u8> {
        let mut out = vec![];
        if x0 >= self.width || y0 >= self.height {
            return out;
        }
        let depth = usize::from(self.bit_depth);
        for y in (y0..self.height).step_by(dy as usize) {
            out.push(0);
            let (mut acc, mut nbits) = (0u32, 0usize);
            for x in (x0..self.width).step_by(dx as usize) {
                let samples = sample(x, y);
                assert_eq!(samples.len(), self.channels());
                for s in samples {
                    match depth {
                        16 => out.extend_from_slice(&s.to_be_bytes()),
                        8 => out.push(s as u8),
                        _ => {
                            acc = (acc << depth) | u32::from(s);
                            nbits += depth;
                            if nbits == 8 {
                                out.push(acc as u8);
                                (acc, nbits) = (0, 0);
                            }
                        }
                    }
                }
            }
            if nbits > 0 {
                out.push((acc << (8 - nbits)) as u8);
            }
        }
        out
    }

    /// The image data (before compression), interlaced with Adam7 when the layout says so.
    fn raw(&self, sample: &dyn Fn(u32, u32) -> Vec<u16>) -> Vec<u8> {
        if !self.interlaced {
            return self.pass((0, 0, 1, 1), sample);
        }
        const ADAM7: [(u32, u32, u32, u32); 7] =
            [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];
        ADAM7.iter().flat_map(|&p| self.pass(p, sample)).collect()
    }

    /// A whole PNG: signature, header, `extra` chunks (palette, transparency), data, end.
    fn file(&self, extra: &[Vec<u8>], sample: &dyn Fn(u32, u32) -> Vec<u16>) -> Vec<u8> {
        png_file(&self.ihdr(), extra, &zlib_stored(&self.raw(sample)))
    }
}

fn grey_png(bit_depth: u8) -> Vec<u8> {
    let layout = PngLayout { width: 37, height: 23, bit_depth, color_type: 0, interlaced: false };
    let max = (1u32 << bit_depth) - 1;
    layout.file(&[], &|x, y| vec![((x + 2 * y) % (max + 1)) as u16])
}

fn palette_png(bit_depth: u8, with_trns: bool) -> Vec<u8> {
    let colours = 1usize << bit_depth;
    let layout = PngLayout { width: 29, height: 17, bit_depth, color_type: 3, interlaced: false };
    let plte: Vec<u8> =
        (0..colours).flat_map(|i| [(i * 16) as u8, (255 - i % 16 * 16) as u8, (i * 40) as u8]).collect();
    let mut extra = vec![png_chunk(b"PLTE", &plte)];
    if with_trns {
        let alpha: Vec<u8> = (0..colours).map(|i| (i * 255 / (colours - 1).max(1)) as u8).collect();
        extra.push(png_chunk(b"tRNS", &alpha));
    }
    layout.file(&extra, &|x, y| vec![((x + y) % colours as u32) as u16])
}

fn interlaced_png(color_type: u8, bit_depth: u8, w: u32, h: u32) -> Vec<u8> {
    let layout = PngLayout { width: w, height: h, bit_depth, color_type, interlaced: true };
    let max = (1u32 << bit_depth) - 1;
    layout.file(&[], &|x, y| {
        (0..layout.channels()).map(|c| ((x * 37 + y * 11 + c as u32 * 50) % (max + 1)) as u16).collect()
    })
}

/// An APNG with three frames: the first covers the canvas, the second is a patch, the third
/// covers the canvas again. The default image (IDAT) is the first frame, or, with
/// `default_is_frame` false, a separate image shown only by decoders without APNG support.
fn apng(default_is_frame: bool) -> Vec<u8> {
    let (w, h) = (32u32, 24u32);
    let layout = PngLayout { width: w, height: h, bit_depth: 8, color_type: 6, interlaced: false };
    let frame = |fw: u32, fh: u32, shade: u32| -> Vec<u8> {
        let l = PngLayout { width: fw, height: fh, ..layout };
        zlib_stored(&l.raw(&|x, y| vec![(x * 8) as u16, (y * 10) as u16, shade as u16, 255]))
    };
    let fctl = |seq: u32, fw: u32, fh: u32, x: u32, y: u32| -> Vec<u8> {
        let mut d = vec![];
        for v in [seq, fw, fh, x, y] {
            d.extend_from_slice(&v.to_be_bytes());
        }
        d.extend_from_slice(&[0, 1, 0, 10, 0, 0]);
        png_chunk(b"fcTL", &d)
    };
    let fdat = |seq: u32, data: Vec<u8>| png_chunk(b"fdAT", &[&seq.to_be_bytes()[..], &data].concat());
    let mut out = PNG_SIGNATURE.to_vec();
    out.extend(layout.ihdr());
    out.extend(png_chunk(b"acTL", &[0, 0, 0, 3, 0, 0, 0, 0]));
    let seq = if default_is_frame {
        out.extend(fctl(0, w, h, 0, 0));
        out.extend(png_chunk(b"IDAT", &frame(w, h, 0)));
        1
    } else {
        out.extend(png_chunk(b"IDAT", &frame(w, h, 60)));
        out.extend(fctl(0, w, h, 0, 0));
        out.extend(fdat(1, frame(w, h, 0)));
        2
    };
    out.extend(fctl(seq, 16, 12, 8, 6));
    out.extend(fdat(seq + 1, frame(16, 12, 128)));
    out.extend(fctl(seq + 2, w, h, 0, 0));
    out.extend(fdat(seq + 3, frame(w, h, 255)));
    out.extend(png_chunk(b"IEND", b""));
    out
}

/// An interlaced GIF (rows stored in the four passes of the format: every 8th from 0, every
/// 8th from 4, every 4th from 2, every 2nd from 1), with a 256-colour global table.
fn interlaced_gif() -> Vec<u8> {
    let (w, h) = (33u16, 21u16);
    let index = |x: u16, y: u16| ((x * 7 + y * 13) % 256) as u8;
    let mut order: Vec<u16> = vec![];
    for (start, step) in [(0, 8), (4, 8), (2, 4), (1, 2)] {
        order.extend((start..h).step_by(step));
    }
    let indices: Vec<u8> = order.iter().flat_map(|&y| (0..w).map(move |x| index(x, y))).collect();
    let table: Vec<u8> = (0..=255u8).flat_map(|i| [i, i.wrapping_mul(3), 255 - i]).collect();
    let mut out = gif_screen(w, h, 0xF7, &table);
    out.extend(gif_image_descriptor(0, 0, w, h, 0x40));
    out.extend(gif_lzw(&indices));
    out.push(0x3B);
    out
}

/// A GIF with a 256-colour global table and one frame of `w`x`h` at `(left, top)` on a logical
/// screen of `sw`x`sh`.
fn one_frame_gif((sw, sh): (u16, u16), (left, top, w, h): (u16, u16, u16, u16)) -> Vec<u8> {
    let table: Vec<u8> = (0..=255u8).flat_map(|i| [i, 255 - i, i / 2]).collect();
    let mut out = gif_screen(sw, sh, 0xF7, &table);
    out.extend(gif_image_descriptor(left, top, w, h, 0));
    let indices: Vec<u8> = (0..u32::from(w) * u32::from(h)).map(|i| (i % 251) as u8).collect();
    out.extend(gif_lzw(&indices));
    out.push(0x3B);
    out
}

/// A GIF whose frames have only local colour tables, the second with a transparent index.
fn local_tables_transparent_gif() -> Vec<u8> {
    let (w, h) = (20u16, 10u16);
    let mut out = gif_screen(w, h, 0x00, &[]);
    for (shade, transparent) in [(0u8, None), (200u8, Some(3u8))] {
        let flags = if transparent.is_some() { 0x09 } else { 0x08 };
        out.extend_from_slice(&[0x21, 0xF9, 4, flags, 20, 0, transparent.unwrap_or(0), 0]);
        out.extend(gif_image_descriptor(0, 0, w, h, 0x87));
        for i in 0..=255u8 {
            out.extend_from_slice(&[i ^ shade, shade, i]);
        }
        let indices: Vec<u8> = (0..w * h).map(|i| (i % 7) as u8).collect();
        out.extend(gif_lzw(&indices));
    }
    out.push(0x3B);
    out
}

fn jpeg(
    w: u16,
    h: u16,
    colour: jpeg_encoder::ColorType,
    setup: impl FnOnce(&mut jpeg_encoder::Encoder<&mut Vec<u8>>),
) -> Vec<u8> {
    let channels = match colour {
        jpeg_encoder::ColorType::Luma => 1,
        jpeg_encoder::ColorType::Rgb => 3,
        _ => 4,
    };
    let pixels: Vec<u8> = (0..usize::from(w) * usize::from(h) * channels)
        .map(|i| {
            let (p, c) = (i / channels, i % channels);
            let (x, y) = (p % usize::from(w), p / usize::from(w));
            ((x * 5 + y * 3 + c * 60) % 256) as u8
        })
        .collect();
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 85);
    setup(&mut encoder);
    encoder.encode(&pixels, w, h, colour).unwrap();
    out
}

fn rgb(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, (x ^ y) as u8]))
}

fn rgba(w: u32, h: u32) -> image::RgbaImage {
    image::RgbaImage::from_fn(w, h, |x, y| image::Rgba([(x * 3) as u8, (y * 5) as u8, 90, ((x + y) * 9 % 256) as u8]))
}

fn animated_gif() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut out);
        encoder.set_repeat(image::codecs::gif::Repeat::Infinite).unwrap();
        let frames = (0..3u32).map(|n| {
            let img = image::RgbaImage::from_fn(40, 30, |x, y| {
                image::Rgba([(x * 6) as u8, (y * 8) as u8, (n * 100) as u8, if (x + y + n) % 9 == 0 { 0 } else { 255 }])
            });
            image::Frame::from_parts(img, 0, 0, image::Delay::from_numer_denom_ms(80, 1))
        });
        encoder.encode_frames(frames).unwrap();
    }
    out
}

/// The corpus: a name and the bytes of each odd file.
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    use jpeg_encoder::ColorType as C;
    use jpeg_encoder::SamplingFactor as S;
    let png = image::ImageFormat::Png;
    let webp = image::ImageFormat::WebP;
    vec![
        ("progressive JPEG", jpeg(61, 43, C::Rgb, |e| e.set_progressive(true))),
        ("progressive greyscale JPEG", jpeg(61, 43, C::Luma, |e| e.set_progressive(true))),
        (
            "progressive JPEG with restart intervals",
            jpeg(61, 43, C::Rgb, |e| {
                e.set_progressive(true);
                e.set_restart_interval(3);
            }),
        ),
        ("baseline JPEG with restart interval 1", jpeg(61, 43, C::Rgb, |e| e.set_restart_interval(1))),
        (
            "baseline JPEG with restart interval 5, 4:2:0",
            jpeg(61, 43, C::Rgb, |e| {
                e.set_restart_interval(5);
                e.set_sampling_factor(S::F_2_2);
            }),
        ),
        ("baseline JPEG 4:2:2", jpeg(61, 43, C::Rgb, |e| e.set_sampling_factor(S::F_2_1))),
        ("CMYK JPEG (Adobe, no transform)", jpeg(61, 43, C::Cmyk, |_| {})),
        ("YCCK JPEG (Adobe transform 2)", jpeg(61, 43, C::CmykAsYcck, |_| {})),
        ("CMYK JPEG with K sampled 2x1", jpeg(61, 43, C::Cmyk, |e| e.set_sampling_factor(S::F_2_1))),
        // The decoder (zune-jpeg through `image`) fails on this valid file (K sampled 2x2, C, M,
        // Y at 1x1, progressive), so the server refuses it at upload (415 unsupported_image).
        ("progressive CMYK JPEG", jpeg(61, 43, C::Cmyk, |e| e.set_progressive(true))),
        // CMYK JPEGs whose K is sampled 4x1 or 4x2 make the decoder panic (zune-jpeg 0.5.15,
        // `idct/avx2.rs`), and 2x4 makes it fail: refused at upload (415), never handed to it.
        ("CMYK JPEG with K sampled 4x1", jpeg(61, 43, C::Cmyk, |e| e.set_sampling_factor(S::F_4_1))),
        ("CMYK JPEG with K sampled 4x2", jpeg(61, 43, C::Cmyk, |e| e.set_sampling_factor(S::F_4_2))),
        ("CMYK JPEG with K sampled 2x4", jpeg(61, 43, C::Cmyk, |e| e.set_sampling_factor(S::F_2_4))),
        (
            "progressive CMYK JPEG with K sampled 2x1",
            jpeg(61, 43, C::Cmyk, |e| {
                e.set_progressive(true);
                e.set_sampling_factor(S::F_2_1);
            }),
        ),
        (
            "progressive CMYK JPEG, 4:4:4",
            jpeg(61, 43, C::Cmyk, |e| {
                e.set_progressive(true);
                e.set_sampling_factor(S::F_1_1);
            }),
        ),
        ("progressive YCCK JPEG", jpeg(61, 43, C::CmykAsYcck, |e| e.set_progressive(true))),
        ("greyscale JPEG", jpeg(61, 43, C::Luma, |_| {})),
        ("baseline JPEG 4:1:1", jpeg(61, 43, C::Rgb, |e| e.set_sampling_factor(S::F_4_1))),
        ("baseline JPEG 4:4:0", jpeg(61, 43, C::Rgb, |e| e.set_sampling_factor(S::F_1_2))),
        ("baseline JPEG with 1x4 luma sampling", jpeg(61, 43, C::Rgb, |e| e.set_sampling_factor(S::F_1_4))),
        ("baseline JPEG with 4x2 luma sampling", jpeg(61, 43, C::Rgb, |e| e.set_sampling_factor(S::F_4_2))),
        (
            "progressive JPEG 4:1:1",
            jpeg(61, 43, C::Rgb, |e| {
                e.set_progressive(true);
                e.set_sampling_factor(S::F_4_1);
            }),
        ),
        (
            "progressive JPEG with 2x4 luma sampling",
            jpeg(61, 43, C::Rgb, |e| {
                e.set_progressive(true);
                e.set_sampling_factor(S::F_2_4);
            }),
        ),
        ("65500x1 JPEG", jpeg(65_500, 1, C::Rgb, |_| {})),
        ("1x65500 progressive JPEG", jpeg(1, 65_500, C::Rgb, |e| e.set_progressive(true))),
        ("1x1 JPEG", jpeg(1, 1, C::Rgb, |_| {})),
        ("1x1 greyscale JPEG", jpeg(1, 1, C::Luma, |_| {})),
        ("1x1 PNG RGB", encode_with_image(image::DynamicImage::ImageRgb8(rgb(1, 1)), png)),
        ("1x1 PNG RGBA", encode_with_image(image::DynamicImage::ImageRgba8(rgba(1, 1)), png)),
        (
            "1x1 grey PNG, 1 bit",
            PngLayout { width: 1, height: 1, bit_depth: 1, color_type: 0, interlaced: false }
                .file(&[], &|_, _| vec![1]),
        ),
        ("1x1 interlaced PNG", interlaced_png(2, 8, 1, 1)),
        ("1x1 GIF", encode_with_image(image::DynamicImage::ImageRgba8(rgba(1, 1)), image::ImageFormat::Gif)),
        ("1x1 WebP lossless", encode_with_image(image::DynamicImage::ImageRgba8(rgba(1, 1)), webp)),
        ("65500x1 PNG", encode_with_image(image::DynamicImage::ImageRgb8(rgb(65_500, 1)), png)),
        ("1x65500 PNG", encode_with_image(image::DynamicImage::ImageRgb8(rgb(1, 65_500)), png)),
        ("16383x1 WebP lossless", encode_with_image(image::DynamicImage::ImageRgba8(rgba(16_383, 1)), webp)),
        ("1x16383 WebP lossless", encode_with_image(image::DynamicImage::ImageRgb8(rgb(1, 16_383)), webp)),
        ("65500x1 GIF", one_frame_gif((65_500, 1), (0, 0, 65_500, 1))),
        ("GIF whose frame reaches past its logical screen", one_frame_gif((20, 10), (10, 5, 30, 12))),
        (
            "16-bit RGB PNG",
            encode_with_image(
                image::DynamicImage::ImageRgb16(image::ImageBuffer::from_fn(45, 31, |x, y| {
                    image::Rgb([(x * 1400) as u16, (y * 2000) as u16, 65_535 - (x * y) as u16])
                })),
                png,
            ),
        ),
        (
            "16-bit grey+alpha PNG",
            encode_with_image(
                image::DynamicImage::ImageLumaA16(image::ImageBuffer::from_fn(45, 31, |x, y| {
                    image::LumaA([(x * 1400) as u16, (y * 2100) as u16])
                })),
                png,
            ),
        ),
        ("interlaced (Adam7) PNG RGB", interlaced_png(2, 8, 45, 31)),
        ("interlaced (Adam7) PNG RGBA 16-bit", interlaced_png(6, 16, 13, 9)),
        ("interlaced (Adam7) grey PNG, 2 bits", interlaced_png(0, 2, 19, 11)),
        ("palette PNG 4-bit with tRNS", palette_png(4, true)),
        ("palette PNG 8-bit with tRNS", palette_png(8, true)),
        ("palette PNG 1-bit", palette_png(1, false)),
        ("grey PNG, 1 bit", grey_png(1)),
        ("grey PNG, 2 bits", grey_png(2)),
        ("grey PNG, 4 bits", grey_png(4)),
        (
            "grey PNG with tRNS",
            PngLayout { width: 17, height: 9, bit_depth: 8, color_type: 0, interlaced: false }
                .file(&[png_chunk(b"tRNS", &[0, 7])], &|x, y| vec![((x * y) % 16) as u16]),
        ),
        ("APNG with 3 frames", apng(true)),
        ("APNG with 3 frames and a default image that is not one", apng(false)),
        ("animated GIF (3 frames, transparency)", animated_gif()),
        ("interlaced GIF", interlaced_gif()),
        ("GIF with local colour tables only and a transparent index", local_tables_transparent_gif()),
        ("lossless WebP with alpha", encode_with_image(image::DynamicImage::ImageRgba8(rgba(47, 29)), webp)),
    ]
}

/// Where `(w, h)` lands inside a square of `edge`, never enlarged, ratio kept (rounded, at
/// least one pixel).
fn fit_inside(w: u32, h: u32, edge: u32) -> (u32, u32) {
    let long = w.max(h);
    if long <= edge {
        return (w, h);
    }
    let scale = |v: u32| ((u64::from(v) * u64::from(edge) + u64::from(long) / 2) / u64::from(long)).max(1) as u32;
    if w >= h { (edge, scale(h)) } else { (scale(w), edge) }
}

/// Waits until every variant is ready; a failed variant or the timeout is an error.
async fn get_bytes(server: &Server, url: &str) -> (u16, Vec<u8>) {
    let resp = server.client.get(url).send().await.unwrap();
    (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
}

/// Decodes with the `image` crate; a panic of the decoder is an error too.
fn decode(bytes: &[u8]) -> Result<image::DynamicImage, String> {
    match std::panic::catch_unwind(|| image::load_from_memory(bytes)) {
        Ok(decoded) => decoded.map_err(|e| e.to_string()),
        Err(_) => Err("the image crate's decoder panicked".into()),
    }
}

/// Checks one accepted file: every problem found with it.
async fn check_served(server: &Server, body: &Value) -> Vec<String> {
    let mut problems = vec![];
    let Some(id) = body["id"].as_str() else { return vec![format!("no id in {body}")] };
    let (w, h) = (body["width"].as_u64().unwrap_or(0) as u32, body["height"].as_u64().unwrap_or(0) as u32);
    // The original is served at once and decodes at the size the API states.
    let (status, original) = get_bytes(server, body["link"].as_str().unwrap_or_default()).await;
    // (A GIF's stated size is its logical screen grown to hold every frame, while the `image`
    // crate decodes to the logical screen alone: only its variants are compared.)
    let gif = body["format"] == "gif";
    match decode(&original) {
        _ if status != 200 => problems.push(format!("the original answers {status}")),
        Ok(img) if !gif && (img.width(), img.height()) != (w, h) => {
            problems.push(format!("the original decodes to {}x{}, the API says {w}x{h}", img.width(), img.height()))
        }
        Ok(_) => {}
        Err(e) => problems.push(format!("the served original does not decode with the image crate: {e}")),
    }
    // Every variant becomes ready, decodes, and has the size the API states, which is the
    // image fitted inside the size's square.
    let body = match server.variants_ready(id, VARIANT_TIMEOUT).await {
        Ok(body) => body,
        Err(e) => {
            problems.push(e);
            return problems;
        }
    };
    let (dw, dh) =
        (body["display_width"].as_u64().unwrap_or(0) as u32, body["display_height"].as_u64().unwrap_or(0) as u32);
    for (size, edge) in SIZES {
        let v = &body["variants"][size];
        let stated = (v["width"].as_u64().unwrap_or(0) as u32, v["height"].as_u64().unwrap_or(0) as u32);
        if stated != fit_inside(dw, dh, edge) {
            problems.push(format!("{size}: the API states {stated:?} for a {dw}x{dh} image"));
        }
        let (status, bytes) = get_bytes(server, v["url"].as_str().unwrap_or_default()).await;
        match decode(&bytes) {
            _ if status != 200 => problems.push(format!("{size}: answers {status}")),
            Ok(img) if (img.width(), img.height()) != stated => {
                problems.push(format!("{size}: {}x{} served, the API states {stated:?}", img.width(), img.height()))
            }
            Ok(_) => {}
            Err(e) => problems.push(format!("{size}: the variant does not decode: {e}")),
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_files_are_refused_clearly_or_served_in_every_size() {
    let started = Instant::now();
    // Given a corpus of real-world odd files,
    let corpus = corpus();
    let server = Server::start().await;
    let mut failures = vec![];
    let mut accepted = vec![];
    let mut refused = vec![];
    for (name, bytes) in &corpus {
        let mime = match bytes.get(..4) {
            Some([0xFF, 0xD8, ..]) => "image/jpeg",
            Some([0x89, b'P', ..]) => "image/png",
            Some([b'G', b'I', ..]) => "image/gif",
            _ => "image/webp",
        };
        // when each is uploaded,
        let (status, body) = server.upload_raw(bytes.clone(), mime).await;
        match status {
            201 => accepted.push((*name, body)),
            // then it is either refused with a 4xx JSON error that says why,
            400..=499 => {
                let code = error_code(status, &body);
                let known = matches!(
                    (status, code.as_str()),
                    (415, "unsupported_image") | (422, "damaged_image" | "unreadable_image") | (413, _)
                );
                if !known {
                    failures.push(format!("{name}: refused with {status} {code}, not a refusal of the image"));
                }
                eprintln!("refused: {name}: {status} {code}: {}", body["error"]["message"]);
                refused.push(*name);
            }
            _ => failures.push(format!("{name}: upload answered {status}: {body}")),
        }
    }
    // or accepted and served: the original, and every variant once ready (waited for all at
    // once, so that the timeout is spent at most once).
    let checks = futures::future::join_all(accepted.iter().map(|(_, body)| check_served(&server, body))).await;
    for ((name, body), problems) in accepted.iter().zip(checks) {
        eprintln!(
            "accepted: {name} ({}x{} {}): {}",
            body["width"],
            body["height"],
            body["format"],
            if problems.is_empty() { "served in every size" } else { "FAILED" }
        );
        failures.extend(problems.into_iter().map(|p| format!("{name}: {p}")));
    }
    eprintln!(
        "odd files: {} in the corpus, {} accepted, {} refused ({refused:?}) in {:?}",
        corpus.len(),
        accepted.len(),
        refused.len(),
        started.elapsed()
    );
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}
