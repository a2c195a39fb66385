//! Animated sources keep their animation: animated GIF, APNG and animated WebP, each made here
//! by a real encoder with frames that differ, timings that differ and a loop count, come out as
//! GIF and animated WebP variants of every size with the same number of frames, the same
//! timings (to the hundredth of a second GIF counts in), the same loop count, and frames that
//! look like the source's frames as a browser composites them (disposal and blending applied),
//! resized.

use std::io::Cursor;

use image::{AnimationDecoder, RgbaImage};
use imghost::media::variants::{Size, Variant, make_variants};
use imghost::media::{Format, MediaError, inspect};

/// One frame as shown: the composited canvas and how long it stays, in milliseconds.
struct Shown {
    canvas: RgbaImage,
    ms: f64,
}

/// An animation as a browser plays it: its frames and how many times it plays (0 for ever).
struct Played {
    frames: Vec<Shown>,
    plays: u32,
}

/// Plays `bytes` with the `image` crate's decoders, which composite each frame onto the canvas.
fn play(bytes: &[u8]) -> Played {
    fn frames<'a>(d: impl AnimationDecoder<'a>) -> (Vec<Shown>, u32) {
        let plays = match d.loop_count() {
            image::metadata::LoopCount::Infinite => 0,
            image::metadata::LoopCount::Finite(n) => n.get(),
        };
        let frames = d
            .into_frames()
            .map(|f| {
                let f = f.unwrap();
                let (n, d) = f.delay().numer_denom_ms();
                Shown { ms: f64::from(n) / f64::from(d), canvas: f.into_buffer() }
            })
            .collect();
        (frames, plays)
    }
    let reader = Cursor::new(bytes);
    match imghost::media::sniff(bytes).unwrap() {
        Format::Gif => {
            let (frames, _) = frames(image::codecs::gif::GifDecoder::new(reader).unwrap());
            Played { frames, plays: gif_plays(bytes) }
        }
        Format::Png => {
            let (frames, plays) = frames(image::codecs::png::PngDecoder::new(reader).unwrap().apng().unwrap());
            Played { frames, plays }
        }
        Format::Webp => {
            let (frames, plays) = frames(image::codecs::webp::WebPDecoder::new(reader).unwrap());
            Played { frames, plays }
        }
        other @ (Format::Jpeg | Format::Avif) => panic!("{other:?} is not an animation format"),
    }
}

/// A GIF's plays as browsers count them: once without a loop block, for ever with a count of 0,
/// and the count plus the first play otherwise.
fn gif_plays(bytes: &[u8]) -> u32 {
    let mut d = gif::DecodeOptions::new().read_info(Cursor::new(bytes)).unwrap();
    while d.read_next_frame().unwrap().is_some() {}
    match d.repeat() {
        gif::Repeat::Infinite => 0,
        gif::Repeat::Finite(0) => 1,
        gif::Repeat::Finite(n) => u32::from(n) + 1,
    }
}

/// Mean absolute difference per channel (0 to 255) between two frames, each composited over
/// mid-grey so that the colour of a transparent pixel does not count, only what is seen.
fn difference(a: &RgbaImage, b: &RgbaImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let over_grey = |p: &image::Rgba<u8>, c: usize| {
        let alpha = f64::from(p.0[3]) / 255.0;
        f64::from(p.0[c]) * alpha + 128.0 * (1.0 - alpha)
    };
    let mut total = 0.0;
    for (p, q) in a.pixels().zip(b.pixels()) {
        for c in 0..3 {
            total += (over_grey(p, c) - over_grey(q, c)).abs();
        }
    }
    total / (3.0 * f64::from(a.width()) * f64::from(a.height()))
}

fn resized(canvas: &RgbaImage, w: u32, h: u32) -> RgbaImage {
    image::imageops::resize(canvas, w, h, image::imageops::FilterType::Lanczos3)
}

// ---------------------------------------------------------------------------------------------
// Sources, made by real encoders
// ---------------------------------------------------------------------------------------------

/// A 400x300 picture of four coloured quarters with a white bar at `shift`, opaque.
fn quarters(w: u32, h: u32, shift: u32) -> RgbaImage {
    RgbaImage::from_fn(w, h, |x, y| {
        if (x + w - shift) % w < w / 10 {
            return image::Rgba([255, 255, 255, 255]);
        }
        match (x < w / 2, y < h / 2) {
            (true, true) => image::Rgba([220, 30, 30, 255]),
            (false, true) => image::Rgba([30, 200, 40, 255]),
            (true, false) => image::Rgba([30, 40, 220, 255]),
            (false, false) => image::Rgba([240, 220, 20, 255]),
        }
    })
}

/// An animated GIF with every disposal: two whole frames, a square with a transparent hole that
/// is disposed to the previous canvas, a bar disposed to the background (leaving a transparent
/// hole in the canvas), a last small frame; delays of 10, 20, 5, 30 and 40 hundredths; loop
/// count 2 (three plays).
fn gif_source() -> Vec<u8> {
    let (w, h) = (400u16, 300u16);
    let mut out = Vec::new();
    {
        let mut e = gif::Encoder::new(&mut out, w, h, &[]).unwrap();
        e.set_repeat(gif::Repeat::Finite(2)).unwrap();
        let mut add = |img: RgbaImage, left: u16, top: u16, delay: u16, dispose: gif::DisposalMethod| {
            let mut raw = img.clone().into_raw();
            let mut frame = gif::Frame::from_rgba_speed(img.width() as u16, img.height() as u16, &mut raw, 10);
            (frame.left, frame.top, frame.delay, frame.dispose) = (left, top, delay, dispose);
            e.write_frame(&frame).unwrap();
        };
        add(quarters(400, 300, 0), 0, 0, 10, gif::DisposalMethod::Keep);
        add(quarters(400, 300, 120), 0, 0, 20, gif::DisposalMethod::Keep);
        let holed = RgbaImage::from_fn(100, 100, |x, y| {
            let hole = (30..70).contains(&x) && (30..70).contains(&y);
            image::Rgba(if hole { [0, 0, 0, 0] } else { [10, 10, 10, 255] })
        });
        add(holed, 50, 50, 5, gif::DisposalMethod::Previous);
        add(
            RgbaImage::from_pixel(80, 60, image::Rgba([250, 250, 250, 255])),
            200,
            100,
            30,
            gif::DisposalMethod::Background,
        );
        add(RgbaImage::from_pixel(60, 40, image::Rgba([120, 0, 160, 255])), 10, 220, 40, gif::DisposalMethod::Keep);
    }
    out
}

/// An APNG of four frames with soft transparency, the third blended over the second, delays of
/// 100 ms, 250 ms, a thirtieth of a second and 40 ms, playing for ever.
fn apng_source() -> Vec<u8> {
    let (w, h) = (300u32, 200u32);
    let mut out = Vec::new();
    {
        let mut e = png::Encoder::new(&mut out, w, h);
        e.set_color(png::ColorType::Rgba);
        e.set_depth(png::BitDepth::Eight);
        e.set_animated(4, 0).unwrap();
        let mut writer = e.write_header().unwrap();
        let frames: [(u16, u16, png::BlendOp, RgbaImage); 4] = [
            (100, 1000, png::BlendOp::Source, soft(w, h, 0)),
            (250, 1000, png::BlendOp::Source, soft(w, h, 90)),
            (1, 30, png::BlendOp::Over, RgbaImage::from_fn(w, h, |x, _| image::Rgba([0, 90, 250, (x % 256) as u8]))),
            (40, 1000, png::BlendOp::Source, soft(w, h, 200)),
        ];
        for (num, den, blend, img) in frames {
            writer.set_frame_delay(num, den).unwrap();
            writer.set_blend_op(blend).unwrap();
            writer.write_image_data(img.as_raw()).unwrap();
        }
        writer.finish().unwrap();
    }
    out
}

/// A gradient whose alpha falls off towards the bottom, with a dark disc at `x`.
fn soft(w: u32, h: u32, x0: u32) -> RgbaImage {
    RgbaImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as i32 - x0 as i32, y as i32 - 100);
        if dx * dx + dy * dy < 40 * 40 {
            return image::Rgba([20, 20, 20, 255]);
        }
        image::Rgba([(x * 255 / w) as u8, 180, (y * 255 / h) as u8, (255 - y * 200 / h) as u8])
    })
}

/// An animated WebP (lossless frames, libwebp's animation encoder) of three frames shown for
/// 70, 120 and 95 ms (libwebp gives the last frame the mean of the others), playing five times.
fn webp_source() -> Vec<u8> {
    let (w, h) = (360u32, 240u32);
    let mut config = webp::WebPConfig::new().unwrap();
    config.lossless = 1;
    let frames = [quarters(w, h, 0), quarters(w, h, 100), quarters(w, h, 200)];
    let mut e = webp::AnimEncoder::new(w, h, &config);
    e.set_loop_count(5);
    for (frame, t) in frames.iter().zip([0, 70, 190]) {
        e.add_frame(webp::AnimFrame::from_rgba(frame.as_raw(), w, h, t));
    }
    e.try_encode().unwrap().to_vec()
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

/// A kind of animated source, and how to make one.
type Source = (&'static str, fn() -> Vec<u8>);

/// How far a variant's frame may be from the resized source frame: GIF has 256 colours a frame
/// and no partial transparency, WebP is lossy.
fn tolerance(format: Format) -> f64 {
    if format == Format::Gif { 6.0 } else { 4.0 }
}

#[test]
fn animated_sources_keep_every_frame_their_timing_and_their_loop_count_in_every_variant() {
    let cases: [Source; 3] = [("animated GIF", gif_source), ("APNG", apng_source), ("animated WebP", webp_source)];
    for (name, make) in cases {
        // Given an animation made by a real encoder, as a browser plays it,
        let bytes = make();
        let source = play(&bytes);
        assert!(source.frames.len() >= 3, "{name}: the source has {} frames", source.frames.len());
        let (cw, ch) = source.frames[0].canvas.dimensions();

        // when its variants are made,
        let variants = make_variants(&bytes, 1).unwrap_or_else(|e| panic!("{name}: {e}"));

        // then every size comes as GIF and animated WebP,
        let listed: Vec<(Size, Format)> = variants.iter().map(|v| (v.size, v.format)).collect();
        let want: Vec<(Size, Format)> = Size::ALL.iter().flat_map(|&s| [(s, Format::Gif), (s, Format::Webp)]).collect();
        assert_eq!(listed, want, "{name}");
        for Variant { size, width, height, format, bytes } in &variants {
            let case = format!("{name}, {size:?} {format:?}");
            assert_eq!((*width, *height), imghost::media::variants::fit_inside(cw, ch, size.long_edge()), "{case}");
            assert_eq!(imghost::media::sniff(bytes), Some(*format), "{case}");
            let got = play(bytes);
            // with the same frames, timings and loop count,
            assert_eq!(got.frames.len(), source.frames.len(), "{case}: frame count");
            assert_eq!(got.plays, source.plays, "{case}: plays");
            let resolution = if *format == Format::Gif { 5.0 } else { 0.5 };
            let mut elapsed = (0.0, 0.0);
            for (i, (g, s)) in got.frames.iter().zip(&source.frames).enumerate() {
                elapsed = (elapsed.0 + g.ms, elapsed.1 + s.ms);
                assert!(
                    (elapsed.0 - elapsed.1).abs() <= resolution,
                    "{case}: frame {i} ends at {} ms, in the source at {} ms",
                    elapsed.0,
                    elapsed.1
                );
            }
            // and each frame looks like the source's frame at that moment, and not like the
            // one before it (which a lost disposal or a shifted frame would show).
            let reference = |i: usize| {
                let mut want = resized(&source.frames[i].canvas, *width, *height);
                // GIF has no partial transparency: a pixel is shown or not, at half opacity.
                if *format == Format::Gif {
                    want.pixels_mut().for_each(|p| p.0[3] = if p.0[3] < 128 { 0 } else { 255 });
                }
                want
            };
            for (i, g) in got.frames.iter().enumerate() {
                let want = reference(i);
                let off = difference(&g.canvas, &want);
                assert!(off <= tolerance(*format), "{case}: frame {i} is {off:.2} levels off");
                if i > 0 {
                    let previous = reference(i - 1);
                    let between = difference(&want, &previous);
                    if between > 3.0 * tolerance(*format) {
                        assert!(difference(&g.canvas, &previous) > off, "{case}: frame {i} shows frame {}", i - 1);
                    }
                }
            }
        }
    }
}

/// An animated WebP whose `frames` frames each claim a `side` x `side` lossless bitstream (its
/// header only): what inspection reads before any pixel is decoded.
fn webp_claiming(side: u32, frames: usize) -> Vec<u8> {
    fn chunk(fourcc: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = fourcc.to_vec();
        out.extend((payload.len() as u32).to_le_bytes());
        out.extend(payload);
        if payload.len() % 2 == 1 {
            out.push(0);
        }
        out
    }
    let le24 = |v: u32| v.to_le_bytes()[..3].to_vec();
    let mut vp8x = vec![0x02, 0, 0, 0];
    vp8x.extend(le24(side - 1));
    vp8x.extend(le24(side - 1));
    let mut vp8l = vec![0x2F];
    vp8l.extend(((side - 1) | ((side - 1) << 14)).to_le_bytes());
    vp8l.extend([0; 8]);
    let mut anmf = [le24(0), le24(0), le24(side - 1), le24(side - 1), le24(100)].concat();
    anmf.push(0);
    anmf.extend(chunk(b"VP8L", &vp8l));
    let mut body = b"WEBP".to_vec();
    body.extend(chunk(b"VP8X", &vp8x));
    body.extend(chunk(b"ANIM", &[0, 0, 0, 0, 0, 0]));
    body.extend(chunk(b"ANMF", &anmf).repeat(frames));
    let mut out = b"RIFF".to_vec();
    out.extend((body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

#[test]
fn frame_and_pixel_caps_refuse_every_animated_format_at_inspection() {
    // Given animations just over the frame cap (1,000) or the pixel cap (250 million over all
    // frames) in each animated format,
    let apng = |frames: u32, side: u32| {
        let mut out = Vec::new();
        let mut e = png::Encoder::new(&mut out, side, side);
        e.set_color(png::ColorType::Grayscale);
        e.set_compression(png::Compression::Fast);
        e.set_animated(frames, 0).unwrap();
        let mut writer = e.write_header().unwrap();
        let frame = vec![0u8; (side * side) as usize];
        for _ in 0..frames {
            writer.write_image_data(&frame).unwrap();
        }
        writer.finish().unwrap();
        out
    };
    let webp = |frames: i32| {
        // Lossless, so that no frame is close enough to the one before to be merged into it.
        let mut config = webp::WebPConfig::new().unwrap();
        config.lossless = 1;
        let pictures: Vec<RgbaImage> =
            (0..frames).map(|i| RgbaImage::from_pixel(8, 8, image::Rgba([i as u8, (i >> 8) as u8, 9, 255]))).collect();
        let mut e = webp::AnimEncoder::new(8, 8, &config);
        for (i, p) in pictures.iter().enumerate() {
            e.add_frame(webp::AnimFrame::from_rgba(p.as_raw(), 8, 8, 10 * i as i32));
        }
        e.try_encode().unwrap().to_vec()
    };
    let gif = |frames: usize| {
        let mut out = Vec::new();
        let mut e = gif::Encoder::new(&mut out, 4, 4, &[0, 0, 0, 255, 255, 255]).unwrap();
        for i in 0..frames {
            let mut frame = gif::Frame::from_indexed_pixels(4, 4, vec![(i % 2) as u8; 16], None);
            frame.delay = 2;
            e.write_frame(&frame).unwrap();
        }
        drop(e);
        out
    };
    // A GIF of tiny frames on a large canvas: each is composited onto the whole canvas and
    // resized from it, so the canvas counts, not the frames' own rectangles.
    let tiny_frames_on_a_large_canvas = {
        let mut out = Vec::new();
        let mut e = gif::Encoder::new(&mut out, 700, 700, &[0, 0, 0, 255, 255, 255]).unwrap();
        for i in 0..600u16 {
            let mut frame = gif::Frame::from_indexed_pixels(1, 1, vec![(i % 2) as u8], None);
            (frame.left, frame.top) = (i, i);
            e.write_frame(&frame).unwrap();
        }
        drop(e);
        out
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("GIF of 1,001 frames", gif(1001), "too_many_frames"),
        ("GIF of 600 one-pixel frames on a 700x700 canvas", tiny_frames_on_a_large_canvas, "too_many_pixels"),
        ("APNG of 1,001 frames", apng(1001, 2), "too_many_frames"),
        ("APNG of 1,000 frames of 501x500", apng(1000, 501), "too_many_pixels"),
        ("animated WebP of 1,001 frames", webp(1001), "too_many_frames"),
        ("animated WebP of 6 frames of 7,000x7,000", webp_claiming(7000, 6), "too_many_pixels"),
    ];
    for (name, bytes, code) in cases {
        // when each is inspected, then it is refused as too large, with the cap's code, which
        // the upload answers with 413 (`tests/hostile.rs` uploads the GIFs).
        match inspect(&bytes) {
            Err(MediaError::TooLarge { code: got, message }) => assert_eq!(got, code, "{name}: {message}"),
            other => panic!("{name}: {:?}", other.map(|i| i.facts)),
        }
    }
    // and the same animations one frame short of the frame cap pass.
    for (name, bytes) in [("GIF", gif(1000)), ("APNG", apng(1000, 2)), ("WebP", webp(1000))] {
        let facts = inspect(&bytes).unwrap_or_else(|e| panic!("{name} of 1,000 frames: {e}")).facts;
        assert!(facts.frames >= 999, "{name}: {} frames", facts.frames);
    }
}

#[test]
fn many_small_frames_with_full_colour_tables_keep_their_variants() {
    // Given a GIF as encoders write them: a 100x100 first frame, then 999 frames of a 16x16
    // corner, each with its own table of 256 colours (768 bytes a frame before any pixel),
    let mut bytes = Vec::new();
    {
        let mut e = gif::Encoder::new(&mut bytes, 100, 100, &[]).unwrap();
        let mut first = RgbaImage::from_pixel(100, 100, image::Rgba([50, 60, 70, 255])).into_raw();
        e.write_frame(&gif::Frame::from_rgba_speed(100, 100, &mut first, 10)).unwrap();
        for i in 0..999u32 {
            let corner: Vec<u8> = (0..256u32).flat_map(|p| [p as u8, (p + i) as u8, (p * 7 + i * 3) as u8]).collect();
            let palette: Vec<u8> = corner.clone();
            let mut frame = gif::Frame::from_palette_pixels(16, 16, (0..=255u8).collect::<Vec<u8>>(), palette, None);
            (frame.left, frame.top, frame.delay) = ((i % 80) as u16, 0, 2);
            e.write_frame(&frame).unwrap();
        }
    }
    let frames = play(&bytes).frames.len();
    assert_eq!(frames, 1000);
    // when its variants are made, then they are, with every frame.
    let variants = make_variants(&bytes, 1).unwrap_or_else(|e| panic!("{e}"));
    for v in &variants {
        assert_eq!(play(&v.bytes).frames.len(), 1000, "{:?} {:?}", v.size, v.format);
    }
}
