//! Accounts and memes through the local server: admin-only account and purchase endpoints,
//! the balance, meme parameter checks, and an image meme over a hosted photo.

mod common;

use common::{ADMIN_TOKEN, Server, error_code, photos_dir};
use serde_json::{Value, json};

/// Creates an account and buys `tokens` for it; returns its id and API key.
async fn account(server: &Server, tokens: i64) -> (String, String) {
    let resp = server.client.post(server.url("/v1/accounts")).bearer_auth(ADMIN_TOKEN).json(&json!({"name": "fan"}));
    let created: Value = resp.send().await.unwrap().json().await.unwrap();
    let id = created["account_id"].as_str().unwrap().to_owned();
    let buy = || {
        server
            .client
            .post(server.url(&format!("/v1/accounts/{id}/tokens")))
            .bearer_auth(ADMIN_TOKEN)
            .header("idempotency-key", "purchase-1")
            .json(&json!({"amount": tokens}))
            .send()
    };
    // A retried purchase adds its tokens once.
    for _ in 0..2 {
        let body: Value = buy().await.unwrap().json().await.unwrap();
        assert_eq!(body["purchased"], tokens, "{body}");
    }
    (id, created["api_key"].as_str().unwrap().to_owned())
}

async fn meme(server: &Server, key: &str, query: &str) -> (u16, Value) {
    let resp = server.client.get(server.url(&format!("/v1/memes?{query}"))).bearer_auth(key).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_admin_only_and_keys_are_checked() {
    let server = Server::start().await;
    // Without the admin token nobody creates accounts or buys tokens.
    let resp = server.client.post(server.url("/v1/accounts")).json(&json!({"name": "x"})).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let (id, key) = account(&server, 3).await;
    let resp = server.client.post(server.url(&format!("/v1/accounts/{id}/tokens"))).json(&json!({"amount": 5}));
    assert_eq!(resp.header("idempotency-key", "k").send().await.unwrap().status(), 401);
    // A purchase needs an idempotency key, and a reused key with another amount is refused.
    let buy = |key: Option<&str>, amount: i64| {
        let mut r = server.client.post(server.url(&format!("/v1/accounts/{id}/tokens"))).bearer_auth(ADMIN_TOKEN);
        if let Some(k) = key {
            r = r.header("idempotency-key", k.to_owned());
        }
        r.json(&json!({"amount": amount})).send()
    };
    let resp = buy(None, 5).await.unwrap();
    assert_eq!(resp.status(), 422);
    let resp = buy(Some("purchase-1"), 5).await.unwrap();
    let (status, body) = (resp.status().as_u16(), resp.json::<Value>().await.unwrap());
    assert_eq!(error_code(status, &body), "idempotency_key_reused");
    // The balance answers the key's owner only.
    let (status, balance) = {
        let r = server.client.get(server.url("/v1/balance")).bearer_auth(&key).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200);
    assert_eq!(balance, json!({"account_id": id, "purchased": 3, "used": 0, "remaining": 3}));
    for bad in [None, Some("not-a-key")] {
        let mut r = server.client.get(server.url("/v1/balance"));
        if let Some(k) = bad {
            r = r.bearer_auth(k);
        }
        assert_eq!(r.send().await.unwrap().status(), 401);
        let (status, _) = meme(&server, bad.unwrap_or(""), "lat=1&lon=2&query=x").await;
        assert_eq!(status, 401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meme_parameters_are_checked_before_any_charge() {
    let server = Server::start().await;
    let (id, key) = account(&server, 1).await;
    let cases = [
        ("lon=2&query=x", "lat"),
        ("lat=91&lon=2&query=x", "lat"),
        ("lat=-90.5&lon=2&query=x", "lat"),
        ("lat=1e1&lon=2&query=x", "lat"),
        ("lat=NaN&lon=2&query=x", "lat"),
        ("lat=%2B1&lon=2&query=x", "lat"),
        ("lat=1.&lon=2&query=x", "lat"),
        ("lat=1&lon=180.01&query=x", "lon"),
        ("lat=1&lon=0x10&query=x", "lon"),
        ("lat=1&lon=2", "query"),
        ("lat=1&lon=2&query=", "query"),
        ("lat=1&lon=2&query=a%0Ab", "query"),
        (&format!("lat=1&lon=2&query={}", "q".repeat(101)), "query"),
        ("lat=1&lon=2&query=x&format=video", "format"),
        ("lat=1&lon=2&query=x&image=AbCdEf12", "image"),
        ("lat=1&lon=2&query=x&format=image&image=nope", "image"),
        ("lat=1&lon=2&query=x&colour=red", "colour"),
    ];
    for (query, names) in cases {
        let (status, body) = meme(&server, &key, query).await;
        assert_eq!(error_code(status, &body), "bad_parameter", "{query}");
        assert_eq!(status, 422);
        assert!(body["error"]["message"].as_str().unwrap().starts_with(&format!("{names}:")), "{query}: {body}");
    }
    // Query strings that are not UTF-8, or that repeat a parameter, are the client's mistake
    // too: 400, naming the parameter, before any charge.
    let malformed = [
        ("lat=1&lon=2&query=%ff", "invalid_utf8", "query:"),
        ("lat=1&lon=2&query=caf%C3", "invalid_utf8", "query:"),
        ("lat=1&lon=2&query=a&query=b", "duplicate_parameter", "query:"),
    ];
    for (query, code, prefix) in malformed {
        let (status, body) = meme(&server, &key, query).await;
        assert_eq!((status, error_code(status, &body).as_str()), (400, code), "{query}");
        assert!(body["error"]["message"].as_str().unwrap().starts_with(prefix), "{query}: {body}");
    }
    // Nothing was charged, and the one token still buys a meme, after which there are none.
    let (status, body) = meme(&server, &key, "lat=-33.8688&lon=151.2093&query=hello there").await;
    assert_eq!((status, &body["meme"]), (200, &json!(format!("{id}_-33.8688_151.2093_hello there"))));
    assert_eq!((body["format"].as_str(), body["remaining"].as_i64()), (Some("text"), Some(0)));
    let (status, body) = meme(&server, &key, "lat=1&lon=2&query=more").await;
    assert_eq!(error_code(status, &body), "tokens_exhausted");
    assert_eq!(status, 402);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_meme_is_a_captioned_png_over_a_hosted_photo() {
    // Given a hosted photo (orientation 6) and an account with a token,
    let server = Server::start().await;
    let (_, key) = account(&server, 1).await;
    let photo = std::fs::read(photos_dir().join("orientation/portrait_6.jpg")).unwrap();
    let (_, uploaded) = server.upload_raw(photo, "image/jpeg").await;
    let id = uploaded["id"].as_str().unwrap();

    // when an image meme is asked for over it,
    let (status, body) =
        meme(&server, &key, &format!("lat=1&lon=2&query=such%20caption&format=image&image={id}")).await;

    // then the answer links a PNG hosted like any image, as tall as the photo is displayed.
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["format"], "image");
    let link = body["meme"].as_str().unwrap();
    assert!(link.starts_with(&server.base) && link.ends_with(".png"), "{link}");
    let bytes = server.client.get(link).send().await.unwrap().bytes().await.unwrap();
    let img = image::load_from_memory(&bytes).unwrap();
    let (dw, dh) = (uploaded["display_width"].as_u64().unwrap(), uploaded["display_height"].as_u64().unwrap());
    assert_eq!(u64::from(img.width()) * dh, u64::from(img.height()) * dw, "aspect of the displayed photo");
}
