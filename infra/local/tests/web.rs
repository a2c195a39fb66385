//! The web pages in a real headless Chromium against the local server: what a person does on
//! each page, checked against the API's own answers and the ExifTool oracle of the test photos.
//!
//! Every scenario also fails on a script error, a content-security-policy violation, a request
//! to another origin or a page wider than its window (see `browser`), and leaves a screenshot
//! in `target/tmp/browser-screenshots/`.

mod browser;
mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use browser::{DESKTOP, PHONE, Page};
use common::origin::Origin;
use common::{ADMIN_TOKEN, Server, photos_dir};
use fantoccini::key::Key;
use serde_json::{Value, json};

fn photo(name: &str) -> PathBuf {
    photos_dir().join(name)
}

/// The ExifTool oracle's entry for a test photo.
fn oracle(name: &str) -> Value {
    let all: Vec<Value> = serde_json::from_slice(&std::fs::read(photos_dir().join("expected.json")).unwrap()).unwrap();
    all.into_iter().find(|e| e["file"] == name).unwrap_or_else(|| panic!("{name} is not in expected.json"))
}

/// Today in UTC, the day the statistics count an upload under.
fn today() -> String {
    time::OffsetDateTime::now_utc().date().to_string()
}

/// Uploads a photo through the API; returns the stored image's answer.
async fn upload(server: &Server, name: &str) -> Value {
    let bytes = std::fs::read(photo(name)).unwrap();
    let (status, body) = server.upload_raw(bytes, "image/jpeg").await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Signs in on the admin page with the keyboard alone: the token, then Enter.
async fn sign_in(page: &Page) {
    page.goto("/admin").await;
    page.fill("#admin-token", &format!("{ADMIN_TOKEN}{}", char::from(Key::Enter))).await;
    signed_in(page).await;
}

/// Waits for the admin page's signed-in sections, which a tab that signed in before shows
/// without asking again.
async fn signed_in(page: &Page) {
    page.wait_for("the signed-in sections", "return !document.querySelector('#stats').hidden", vec![]).await;
}

/// Accepts the confirmation a destructive button asks for.
async fn confirm(page: &Page) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while page.client.accept_alert().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "no confirmation was asked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_chosen_in_the_file_picker_are_uploaded_and_their_variants_shown() {
    // Given a server and two real photos, one of them with GPS coordinates in its EXIF.
    let server = Arc::new(Server::start().await);
    let (camera, located) = ("cameras/canon-ixus.jpg", "gps/DSCN0010.jpg");
    let s = server.clone();
    browser::run("upload-and-view", DESKTOP, &server.base, move |page| async move {
        // When both are chosen at once in the upload page's file picker,
        page.goto("/").await;
        page.attach("#file-input", &[photo(camera), photo(located)]).await;

        // then each gets a finished entry with the image's link and its delete token.
        let done = page
            .wait_for(
                "both uploads to finish",
                r#"const done = [...document.querySelectorAll("li.upload.done")];
                   return done.length === 2 && done.map((li) => ({
                     name: li.querySelector(".name").innerText,
                     id: li.dataset.id,
                     link: li.querySelector("input.copy-field").value,
                     token: li.querySelector("input.delete-token").value,
                   }));"#,
                vec![],
            )
            .await;
        let entry = |file: &str| {
            let name = file.rsplit('/').next().unwrap();
            done.as_array().unwrap().iter().find(|e| e["name"] == name).unwrap_or_else(|| panic!("{done}")).clone()
        };
        let (shot, gps) = (entry(camera), entry(located));
        for e in [&shot, &gps] {
            let (status, image) = s.get_json(&format!("/v1/images/{}", e["id"].as_str().unwrap())).await;
            assert_eq!(status, 200, "{image}");
            assert_eq!(e["link"], image["link"]);
            assert!(e["token"].as_str().unwrap().len() >= 40, "{e}");
        }

        // When the first photo's page is opened from its entry and the small size chosen once
        // its variant is ready (its AVIF one too, made by the later pass),
        let id = shot["id"].as_str().unwrap().to_owned();
        s.wait_for_avif(&id, Duration::from_secs(120)).await;
        page.click(&format!(r#"li.upload[data-id="{id}"] a.page-link"#)).await;
        let small = r#"#sizes button[data-size="small"]"#;
        let script = "const b = document.querySelector(arguments[0]); return b && !b.disabled;";
        page.wait_for("the small variant to be ready", script, vec![json!(small)]).await;
        page.click(small).await;

        // then the page shows that variant at the size the API reports, marked as chosen,
        let image = s.wait_for_variants(&id, Duration::from_secs(30)).await;
        let url = image["variants"]["small"]["url"].as_str().unwrap().to_owned();
        let script = "const i = document.querySelector('#image'); return i.src === arguments[0];";
        page.wait_for("the small variant in #image", script, vec![json!(url)]).await;
        let size = page.loaded_image("#image").await;
        let expected = (
            image["variants"]["small"]["width"].as_u64().unwrap(),
            image["variants"]["small"]["height"].as_u64().unwrap(),
        );
        assert_eq!(size, expected);
        // The browser, which takes AVIF, was given the AVIF variant and decoded it to the size
        // above (the resource timing entry records the type the server answered).
        let script = "return performance.getEntriesByName(arguments[0]).map((e) => e.contentType);";
        let types = page.eval(script, vec![json!(url)]).await;
        assert_eq!(types.as_array().and_then(|t| t.last()), Some(&json!("image/avif")), "{types}");
        assert_eq!(page.find(small).await.attr("aria-pressed").await.unwrap().as_deref(), Some("true"));
        page.screenshot("upload-and-view-small-variant").await;

        // and its public metadata: the camera and dimensions the ExifTool oracle names.
        let truth = oracle(camera);
        let meta = page.text("#meta").await;
        assert!(meta.contains(truth["model"].as_str().unwrap()), "{meta}");
        assert!(meta.contains(&truth["width"].to_string()) && meta.contains(&truth["height"].to_string()), "{meta}");

        // When the located photo's page is opened, its coordinates are nowhere on it.
        let gps_id = gps["id"].as_str().unwrap().to_owned();
        let token = gps["token"].as_str().unwrap().to_owned();
        page.goto(&format!("/v/{gps_id}#delete={token}")).await;
        let meta = page.text("#meta").await;
        let lat = oracle(located)["gps_lat"].as_f64().unwrap();
        let page_text = page.eval("return document.body.innerText", vec![]).await;
        let page_text = page_text.as_str().unwrap().to_lowercase();
        assert!(!page_text.contains(&format!("{lat:.3}")), "{meta}");
        assert!(!page_text.contains("gps") && !page_text.contains("latitude"), "{meta}");

        // When its delete token (from the link the upload page hands out) is used on the page,
        page.click("#delete-button").await;
        confirm(&page).await;

        // then the image is gone, for the page and for the API, and the focus is on the news.
        page.wait_for_text("main", "Deleted").await;
        let script = "return document.activeElement && document.activeElement.id";
        assert_eq!(page.eval(script, vec![]).await, "deleted");
        let (status, _) = s.get_json(&format!("/v1/images/{gps_id}")).await;
        assert_eq!(status, 404);
    })
    .await;
}

/// A PNG of noise (which does not compress) of at least `bytes` bytes.
fn noise_png(dir: &std::path::Path, bytes: usize) -> PathBuf {
    let side = ((bytes / 3) as f64).sqrt().ceil() as u32 + 16;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let pixels = image::RgbImage::from_fn(side, side, |_, _| {
        // xorshift64: fast, and random enough that deflate finds nothing to shorten.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    });
    let path = dir.join("noise.png");
    pixels.save(&path).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() as usize > bytes);
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_dropped_and_pasted_files_all_reach_the_uploader() {
    // Given a PNG too large for one API request (5 MiB), and two photos,
    let server = Arc::new(Server::start().await);
    let dir = tempfile::tempdir().unwrap();
    let large = noise_png(dir.path(), 6 * 1024 * 1024);
    let s = server.clone();
    browser::run("upload-large-drop-paste", DESKTOP, &server.base, move |page| async move {
        page.goto("/").await;

        // when the large one is chosen in the picker, it goes through a signed form and ends as
        // an image of its own size;
        page.attach("#file-input", std::slice::from_ref(&large)).await;
        let script = "return document.querySelector('li.upload.done')?.dataset.id";
        let id = page.wait_for("the large upload to finish", script, vec![]).await;
        let (_, image) = s.get_json(&format!("/v1/images/{}", id.as_str().unwrap())).await;
        let side = image::image_dimensions(&large).unwrap().0;
        assert_eq!((image["format"].as_str(), image["width"].as_u64()), (Some("png"), Some(side as u64)), "{image}");
        drop(dir);

        // when a photo is dropped on the zone and another pasted into the page (the browser
        // builds both events from bytes this page fetched, as a drag or a clipboard would
        // carry them),
        let photos = ["cameras/Nikon_D70.jpg", "cameras/Sony_HDR-HC3.jpg"];
        let bytes: Vec<Value> =
            photos.iter().map(|p| json!(std::fs::read(photo(p)).unwrap().iter().map(|b| *b as u32).collect::<Vec<_>>())).collect();
        page.eval(
            r##"const file = (bytes, name) => new File([new Uint8Array(bytes)], name, { type: "image/jpeg" });
               const dropped = new DataTransfer();
               dropped.items.add(file(arguments[0], "dropped.jpg"));
               document.querySelector("#dropzone").dispatchEvent(
                 new DragEvent("drop", { dataTransfer: dropped, bubbles: true, cancelable: true }));
               const pasted = new DataTransfer();
               pasted.items.add(file(arguments[1], "pasted.jpg"));
               document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: pasted, bubbles: true, cancelable: true }));"##,
            bytes,
        )
        .await;

        // then both are uploaded too, each as the camera's photo.
        let script = "return document.querySelectorAll('li.upload.done').length === 3";
        page.wait_for("three finished uploads", script, vec![]).await;
        let (_, listing) = s.admin_get_json("/v1/images").await;
        let mut models: Vec<String> = listing["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["camera_model"].as_str().map(str::to_owned))
            .collect();
        models.sort();
        let mut expected: Vec<String> = photos.iter().map(|p| oracle(p)["model"].as_str().unwrap().to_owned()).collect();
        expected.sort();
        assert_eq!(models, expected, "{listing}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_animation_is_shown_as_animated_webp_to_a_browser_that_takes_avif() {
    // Given an uploaded animated GIF whose variants are made (GIF and animated WebP: no AVIF
    // variant is made of an animation),
    let server = Server::start().await;
    let (status, body) = server.upload_raw(common::animated_gif(12), "image/gif").await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let image = server.wait_for_variants(&id, Duration::from_secs(60)).await;
    let url = image["variants"]["medium"]["url"].as_str().unwrap().to_owned();
    let expected = (
        image["variants"]["medium"]["width"].as_u64().unwrap(),
        image["variants"]["medium"]["height"].as_u64().unwrap(),
    );

    browser::run("animation-page-webp", DESKTOP, &server.base, move |page| async move {
        // when its page is opened and the medium size chosen,
        page.goto(&format!("/v/{id}")).await;
        let medium = r#"#sizes button[data-size="medium"]"#;
        let script = "const b = document.querySelector(arguments[0]); return b && !b.disabled;";
        page.wait_for("the medium variant to be ready", script, vec![json!(medium)]).await;
        page.click(medium).await;
        let script = "const i = document.querySelector('#image'); return i.src === arguments[0];";
        page.wait_for("the medium variant in #image", script, vec![json!(url)]).await;

        // then Chromium, whose Accept names AVIF first, is given the animated WebP variant and
        // shows it at the size the API reports.
        assert_eq!(page.loaded_image("#image").await, expected);
        let script = "return performance.getEntriesByName(arguments[0]).map((e) => e.contentType);";
        let types = page.eval(script, vec![json!(url)]).await;
        assert_eq!(types.as_array().and_then(|t| t.last()), Some(&json!("image/webp")), "{types}");
        page.screenshot("animation-page-webp").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_file_is_refused_in_words_on_a_phone() {
    // Given the words the API uses to refuse a damaged JPEG,
    let server = Server::start().await;
    let bytes = std::fs::read(photo("corrupted.jpg")).unwrap();
    let (status, refusal) = server.upload_raw(bytes, "image/jpeg").await;
    assert_eq!(status, 422, "{refusal}");
    let message = refusal["error"]["message"].as_str().unwrap().to_owned();

    browser::run("upload-refused-phone", PHONE, &server.base, move |page| async move {
        // when a person on a phone picks that file,
        page.goto("/").await;
        page.attach("#file-input", &[photo("corrupted.jpg")]).await;

        // then its entry fails and says why, in the API's words.
        let said = page.text("li.upload.failed [role=alert]").await;
        assert!(said.contains(&message), "the page says {said:?}, the API said {message:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_made_in_the_admin_page_takes_uploads_until_it_is_used_up_or_revoked() {
    let server = Arc::new(Server::start().await);
    let s = server.clone();
    browser::run("invitation-link", DESKTOP, &server.base, move |page| async move {
        // Given an admin who signed in and made a link for two uploads,
        sign_in(&page).await;
        page.fill("#link-max", "2").await;
        page.fill("#link-label", "Browser test guests").await;
        page.click("#create-link").await;
        let url = page.value("#new-link input.copy-field").await;
        let path = url.strip_prefix(&page.base).unwrap_or_else(|| panic!("{url} is not on this server")).to_owned();
        assert!(path.starts_with("/u/"), "{url}");
        page.wait_for_text("#link-list", "Browser test guests").await;

        // when a guest opens it, the page says how many uploads and how much time are left;
        page.goto(&path).await;
        page.wait_for_text("#uploads-left", "2").await;
        let time_left = page.text("#time-left").await;
        assert!(time_left.contains('h') || time_left.contains('d'), "{time_left}");

        // each upload through it counts,
        page.attach("#file-input", &[photo("cameras/Nikon_D70.jpg")]).await;
        page.find("li.upload.done").await;
        page.wait_for_text("#uploads-left", "1").await;
        page.attach("#file-input", &[photo("cameras/Pentax_K10D.jpg")]).await;

        // and once both are used the page says the link is used up.
        page.wait_for_text("#link-closed", "used up").await;
        page.screenshot("invitation-link-used-up").await;
        let (_, links) = s.admin_get_json("/v1/links").await;
        let link = links["items"]
            .as_array()
            .or(links["links"].as_array())
            .and_then(|all| all.iter().find(|l| l["label"] == "Browser test guests").cloned())
            .unwrap_or_else(|| panic!("{links}"));
        assert_eq!((link["uploads"].as_i64(), link["status"].as_str()), (Some(2), Some("used_up")), "{link}");

        // Given a second link, when the admin revokes it in the list,
        page.goto("/admin").await;
        signed_in(&page).await;
        page.fill("#link-label", "Revoked soon").await;
        page.click("#create-link").await;
        let second = page.value("#new-link input.copy-field").await;
        page.wait_for_text("#link-list", "Revoked soon").await;
        let row = page
            .eval(
                "return [...document.querySelectorAll('#link-list tr[data-id]')]\
                 .find((r) => r.innerText.includes('Revoked soon')).dataset.id",
                vec![],
            )
            .await;
        page.click(&format!("#link-list tr[data-id={row}] button.revoke")).await;
        confirm(&page).await;
        page.wait_for(
            "the row to show the revocation",
            "return document.querySelector(`#link-list tr[data-id=\"${arguments[0]}\"] .status.revoked`)",
            vec![row],
        )
        .await;

        // then its page says so and offers no upload.
        page.goto(second.strip_prefix(&page.base).unwrap()).await;
        page.wait_for_text("#link-closed", "revoked").await;
        let script = "const i = document.querySelector('#file-input'); return !i || i.offsetParent === null;";
        page.wait_for("the uploader to be gone", script, vec![]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_chart_counts_the_days_uploads() {
    // Given three photos from three cameras uploaded today,
    let server = Arc::new(Server::start().await);
    let photos = ["cameras/Canon_40D.jpg", "cameras/Nikon_D70.jpg", "cameras/Sony_HDR-HC3.jpg"];
    for p in photos {
        upload(&server, p).await;
    }
    let s = server.clone();
    browser::run("stats-chart", DESKTOP, &server.base, move |page| async move {
        // when the admin opens the statistics,
        sign_in(&page).await;

        // then today's bar counts them, as the API does, and stands taller than an empty day;
        let bar = format!(r#"svg#uploads-chart rect.bar[data-date="{}"]"#, today());
        let count =
            |n: u32| format!("const b = document.querySelector(arguments[0]); return b && b.dataset.count === '{n}';");
        page.wait_for("today's bar to count 3", &count(3), vec![json!(bar)]).await;
        let (_, stats) = s.admin_get_json("/v1/stats").await;
        let api_today = stats["uploads_per_day"].as_array().unwrap().iter().find(|d| d["date"] == today()).cloned();
        assert_eq!(api_today.map(|d| d["count"].clone()), Some(json!(3)), "{stats}");
        let heights = page
            .eval(
                "const bars = [...document.querySelectorAll('svg#uploads-chart rect.bar')]; \
                 return bars.map((b) => [b.dataset.count, b.getBBox().height]);",
                vec![],
            )
            .await;
        let heights = heights.as_array().unwrap();
        assert!(heights.len() >= 7, "a chart of several days: {heights:?}");
        let tallest_empty = heights.iter().filter(|h| h[0] == "0").map(|h| h[1].as_f64().unwrap()).fold(0.0, f64::max);
        let today_height = heights.iter().find(|h| h[0] == "3").unwrap()[1].as_f64().unwrap();
        assert!(today_height > tallest_empty + 10.0, "{heights:?}");

        // and the formats and the cameras the oracle names are listed.
        page.wait_for_text("#formats", "jpeg").await;
        for p in photos {
            page.wait_for_text("#cameras", oracle(p)["model"].as_str().unwrap()).await;
        }

        // When one more photo arrives and the admin refreshes, the bar follows.
        upload(&s, "cameras/Pentax_K10D.jpg").await;
        page.click("#refresh-stats").await;
        page.wait_for("today's bar to count 4", &count(4), vec![json!(bar)]).await;
        // The button keeps the keyboard focus through its request, so a second press works.
        let script = "return document.activeElement && document.activeElement.id";
        assert_eq!(page.eval(script, vec![]).await, "refresh-stats");

        // When the admin deletes one of them from the image list, it is gone for the API too.
        let script = "return document.querySelector('#image-list li[data-id]')?.dataset.id";
        let victim = page.wait_for("an image in the list", script, vec![]).await.as_str().unwrap().to_owned();
        page.click(&format!(r#"#image-list li[data-id="{victim}"] button.delete"#)).await;
        confirm(&page).await;
        let script = "return !document.querySelector(`#image-list li[data-id=\"${arguments[0]}\"]`)";
        page.wait_for("the deleted image to leave the list", script, vec![json!(victim)]).await;
        assert_eq!(s.get_json(&format!("/v1/images/{victim}")).await.0, 404);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_started_in_the_page_shows_each_urls_status_live() {
    // Given an origin on loopback with one photo and one missing file, which the importer may
    // reach,
    let origin = Origin::start(photos_dir()).await;
    let server = Arc::new(Server::start_with(imghost::fetch::Fetcher::allowing(vec![origin.addr])).await);
    let urls = [origin.url("/photos/cameras/Nikon_D70.jpg"), origin.url("/status/404")];
    let s = server.clone();
    browser::run("import", DESKTOP, &server.base, move |page| async move {
        // when both URLs are pasted into the import page and the job started,
        page.goto("/imports").await;
        page.fill("#urls", &urls.join("\n")).await;
        page.click("#start").await;

        // then the good one ends done with a link to its image, the missing one failed with
        // the API's reason, and the job as partial.
        page.find(r#"#items tr[data-index="0"] .status.done"#).await;
        page.find(r#"#items tr[data-index="1"] .status.failed"#).await;
        page.wait_for_text("#job-status", "partial").await;
        let job_id = page.eval("return location.hash.replace('#job=', '')", vec![]).await;
        let (status, job) = s.get_json(&format!("/v1/imports/{}", job_id.as_str().unwrap())).await;
        assert_eq!(status, 200, "{job}");
        let reason = job["items"][1]["error"]["message"].as_str().unwrap();
        let detail = page.text(r#"#items tr[data-index="1"] .detail"#).await;
        assert!(detail.contains(reason), "the page says {detail:?}, the API says {reason:?}");

        // When the page is reloaded it picks the job up again from its address,
        page.client.refresh().await.unwrap();
        page.find(r#"#items tr[data-index="0"] .status.done"#).await;

        // and the image link leads to the imported image.
        let image_id = job["items"][0]["image"]["id"].as_str().unwrap();
        page.click(r#"#items tr[data-index="0"] a.image-link"#).await;
        page.wait_for("the image page", "return location.pathname", vec![]).await;
        assert_eq!(page.client.current_url().await.unwrap().path(), format!("/v/{image_id}"));
        page.loaded_image("#image").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_bought_in_the_admin_page_pay_for_text_and_image_memes() {
    let server = Arc::new(Server::start().await);
    let background = upload(&server, "cameras/fujifilm-dx10.jpg").await;
    let s = server.clone();
    browser::run("memes", DESKTOP, &server.base, move |page| async move {
        // Given an account made in the admin page, with two tokens bought there,
        sign_in(&page).await;
        // (both forms filled and sent with the keyboard alone),
        let enter = char::from(Key::Enter);
        page.fill("#account-name", &format!("Meme fan{enter}")).await;
        let key = page.value("#new-account input.copy-field").await;
        page.wait_for_text("#account-list", "Meme fan").await;
        page.fill("#account-list tr[data-id] input.amount", &format!("2{enter}")).await;
        page.wait_for_text("#account-list tr[data-id] td.remaining", "2").await;

        // when its key is entered on the memes page, the balance shows the two tokens;
        page.goto("/memes").await;
        page.fill("#api-key", &format!("{key}{}", char::from(Key::Enter))).await;
        page.wait_for_text("#remaining", "2").await;

        // a text meme costs one,
        page.fill("#lat", "52.52").await;
        page.fill("#lon", "13.405").await;
        page.fill("#query", "one does not simply").await;
        page.click("#make").await;
        let text = page.text("#meme-result .meme-text").await;
        assert!(text.contains("one does not simply"), "{text}");
        page.wait_for_text("#remaining", "1").await;

        // an image meme on an uploaded photo costs the other and shows the captioned picture,
        page.click(r#"input[name="format"][value="image"]"#).await;
        page.fill("#image-id", background["id"].as_str().unwrap()).await;
        page.click("#make").await;
        let (w, h) = page.loaded_image("#meme-result img.meme-image").await;
        assert!(w > 0 && h > 0);
        page.wait_for_text("#remaining", "0").await;

        // and with none left the page says why in the API's words.
        let refusal: Value = s
            .client
            .get(s.url("/v1/memes?lat=1&lon=1&query=x&format=text"))
            .bearer_auth(&key)
            .header("idempotency-key", "probe-of-the-refusal")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let message = refusal["error"]["message"].as_str().unwrap_or_else(|| panic!("{refusal}"));
        page.click("#make").await;
        let said = page.text("#error").await;
        assert!(said.contains(message), "the page says {said:?}, the API said {message:?}");
        let balance: Value =
            s.client.get(s.url("/v1/balance")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
        assert_eq!(balance["remaining"], 0, "{balance}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keepalive_entry_added_in_the_page_shows_its_loads_and_refusals() {
    // Given a server whose keep-alive loads are dry runs (no request leaves the machine),
    let server = Server::start().await;
    browser::run("keepalive", DESKTOP, &server.base, move |page| async move {
        // when an Imgur URL is added on the page and loaded at once,
        page.goto("/keepalive").await;
        page.fill("#url", "https://i.imgur.com/AbC12xY.jpg").await;
        page.click("#add").await;
        page.wait_for_text("#entries li.entry", "AbC12xY").await;
        page.click("#entries li.entry button.load").await;

        // then its history shows the load,
        page.wait_for_text("#entries li.entry", "dry").await;

        // and loading it again before it is due is refused in words.
        page.click("#entries li.entry button.load").await;
        let said = page.text("#entries li.entry [role=alert]").await;
        assert!(!said.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_lists_show_more_pages_and_every_delete_button_works() {
    // Given more invitation links and accounts than one page of the admin's lists holds (50),
    let server = Arc::new(Server::start().await);
    for i in 0..52 {
        let link = json!({"expires_in": 3600, "max_uploads": 1, "label": format!("Paged link {i}")});
        let (status, body) = server.admin_post_json("/v1/links", &link).await;
        assert_eq!(status, 201, "{body}");
        let (status, body) =
            server.admin_post_json("/v1/accounts", &json!({"name": format!("Paged account {i}")})).await;
        assert_eq!(status, 201, "{body}");
    }
    let s = server.clone();
    browser::run("admin-paging-and-deletes", DESKTOP, &server.base, move |page| async move {
        // when the admin signs in, each list shows its first page and offers more;
        sign_in(&page).await;
        let first_page = "return [...arguments[0]].every((list) => \
             document.querySelectorAll(`#${list} tr[data-id]`).length === 50)";
        page.wait_for("a first page of each list", first_page, vec![json!(["link-list", "account-list"])]).await;
        for (list, more) in [("link-list", "#more-links"), ("account-list", "#more-accounts")] {
            let script = "return !document.querySelector(arguments[0]).hidden";
            page.wait_for("the Show more button", script, vec![json!(more)]).await;

            // "Show more" appends the rest, puts the focus on the first row it added and goes,
            page.click(more).await;
            let script = "const rows = document.querySelectorAll(`#${arguments[0]} tr[data-id]`); \
                 return rows.length === 52 && document.activeElement === rows[50] \
                   && document.querySelector(arguments[1]).hidden \
                   && new Set([...rows].map((r) => r.dataset.id)).size === 52;";
            page.wait_for("the second page after the first", script, vec![json!(list), json!(more)]).await;
        }

        // and signing out forgets every row.
        page.click("#sign-out").await;
        let script = "return !document.querySelector('#link-list tbody tr, #account-list tbody tr, #image-list li') \
             && document.querySelector('#more-links').hidden && document.querySelector('#more-accounts').hidden";
        page.wait_for("the lists to be emptied", script, vec![]).await;

        // An upload's own Delete button deletes it, and the focus stays at its entry;
        page.goto("/").await;
        page.attach("#file-input", &[photo("cameras/Nikon_D70.jpg")]).await;
        let script = "return document.querySelector('li.upload.done')?.dataset.id";
        let id = page.wait_for("the upload to finish", script, vec![]).await.as_str().unwrap().to_owned();
        page.click("li.upload.done button.delete").await;
        confirm(&page).await;
        let script = "const li = document.querySelector('li.upload.deleted'); \
             return li && document.activeElement === li.querySelector('.state')";
        page.wait_for("the entry to say it was deleted", script, vec![]).await;
        assert_eq!(s.get_json(&format!("/v1/images/{id}")).await.0, 404);

        // and a keep-alive entry's Stop button removes it, saying so.
        page.goto("/keepalive").await;
        page.fill("#url", "https://i.imgur.com/StOp12x.jpg").await;
        page.click("#add").await;
        page.wait_for_text("#entries li.entry", "StOp12x").await;
        page.click("#entries li.entry button.remove").await;
        page.wait_for_text("#notice", "Stopped keeping").await;
        let script = "return !document.querySelector('#entries li.entry') && !document.querySelector('#empty').hidden \
             && document.activeElement === document.querySelector('#url')";
        page.wait_for("the entry to be gone", script, vec![]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_fits_a_phone_and_loads_nothing_from_elsewhere() {
    // Given an image and an invitation link, so that every page has something to show,
    let server = Server::start().await;
    let image = upload(&server, "cameras/olympus-c960.jpg").await;
    let (status, link) = server.admin_post_json("/v1/links", &json!({"expires_in": 3600, "max_uploads": 3})).await;
    assert_eq!(status, 201, "{link}");
    let pages = [
        ("/".to_owned(), "upload"),
        (format!("/v/{}", image["id"].as_str().unwrap()), "view"),
        (format!("/u/{}", link["token"].as_str().unwrap()), "invite"),
        ("/imports".to_owned(), "imports"),
        ("/keepalive".to_owned(), "keepalive"),
        ("/memes".to_owned(), "memes"),
        ("/admin".to_owned(), "admin"),
    ];
    browser::run("phone-admin-signed-in", PHONE, &server.base, move |page| async move {
        for (path, name) in pages {
            // when each page is opened on a phone-sized screen, it has a heading and its
            // script ran (the checks of `browser` then find no overflow, error or foreign load).
            page.goto(&path).await;
            page.text("main h1").await;
            page.wait_for("the page's script to run", "return document.readyState === 'complete'", vec![]).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            if let Err(problems) = page.check_current_document().await {
                page.screenshot(&format!("phone-{name}")).await;
                panic!("{problems}");
            }
            page.screenshot(&format!("phone-{name}")).await;
        }

        // The admin's signed-in sections (chart, tables of links, images and accounts) fit too.
        sign_in(&page).await;
        page.find("svg#uploads-chart rect.bar").await;
        page.wait_for_text("#link-list", "active").await;
        page.find("#image-list li[data-id]").await;
    })
    .await;
}

#[tokio::test]
async fn pages_carry_a_strict_policy_and_assets_revalidate() {
    // Given a server,
    let server = Server::start().await;
    let get = |path: &str, etag: Option<&str>| {
        let mut req = server.client.get(server.url(path));
        if let Some(tag) = etag {
            req = req.header("if-none-match", tag);
        }
        req.send()
    };

    // every page is HTML that may run only this origin's scripts and sends no Referer (the
    // invitation page has its token in the address);
    for path in ["/", "/v/AbCdEf12", "/u/some-token", "/imports", "/keepalive", "/memes", "/admin"] {
        let resp = get(path, None).await.unwrap();
        // The page of an image that does not exist is still the page, answered 404 (so that a
        // link-preview robot does not take it for an image page).
        let want = if path.starts_with("/v/") { 404 } else { 200 };
        assert_eq!(resp.status(), want, "{path}");
        let header = |name: &str| resp.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(header("content-type"), "text/html; charset=utf-8", "{path}");
        let csp = header("content-security-policy");
        for rule in ["default-src 'none'", "script-src 'self';", "style-src 'self';", "frame-ancestors 'none'"] {
            assert!(csp.contains(rule), "{path}: {csp} lacks {rule}");
        }
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
    }

    // a script is revalidated by its ETag, and only the front end's own files are served;
    let resp = get("/assets/app.js", None).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/javascript; charset=utf-8");
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(get("/assets/app.js", Some(&etag)).await.unwrap().status(), 304);
    assert_eq!(get("/assets/app.js", Some("\"stale\"")).await.unwrap().status(), 200);
    for path in ["/assets/nothing.js", "/assets/..%2FCargo.toml", "/assets/%2E%2E%2F%2E%2E%2FCargo.toml"] {
        let resp = get(path, None).await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!((status, common::error_code(status, &body).as_str()), (404, "not_found"), "{path}");
    }

    // and the ShareX file names this server as the place to upload to.
    let resp = get("/v1/sharex.sxcu", None).await.unwrap();
    assert!(resp.headers()["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"imghost-"));
    let sharex: Value = resp.json().await.unwrap();
    assert_eq!(sharex["RequestURL"], server.url("/v1/images"));
    assert_eq!((sharex["FileFormName"].as_str(), sharex["URL"].as_str()), (Some("file"), Some("{json:link}")));
}
