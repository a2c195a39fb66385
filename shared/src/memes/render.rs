//! Captions drawn over a background: white bold text with a black outline, wrapped to the
//! picture's width, at the bottom. The font (DejaVu Sans Bold, Bitstream Vera licence, see
//! `assets/fonts/DejaVu-LICENSE.txt`) is compiled in, so rendering needs nothing from the host.

use std::io::Cursor;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use image::{Rgba, RgbaImage};

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

/// Draws a caption over a background and encodes the result.
pub trait Renderer: Send + Sync {
    /// Renders `caption` over `background` (an RGBA picture, or a plain one when `None`) and
    /// returns PNG bytes.
    fn render(&self, caption: &str, background: Option<RgbaImage>) -> Result<Vec<u8>, String>;
}

/// The production renderer.
pub struct Captioner;

/// The plain background: 800 x 600, a vertical gradient from dark blue to purple.
fn plain_background() -> RgbaImage {
    RgbaImage::from_fn(800, 600, |_, y| {
        let t = y as f32 / 600.0;
        Rgba([(40.0 + 80.0 * t) as u8, (40.0 + 10.0 * t) as u8, (110.0 + 40.0 * t) as u8, 255])
    })
}

/// Splits `text` into lines no wider than `max_width` at `scale`, breaking at spaces (a word
/// wider than a line is broken by characters).
fn wrap(font: &FontRef<'_>, scale: PxScale, text: &str, max_width: f32) -> Vec<String> {
    let scaled = font.as_scaled(scale);
    let width = |s: &str| s.chars().map(|c| scaled.h_advance(font.glyph_id(c))).sum::<f32>();
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let candidate = if line.is_empty() { word.to_owned() } else { format!("{line} {word}") };
        if width(&candidate) <= max_width {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        for c in word.chars() {
            let next = format!("{line}{c}");
            if width(&next) > max_width && !line.is_empty() {
                lines.push(std::mem::take(&mut line));
                line.push(c);
            } else {
                line = next;
            }
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn draw_line(
    canvas: &mut RgbaImage,
    font: &FontRef<'_>,
    scale: PxScale,
    text: &str,
    x0: f32,
    baseline: f32,
    colour: Rgba<u8>,
) {
    let scaled = font.as_scaled(scale);
    let mut x = x0;
    let mut previous = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = previous {
            x += scaled.kern(p, id);
        }
        let glyph = id.with_scale_and_position(scale, point(x, baseline));
        x += scaled.h_advance(id);
        previous = Some(id);
        let Some(outlined) = font.outline_glyph(glyph) else { continue };
        let bounds = outlined.px_bounds();
        outlined.draw(|gx, gy, coverage| {
            let (px, py) = (bounds.min.x as i64 + i64::from(gx), bounds.min.y as i64 + i64::from(gy));
            if px < 0 || py < 0 || px >= i64::from(canvas.width()) || py >= i64::from(canvas.height()) {
                return;
            }
            let dst = canvas.get_pixel_mut(px as u32, py as u32);
            for i in 0..3 {
                dst.0[i] = (f32::from(colour.0[i]) * coverage + f32::from(dst.0[i]) * (1.0 - coverage)) as u8;
            }
        });
    }
}

impl Renderer for Captioner {
    fn render(&self, caption: &str, background: Option<RgbaImage>) -> Result<Vec<u8>, String> {
        let font = FontRef::try_from_slice(FONT).map_err(|e| e.to_string())?;
        let mut canvas = background.unwrap_or_else(plain_background);
        let (w, h) = (canvas.width() as f32, canvas.height() as f32);
        // Start large and shrink until the caption fits in four lines in the lower half.
        let mut size = (w / 10.0).clamp(16.0, 96.0);
        let (scale, lines) = loop {
            let scale = PxScale::from(size);
            let lines = wrap(&font, scale, caption, w * 0.92);
            if (lines.len() <= 4 && lines.len() as f32 * size * 1.15 <= h * 0.5) || size <= 12.0 {
                break (scale, lines);
            }
            size *= 0.85;
        };
        let scaled = font.as_scaled(scale);
        let line_height = size * 1.15;
        let outline = (size / 18.0).max(1.0).round() as i32;
        let mut baseline = h - line_height * lines.len() as f32 + scaled.ascent() - size * 0.15;
        for line in &lines {
            let width: f32 = line.chars().map(|c| scaled.h_advance(font.glyph_id(c))).sum();
            let x = (w - width) / 2.0;
            for dx in -outline..=outline {
                for dy in -outline..=outline {
                    if dx != 0 || dy != 0 {
                        let black = Rgba([0, 0, 0, 255]);
                        draw_line(&mut canvas, &font, scale, line, x + dx as f32, baseline + dy as f32, black);
                    }
                }
            }
            draw_line(&mut canvas, &font, scale, line, x, baseline, Rgba([255, 255, 255, 255]));
            baseline += line_height;
        }
        let mut out = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgba8(canvas)
            .to_rgb8()
            .write_to(&mut out, image::ImageFormat::Png)
            .map_err(|e| e.to_string())?;
        Ok(out.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caption_is_drawn_in_white_over_the_background() {
        // Given a caption over the plain background,
        let png = Captioner.render("one does not simply", None).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        // then the picture keeps its size, and the lower half holds white text pixels (with a
        // black outline) that the gradient never has.
        assert_eq!((img.width(), img.height()), (800, 600));
        let count = |pred: fn(&image::Rgb<u8>) -> bool, upper: bool| {
            img.enumerate_pixels().filter(|(_, y, p)| (*y < 300) == upper && pred(p)).count()
        };
        let white = |p: &image::Rgb<u8>| p.0.iter().all(|c| *c > 240);
        let black = |p: &image::Rgb<u8>| p.0.iter().all(|c| *c < 15);
        assert!(count(white, false) > 1000, "white text below");
        assert!(count(black, false) > 1000, "outline below");
        assert_eq!(count(white, true), 0, "nothing drawn above");
    }

    #[test]
    fn long_captions_wrap_and_shrink_to_fit() {
        let font = FontRef::try_from_slice(FONT).unwrap();
        let lines = wrap(&font, PxScale::from(80.0), "a b c d e f g h i j k l m n o p q r s t u v w x y z", 736.0);
        assert!(lines.len() > 1);
        let png = Captioner.render(&"very long caption ".repeat(5), None).unwrap();
        assert!(image::load_from_memory(&png).is_ok());
    }
}
