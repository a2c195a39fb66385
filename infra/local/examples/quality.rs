//! How WebP's and AVIF's quality settings compare with the JPEG variants' on real photos: the
//! measurement behind `media::variants::webp_quality` and `avif_quality`, run by
//! `scripts/bench quality`.
//!
//!   cargo run --profile local -p imghost-local --example quality -- [--markdown] FILE...
//!
//! For each photo and each variant size it takes the pixels the pipeline encodes
//! (`variants::render`), encodes them with the pipeline's own encoder (`variants::encode`) as
//! JPEG at `JPEG_QUALITY` and as WebP at qualities 60 to 95, decodes each, and measures SSIM
//! (on luma, 11x11 Gaussian window, sigma 1.5, as Wang et al. 2004) against the resized pixels (variants as large as their source are left out: a JPEG source
//! re-encoded as JPEG on its own 8x8 grid favours JPEG in a way no resized variant does). It
//! prints, for each size and each WebP quality, the mean SSIM over the photos against the
//! JPEG's, and the bytes against the JPEG's; the quality to use for a size
//! (`variants::webp_quality`) is the lowest whose mean SSIM is at least the JPEG's.
//!
//! AVIF is measured the same way at qualities 60 to 90, at rav1e's speed `AVIF_SPEED` (or each
//! speed of the environment's `AVIF_SPEEDS`, comma-separated), with the mean encoding time; it
//! is decoded by libavif's `avifdec` (Debian's `libavif-bin`, on dav1d), since imghost reads no
//! AVIF itself.

use std::path::PathBuf;

use image::{DynamicImage, RgbImage};
use imghost::media::Format;
use imghost::media::variants::{self, JPEG_QUALITY, Size};

const WEBP_QUALITIES: [f32; 12] = [60.0, 65.0, 70.0, 72.0, 74.0, 76.0, 78.0, 80.0, 82.0, 85.0, 90.0, 95.0];
const AVIF_QUALITIES: [f32; 12] = [60.0, 70.0, 78.0, 80.0, 82.0, 83.0, 84.0, 85.0, 86.0, 87.0, 88.0, 90.0];

/// Luma (BT.601) of every pixel, 0 to 255.
fn luma(img: &RgbImage) -> Vec<f32> {
    img.pixels().map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])).collect()
}

/// A separable Gaussian blur (11 taps, sigma 1.5), edges clamped.
fn blur(v: &[f32], w: usize, h: usize) -> Vec<f32> {
    let kernel: Vec<f32> = (-5i32..=5).map(|i| (-(i * i) as f32 / (2.0 * 1.5 * 1.5)).exp()).collect();
    let sum: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / sum).collect();
    let at = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    let mut rows = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            rows[y * w + x] =
                kernel.iter().enumerate().map(|(k, c)| c * v[y * w + at(x as isize + k as isize - 5, w)]).sum();
        }
    }
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] =
                kernel.iter().enumerate().map(|(k, c)| c * rows[at(y as isize + k as isize - 5, h) * w + x]).sum();
        }
    }
    out
}

/// Mean SSIM of two images of the same size.
fn ssim(a: &RgbImage, b: &RgbImage) -> f64 {
    let (w, h) = (a.width() as usize, a.height() as usize);
    let (x, y) = (luma(a), luma(b));
    let product = |p: &[f32], q: &[f32]| p.iter().zip(q).map(|(a, b)| a * b).collect::<Vec<f32>>();
    let (mx, my) = (blur(&x, w, h), blur(&y, w, h));
    let (sxx, syy, sxy) = (blur(&product(&x, &x), w, h), blur(&product(&y, &y), w, h), blur(&product(&x, &y), w, h));
    let (c1, c2) = ((0.01f32 * 255.0).powi(2), (0.03f32 * 255.0).powi(2));
    let total: f64 = (0..w * h)
        .map(|i| {
            let (vx, vy, cov) = (sxx[i] - mx[i] * mx[i], syy[i] - my[i] * my[i], sxy[i] - mx[i] * my[i]);
            let s = ((2.0 * mx[i] * my[i] + c1) * (2.0 * cov + c2))
                / ((mx[i] * mx[i] + my[i] * my[i] + c1) * (vx + vy + c2));
            f64::from(s)
        })
        .sum();
    total / (w * h) as f64
}

/// SSIM, size and encoding time of one encoding of `reference`.
fn measure(reference: &DynamicImage, format: Format, quality: f32) -> (f64, usize, f64) {
    let started = std::time::Instant::now();
    let bytes = variants::encode(reference, format, quality).expect("encodes");
    let secs = started.elapsed().as_secs_f64();
    let decoded = image::load_from_memory(&bytes).expect("decodes").to_rgb8();
    (ssim(&reference.to_rgb8(), &decoded), bytes.len(), secs)
}

/// [`measure`] of an AVIF at rav1e `speed`, decoded by `avifdec`.
fn measure_avif(reference: &DynamicImage, quality: f32, speed: u8) -> (f64, usize, f64) {
    let started = std::time::Instant::now();
    let bytes = variants::encode_avif(reference, quality, speed).expect("encodes");
    let secs = started.elapsed().as_secs_f64();
    let dir = std::env::temp_dir().join(format!("imghost-quality-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let (avif, png) = (dir.join("v.avif"), dir.join("v.png"));
    std::fs::write(&avif, &bytes).expect("writes the AVIF");
    let status = std::process::Command::new("avifdec")
        .args(["--png-compress", "0"])
        .arg(&avif)
        .arg(&png)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("avifdec runs (Debian package libavif-bin)");
    assert!(status.success(), "avifdec failed");
    let decoded = image::open(&png).expect("decodes").to_rgb8();
    (ssim(&reference.to_rgb8(), &decoded), bytes.len(), secs)
}

fn main() {
    let mut markdown = false;
    let mut files = Vec::new();
    for arg in std::env::args().skip(1) {
        if arg == "--markdown" {
            markdown = true;
        } else {
            files.push(PathBuf::from(arg));
        }
    }
    assert!(!files.is_empty(), "usage: quality [--markdown] FILE...");
    // Per size, per encoding, over every resized variant of that size: SSIM and bytes.
    let mut jpeg: Vec<Sums> = vec![Sums::default(); Size::ALL.len()];
    let mut webp = vec![vec![Sums::default(); WEBP_QUALITIES.len()]; Size::ALL.len()];
    let speeds: Vec<u8> = std::env::var("AVIF_SPEEDS")
        .map(|v| v.split(',').map(|s| s.trim().parse().expect("AVIF_SPEEDS: numbers 1 to 10")).collect())
        .unwrap_or_else(|_| vec![variants::AVIF_SPEED]);
    let mut avif = vec![vec![vec![Sums::default(); AVIF_QUALITIES.len()]; speeds.len()]; Size::ALL.len()];
    for file in &files {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let facts = imghost::media::inspect(&bytes).unwrap_or_else(|e| panic!("{}: {e}", file.display())).facts;
        let source_edge = facts.width.max(facts.height);
        variants::render(&bytes, 1, |size, reference| {
            // Only variants the pipeline resizes count: one as large as its JPEG source is that
            // source re-encoded on the same 8x8 grid, where JPEG has an edge no resize leaves.
            if reference.width().max(reference.height()) >= source_edge {
                return Ok(());
            }
            let i = Size::ALL.iter().position(|s| *s == size).unwrap_or(0);
            jpeg[i].add(measure(reference, Format::Jpeg, f32::from(JPEG_QUALITY)));
            for (sums, q) in webp[i].iter_mut().zip(WEBP_QUALITIES) {
                sums.add(measure(reference, Format::Webp, q));
            }
            for (by_speed, &speed) in avif[i].iter_mut().zip(&speeds) {
                for (sums, q) in by_speed.iter_mut().zip(AVIF_QUALITIES) {
                    sums.add(measure_avif(reference, q, speed));
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
    if markdown {
        println!("| size | encoding | variants | mean SSIM | bytes | bytes vs JPEG | encoding time |");
        println!("|---|---|---:|---:|---:|---:|---:|");
    }
    for (i, size) in Size::ALL.iter().enumerate() {
        // The lowest quality whose mean SSIM is at least the JPEG's for this size.
        let chosen = WEBP_QUALITIES.iter().zip(&webp[i]).find(|(_, w)| w.mean() >= jpeg[i].mean()).map(|(q, _)| *q);
        let current = variants::webp_quality(*size);
        let mut rows: Vec<(String, &Sums)> = std::iter::once((format!("JPEG q{JPEG_QUALITY} (4:2:0)"), &jpeg[i]))
            .chain(WEBP_QUALITIES.iter().zip(&webp[i]).map(|(q, w)| {
                let chosen = if Some(*q) == chosen { " (lowest matching)" } else { "" };
                let used = if *q == current { " (used)" } else { "" };
                (format!("WebP q{q}{chosen}{used}"), w)
            }))
            .collect();
        for (by_speed, speed) in avif[i].iter().zip(&speeds) {
            let chosen = AVIF_QUALITIES.iter().zip(by_speed).find(|(_, a)| a.mean() >= jpeg[i].mean()).map(|(q, _)| *q);
            let current = (*speed == variants::AVIF_SPEED).then(|| variants::avif_quality(*size));
            for (q, a) in AVIF_QUALITIES.iter().zip(by_speed) {
                let chosen = if Some(*q) == chosen { " (lowest matching)" } else { "" };
                let used = if Some(*q) == current { " (used)" } else { "" };
                rows.push((format!("AVIF speed {speed} q{q}{chosen}{used}"), a));
            }
        }
        for (name, sums) in rows {
            let ratio = sums.bytes as f64 / jpeg[i].bytes.max(1) as f64;
            let (count, mean, bytes, ms) = (sums.count, sums.mean(), sums.bytes, sums.mean_secs() * 1000.0);
            if markdown {
                println!("| {} | {name} | {count} | {mean:.4} | {bytes} | {ratio:.2} | {ms:.0} ms |", size.name());
            } else {
                println!(
                    "{} {name}: {count} variants, ssim {mean:.4}, bytes {ratio:.2}x jpeg, {ms:.0} ms",
                    size.name()
                );
            }
        }
    }
    if markdown {
        println!("\nOf {} photos; variants as large as their source are left out.", files.len());
    }
}

/// SSIMs and sizes of one encoding over many variants.
#[derive(Debug, Default, Clone)]
struct Sums {
    count: u32,
    ssim: f64,
    bytes: usize,
    secs: f64,
}

impl Sums {
    fn add(&mut self, (ssim, bytes, secs): (f64, usize, f64)) {
        self.count += 1;
        self.ssim += ssim;
        self.bytes += bytes;
        self.secs += secs;
    }

    fn mean_secs(&self) -> f64 {
        self.secs / f64::from(self.count.max(1))
    }

    fn mean(&self) -> f64 {
        self.ssim / f64::from(self.count.max(1))
    }
}
