//! Variants look like their source in a colour-managed browser: whatever colour space the
//! source declares (an ICC profile in a JPEG, `cICP`, `iCCP`, `gAMA` in a PNG) and however its
//! samples are stored (CMYK, YCCK, grey, 16 bits, a palette with transparency), every variant
//! is sRGB with the source's colours.
//!
//! Wide-gamut sources are made here from the test photos with the colour engine, so no large
//! files are shipped: the photo's sRGB pixels are converted to ProPhoto, Adobe RGB or Display P3
//! and written as a JPEG carrying that profile. Each goes through the upload's path (inspect,
//! strip) and the variant pipeline, and each variant, read as a browser reads it, is compared
//! with an independent reference: the same file converted to sRGB by the engine at full size,
//! then resized to the variant's size. The AVIF variants of the later pass are read back by
//! libavif's `avifdec`.

#[path = "support/avifdec.rs"]
mod avifdec;

use std::io::Cursor;
use std::path::PathBuf;

use image::{GenericImageView, RgbImage};
use imghost::media::variants::{self, Variant};
use imghost::media::{self, Format};
use moxcms::{ColorProfile, Layout, TransformOptions};

fn photo(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/photos").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The stored file for `bytes`, as ingest makes it, run through the variant pipeline: the
/// first pass (JPEG or PNG, and WebP) and, when `avif`, the later one.
fn variants_of(bytes: &[u8], avif: bool) -> Vec<Variant> {
    let inspected = media::inspect(bytes).expect("the source is accepted");
    let stored = inspected.strip(bytes, 1);
    let mut made = variants::make_variants(&stored, 1).expect("variants are made");
    if avif {
        made.extend(variants::make_avif(&stored, 1).expect("AVIF variants are made"));
    }
    made
}

fn convert(pixels: &[u8], from: &ColorProfile, to: &ColorProfile) -> Vec<u8> {
    let t = from.create_transform_8bit(Layout::Rgb, to, Layout::Rgb, TransformOptions::default()).unwrap();
    let mut out = vec![0u8; pixels.len()];
    t.transform(pixels, &mut out).unwrap();
    out
}

/// A variant's pixels as a colour-managed browser shows them: converted from its embedded
/// profile if it has one, else taken as sRGB.
fn as_shown(v: &Variant) -> RgbImage {
    if v.format == Format::Avif {
        // Tagged sRGB by its colour box, which is how avifdec leaves it.
        return image::DynamicImage::ImageRgba8(avifdec::decode(&v.bytes)).to_rgb8();
    }
    let img = image::load_from_memory(&v.bytes).unwrap().to_rgb8();
    let icc = match v.format {
        Format::Jpeg => image::codecs::jpeg::JpegDecoder::new(Cursor::new(&v.bytes))
            .ok()
            .and_then(|mut d| image::ImageDecoder::icc_profile(&mut d).ok().flatten()),
        _ => None,
    };
    match icc {
        Some(icc) => {
            let profile = ColorProfile::new_from_slice(&icc).unwrap();
            let raw = convert(img.as_raw(), &profile, &ColorProfile::new_srgb());
            RgbImage::from_raw(img.width(), img.height(), raw).unwrap()
        }
        None => img,
    }
}

/// Mean absolute difference per channel, on the 0 to 255 scale, between the colours of 4x4
/// blocks: averaging a block removes the encoders' high-frequency noise (JPEG at quality 82
/// alone moves a detailed photo's pixels by 3 to 7 levels on average) and the resamplers'
/// differences at edges, but not a colour shift, which is what is measured.
fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let (bw, bh) = (a.width() as usize / 4, a.height() as usize / 4);
    let blocks = |img: &RgbImage| -> Vec<i32> {
        let (raw, stride) = (img.as_raw(), img.width() as usize * 3);
        let mut sums = vec![0i32; bw * bh * 3];
        for y in 0..bh * 4 {
            for x in 0..bw * 4 {
                for c in 0..3 {
                    sums[((y / 4) * bw + x / 4) * 3 + c] += i32::from(raw[y * stride + x * 3 + c]);
                }
            }
        }
        sums
    };
    let total: i64 = blocks(a).iter().zip(blocks(b)).map(|(x, y)| i64::from((x - y).abs())).sum();
    total as f64 / 16.0 / (bw * bh * 3) as f64
}

fn resized(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    if img.dimensions() == (w, h) {
        return img.clone();
    }
    image::imageops::resize(img, w, h, image::imageops::FilterType::Lanczos3)
}

fn jpeg_with_profile(rgb: &RgbImage, icc: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = jpeg_encoder::Encoder::new(&mut out, 95);
    e.set_sampling_factor(jpeg_encoder::SamplingFactor::F_1_1);
    e.add_icc_profile(icc).unwrap();
    e.encode(rgb.as_raw(), rgb.width() as u16, rgb.height() as u16, jpeg_encoder::ColorType::Rgb).unwrap();
    out
}

#[test]
fn wide_gamut_photos_keep_their_colours_in_every_variant() {
    // Two small photos, one muted and one detailed, and a 3-megapixel one that every size is
    // resized from.
    let photos = ["cameras/canon-ixus.jpg", "gps/DSCN0010.jpg", "large/canon-sx60-3mp.jpg"];
    let spaces: [(&str, ColorProfile); 4] = [
        // The control: the photo as it is, with a profile that changes nothing.
        ("sRGB", ColorProfile::new_srgb()),
        ("ProPhoto RGB", ColorProfile::new_pro_photo_rgb()),
        ("Adobe RGB", ColorProfile::new_adobe_rgb()),
        ("Display P3", ColorProfile::new_display_p3()),
    ];
    let srgb = ColorProfile::new_srgb();
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for name in photos {
        let source = image::load_from_memory(&photo(name)).unwrap().to_rgb8();
        for (space, profile) in &spaces {
            // Given the photo converted to a wide space and saved with that space's profile,
            let wide =
                RgbImage::from_raw(source.width(), source.height(), convert(source.as_raw(), &srgb, profile)).unwrap();
            let file = jpeg_with_profile(&wide, &profile.encode().unwrap());
            // and the reference: that file as a colour-managed reader sees it, in sRGB,
            let decoded = image::load_from_memory(&file).unwrap().to_rgb8();
            let reference = RgbImage::from_raw(
                decoded.width(),
                decoded.height(),
                convert(decoded.as_raw(), &ColorProfile::new_from_slice(&profile.encode().unwrap()).unwrap(), &srgb),
            )
            .unwrap();
            // when its variants are made,
            let made = variants_of(&file, true);
            assert_eq!(made.len(), 3 * variants::Size::ALL.len(), "{name} {space}");
            let mut references = std::collections::HashMap::new();
            for v in &made {
                // then each, read as a browser reads it, is within 3 levels of the reference on
                // average,
                let shown = as_shown(v);
                let (want, unconverted) = references
                    .entry((v.width, v.height))
                    .or_insert_with(|| (resized(&reference, v.width, v.height), resized(&decoded, v.width, v.height)));
                let managed = mean_abs_diff(&shown, want);
                // where the same pixels taken as they were stored (the old pipeline's mistake)
                // are not, by far for ProPhoto (Adobe RGB and Display P3 differ less on these
                // muted photos; the saturated bars of the next test cover them).
                let unmanaged = mean_abs_diff(unconverted, want);
                report.push(format!(
                    "{name} {space} {:?} {:?}: {managed:.2} (unconverted {unmanaged:.2})",
                    v.size, v.format
                ));
                if managed > 3.0 || (*space == "ProPhoto RGB" && unmanaged <= 3.0) {
                    failures.push(report.last().unwrap().clone());
                }
            }
        }
    }
    println!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A 256x64 image of four 64-pixel bars.
fn bars<P: image::Pixel>(colours: [P; 4]) -> image::ImageBuffer<P, Vec<P::Subpixel>> {
    image::ImageBuffer::from_fn(256, 64, |x, _| colours[(x / 64) as usize])
}

/// The centre of each bar of a variant, as RGBA.
fn bar_colours(v: &Variant) -> Vec<[u8; 4]> {
    let img = image::load_from_memory(&v.bytes).unwrap();
    assert_eq!(img.dimensions(), (256, 64), "{:?}", v.format);
    (0..4).map(|i| img.get_pixel(i * 64 + 32, 32).0).collect()
}

fn close(got: &[[u8; 4]], want: &[[u8; 4]], tolerance: u8) -> bool {
    got.iter().zip(want).all(|(g, w)| g.iter().zip(w).all(|(a, b)| a.abs_diff(*b) <= tolerance))
}

fn cmyk_jpeg(colour_type: jpeg_encoder::ColorType) -> Vec<u8> {
    // Cyan, magenta, yellow and half black, as ink amounts (jpeg-encoder stores them inverted
    // with an Adobe marker, as Photoshop does).
    let inks = bars([
        image::Rgba([255u8, 0, 0, 0]),
        image::Rgba([0, 255, 0, 0]),
        image::Rgba([0, 0, 255, 0]),
        image::Rgba([0, 0, 0, 128]),
    ]);
    let mut out = Vec::new();
    let e = jpeg_encoder::Encoder::new(&mut out, 95);
    e.encode(inks.as_raw(), 256, 64, colour_type).unwrap();
    out
}

fn png(write: impl FnOnce(&mut png::Encoder<'_, &mut Vec<u8>>), extra: &[(&[u8; 4], Vec<u8>)], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut e = png::Encoder::new(&mut out, 256, 64);
        write(&mut e);
        let mut w = e.write_header().unwrap();
        for (kind, body) in extra {
            w.write_chunk(png::chunk::ChunkType(**kind), body).unwrap();
        }
        w.write_image_data(data).unwrap();
    }
    out
}

/// A source, the colours its variants must show, and how close they must be.
type Case = (&'static str, Vec<u8>, Vec<[u8; 4]>, u8);

#[test]
fn sources_stored_in_other_ways_come_out_with_their_colours() {
    let opaque = |c: [u8; 3]| [c[0], c[1], c[2], 255];
    // sRGB red, green, blue and grey; in Display P3 these numbers are more saturated colours,
    // which sRGB shows as its most saturated ones (255) or close.
    let rgb16: Vec<u8> = bars([
        image::Rgb([65535u16, 0, 0]),
        image::Rgb([0, 65535, 0]),
        image::Rgb([0, 0, 65535]),
        image::Rgb([32896, 32896, 32896]),
    ])
    .as_raw()
    .iter()
    .flat_map(|v| v.to_be_bytes())
    .collect();
    let rgb16_png = |extra: &[(&[u8; 4], Vec<u8>)]| {
        png(
            |e| {
                e.set_color(png::ColorType::Rgb);
                e.set_depth(png::BitDepth::Sixteen);
            },
            extra,
            &rgb16,
        )
    };
    let p3_muted = bars([
        image::Rgb([200u8, 60, 60]),
        image::Rgb([60, 200, 60]),
        image::Rgb([60, 60, 200]),
        image::Rgb([128, 128, 128]),
    ]);
    let p3_in_srgb = {
        let raw = convert(p3_muted.as_raw(), &ColorProfile::new_display_p3(), &ColorProfile::new_srgb());
        let img = RgbImage::from_raw(256, 64, raw).unwrap();
        (0..4).map(|i| opaque(img.get_pixel(i * 64 + 32, 32).0)).collect::<Vec<_>>()
    };
    let grey_linear = image::GrayImage::from_fn(256, 64, |x, _| image::Luma([[0u8, 50, 128, 255][(x / 64) as usize]]));
    let linear_in_srgb = [0u8, 122, 188, 255].map(|v| [v, v, v, 255]).to_vec();
    let palette = [255u8, 0, 0, 0, 0, 255, 0, 255, 0, 255, 255, 255];
    let indexed: Vec<u8> = (0..64).flat_map(|_| (0..256u32).map(|x| (x / 64) as u8)).collect();
    // (what, the file, the colour of each bar as RGBA, the tolerance per channel)
    let cases: Vec<Case> = vec![
        (
            "CMYK, Adobe-inverted",
            cmyk_jpeg(jpeg_encoder::ColorType::Cmyk),
            vec![opaque([0, 255, 255]), opaque([255, 0, 255]), opaque([255, 255, 0]), opaque([127, 127, 127])],
            8,
        ),
        (
            "YCCK, Adobe-inverted",
            cmyk_jpeg(jpeg_encoder::ColorType::CmykAsYcck),
            vec![opaque([0, 255, 255]), opaque([255, 0, 255]), opaque([255, 255, 0]), opaque([127, 127, 127])],
            8,
        ),
        (
            "grey JPEG with a linear grey profile",
            {
                let mut out = Vec::new();
                let mut e = jpeg_encoder::Encoder::new(&mut out, 100);
                e.add_icc_profile(&ColorProfile::new_gray_with_gamma(1.0).encode().unwrap()).unwrap();
                e.encode(grey_linear.as_raw(), 256, 64, jpeg_encoder::ColorType::Luma).unwrap();
                out
            },
            linear_in_srgb.clone(),
            4,
        ),
        (
            "grey PNG with a gAMA of 1.0",
            png(
                |e| e.set_color(png::ColorType::Grayscale),
                &[(b"gAMA", 100_000u32.to_be_bytes().to_vec())],
                grey_linear.as_raw(),
            ),
            linear_in_srgb,
            4,
        ),
        (
            "16-bit PNG, untagged",
            rgb16_png(&[]),
            vec![opaque([255, 0, 0]), opaque([0, 255, 0]), opaque([0, 0, 255]), opaque([128, 128, 128])],
            4,
        ),
        (
            "16-bit PNG in Display P3 by cICP",
            {
                let raw: Vec<u8> = p3_muted.as_raw().iter().flat_map(|&v| [v, v]).collect();
                png(
                    |e| {
                        e.set_color(png::ColorType::Rgb);
                        e.set_depth(png::BitDepth::Sixteen);
                    },
                    &[(b"cICP", vec![12, 13, 0, 1])],
                    &raw,
                )
            },
            p3_in_srgb.clone(),
            4,
        ),
        (
            "8-bit PNG in Display P3 by iCCP",
            {
                let icc = ColorProfile::new_display_p3().encode().unwrap();
                let mut body = b"P3\0\0".to_vec();
                body.extend(miniz_oxide::deflate::compress_to_vec_zlib(&icc, 6));
                png(|e| e.set_color(png::ColorType::Rgb), &[(b"iCCP", body)], p3_muted.as_raw())
            },
            p3_in_srgb,
            4,
        ),
        (
            "palette with a transparent entry",
            png(
                |e| {
                    e.set_color(png::ColorType::Indexed);
                    e.set_palette(palette.to_vec());
                    e.set_trns(vec![255u8, 255, 255, 0]);
                },
                &[],
                &indexed,
            ),
            vec![[255, 0, 0, 255], [0, 0, 255, 255], [0, 255, 0, 255], [0, 0, 0, 0]],
            4,
        ),
    ];
    for (what, file, want, tolerance) in cases {
        // Given a source stored this way, when its variants are made,
        let made = variants_of(&file, false);
        for v in &made {
            // then every variant shows the colours expected (alpha included),
            let mut got = bar_colours(v);
            // (a fully transparent pixel's colour is not shown, so it is not compared)
            for (g, w) in got.iter_mut().zip(&want) {
                if w[3] == 0 && g[3] == 0 {
                    *g = *w;
                }
            }
            assert!(close(&got, &want, tolerance), "{what}, {:?} {:?}: got {got:?}, want {want:?}", v.size, v.format);
        }
        // and transparency decides the classic format.
        let transparent = want.iter().any(|c| c[3] < 255);
        let classic = made.iter().find(|v| !variants::is_modern(v.format)).unwrap().format;
        assert_eq!(classic, if transparent { Format::Png } else { Format::Jpeg }, "{what}");
    }
}

/// A small CMYK profile (lut16 A2B tables on a 2-point grid, Lab PCS) whose inks are not the
/// plain ones: each ink is lighter and duller than its pure primary, and the paper is warm.
fn cmyk_profile() -> Vec<u8> {
    use moxcms::{DataColorSpace, LutDataType, LutStore, LutType, LutWarehouse, Matrix3d, ProfileClass};
    // Lab at each corner of the grid (C slowest, K fastest), as ICC v2 lut16 encodes it:
    // L * 65280 / 100, (a + 128) * 256, (b + 128) * 256.
    let lab = |l: f64, a: f64, b: f64| [l * 652.8, (a + 128.0) * 256.0, (b + 128.0) * 256.0].map(|v| v.round() as u16);
    let mut clut = Vec::new();
    for c in 0..2 {
        for m in 0..2 {
            for y in 0..2 {
                for k in 0..2 {
                    let (c, m, y, k) = (f64::from(c), f64::from(m), f64::from(y), f64::from(k));
                    // A rough subtractive model: each ink darkens and tints the paper.
                    let l = (93.0 - 38.0 * c - 45.0 * m - 8.0 * y - 70.0 * k).max(8.0);
                    let a = 2.0 - 30.0 * c + 60.0 * m - 5.0 * y;
                    let b = 6.0 - 45.0 * c - 5.0 * m + 75.0 * y;
                    clut.extend(lab(l, a, b));
                }
            }
        }
    }
    let table = LutWarehouse::Lut(LutDataType {
        num_input_channels: 4,
        num_output_channels: 3,
        num_clut_grid_points: 2,
        matrix: Matrix3d::IDENTITY,
        num_input_table_entries: 2,
        num_output_table_entries: 2,
        input_table: LutStore::Store16([0, 65535].repeat(4)),
        clut_table: LutStore::Store16(clut),
        output_table: LutStore::Store16([0, 65535].repeat(3)),
        lut_type: LutType::Lut16,
    });
    let mut profile = ColorProfile::default();
    profile.profile_class = ProfileClass::OutputDevice;
    profile.color_space = DataColorSpace::Cmyk;
    profile.pcs = DataColorSpace::Lab;
    profile.white_point = ColorProfile::new_srgb().white_point;
    profile.lut_a_to_b_perceptual = Some(table.clone());
    profile.lut_a_to_b_colorimetric = Some(table);
    profile.encode().expect("the profile encodes")
}

#[test]
fn cmyk_and_ycck_jpegs_are_converted_through_their_profile() {
    // Given a CMYK profile and the sRGB colours it gives cyan, magenta, yellow and half black,
    let icc = cmyk_profile();
    let profile = ColorProfile::new_from_slice(&icc).unwrap();
    let inks = [[255u8, 0, 0, 0], [0, 255, 0, 0], [0, 0, 255, 0], [0, 0, 0, 128]];
    let t = profile
        .create_transform_8bit(Layout::Rgba, &ColorProfile::new_srgb(), Layout::Rgb, TransformOptions::default())
        .unwrap();
    let mut want = vec![0u8; 12];
    t.transform(&inks.concat(), &mut want).unwrap();
    let want: Vec<[u8; 4]> = want.chunks(3).map(|c| [c[0], c[1], c[2], 255]).collect();
    // (far from the plain conversion, which would give pure cyan, magenta and yellow: that is
    // what makes this test fail if the profile is ignored),
    let plain = [[0u8, 255, 255, 255], [255, 0, 255, 255], [255, 255, 0, 255], [127, 127, 127, 255]];
    assert!(!close(&want, &plain, 30), "the test profile is too close to the plain conversion: {want:?}");
    for (what, colour_type) in [("CMYK", jpeg_encoder::ColorType::Cmyk), ("YCCK", jpeg_encoder::ColorType::CmykAsYcck)]
    {
        // when a JPEG of those inks that embeds the profile has its variants made,
        let bars = bars(inks.map(image::Rgba));
        let mut file = Vec::new();
        let mut e = jpeg_encoder::Encoder::new(&mut file, 100);
        e.add_icc_profile(&icc).unwrap();
        e.encode(bars.as_raw(), 256, 64, colour_type).unwrap();
        // then every variant shows the profile's colours.
        for v in variants_of(&file, false) {
            let got = bar_colours(&v);
            assert!(close(&got, &want, 6), "{what} {:?} {:?}: got {got:?}, want {want:?}", v.size, v.format);
        }
    }
    // And a colour JPEG that carries a CMYK profile (which describes nothing in it) is shown as
    // if untagged, as browsers show it, rather than refused.
    let rgb = bars([
        image::Rgb([200u8, 30, 30]),
        image::Rgb([30, 200, 30]),
        image::Rgb([30, 30, 200]),
        image::Rgb([9, 9, 9]),
    ]);
    let file = jpeg_with_profile(&rgb, &icc);
    for v in variants_of(&file, false) {
        let got = bar_colours(&v);
        let want = [[200, 30, 30, 255], [30, 200, 30, 255], [30, 30, 200, 255], [9, 9, 9, 255]];
        assert!(close(&got, &want, 6), "RGB with a CMYK profile {:?} {:?}: got {got:?}", v.size, v.format);
    }
}
