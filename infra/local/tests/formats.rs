//! Variant formats over HTTP: each size is made as JPEG (PNG when transparent) and WebP, then
//! AVIF by a later pass; the metadata lists them all, and `/i/{id}?size=` answers the format
//! the request's `Accept` header prefers, or the one its extension names, with `Vary: Accept`
//! and an ETag of its own. An animation stays one in both of its formats, GIF and animated
//! WebP, and a browser that takes AVIF gets the WebP one.
//!
//! AVIF variants are read back with libavif's `avifdec` (Debian's `libavif-bin`): imghost reads
//! no AVIF itself.

#[path = "../../../shared/tests/support/avifdec.rs"]
mod avifdec;
mod common;

use std::time::Duration;

use common::{Server, animated_gif, photos_dir};

const CHROME: &str = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
const OLD: &str = "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5";

/// The format the bytes are in, by their magic numbers.
fn sniffed(bytes: &[u8]) -> &'static str {
    if avifdec::is_avif(bytes) {
        return "image/avif";
    }
    imghost::media::sniff(bytes).map_or("unknown", |f| f.mime())
}

/// Mean absolute difference per channel of two images of one size, over 4x4 block means: a
/// shift of colour or a wrong picture shows, the encoders' own high-frequency noise does not.
fn block_difference(a: &image::RgbaImage, b: &image::RgbaImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let (w, h) = (a.width() / 4, a.height() / 4);
    let mean = |img: &image::RgbaImage, bx: u32, by: u32, c: usize| -> f64 {
        let mut sum = 0u32;
        for y in 0..4 {
            for x in 0..4 {
                sum += u32::from(img.get_pixel(bx * 4 + x, by * 4 + y).0[c]);
            }
        }
        f64::from(sum) / 16.0
    };
    let mut total = 0.0;
    for by in 0..h {
        for bx in 0..w {
            for c in 0..3 {
                total += (mean(a, bx, by, c) - mean(b, bx, by, c)).abs();
            }
        }
    }
    total / f64::from(w * h * 3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variant_comes_in_the_format_the_browser_takes_and_says_so() {
    // Given an uploaded photo whose variants are made,
    let server = Server::start().await;
    let bytes = std::fs::read(photos_dir().join("no-exif.jpg")).unwrap();
    let (status, body) = server.upload_raw(bytes, "image/jpeg").await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let image = server.wait_for_avif(&id, Duration::from_secs(120)).await;

    // then the metadata lists each size in JPEG, WebP and AVIF, each with a URL that gets that
    // one, and the AVIF shows the picture the JPEG shows.
    for size in ["small", "medium", "large"] {
        let formats = image["variants"][size]["formats"].as_array().unwrap();
        let names: Vec<&str> = formats.iter().map(|f| f["format"].as_str().unwrap()).collect();
        assert_eq!(names, ["jpeg", "webp", "avif"], "{size}");
        let mut pictures = vec![];
        for f in formats {
            let resp = server.client.get(f["url"].as_str().unwrap()).send().await.unwrap();
            assert_eq!(resp.headers()["content-type"], f["mime"].as_str().unwrap(), "{f}");
            let got = resp.bytes().await.unwrap();
            assert_eq!(got.len() as u64, f["bytes"].as_u64().unwrap(), "{f}");
            assert_eq!(sniffed(&got), f["mime"].as_str().unwrap(), "{f}");
            pictures.push(if f["format"] == "avif" {
                avifdec::decode(&got)
            } else {
                image::load_from_memory(&got).unwrap().to_rgba8()
            });
        }
        let (w, h) = (image["variants"][size]["width"].as_u64(), image["variants"][size]["height"].as_u64());
        assert_eq!((Some(u64::from(pictures[2].width())), Some(u64::from(pictures[2].height()))), (w, h), "{size}");
        let difference = block_difference(&pictures[0], &pictures[2]);
        assert!(difference < 3.0, "{size}: the AVIF differs from the JPEG by {difference:.2} a channel");
    }

    // and a request gets the format its extension names, else the one its Accept prefers.
    let cases = [
        // (path, Accept, content type served)
        (format!("/i/{id}?size=medium"), Some("image/avif,image/webp"), "image/avif"),
        (format!("/i/{id}?size=medium"), Some(CHROME), "image/avif"),
        (format!("/i/{id}?size=medium"), Some("image/avif;q=0, image/webp"), "image/webp"),
        (format!("/i/{id}?size=medium"), Some("image/webp"), "image/webp"),
        (format!("/i/{id}?size=medium"), Some("*/*"), "image/jpeg"),
        (format!("/i/{id}?size=medium"), Some(OLD), "image/jpeg"),
        (format!("/i/{id}?size=medium"), None, "image/jpeg"),
        (format!("/i/{id}?size=medium"), Some("image/webp;q=0, */*"), "image/jpeg"),
        (format!("/i/{id}.jpg?size=medium"), Some(CHROME), "image/jpeg"),
        (format!("/i/{id}.webp?size=small"), Some("*/*"), "image/webp"),
        (format!("/i/{id}.webp?size=small"), None, "image/webp"),
        (format!("/i/{id}.webp?size=small"), Some(CHROME), "image/webp"),
        (format!("/i/{id}.avif?size=large"), Some(OLD), "image/avif"),
    ];
    let mut etags = std::collections::HashMap::new();
    for (path, accept, want) in &cases {
        let mut request = server.client.get(server.url(path));
        if let Some(accept) = accept {
            request = request.header("accept", *accept);
        }
        let resp = request.send().await.unwrap();
        let case = format!("{path} with Accept {accept:?}");
        assert_eq!(resp.status(), 200, "{case}");
        let headers = resp.headers().clone();
        assert_eq!(headers["content-type"], *want, "{case}");
        assert_eq!(headers["vary"], "accept", "{case}");
        let etag = headers["etag"].to_str().unwrap().to_owned();
        let body = resp.bytes().await.unwrap();
        assert_eq!(sniffed(&body), *want, "{case}");
        // Each format of a size has its own ETag, the same whichever way it was asked for,
        let size = path.split("size=").nth(1).unwrap().to_owned();
        let previous = etags.insert(etag.clone(), (size.clone(), *want));
        assert!(previous.is_none_or(|p| p == (size, *want)), "{case}: {etag} names two answers");
        // and revalidates under the same Accept.
        let mut again = server.client.get(server.url(path)).header("if-none-match", &etag);
        if let Some(accept) = accept {
            again = again.header("accept", *accept);
        }
        let resp = again.send().await.unwrap();
        assert_eq!(resp.status(), 304, "{case}");
        assert_eq!(resp.headers()["vary"], "accept", "{case}");
    }
    // A JPEG or WebP ETag never validates the AVIF answer.
    for other in ["image/jpeg", "image/webp"] {
        let etag = etags.iter().find(|(_, v)| v.1 == other && v.0 == "medium").unwrap().0.clone();
        let resp = server
            .client
            .get(server.url(&format!("/i/{id}?size=medium")))
            .header("accept", CHROME)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{other}");
        assert_eq!(resp.headers()["content-type"], "image/avif", "{other}");
    }

    // The original is the stored file for every browser, so it does not vary.
    let resp = server.client.get(server.url(&format!("/i/{id}.jpg"))).header("accept", CHROME).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert!(resp.headers().get("vary").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transparent_image_is_png_for_old_browsers_and_webp_or_avif_with_alpha_for_new_ones() {
    // Given an uploaded PNG with a transparent half,
    let server = Server::start().await;
    let img = image::RgbaImage::from_fn(400, 300, |x, _| image::Rgba([200, 30, 30, if x < 200 { 0 } else { 255 }]));
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let (status, body) = server.upload_raw(png.into_inner(), "image/png").await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    server.wait_for_avif(&id, Duration::from_secs(120)).await;
    // when old browsers and new ones ask for the small variant,
    for (accept, want) in [(OLD, "image/png"), ("image/webp,*/*", "image/webp"), (CHROME, "image/avif")] {
        let resp = server
            .client
            .get(server.url(&format!("/i/{id}?size=small")))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-type"], want);
        // then each gets the transparency.
        let bytes = resp.bytes().await.unwrap();
        let decoded = if want == "image/avif" {
            avifdec::decode(&bytes)
        } else {
            image::load_from_memory(&bytes).unwrap().to_rgba8()
        };
        assert_eq!(decoded.get_pixel(10, 10).0[3], 0, "{want}");
        assert_eq!(decoded.get_pixel(300, 10).0[3], 255, "{want}");
    }
}

/// How many frames an animated GIF or WebP has, with the `image` crate's decoders.
fn frame_count(bytes: &[u8]) -> usize {
    use image::AnimationDecoder;
    let reader = std::io::Cursor::new(bytes);
    match sniffed(bytes) {
        "image/gif" => image::codecs::gif::GifDecoder::new(reader).unwrap().into_frames().count(),
        "image/webp" => image::codecs::webp::WebPDecoder::new(reader).unwrap().into_frames().count(),
        other => panic!("{other} is not an animation format"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_animated_gif_stays_animated_as_gif_for_old_browsers_and_webp_for_new_ones() {
    // Given an uploaded animated GIF of 12 frames,
    let server = Server::start().await;
    let (status, body) = server.upload_raw(animated_gif(12), "image/gif").await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let image = server.wait_for_variants(&id, Duration::from_secs(60)).await;
    // then the metadata lists each size as GIF and WebP (and never AVIF),
    for size in ["small", "medium", "large"] {
        let names: Vec<&str> = image["variants"][size]["formats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["format"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["gif", "webp"], "{size}");
    }
    // and whichever format a browser gets, every frame is there: one that takes AVIF gets the
    // animated WebP, since no AVIF variant is made of an animation.
    for (path, accept, want) in [
        (format!("/i/{id}?size=small"), OLD, "image/gif"),
        (format!("/i/{id}?size=small"), CHROME, "image/webp"),
        (format!("/i/{id}.avif?size=small"), CHROME, "image/webp"),
        (format!("/i/{id}.gif?size=large"), CHROME, "image/gif"),
        (format!("/i/{id}.webp?size=medium"), "*/*", "image/webp"),
    ] {
        let resp = server.client.get(server.url(&path)).header("accept", accept).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], want, "{path}");
        assert_eq!(resp.headers()["vary"], "accept", "{path}");
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(frame_count(&bytes), 12, "{path} as {want}");
    }
}
