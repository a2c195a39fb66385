//! How WebP's quality setting compares with the JPEG variants' on real photos: the measurement
//! behind `media::variants::WEBP_QUALITY`, run by `scripts/bench quality`.
//!
//!   cargo run --profile local -p imghost-local --example quality -- [--markdown] FILE...
//!
//! For each photo and each variant size it takes the pixels the pipeline encodes
//! (`variants::render`), encodes them with the pipeline's own encoder (`variants::encode`) as
//! JPEG at `JPEG_QUALITY` and as WebP at qualities 60 to 95, decodes each, and measures SSIM (on luma, 11x11 Gaussian window, sigma 1.5, as Wang et al. 2004)
//! against the resized pixels. It prints, for each WebP quality, the mean SSIM over every photo
//! and size against the JPEG's, and the bytes against the JPEG's; the quality to use is the
//! lowest whose SSIM is at least the JPEG's.

use std::path::PathBuf;

use image::{DynamicImage, RgbImage};
use imghost::media::Format;
use imghost::media::variants::{self, JPEG_QUALITY};

const WEBP_QUALITIES: [f32; 12] = [60.0, 65.0, 70.0, 72.0, 74.0, 76.0, 78.0, 80.0, 82.0, 85.0, 90.0, 95.0];

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

/// SSIM and size of one encoding of `reference`.
fn measure(reference: &DynamicImage, format: Format, quality: f32) -> (f64, usize) {
    let bytes = variants::encode(reference, format, quality).expect("encodes");
    let decoded = image::load_from_memory(&bytes).expect("decodes").to_rgb8();
    (ssim(&reference.to_rgb8(), &decoded), bytes.len())
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
    // Per encoding: the sum of SSIMs and of bytes, over every photo and size.
    let mut jpeg = (0.0, 0usize);
    let mut webp = vec![(0.0, 0usize); WEBP_QUALITIES.len()];
    let mut count = 0;
    for file in &files {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        variants::render(&bytes, 1, |_, reference| {
            let (s, n) = measure(reference, Format::Jpeg, f32::from(JPEG_QUALITY));
            jpeg = (jpeg.0 + s, jpeg.1 + n);
            for (i, q) in WEBP_QUALITIES.iter().enumerate() {
                let (s, n) = measure(reference, Format::Webp, *q);
                webp[i] = (webp[i].0 + s, webp[i].1 + n);
            }
            count += 1;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
    let jpeg_ssim = jpeg.0 / f64::from(count);
    let chosen =
        WEBP_QUALITIES.iter().zip(&webp).find(|(_, (s, _))| s / f64::from(count) >= jpeg_ssim).map(|(q, _)| *q);
    if markdown {
        println!("| encoding | mean SSIM | bytes | bytes vs JPEG |");
        println!("|---|---:|---:|---:|");
        println!("| JPEG q{JPEG_QUALITY} (4:2:0) | {jpeg_ssim:.4} | {} | 1.00 |", jpeg.1);
    }
    for (q, (s, n)) in WEBP_QUALITIES.iter().zip(&webp) {
        let ratio = *n as f64 / jpeg.1 as f64;
        let mark = if Some(*q) == chosen { " (chosen)" } else { "" };
        if markdown {
            println!("| WebP q{q}{mark} | {:.4} | {n} | {ratio:.2} |", s / f64::from(count));
        } else {
            println!("webp q{q}{mark}: ssim {:.4} (jpeg {jpeg_ssim:.4}), bytes {ratio:.2}x jpeg", s / f64::from(count));
        }
    }
    if !markdown {
        println!("{count} photo sizes; the lowest WebP quality matching JPEG q{JPEG_QUALITY}: {chosen:?}");
    }
}
