//! A real headless Chromium, driven over WebDriver by Debian's `chromedriver`, for the tests of
//! the web pages.
//!
//! Each scenario gets its own driver process and browser profile, so scenarios run in parallel
//! without sharing cookies or storage. Every page the browser opens records its script errors,
//! unhandled promise rejections and content-security-policy violations (a script injected
//! through the DevTools protocol before any page script runs, which CSP does not apply to);
//! [`run`] fails a scenario that caused any of them, or that loaded anything from another
//! origin, and saves a screenshot whether the scenario passed or not.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// How long a step may wait for the page to get where the scenario expects.
const PATIENCE: Duration = Duration::from_secs(30);

/// A desktop window and a phone-sized one (the viewport of a common 6.1-inch phone).
pub const DESKTOP: (u32, u32) = (1280, 900);
pub const PHONE: (u32, u32) = (390, 844);

/// Paths of the browser and its driver: Debian's packages by default, which `scripts/test`
/// installs when they are missing.
fn tool(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.exists(),
        "{} not found: run scripts/test, which installs Debian's chromium and chromium-driver, \
         or point {env} at another build",
        path.display()
    );
    path
}

/// Where screenshots go: `target/tmp/browser-screenshots/<scenario>.png`.
pub fn screenshots_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots")
}

/// Records what went wrong in a page, for [`Page::problems`]. It runs before the page's own
/// scripts on every document the browser opens.
const RECORDER: &str = r#"
window.__problems = [];
window.addEventListener("error", (e) => {
  if (e instanceof ErrorEvent) window.__problems.push(`script error: ${e.message} at ${e.filename}:${e.lineno}`);
}, true);
window.addEventListener("unhandledrejection", (e) => {
  window.__problems.push(`unhandled rejection: ${e.reason && e.reason.stack ? e.reason.stack : e.reason}`);
});
document.addEventListener("securitypolicyviolation", (e) => {
  window.__problems.push(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline code"}`);
});
"#;

/// A DevTools-protocol command sent through chromedriver's `goog/cdp/execute` endpoint, which
/// WebDriver itself has no equivalent for.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({"cmd": self.cmd, "params": self.params}).to_string()))
    }
}

/// A chromedriver process and the browser session it runs.
struct Browser {
    client: Client,
    driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(size: (u32, u32)) -> Browser {
        let chromium = tool("IMGHOST_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = tool("IMGHOST_CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = tokio::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    // Root in a container has no user namespace sandbox to start.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    // No calls home: the tests talk to loopback addresses only.
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--no-default-browser-check",
                    format!("--window-size={},{}", size.0, size.1),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let mut capabilities = capabilities.as_object().unwrap().clone();
        if size.0 < 500 {
            // Chromium will not make a window narrower than 500 px; a phone's viewport needs
            // its device emulation (which also makes touch the pointer, as on a phone).
            capabilities["goog:chromeOptions"]["mobileEmulation"] =
                json!({"deviceMetrics": {"width": size.0, "height": size.1, "pixelRatio": 2.0, "touch": true}});
        }
        let url = format!("http://127.0.0.1:{port}");
        // The driver takes a moment to listen; a refused connection means "not yet".
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(&url).await {
                Ok(client) => break client,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no WebDriver session from chromedriver on port {port}: {e}"),
            }
        };
        client
            .issue_cmd(Cdp { cmd: "Page.addScriptToEvaluateOnNewDocument", params: json!({"source": RECORDER}) })
            .await
            .expect("the problem recorder is installed");
        Browser { client, driver, _profile: profile }
    }

    async fn stop(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill().await;
    }
}

/// The browser as a scenario sees it: a tab on the server at `base`.
#[derive(Clone)]
pub struct Page {
    pub client: Client,
    pub base: String,
}

/// Runs `scenario` in a fresh browser of `size` against the server at `base`, then checks the
/// pages it saw and saves a screenshot named `name`, pass or fail.
pub async fn run<F, Fut>(name: &str, size: (u32, u32), base: &str, scenario: F)
where
    F: FnOnce(Page) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let browser = Browser::start(size).await;
    let page = Page { client: browser.client.clone(), base: base.to_owned() };
    // On its own task, so a failed assertion still leaves the browser to photograph.
    let outcome = tokio::spawn(scenario(page.clone())).await;
    let checked = if outcome.is_ok() { Some(page.check_current_document().await) } else { None };
    let shot = page.screenshot(name).await;
    browser.stop().await;
    if let Err(e) = outcome {
        if e.is_panic() {
            eprintln!("screenshot of the failure: {}", shot.display());
            std::panic::resume_unwind(e.into_panic());
        }
        panic!("scenario {name} did not finish: {e}");
    }
    if let Some(Err(problems)) = checked {
        panic!("scenario {name}: {problems} (screenshot: {})", shot.display());
    }
}

impl Page {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Opens a path of the server, checking the page left behind first.
    pub async fn goto(&self, path: &str) {
        if let Err(problems) = self.check_current_document().await {
            panic!("{problems}");
        }
        self.client.goto(&self.url(path)).await.unwrap();
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self.client.wait().at_most(PATIENCE).for_element(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!("no element {css} on {}: {e}", self.location().await),
        }
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    /// Types `text` into the field `css` after emptying it, as a person would.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap_or_else(|e| panic!("cannot type into {css}: {e}"));
    }

    /// Chooses files in the file input `css`, as the file picker does.
    pub async fn attach(&self, css: &str, files: &[PathBuf]) {
        let paths: Vec<String> = files.iter().map(|f| f.canonicalize().unwrap().display().to_string()).collect();
        self.find(css).await.send_keys(&paths.join("\n")).await.unwrap();
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its result.
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until `script` returns something other than `null`, `false` or `""`, and returns
    /// it; fails after the patience runs out, saying what it was waiting for.
    pub async fn wait_for(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let value = self.eval(script, args.clone()).await;
            if !matches!(&value, Value::Null | Value::Bool(false)) && value != "" {
                return value;
            }
            if tokio::time::Instant::now() > deadline {
                let text = self.eval("return document.querySelector('main')?.innerText", vec![]).await;
                panic!("waited {PATIENCE:?} for {what} on {}; the page says:\n{text}", self.location().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The visible text of `css`, once it has some.
    pub async fn text(&self, css: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); return e && e.innerText.trim();";
        self.wait_for(&format!("text in {css}"), script, vec![json!(css)]).await.as_str().unwrap().to_owned()
    }

    /// The value of the form field `css`, once it has one.
    pub async fn value(&self, css: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); return e && e.value;";
        self.wait_for(&format!("a value in {css}"), script, vec![json!(css)]).await.as_str().unwrap().to_owned()
    }

    /// Waits until `css` matches an element whose text contains `needle`; returns that text.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); \
                      return e && e.innerText.includes(arguments[1]) && e.innerText;";
        let what = format!("{css} to say {needle:?}");
        self.wait_for(&what, script, vec![json!(css), json!(needle)]).await.as_str().unwrap().to_owned()
    }

    /// Waits until the image `css` has loaded and returns its natural size.
    pub async fn loaded_image(&self, css: &str) -> (u64, u64) {
        let script = "const i = document.querySelector(arguments[0]); \
                      return i && i.complete && i.naturalWidth > 0 && [i.naturalWidth, i.naturalHeight];";
        let size = self.wait_for(&format!("image {css} to load"), script, vec![json!(css)]).await;
        (size[0].as_u64().unwrap(), size[1].as_u64().unwrap())
    }

    pub async fn location(&self) -> String {
        self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default()
    }

    /// Checks the open document: no script errors or CSP violations, nothing fetched from
    /// another origin, and no sideways scrolling (which on a phone means the layout overflowed).
    pub async fn check_current_document(&self) -> Result<(), String> {
        let report = self
            .eval(
                r#"
                if (location.protocol !== "http:") return null;
                const foreign = performance.getEntries()
                  .map((e) => e.name)
                  .filter((n) => /^[a-z]+:\/\//.test(n) && !n.startsWith(location.origin + "/"));
                return {
                  problems: window.__problems || [],
                  foreign,
                  overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
                  url: location.href,
                };
                "#,
                vec![],
            )
            .await;
        if report.is_null() {
            return Ok(());
        }
        let mut faults = vec![];
        for p in report["problems"].as_array().unwrap() {
            faults.push(p.as_str().unwrap().to_owned());
        }
        for f in report["foreign"].as_array().unwrap() {
            faults.push(format!("loaded from another origin: {}", f.as_str().unwrap()));
        }
        let overflow = report["overflow"].as_i64().unwrap();
        if overflow > 0 {
            faults.push(format!("the page is {overflow} px wider than the window"));
        }
        if faults.is_empty() { Ok(()) } else { Err(format!("{}: {}", report["url"], faults.join("; "))) }
    }

    /// Saves a screenshot of the whole page, not just the window, and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        match self.full_page_png().await {
            Ok(png) => std::fs::write(&path, png).unwrap(),
            Err(e) => eprintln!("no screenshot for {name}: {e}"),
        }
        path
    }

    /// WebDriver photographs only the viewport; the DevTools protocol can take the page's
    /// whole height, which is where a result or an error below the fold shows.
    async fn full_page_png(&self) -> Result<Vec<u8>, String> {
        use base64::Engine as _;
        let metrics = self.client.issue_cmd(Cdp { cmd: "Page.getLayoutMetrics", params: json!({}) }).await;
        let size = metrics.map_err(|e| e.to_string())?["cssContentSize"].clone();
        let clip = json!({"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1});
        let params = json!({"format": "png", "captureBeyondViewport": true, "clip": clip});
        let shot = self.client.issue_cmd(Cdp { cmd: "Page.captureScreenshot", params }).await;
        let data = shot.map_err(|e| e.to_string())?["data"].as_str().unwrap_or_default().to_owned();
        base64::engine::general_purpose::STANDARD.decode(data).map_err(|e| e.to_string())
    }
}
