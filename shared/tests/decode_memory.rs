//! The decode budget is only as good as each image's cost estimate: this measures the real peak
//! memory (VmHWM) of making the variants of one image of each kind, each in a fresh process, and
//! checks it against the estimate inspection gave.
//!
//! The test re-runs its own binary once per case (`IMGHOST_DECODE_FILE` names the image), since
//! VmHWM only ever grows within a process.

use std::io::Cursor;
use std::process::Command;

/// Images of about 6 megapixels: large enough that pixel buffers dominate the process, small
/// enough to make quickly in a debug build.
const SIDE: u32 = 2500;

/// A kind of image, and how to make one.
type Kind = (&'static str, fn() -> Vec<u8>);

fn kinds() -> Vec<Kind> {
    vec![
        ("baseline JPEG 4:2:0", || jpeg(false, jpeg_encoder::SamplingFactor::F_2_2)),
        ("baseline JPEG 4:4:4", || jpeg(false, jpeg_encoder::SamplingFactor::F_1_1)),
        ("progressive JPEG 4:2:0", || jpeg(true, jpeg_encoder::SamplingFactor::F_2_2)),
        ("progressive JPEG 4:4:4", || jpeg(true, jpeg_encoder::SamplingFactor::F_1_1)),
        ("PNG RGB", || encode(image::DynamicImage::ImageRgb8(pattern_rgb()), image::ImageFormat::Png)),
        ("PNG RGBA with transparency", || {
            encode(image::DynamicImage::ImageRgba8(pattern_rgba()), image::ImageFormat::Png)
        }),
        ("PNG grey", || {
            encode(
                image::DynamicImage::ImageLuma8(image::DynamicImage::ImageRgb8(pattern_rgb()).to_luma8()),
                image::ImageFormat::Png,
            )
        }),
        ("PNG grey with alpha", || {
            encode(
                image::DynamicImage::ImageLumaA8(image::DynamicImage::ImageRgba8(pattern_rgba()).to_luma_alpha8()),
                image::ImageFormat::Png,
            )
        }),
        ("PNG 16-bit RGB", || {
            encode(
                image::DynamicImage::ImageRgb16(image::DynamicImage::ImageRgb8(pattern_rgb()).to_rgb16()),
                image::ImageFormat::Png,
            )
        }),
        ("GIF", || {
            encode(
                image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(SIDE, SIDE, |x, y| {
                    image::Rgba([(x & 0xE0) as u8, (y & 0xE0) as u8, 0, 255])
                })),
                image::ImageFormat::Gif,
            )
        }),
        ("WebP lossless with alpha", || {
            encode(image::DynamicImage::ImageRgba8(pattern_rgba()), image::ImageFormat::WebP)
        }),
        // Animations are made a frame at a time; their frames are noise, the worst case for the
        // size of the encoded variants held until the end.
        ("animated GIF of noise", || {
            let mut out = Vec::new();
            let mut e = gif::Encoder::new(&mut out, ANIMATED.0 as u16, ANIMATED.1 as u16, &[]).unwrap();
            for i in 0..ANIMATED_FRAMES {
                let mut raw = noise(i, 255).into_raw();
                let frame = gif::Frame::from_rgba_speed(ANIMATED.0 as u16, ANIMATED.1 as u16, &mut raw, 30);
                e.write_frame(&frame).unwrap();
            }
            drop(e);
            out
        }),
        ("APNG of noise with alpha", || {
            let mut out = Vec::new();
            let mut e = png::Encoder::new(&mut out, ANIMATED.0, ANIMATED.1);
            e.set_color(png::ColorType::Rgba);
            e.set_animated(ANIMATED_FRAMES, 0).unwrap();
            let mut writer = e.write_header().unwrap();
            for i in 0..ANIMATED_FRAMES {
                writer.write_image_data(noise(i, 200).as_raw()).unwrap();
            }
            writer.finish().unwrap();
            out
        }),
        ("animated WebP of noise", || {
            let config = webp::WebPConfig::new().unwrap();
            let frames: Vec<image::RgbaImage> = (0..ANIMATED_FRAMES).map(|i| noise(i, 255)).collect();
            let mut e = webp::AnimEncoder::new(ANIMATED.0, ANIMATED.1, &config);
            for (i, f) in frames.iter().enumerate() {
                e.add_frame(webp::AnimFrame::from_rgba(f.as_raw(), ANIMATED.0, ANIMATED.1, 100 * i as i32));
            }
            e.try_encode().unwrap().to_vec()
        }),
    ]
}

/// The canvas and frame count of the animations: 24 megapixels over all frames.
const ANIMATED: (u32, u32) = (1000, 750);
const ANIMATED_FRAMES: u32 = 32;

/// A frame of noise (a cheap hash of the position and frame), with this alpha.
fn noise(frame: u32, alpha: u8) -> image::RgbaImage {
    image::RgbaImage::from_fn(ANIMATED.0, ANIMATED.1, |x, y| {
        let h = (x.wrapping_mul(0x9E37_79B9) ^ y.wrapping_mul(0x85EB_CA6B) ^ frame.wrapping_mul(0xC2B2_AE35))
            .wrapping_mul(0x27D4_EB2F);
        image::Rgba([(h >> 24) as u8, (h >> 16) as u8, (h >> 8) as u8, alpha])
    })
}

fn pattern_rgb() -> image::RgbImage {
    image::RgbImage::from_fn(SIDE, SIDE, |x, y| image::Rgb([x as u8, y as u8, (x ^ y) as u8]))
}

fn pattern_rgba() -> image::RgbaImage {
    image::RgbaImage::from_fn(SIDE, SIDE, |x, y| image::Rgba([x as u8, y as u8, 40, if x % 5 == 0 { 0 } else { 255 }]))
}

fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn jpeg(progressive: bool, sampling: jpeg_encoder::SamplingFactor) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 85);
    encoder.set_progressive(progressive);
    encoder.set_sampling_factor(sampling);
    encoder.encode(pattern_rgb().as_raw(), SIDE as u16, SIDE as u16, jpeg_encoder::ColorType::Rgb).unwrap();
    out
}

fn vm_hwm_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// The child's side: make the variants of the image in `path` and report the peak growth and
/// the cost. The file was made by the parent, so that making it does not raise the peak here.
///
/// With `IMGHOST_DECODE_PASS=avif` it makes the AVIF variants instead (the later pass), against
/// that pass's estimate.
fn measure(path: &str) {
    let bytes = std::fs::read(path).unwrap();
    let facts = imghost::media::inspect(&bytes).unwrap().facts;
    let sizes = imghost::media::variants::Size::ALL.len();
    let avif = std::env::var("IMGHOST_DECODE_PASS").is_ok_and(|p| p == "avif");
    let cost = if avif { imghost::media::avif_cost(&facts, bytes.len() as u64) } else { facts.decode_cost };
    let before = vm_hwm_bytes();
    let made = if avif {
        imghost::media::variants::make_avif(&bytes, 1).unwrap().len()
    } else {
        imghost::media::variants::make_variants(&bytes, 1).unwrap().len() / 2
    };
    assert_eq!(made, sizes);
    let peak = vm_hwm_bytes() - before;
    println!("MEASURED {peak} {cost}");
}

/// The kinds whose AVIF pass is measured as well: an opaque photo and a transparent image.
const AVIF_KINDS: [&str; 2] = ["baseline JPEG 4:2:0", "PNG RGBA with transparency"];

#[test]
fn making_variants_stays_within_the_estimated_cost() {
    if let Ok(path) = std::env::var("IMGHOST_DECODE_FILE") {
        return measure(&path);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    let mut failures = Vec::new();
    let passes = kinds().into_iter().enumerate().flat_map(|(i, (name, make))| {
        let avif = AVIF_KINDS.contains(&name).then_some((i, format!("{name}, AVIF pass"), make, "avif"));
        std::iter::once((i, name.to_owned(), make, "first")).chain(avif)
    });
    for (i, name, make, pass) in passes {
        // Given one image of this kind, decoded in a fresh process,
        let path = dir.path().join(i.to_string());
        std::fs::write(&path, make()).unwrap();
        let out = Command::new(&exe)
            .args(["--exact", "making_variants_stays_within_the_estimated_cost", "--nocapture", "--test-threads=1"])
            .env("IMGHOST_DECODE_FILE", &path)
            .env("IMGHOST_DECODE_PASS", pass)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        let line = stdout.split("MEASURED ").nth(1).unwrap_or_else(|| panic!("{name}: {stdout}"));
        let figures: Vec<u64> = line.split_whitespace().take(2).map(|v| v.parse().unwrap()).collect();
        let (peak, cost) = (figures[0], figures[1]);
        report.push(format!("{name}: peak {} MiB, estimate {} MiB", peak >> 20, cost >> 20));
        // when its variants are made, then the memory it took stays within the estimate the
        // decode budget reserved for it.
        if peak > cost {
            failures.push(format!("{name}: measured {peak} bytes over the estimate of {cost}"));
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
