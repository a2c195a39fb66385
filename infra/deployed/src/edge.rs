//! The distribution's image behaviour, played on this machine: what a viewer gets for an `/i/`
//! URL. The CloudFront Function (`cdn/images.js`, run by Node through `cdn/route.mjs`) answers
//! at the edge or names the origins and the path; each origin reads `<origin path><path>` from
//! the bucket, and the next origin is asked when the key is missing, as the origin group fails
//! over on S3's 403 or 404. No function is invoked: that is the point of the behaviour.
//!
//! The bucket is read as the harness's admin, not as CloudFront's origin access control (moto
//! has no service principals); `shared/tests/template.rs` checks the bucket policy instead.

use std::process::Command;

use crate::facts::workspace_root;
use crate::stack::Stack;

/// What the edge answered for one URL.
#[derive(Debug)]
pub struct Viewed {
    pub status: u16,
    /// The key read, when the bucket answered.
    pub key: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Stack {
    /// Views `url` (a path and query) through the distribution's image behaviour.
    pub async fn view(&self, url: &str) -> Viewed {
        let out = Command::new("node")
            .arg("cdn/route.mjs")
            .arg(url)
            .current_dir(workspace_root())
            .output()
            .expect("node runs cdn/route.mjs");
        assert!(out.status.success(), "cdn/route.mjs: {}", String::from_utf8_lossy(&out.stderr));
        let route: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
        if let Some(status) = route["status"].as_u64() {
            return Viewed { status: status as u16, key: None, content_type: None, body: vec![] };
        }
        let cdn = &self.facts.cdn;
        let behaviour = cdn.behaviours.iter().find(|b| b.pattern == "/i/*").expect("an /i/* behaviour");
        let origins: Vec<String> = match route["origins"].as_array() {
            Some(ids) => ids.iter().map(|i| i.as_str().unwrap().to_owned()).collect(),
            None => vec![behaviour.target.clone()],
        };
        let uri = route["uri"].as_str().expect("a path for the origin");
        for id in &origins {
            let origin = &cdn.origins[id];
            assert_eq!(origin.kind, "s3", "{url} reaches origin {id}, which is not the bucket");
            let key = format!("{}{uri}", origin.path).trim_start_matches('/').to_owned();
            match self.s3.get_object().bucket(&self.bucket).key(&key).send().await {
                Ok(object) => {
                    let content_type = object.content_type().map(str::to_owned);
                    let body = object.body.collect().await.expect("the object's body").into_bytes().to_vec();
                    return Viewed { status: 200, key: Some(key), content_type, body };
                }
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => continue,
                Err(e) => panic!("GetObject {key}: {}", aws_sdk_s3::error::DisplayErrorContext(e)),
            }
        }
        Viewed { status: 404, key: None, content_type: None, body: vec![] }
    }
}
