//! Keep-alive through the local server, with the dry-run loader (no request leaves the
//! machine): the URL rule, one entry per URL, loading only when due, and deletion rights.

mod common;

use std::time::Duration;

use common::{Server, error_code};
use serde_json::{Value, json};

async fn post(server: &Server, path: &str, body: Value) -> (u16, Value, Option<String>) {
    let resp = server.client.post(server.url(path)).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (status, resp.json().await.unwrap_or(Value::Null), retry_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_is_loaded_when_due_and_not_before() {
    // Given a server whose loader runs dry,
    let server = Server::start().await;

    // when an Imgur URL is added (as http, with a query),
    let (status, created, _) =
        post(&server, "/v1/keepalive", json!({"url": "http://i.imgur.com/AbC12xY.JPG?x=1"})).await;

    // then it is stored in its canonical form, due at once, with a manage token shown once,
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["url"], "https://i.imgur.com/AbC12xY.jpg");
    assert_eq!(created["status"], "waiting");
    assert!(created["next_load_at"].is_string());
    let token = created["manage_token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 43);
    let id = created["id"].as_str().unwrap().to_owned();
    // and the same URL in another spelling is the same entry, without a token.
    let (status, again, _) = post(&server, "/v1/keepalive", json!({"url": "https://i.imgur.com/AbC12xY.jpg"})).await;
    assert_eq!((status, &again["id"]), (200, &created["id"]));
    assert!(again.get("manage_token").is_none());

    // When a load is asked for, it is queued and the dry-run loader records it,
    let (status, _, _) = post(&server, &format!("/v1/keepalive/{id}/load"), json!({})).await;
    assert_eq!(status, 202);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let entry = loop {
        let (_, e) = server.get_json(&format!("/v1/keepalive/{id}")).await;
        if e["loads"] == 1 {
            break e;
        }
        assert!(tokio::time::Instant::now() < deadline, "never loaded: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(entry["status"], "waiting");
    assert_eq!(entry["history"][0]["outcome"], "dry_run");
    assert!(entry["last_loaded_at"].is_string());

    // then asking again before it is due is refused, saying when to come back (about 30 days).
    let (status, body, retry_after) = post(&server, &format!("/v1/keepalive/{id}/load"), json!({})).await;
    assert_eq!(error_code(status, &body), "not_due");
    assert_eq!(status, 429);
    let secs: u64 = retry_after.unwrap().parse().unwrap();
    assert!((29 * 86_400..=31 * 86_400).contains(&secs), "{secs}");

    // The admin listing shows the entry; deleting needs its manage token or the admin.
    let (status, list) = server.admin_get_json("/v1/keepalive").await;
    assert_eq!((status, list["entries"][0]["id"].as_str()), (200, Some(id.as_str())));
    assert_eq!(server.get_json("/v1/keepalive").await.0, 401);
    let delete = |t: &str| {
        server.client.delete(server.url(&format!("/v1/keepalive/{id}"))).header("x-manage-token", t.to_owned()).send()
    };
    assert_eq!(delete("wrong-token").await.unwrap().status(), 403);
    assert_eq!(delete(&token).await.unwrap().status(), 204);
    assert_eq!(server.get_json(&format!("/v1/keepalive/{id}")).await.0, 404);
    // The URL can be added again afterwards, as a new entry.
    let (status, _, _) = post(&server, "/v1/keepalive", json!({"url": "https://i.imgur.com/AbC12xY.jpg"})).await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_imgur_urls_are_accepted() {
    let server = Server::start().await;
    let cases = [
        json!({"url": "https://imgur.com.example.net/AbC12xY"}),
        json!({"url": "https://i.imgur.com@example.net/AbC12xY.jpg"}),
        json!({"url": "https://127.0.0.1/AbC12xY"}),
        json!({"url": "https://imgur.com:8443/AbC12xY"}),
        json!({"url": "https://imgur.com/AbC12xY", "interval": 60}),
        json!({"url": 7}),
        json!({}),
    ];
    for body in cases {
        let (status, answer, _) = post(&server, "/v1/keepalive", body.clone()).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(["not_imgur", "bad_json"].contains(&error_code(status, &answer).as_str()), "{body}: {answer}");
    }
    let (status, list) = server.admin_get_json("/v1/keepalive").await;
    assert_eq!((status, list["entries"].as_array().map(Vec::len)), (200, Some(0)));
}
