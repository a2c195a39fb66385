//! Hostile input against the real `imghost` binary, run as a process of its own so that its
//! memory can be measured: decompression, block and colour-profile bombs, images at the pixel
//! limit and just past it, thousands of scans or frames, and image memes over the largest
//! images, all at once. The server must refuse what is over a limit with the JSON error that
//! names the limit, accept the rest and make every variant, keep its peak resident memory
//! (`VmHWM`) under 512 MiB, and keep serving afterwards.
//!
//! Every input is generated here, deterministically, by small writers of the formats' own
//! structures (fixed-Huffman deflate of runs, LZW of runs, JPEG entropy data of flat blocks), so
//! that a 49-megapixel image takes milliseconds to make and a few hundred KiB to send. The last
//! test checks those writers against the `image` crate's decoders.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::files::{
    LsbBits, adler32, gif_image_descriptor, gif_screen, jpeg_segment, png_chunk, png_file, png_ihdr, sub_blocks,
};
use common::process::{Memory, Process, memory};
use futures::future::{BoxFuture, join_all};
use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "hostile-admin-token-3f6c1d2e9a8b7c6d5e4f3a2b1c0d9e8f";
const MIB: u64 = 1 << 20;
/// The most resident memory the server may ever hold.
const PEAK_LIMIT: u64 = 512 * MIB;
/// The largest body `POST /v1/images` takes.
const MAX_BODY: usize = 5 * 1024 * 1024;
/// Copies of each hostile upload in the load test.
const COPIES: usize = 8;
/// Requests the load test keeps in flight.
const IN_FLIGHT: usize = 24;
/// Memes over each of the largest images the moment it is stored, and after its variants.
const EARLY_MEMES: usize = 3;
const LATE_MEMES: usize = 2;
/// How long variants may take, counted from when the uploads are done (a 49-megapixel image
/// takes 15 to 25 s in a debug build).
const VARIANTS_WITHIN: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------------------------
// The hostile inputs
// ---------------------------------------------------------------------------------------------

/// What the server is meant to do with an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Stored (201, or 200 for a copy of bytes already stored), and its variants made.
    Accepted,
    /// Refused with this status and error code.
    Refused(u16, &'static str),
}

struct Input {
    name: &'static str,
    mime: &'static str,
    bytes: Bytes,
    expect: Expect,
    /// One of the largest accepted images: the load test draws memes over it.
    meme_background: bool,
}

impl Input {
    fn new(name: &'static str, mime: &'static str, bytes: Vec<u8>, expect: Expect) -> Input {
        Input { name, mime, bytes: Bytes::from(bytes), expect, meme_background: false }
    }

    fn background(self) -> Input {
        Input { meme_background: true, ..self }
    }
}

/// Generated once for every test of this file.
static INPUTS: LazyLock<Vec<Input>> = LazyLock::new(|| {
    let started = Instant::now();
    let inputs = hostile_inputs();
    let sizes: Vec<String> = inputs.iter().map(|i| format!("{} {} KiB", i.name, i.bytes.len() >> 10)).collect();
    eprintln!("generated {} hostile inputs in {:?}: {}", inputs.len(), started.elapsed(), sizes.join(", "));
    inputs
});

async fn inputs() -> &'static [Input] {
    tokio::task::spawn_blocking(|| LazyLock::force(&INPUTS).as_slice()).await.unwrap()
}

/// Empty GIF comment blocks that make a body just under the upload limit, and just over it.
const BOMB_BLOCKS: usize = (MAX_BODY - 64) / 3;
const OVERSIZED_BOMB_BLOCKS: usize = 6 * 1024 * 1024 / 3;
/// Bytes of the ICC profile spread over APP2 segments, and of the profile an iCCP chunk
/// inflates to.
const ICC_BYTES: usize = 9 << 19;
const ICCP_INFLATED: u64 = 256 * MIB;

fn hostile_inputs() -> Vec<Input> {
    use Expect::{Accepted, Refused};
    let iccp = {
        let mut data = b"bomb\0\0".to_vec();
        data.extend(zlib_run(0, ICCP_INFLATED));
        data
    };
    vec![
        // Accepted: every byte legal, only the proportions hostile.
        Input::new("gif_block_bomb_5mib", "image/gif", block_bomb_gif(BOMB_BLOCKS), Accepted),
        Input::new("jpeg_icc_4_5mib", "image/jpeg", icc_jpeg(256, 192, ICC_BYTES), Accepted),
        Input::new(
            "png_iccp_256mib",
            "image/png",
            solid_png(64, 48, 8, 2, &[90, 140, 200], &[(*b"iCCP", iccp)]),
            Accepted,
        ),
        // Accepted: images just within the limits, the PNGs decompression bombs as well (a
        // solid colour, transparent black, inflating to 196 and 400 MB).
        Input::new("png_bomb_7000x7000_rgba8", "image/png", solid_png(7000, 7000, 8, 6, &[0; 4], &[]), Accepted)
            .background(),
        Input::new("png_bomb_7070x7070_rgba16", "image/png", solid_png(7070, 7070, 16, 6, &[0; 8], &[]), Accepted)
            .background(),
        Input::new("jpeg_7000x7000", "image/jpeg", gradient_jpeg(7000, 7000), Accepted).background(),
        Input::new("gif_6700x6700", "image/gif", solid_gif(6700, 6700), Accepted).background(),
        // Refused at upload, each for the limit it breaks.
        Input::new("jpeg_3000_scans", "image/jpeg", many_scans_jpeg(3000), Refused(413, "too_many_scans")),
        Input::new("gif_10000_frames", "image/gif", many_frames_gif(10_000, 1, 1), Refused(413, "too_many_frames")),
        Input::new(
            "gif_1000_frames_of_501x500",
            "image/gif",
            many_frames_gif(1000, 501, 500),
            Refused(413, "too_many_pixels"),
        ),
        Input::new(
            "png_bomb_7072x7072_rgba8",
            "image/png",
            solid_png(7072, 7072, 8, 6, &[0; 4], &[]),
            Refused(413, "too_many_pixels"),
        ),
        Input::new(
            "jpeg_progressive_444_7000x7000",
            "image/jpeg",
            progressive_444_jpeg(7000, 7000),
            Refused(413, "too_complex"),
        ),
        Input::new(
            "gif_block_bomb_6mib",
            "image/gif",
            block_bomb_gif(OVERSIZED_BOMB_BLOCKS),
            Refused(413, "request_too_large"),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_uploads_keep_memory_bounded() {
    let inputs = inputs().await;
    // Given a fresh server, an account with tokens for memes, and the server's memory after
    // start-up,
    let server = Server::start();
    let startup_hwm = memory(server.pid()).expect("the server's /proc status").hwm;
    let key = server.account(100).await;
    let sampler = Sampler::start(server.pid());
    let mut phases = Phases::new(sampler.started);

    // when every hostile input is uploaded COPIES times, IN_FLIGHT requests at once, with image
    // memes over each of the largest images the moment it is stored (before its variants),
    let mut jobs: Vec<BoxFuture<'_, Vec<Outcome>>> = Vec::new();
    for copy in 0..COPIES {
        for (i, input) in inputs.iter().enumerate() {
            let (server, key) = (&server, &key);
            jobs.push(
                async move {
                    let (status, body) = server.upload(&input.bytes, input.mime).await;
                    let id = body["id"].as_str().map(str::to_owned);
                    let mut out = vec![Outcome { input: i, kind: Kind::Upload, status, body }];
                    if let (0, true, Some(id)) = (copy, input.meme_background, id) {
                        let queries: Vec<String> = (0..EARLY_MEMES).map(|m| format!("early-{i}-{m}")).collect();
                        let memes = queries.iter().map(|q| server.meme(key, &id, q));
                        for (status, body) in join_all(memes).await {
                            out.push(Outcome { input: i, kind: Kind::EarlyMeme, status, body });
                        }
                    }
                    out
                }
                .boxed(),
            );
        }
    }
    let mut outcomes: Vec<Outcome> =
        futures::stream::iter(jobs).buffer_unordered(IN_FLIGHT).flat_map(futures::stream::iter).collect().await;
    phases.end("uploads and early memes");

    // and, once every accepted image has its variants, more memes over the largest ones,
    let mut problems = Vec::new();
    let mut ids = BTreeMap::new();
    for o in outcomes.iter().filter(|o| o.kind == Kind::Upload) {
        let input = &inputs[o.input];
        if let Err(e) = check_upload(input.expect, o.status, &o.body) {
            problems.push(format!("upload {}: {e}", input.name));
        } else if let Some(id) = o.body["id"].as_str() {
            ids.entry(input.name).or_insert_with(Vec::new).push(id.to_owned());
        }
    }
    for (name, got) in &mut ids {
        got.sort();
        got.dedup();
        if got.len() != 1 {
            problems.push(format!("{name}: identical bytes were stored as {} images {got:?}", got.len()));
        }
    }
    let deadline = Instant::now() + VARIANTS_WITHIN;
    let mut waiting: Vec<String> = ids.values().flatten().cloned().collect();
    waiting.extend(outcomes.iter().filter_map(|o| meme_image(o).map(str::to_owned)));
    problems.extend(server.all_variants_ready(&waiting, deadline).await);
    phases.end("variants of the uploads");
    let mut late = Vec::new();
    for (i, input) in inputs.iter().enumerate().filter(|(_, input)| input.meme_background) {
        let Some(id) = ids.get(input.name).and_then(|v| v.first()) else { continue };
        for m in 0..LATE_MEMES {
            let (server, key, id) = (&server, &key, id.clone());
            late.push(async move {
                let (status, body) = server.meme(key, &id, &format!("late-{i}-{m}")).await;
                Outcome { input: i, kind: Kind::LateMeme, status, body }
            });
        }
    }
    let late = join_all(late).await;
    let made: Vec<String> = late.iter().filter_map(|o| meme_image(o).map(str::to_owned)).collect();
    problems.extend(server.all_variants_ready(&made, deadline).await);
    outcomes.extend(late);
    phases.end("late memes and their variants");

    // then each meme is drawn, or refused without a charge while its image has no variants;
    let mut charged = 0;
    for o in outcomes.iter().filter(|o| o.kind != Kind::Upload) {
        let name = inputs[o.input].name;
        match (o.kind, o.status, error_code(&o.body)) {
            (_, 200, _) if meme_image(o).is_some() => charged += 1,
            (Kind::EarlyMeme, 422, Ok("image_unusable")) => {}
            (kind, status, _) => problems.push(format!("{kind:?} over {name}: {status} {}", brief(&o.body))),
        }
    }
    let used = server.balance(&key).await["used"].as_i64();
    if used != Some(charged) {
        problems.push(format!("{charged} memes were drawn but the account used {used:?} tokens"));
    }
    // metadata bombs are stripped from what is stored,
    problems.extend(server.stripped(&ids).await);
    // the server still answers for a stored image and stores a new one,
    let stored = ids.values().flatten().next().expect("no image was accepted");
    let (status, meta) = server.get(&format!("/v1/images/{stored}")).await;
    assert_eq!(status, 200, "{meta}");
    let fresh = solid_png(320, 200, 8, 2, &[1, 2, 3], &[]);
    let (status, body) = server.upload(&Bytes::from(fresh), "image/png").await;
    assert_eq!(status, 201, "a fresh upload after the storm: {body}");
    assert!(server.running(), "the server exited; log:\n{}", server.log_tail());

    // and its resident memory never reached the limit.
    let samples = sampler.finish();
    let peak = memory(server.pid()).expect("the server's /proc status").hwm;
    eprintln!("{}", summary(&samples, &phases, startup_hwm, peak, &tally(inputs, &outcomes)));
    if peak >= PEAK_LIMIT {
        problems.push(format!("peak VmHWM {} MiB is not under {} MiB", peak / MIB, PEAK_LIMIT / MIB));
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}\nserver log (tail):\n{}",
        problems.len(),
        problems.join("\n  "),
        server.log_tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_get_json_4xx() {
    let inputs = inputs().await;
    // Given a fresh server,
    let server = Server::start();

    // when each input over a limit is uploaded,
    let mut rows = Vec::new();
    let mut wrong = Vec::new();
    for input in inputs {
        let Expect::Refused(want_status, want_code) = input.expect else { continue };
        let (status, body) = server.upload(&input.bytes, input.mime).await;
        // then it is refused with the limit's status and code in a JSON error body;
        let got = error_code(&body);
        let size = input.bytes.len() >> 10;
        let row = format!("{:<32} {size:>5} KiB  {status} {got:?}  (want {want_status} {want_code})", input.name);
        if status != want_status || got != Ok(want_code) {
            wrong.push(format!("{row}: {}", brief(&body)));
        }
        rows.push(row);
    }
    eprintln!("refused uploads:\n  {}", rows.join("\n  "));
    assert!(wrong.is_empty(), "wrong answers:\n  {}", wrong.join("\n  "));
    // and none of them left an image behind.
    let (status, listing) = server.admin_get("/v1/images").await;
    assert_eq!(status, 200, "{listing}");
    assert_eq!(listing["images"], json!([]), "refused uploads were stored");

    // Given an account with tokens, and a 12-megapixel image (too large to draw on from its
    // original) queued for its variants behind another one,
    let key = server.account(10).await;
    let mut ids = Vec::new();
    for colour in [[30, 90, 150], [150, 90, 30]] {
        let (status, body) = server.upload(&Bytes::from(solid_png(4000, 3000, 8, 2, &colour, &[])), "image/png").await;
        assert_eq!(status, 201, "{}", brief(&body));
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let target = &ids[1];
    // when memes are asked over it and over an image that does not exist,
    let cases = [
        ("an image without variants yet, too large to draw on", target.as_str(), 422, "image_unusable"),
        ("no such image", "AAAAAAAA", 422, "bad_parameter"),
    ];
    for (what, image, want_status, want_code) in cases {
        let (status, body) = server.meme(&key, image, "hello").await;
        // then each is refused with a JSON error naming why, and no token is used.
        let (_, meta) = server.get(&format!("/v1/images/{image}")).await;
        assert_eq!(
            (status, error_code(&body)),
            (want_status, Ok(want_code)),
            "meme over {what}: {} (the image's variants: {})",
            brief(&body),
            meta["variants"]
        );
        let balance = server.balance(&key).await;
        assert_eq!(balance["used"], 0, "a refused meme over {what} was charged: {balance}");
    }
    // Once its variants are made, a meme over the same image is drawn and costs one token.
    let problems = server.all_variants_ready(&ids, Instant::now() + VARIANTS_WITHIN).await;
    assert!(problems.is_empty(), "{problems:?}\nserver log (tail):\n{}", server.log_tail());
    let (status, body) = server.meme(&key, target, "hello").await;
    assert_eq!(status, 200, "{}", brief(&body));
    assert_eq!(server.balance(&key).await["used"], 1);
}

/// The writers behind the hostile inputs, at small sizes, read by the `image` crate's decoders:
/// what the server is sent is what it claims to be.
#[test]
fn the_generated_files_decode_as_intended() {
    let decode = |bytes: &[u8]| image::load_from_memory(bytes).map_err(|e| e.to_string());
    // PNG: one colour in every row, at both depths, beside an iCCP chunk;
    let rgb = solid_png(5, 3, 8, 2, &[200, 120, 40], &[(*b"iCCP", [b"p\0\0".as_slice(), &zlib_run(0, 5000)].concat())]);
    let img = decode(&rgb).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (5, 3));
    assert!(img.pixels().all(|p| p.0 == [200, 120, 40]));
    let rgba16 = solid_png(4, 2, 16, 6, &[1, 2, 3, 4, 5, 6, 0xFF, 0xFE], &[]);
    let img = decode(&rgba16).unwrap().to_rgba16();
    assert!(img.pixels().all(|p| p.0 == [0x0102, 0x0304, 0x0506, 0xFFFE]));
    // and the zlib checksum is the Adler-32 of the rows as they inflate: the pixel, then zero
    // differences (Sub filter), then rows of zeros (Up filter).
    let mut raw = Vec::new();
    for y in 0..3 {
        raw.push(if y == 0 { 1 } else { 2 });
        raw.extend(if y == 0 { [200, 120, 40].as_slice() } else { &[0; 3] });
        raw.extend([0; 12]);
    }
    let idat = rgb.windows(4).position(|w| w == b"IDAT").unwrap() + 4;
    let len = u32::from_be_bytes(rgb[idat - 8..idat - 4].try_into().unwrap()) as usize;
    assert_eq!(rgb[idat + len - 4..idat + len], adler32(&raw).to_be_bytes());
    // GIF: runs of one colour, across code width changes and the table filling up.
    for (w, h) in [(1, 1), (2, 1), (3, 1), (7, 5), (100, 100), (3000, 3000)] {
        let img = decode(&solid_gif(w, h)).unwrap_or_else(|e| panic!("{w}x{h}: {e}")).to_rgba8();
        assert_eq!(img.dimensions(), (u32::from(w), u32::from(h)));
        assert!(img.as_raw().chunks(4).all(|p| p == [200, 60, 20, 255]), "{w}x{h}");
    }
    assert_eq!(decode(&block_bomb_gif(1000)).unwrap().to_rgb8().get_pixel(0, 0).0, [200, 60, 20]);
    assert_eq!(decode(&many_frames_gif(3, 9, 4)).unwrap().to_rgb8().dimensions(), (9, 4));
    // JPEG: flat blocks of a gradient, with or without a colour profile, and progressive scans.
    let img = decode(&gradient_jpeg(64, 48)).unwrap().to_luma8();
    assert_eq!(img.dimensions(), (64, 48));
    let (dark, light) = (img.get_pixel(0, 0).0[0], img.get_pixel(63, 47).0[0]);
    assert!(u16::from(dark) + 60 < u16::from(light), "the gradient rises: {dark} to {light}");
    assert_eq!(decode(&icc_jpeg(32, 16, 200_000)).unwrap().to_rgb8().dimensions(), (32, 16));
    let img = decode(&many_scans_jpeg(64)).unwrap().to_luma8();
    assert!(img.pixels().all(|p| p.0[0].abs_diff(128) <= 1), "{:?}", img.get_pixel(0, 0));
    assert_eq!(decode(&progressive_444_jpeg(24, 16)).unwrap().to_rgb8().dimensions(), (24, 16));
    // Sizes: the bombs fit a request, and the oversized one does not.
    assert!(block_bomb_gif(BOMB_BLOCKS).len() <= MAX_BODY);
    assert!(block_bomb_gif(OVERSIZED_BOMB_BLOCKS).len() > MAX_BODY);
}

// ---------------------------------------------------------------------------------------------
// The server process and its memory
// ---------------------------------------------------------------------------------------------

/// The `imghost` binary (see [`Process`]) with the clients the load uses.
struct Server {
    process: Process,
    client: reqwest::Client,
    /// For bodies over the limit: they are refused before they are read to the end, and the
    /// connection that carried one is not used again.
    unpooled: reqwest::Client,
}

impl Server {
    fn start() -> Server {
        // Pooled connections are dropped after 30 s idle, well before the server's 60 s idle
        // timeout: a connection reused just as the server closes it fails the request in
        // flight (the late memes wait out the whole variants phase, which can take a minute).
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let unpooled = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        Server { process: Process::start(ADMIN_TOKEN), client, unpooled }
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }

    fn running(&self) -> bool {
        memory(self.pid()).is_some()
    }

    fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    fn url(&self, path: &str) -> String {
        self.process.url(path)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        answer(self.client.get(self.url(path)).send().await).await
    }

    async fn admin_get(&self, path: &str) -> (u16, Value) {
        answer(self.client.get(self.url(path)).bearer_auth(ADMIN_TOKEN).send().await).await
    }

    async fn upload(&self, bytes: &Bytes, mime: &str) -> (u16, Value) {
        let client = if bytes.len() > MAX_BODY { &self.unpooled } else { &self.client };
        let request = client.post(self.url("/v1/images")).header("content-type", mime).body(bytes.clone());
        answer(request.send().await).await
    }

    /// A new account holding `tokens`; returns its API key.
    async fn account(&self, tokens: i64) -> String {
        let request = self.client.post(self.url("/v1/accounts")).bearer_auth(ADMIN_TOKEN);
        let (status, created) = answer(request.json(&json!({"name": "hostile"})).send().await).await;
        assert_eq!(status, 201, "{created}");
        let id = created["account_id"].as_str().unwrap();
        let request = self.client.post(self.url(&format!("/v1/accounts/{id}/tokens"))).bearer_auth(ADMIN_TOKEN);
        let request = request.header("idempotency-key", "hostile-purchase").json(&json!({"amount": tokens}));
        let (status, bought) = answer(request.send().await).await;
        assert_eq!((status, &bought["purchased"]), (200, &json!(tokens)), "{bought}");
        created["api_key"].as_str().unwrap().to_owned()
    }

    async fn balance(&self, key: &str) -> Value {
        let (status, balance) = answer(self.client.get(self.url("/v1/balance")).bearer_auth(key).send().await).await;
        assert_eq!(status, 200, "{balance}");
        balance
    }

    /// An image meme captioned `query` over the image `image`.
    async fn meme(&self, key: &str, image: &str, query: &str) -> (u16, Value) {
        let path = format!("/v1/memes?lat=1.5&lon=2.5&query={query}&format=image&image={image}");
        answer(self.client.get(self.url(&path)).bearer_auth(key).send().await).await
    }

    /// Waits until every variant of each image is ready; answers what failed or never came.
    async fn all_variants_ready(&self, ids: &[String], deadline: Instant) -> Vec<String> {
        let mut problems = Vec::new();
        for id in ids {
            loop {
                let (status, meta) = self.get(&format!("/v1/images/{id}")).await;
                let states: Vec<&str> =
                    ["small", "medium", "large"].map(|s| meta["variants"][s]["status"].as_str().unwrap_or("?")).into();
                if status == 200 && states.iter().all(|s| *s == "ready") {
                    break;
                }
                if status != 200 || states.contains(&"failed") || Instant::now() > deadline {
                    let why = if Instant::now() > deadline { " (timed out)" } else { "" };
                    problems.push(format!("variants of {id}{why}: {status} {states:?} {}", brief(&meta)));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        problems
    }

    /// Checks that the stored originals lost their metadata bombs: the ICC profile over the
    /// size kept, the iCCP chunk that inflates past it, and the comment blocks.
    async fn stripped(&self, ids: &BTreeMap<&str, Vec<String>>) -> Vec<String> {
        let mut problems = Vec::new();
        let checks: [StripCheck; 3] = [
            ("jpeg_icc_4_5mib", |b| b.len() < 64 * 1024, "is still larger than 64 KiB"),
            ("png_iccp_256mib", |b| !b.windows(4).any(|w| w == b"iCCP"), "still has its iCCP chunk"),
            ("gif_block_bomb_5mib", |b| b.len() < 64, "still has its comment blocks"),
        ];
        for (name, ok, complaint) in checks {
            let Some(id) = ids.get(name).and_then(|v| v.first()) else { continue };
            match self.client.get(self.url(&format!("/i/{id}"))).send().await {
                Ok(r) if r.status() == 200 => {
                    let bytes = r.bytes().await.unwrap_or_default();
                    if !ok(&bytes) {
                        problems.push(format!("the stored {name} ({} bytes) {complaint}", bytes.len()));
                    }
                }
                other => problems.push(format!("the stored {name} cannot be read: {other:?}")),
            }
        }
        problems
    }
}

/// A stored original's input, a test of its bytes, and what is wrong when the test fails.
type StripCheck = (&'static str, fn(&[u8]) -> bool, &'static str);

/// An answer's status and JSON body (a string holding the text when it is not JSON); status 0
/// when the request failed before an answer.
async fn answer(response: reqwest::Result<reqwest::Response>) -> (u16, Value) {
    match response {
        Err(e) => (0, Value::String(format!("no answer: {}", error_chain(&e)))),
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_else(|e| format!("body unreadable: {}", error_chain(&e)));
            (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// The code of a JSON error body `{"error": {"code", "message"}}`, or why the body is not one.
fn error_code(body: &Value) -> Result<&str, String> {
    let code = body["error"]["code"].as_str().filter(|c| !c.is_empty());
    let message = body["error"]["message"].as_str().filter(|m| !m.is_empty());
    match (code, message) {
        (Some(code), Some(_)) => Ok(code),
        _ => Err(format!("not a JSON error: {}", brief(body))),
    }
}

fn check_upload(expect: Expect, status: u16, body: &Value) -> Result<(), String> {
    let got = error_code(body);
    match expect {
        Expect::Accepted if matches!(status, 200 | 201) && body["id"].is_string() => Ok(()),
        Expect::Refused(s, c) if status == s && got == Ok(c) => Ok(()),
        Expect::Accepted => Err(format!("got {status} {}; want 201 or 200", brief(body))),
        Expect::Refused(s, c) => Err(format!("got {status} {got:?}; want {s} {c:?}")),
    }
}

fn brief(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 300 { format!("{}…", text.chars().take(300).collect::<String>()) } else { text }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Upload,
    EarlyMeme,
    LateMeme,
}

/// One answer of the load test.
struct Outcome {
    input: usize,
    kind: Kind,
    status: u16,
    body: Value,
}

/// The id of the image a meme answer links to (`{base}/i/{id}.png`).
fn meme_image(o: &Outcome) -> Option<&str> {
    if o.kind == Kind::Upload || o.status != 200 {
        return None;
    }
    let link = o.body["meme"].as_str()?;
    link.rsplit('/').next()?.split('.').next()
}

/// How often each input got each answer, e.g. `jpeg_3000_scans upload: 8× 413 too_many_scans`.
fn tally(inputs: &[Input], outcomes: &[Outcome]) -> Vec<String> {
    let mut counts: BTreeMap<(usize, String), usize> = BTreeMap::new();
    for o in outcomes {
        let what = match o.kind {
            Kind::Upload => "upload",
            Kind::EarlyMeme => "meme before variants",
            Kind::LateMeme => "meme after variants",
        };
        let code = error_code(&o.body).unwrap_or(if o.status < 300 { "ok" } else { "?" });
        *counts.entry((o.input, format!("{what}: {} {code}", o.status))).or_default() += 1;
    }
    counts.into_iter().map(|((i, what), n)| format!("{} {what} ×{n}", inputs[i].name)).collect()
}

/// Reads a process's memory every 50 ms on a thread of its own until finished.
struct Sampler {
    started: Instant,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Duration, Memory)>>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Some(m) = memory(pid) {
                    samples.push((started.elapsed(), m));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            samples
        });
        Sampler { started, stop, thread }
    }

    fn finish(self) -> Vec<(Duration, Memory)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Named stretches of the load test, one after another.
struct Phases {
    started: Instant,
    ends: Vec<(&'static str, Duration)>,
}

impl Phases {
    fn new(started: Instant) -> Phases {
        Phases { started, ends: Vec::new() }
    }

    fn end(&mut self, name: &'static str) {
        self.ends.push((name, self.started.elapsed()));
    }
}

fn summary(samples: &[(Duration, Memory)], phases: &Phases, startup: u64, peak: u64, tally: &[String]) -> String {
    let mib = |b: u64| b / MIB;
    let peak_at =
        samples.iter().find(|(_, m)| m.hwm == peak).map_or("-".into(), |(at, _)| format!("{:.1}", at.as_secs_f64()));
    let mut text = format!(
        "peak VmHWM {} MiB (after start-up {} MiB; limit {} MiB), first seen at {peak_at} s; {} samples\n",
        mib(peak),
        mib(startup),
        mib(PEAK_LIMIT),
        samples.len()
    );
    let mut from = Duration::ZERO;
    for &(name, to) in &phases.ends {
        let during = samples.iter().filter(|(at, _)| *at >= from && *at <= to);
        let rss = during.clone().map(|(_, m)| m.rss).max().unwrap_or(0);
        let hwm = during.map(|(_, m)| m.hwm).max().unwrap_or(0);
        text += &format!(
            "  {name}: {:.1}–{:.1} s, max VmRSS {} MiB, VmHWM by its end {} MiB\n",
            from.as_secs_f64(),
            to.as_secs_f64(),
            mib(rss),
            mib(hwm)
        );
        from = to;
    }
    let mut per_second: BTreeMap<u64, u64> = BTreeMap::new();
    for (at, m) in samples {
        let top = per_second.entry(at.as_secs()).or_default();
        *top = (*top).max(m.rss);
    }
    let seconds: Vec<String> = per_second.values().map(|&rss| mib(rss).to_string()).collect();
    text += &format!("  max VmRSS (MiB) in each second: {}\n", seconds.join(" "));
    text += &format!("  answers:\n    {}", tally.join("\n    "));
    text
}

// ---------------------------------------------------------------------------------------------
// Writers: zlib (fixed-Huffman deflate of runs) and PNG
// ---------------------------------------------------------------------------------------------

const ADLER_MOD: u64 = 65521;

/// A zlib stream of one fixed-Huffman deflate block, written as literals and runs: a run is its
/// byte once and then copies of the byte before (distance 1, up to 258 at a time), so 13 bits
/// stand for 258 bytes.
struct Zlib {
    bits: LsbBits,
    a: u64,
    b: u64,
}

impl Zlib {
    fn new() -> Zlib {
        let mut bits = LsbBits::default();
        bits.put(1, 1); // The final block,
        bits.put(1, 2); // with the fixed codes.
        Zlib { bits, a: 1, b: 0 }
    }

    fn symbol(&mut self, symbol: u32) {
        let (code, len) = match symbol {
            0..=143 => (0x30 + symbol, 8),
            144..=255 => (0x190 + symbol - 144, 9),
            256..=279 => (symbol - 256, 7),
            _ => (0xC0 + symbol - 280, 8),
        };
        // Huffman codes go most significant bit first.
        self.bits.put(code.reverse_bits() >> (32 - len), len);
    }

    fn literal(&mut self, byte: u8) {
        self.symbol(u32::from(byte));
        self.a = (self.a + u64::from(byte)) % ADLER_MOD;
        self.b = (self.b + self.a) % ADLER_MOD;
    }

    fn literals(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.literal(b);
        }
    }

    /// `count` copies of `byte`.
    fn run(&mut self, byte: u8, count: u64) {
        if count == 0 {
            return;
        }
        self.literal(byte);
        const BASE: [u64; 29] = [
            3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195,
            227, 258,
        ];
        const EXTRA: [u32; 29] =
            [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
        // Length 258 (symbol 285, reversed) and distance code 0, in one go.
        let copy_258 = 0xC5u32.reverse_bits() >> 24;
        let mut left = count - 1;
        while left >= 258 {
            self.bits.put(copy_258, 13);
            left -= 258;
        }
        if left >= 3 {
            let i = BASE.iter().rposition(|&b| b <= left).unwrap();
            self.symbol(257 + i as u32);
            self.bits.put((left - BASE[i]) as u32, EXTRA[i]);
            self.bits.put(0, 5);
        } else {
            for _ in 0..left {
                self.symbol(u32::from(byte));
            }
        }
        // The checksum of count - 1 more bytes of `byte`.
        let (n, v, a) = (u128::from(count - 1), u128::from(byte), u128::from(self.a));
        let m = u128::from(ADLER_MOD);
        self.b = ((u128::from(self.b) + n * a + v * (n * (n + 1) / 2)) % m) as u64;
        self.a = ((a + n * v) % m) as u64;
    }

    fn finish(mut self) -> Vec<u8> {
        self.symbol(256);
        let adler = ((self.b << 16) | self.a) as u32;
        let mut out = vec![0x78, 0x01];
        out.extend(self.bits.finish());
        out.extend(adler.to_be_bytes());
        out
    }
}

fn zlib_run(byte: u8, count: u64) -> Vec<u8> {
    let mut z = Zlib::new();
    z.run(byte, count);
    z.finish()
}

/// A PNG of one colour: `pixel` is one pixel as stored (its length follows from the bit depth
/// and colour type). The first row holds the pixel and then, with the Sub filter, zero
/// differences; every other row is all zeros with the Up filter. `before_data` chunks come
/// between the header and the image data.
fn solid_png(
    width: u32,
    height: u32,
    bit_depth: u8,
    colour_type: u8,
    pixel: &[u8],
    before_data: &[([u8; 4], Vec<u8>)],
) -> Vec<u8> {
    let row = u64::from(width) * pixel.len() as u64;
    let mut z = Zlib::new();
    z.literal(1);
    z.literals(pixel);
    z.run(0, row - pixel.len() as u64);
    for _ in 1..height {
        z.literal(2);
        z.run(0, row);
    }
    let chunks: Vec<Vec<u8>> = before_data.iter().map(|(kind, data)| png_chunk(kind, data)).collect();
    png_file(&png_ihdr(width, height, bit_depth, colour_type, false), &chunks, &z.finish())
}

// ---------------------------------------------------------------------------------------------
// Writers: GIF
// ---------------------------------------------------------------------------------------------

/// LZW (minimum code size 2) of `pixels` copies of one palette index. A run grows the table by
/// one string a code (the run so far and one more pixel), so each code stands for one pixel
/// more than the one before; when the table is full, a clear code starts it again.
fn lzw_run(index: u8, pixels: u64) -> Vec<u8> {
    const CLEAR: u32 = 4;
    const END: u32 = 5;
    const FIRST: u32 = 6;
    let mut bits = LsbBits::default();
    let (mut width, mut next, mut longest) = (3u32, FIRST, 1u64);
    bits.put(CLEAR, width);
    let mut left = pixels;
    while left > 0 {
        let take = longest.min(left);
        let code = if take == 1 { u32::from(index) } else { FIRST + (take - 2) as u32 };
        bits.put(code, width);
        left -= take;
        // The string this code stood for, and one more pixel, gets the next code; the decoder,
        // one code behind, widens its codes at the same point. After the last code the decoder
        // still adds its string, so the end code is as wide as the next code would be.
        if next == 1 << width {
            width += 1;
        }
        if left == 0 {
            break;
        }
        next += 1;
        longest += 1;
        if next == 4096 {
            bits.put(CLEAR, width);
            (width, next, longest) = (3, FIRST, 1);
        }
    }
    bits.put(END, width);
    bits.finish()
}

/// A GIF's header and logical screen, with a two-colour global table (index 0 is orange).
fn gif_start(width: u16, height: u16) -> Vec<u8> {
    gif_screen(width, height, 0x80, &[200, 60, 20, 255, 255, 255])
}

/// A frame at the top left filled with index 0.
fn gif_frame(out: &mut Vec<u8>, width: u16, height: u16) {
    out.extend(gif_image_descriptor(0, 0, width, height, 0));
    out.push(2);
    out.extend(sub_blocks(&lzw_run(0, u64::from(width) * u64::from(height))));
}

fn solid_gif(width: u16, height: u16) -> Vec<u8> {
    let mut out = gif_start(width, height);
    gif_frame(&mut out, width, height);
    out.push(0x3B);
    out
}

/// A 1x1 GIF whose one frame follows `blocks` empty comment extensions.
fn block_bomb_gif(blocks: usize) -> Vec<u8> {
    let mut out = gif_start(1, 1);
    out.extend([0x21, 0xFE, 0].repeat(blocks));
    gif_frame(&mut out, 1, 1);
    out.push(0x3B);
    out
}

/// An animation of `frames` frames of one size, each with a graphic control block.
fn many_frames_gif(frames: usize, width: u16, height: u16) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend([0x21, 0xF9, 4, 0x04, 10, 0, 0, 0]);
    gif_frame(&mut frame, width, height);
    let mut out = gif_start(width, height);
    out.extend(frame.repeat(frames));
    out.push(0x3B);
    out
}

// ---------------------------------------------------------------------------------------------
// Writers: JPEG of flat blocks
// ---------------------------------------------------------------------------------------------

/// Bits packed from the most significant end, with JPEG's byte stuffing after each 0xFF.
#[derive(Default)]
struct MsbBits {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl MsbBits {
    fn put(&mut self, value: u32, bits: u32) {
        self.acc = (self.acc << bits) | value;
        self.n += bits;
        while self.n >= 8 {
            let byte = (self.acc >> (self.n - 8)) as u8;
            self.out.push(byte);
            if byte == 0xFF {
                self.out.push(0);
            }
            self.n -= 8;
        }
        self.acc &= (1 << self.n) - 1;
    }

    /// Pads the last byte with one bits.
    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            let pad = 8 - self.n;
            self.put((1 << pad) - 1, pad);
        }
        self.out
    }
}

/// A component: id, horizontal and vertical sampling factors.
type Component = (u8, u8, u8);

/// The Huffman tables every file here uses: for DC, the twelve difference categories in four
/// bits each (code = category); for AC, end-of-block as `00` and one unused symbol as `01`.
const DC_CODE_BITS: u32 = 4;
const EOB: (u32, u32) = (0b00, 2);

/// A scan header over the components `ids`, with spectral selection and approximation.
fn sos(ids: &[u8], ss: u8, se: u8) -> Vec<u8> {
    let mut p = vec![ids.len() as u8];
    for &id in ids {
        p.extend([id, 0x00]);
    }
    p.extend([ss, se, 0]);
    p
}

/// A JPEG with the frame marker `sof`, one quantization table of 8s (so a DC coefficient is
/// the block's level minus 128) and the Huffman tables above, then the scans.
fn jpeg(sof: u8, width: u16, height: u16, comps: &[Component], scans: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    out.extend(jpeg_segment(0xDB, &[[0u8].as_slice(), &[8; 64]].concat()));
    let mut frame = vec![8];
    frame.extend(height.to_be_bytes());
    frame.extend(width.to_be_bytes());
    frame.push(comps.len() as u8);
    for &(id, h, v) in comps {
        frame.extend([id, (h << 4) | v, 0]);
    }
    out.extend(jpeg_segment(sof, &frame));
    // Class and slot, the count of codes of each length from 1 to 16 bits, the symbols.
    let table = |class_slot: u8, length: usize, symbols: &[u8]| {
        let mut counts = [0u8; 16];
        counts[length - 1] = symbols.len() as u8;
        [[class_slot].as_slice(), &counts, symbols].concat()
    };
    out.extend(jpeg_segment(0xC4, &table(0x00, DC_CODE_BITS as usize, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])));
    out.extend(jpeg_segment(0xC4, &table(0x10, EOB.1 as usize, &[0x00, 0x01])));
    for (header, data) in scans {
        out.extend(jpeg_segment(0xDA, header));
        out.extend(data);
    }
    out.extend([0xFF, 0xD9]);
    out
}

/// Entropy-coded data of an interleaved scan of flat blocks: each block only its DC level
/// (`dc(component, block x, block y)`, -128 to 127) and, when `eob`, an end-of-block code.
fn flat_blocks(
    width: u16,
    height: u16,
    comps: &[Component],
    eob: bool,
    dc: impl Fn(usize, u32, u32) -> i32,
) -> Vec<u8> {
    let hmax = u32::from(comps.iter().map(|c| c.1).max().unwrap());
    let vmax = u32::from(comps.iter().map(|c| c.2).max().unwrap());
    let (mcus_x, mcus_y) = (u32::from(width).div_ceil(8 * hmax), u32::from(height).div_ceil(8 * vmax));
    let mut bits = MsbBits::default();
    let mut previous = vec![0i32; comps.len()];
    for my in 0..mcus_y {
        for mx in 0..mcus_x {
            for (c, &(_, h, v)) in comps.iter().enumerate() {
                let (h, v) = (u32::from(h), u32::from(v));
                for j in 0..v {
                    for i in 0..h {
                        let level = dc(c, mx * h + i, my * v + j).clamp(-128, 127);
                        let diff = level - previous[c];
                        previous[c] = level;
                        let category = 32 - diff.unsigned_abs().leading_zeros();
                        bits.put(category, DC_CODE_BITS);
                        if category > 0 {
                            let extra = if diff > 0 { diff } else { diff + (1 << category) - 1 };
                            bits.put(extra as u32, category);
                        }
                        if eob {
                            bits.put(EOB.0, EOB.1);
                        }
                    }
                }
            }
        }
    }
    bits.finish()
}

/// A baseline 4:2:0 JPEG of smooth gradients: luma rising from the top left to the bottom
/// right, blue-difference across and red-difference down.
fn gradient_jpeg(width: u16, height: u16) -> Vec<u8> {
    let comps = [(1, 2, 2), (2, 1, 1), (3, 1, 1)];
    let (bw, bh) = (u32::from(width).div_ceil(8), u32::from(height).div_ceil(8));
    let data = flat_blocks(width, height, &comps, true, |c, bx, by| match c {
        0 => ((bx + by) * 255 / (bw + bh)) as i32 - 128,
        1 => (bx * 240 / bw) as i32 - 60,
        _ => 60 - (by * 240 / bh) as i32,
    });
    jpeg(0xC0, width, height, &comps, &[(sos(&[1, 2, 3], 0, 63), data)])
}

/// A small gradient JPEG carrying an ICC profile of `profile` bytes in APP2 segments of at
/// most 65,533 bytes each, numbered in sequence.
fn icc_jpeg(width: u16, height: u16, profile: usize) -> Vec<u8> {
    const PART: usize = 65_533 - 14;
    let mut seed = 0x2545_F491u32;
    let bytes: Vec<u8> = (0..profile)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as u8
        })
        .collect();
    let count = profile.div_ceil(PART);
    let app2: Vec<Vec<u8>> = bytes
        .chunks(PART)
        .enumerate()
        .map(|(k, part)| [b"ICC_PROFILE\0".as_slice(), &[k as u8 + 1, count as u8], part].concat())
        .collect();
    let plain = gradient_jpeg(width, height);
    let mut out = plain[..2].to_vec();
    for payload in &app2 {
        out.extend(jpeg_segment(0xE2, payload));
    }
    out.extend(&plain[2..]);
    out
}

/// An 8x8 grey progressive JPEG of `scans` scans: its DC, then single-coefficient AC bands in
/// turn (1 to 63, then again), each holding one end-of-block.
fn many_scans_jpeg(scans: usize) -> Vec<u8> {
    let comps = [(1, 1, 1)];
    let mut all = vec![(sos(&[1], 0, 0), flat_blocks(8, 8, &comps, false, |_, _, _| 0))];
    for k in 1..scans {
        let band = 1 + ((k - 1) % 63) as u8;
        let mut bits = MsbBits::default();
        bits.put(EOB.0, EOB.1);
        all.push((sos(&[1], band, band), bits.finish()));
    }
    jpeg(0xC2, 8, 8, &comps, &all)
}

/// A mid-grey progressive JPEG with full-resolution colour: one DC scan over every component.
fn progressive_444_jpeg(width: u16, height: u16) -> Vec<u8> {
    let comps = [(1, 1, 1), (2, 1, 1), (3, 1, 1)];
    let data = flat_blocks(width, height, &comps, false, |_, _, _| 0);
    jpeg(0xC2, width, height, &comps, &[(sos(&[1, 2, 3], 0, 0), data)])
}
