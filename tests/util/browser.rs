//! A real headless Chromium (Debian's `chromium` + `chromedriver`) for the dashboard tests,
//! driven over WebDriver: one session per [`Browser`], its own profile and download folder,
//! bounded waits, [`step`]s that save a screenshot under `target/browser-screenshots/` and fail
//! on console errors, and the page helpers the browser tests share (sign in, open a page at a
//! language and viewport, the colour scheme, downloads). A missing browser fails the test.

use super::{SOON, wait_until};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The viewports every page is checked at: a desktop and a phone.
pub const VIEWPORTS: [(u32, u32); 2] = [(1280, 800), (390, 844)];

/// chromedriver plus one browser session with its own profile folder. `close` ends the session
/// and asserts that nothing is left; drop (a failed test) kills whatever is left anyway.
pub struct Browser {
    driver: Child,
    client: Option<Client>,
    profile: std::path::PathBuf,
}

/// Where the session's downloads land (inside the profile folder, removed with it).
fn downloads_in(profile: &std::path::Path) -> std::path::PathBuf {
    profile.join("downloads")
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        for pid in processes_using(&self.profile) {
            let _ = Command::new("kill").args(["-9", &pid]).status();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Process ids whose command line names `profile` (Chromium and its helper processes).
fn processes_using(profile: &std::path::Path) -> Vec<String> {
    let needle = profile.display().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let pid = e.file_name().into_string().ok()?;
            pid.bytes().all(|b| b.is_ascii_digit()).then_some(pid)
        })
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .collect()
}

impl Browser {
    pub async fn start() -> Self {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: install Debian's chromium and chromium-driver (.ci/run does) — browser tests never pass silently"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap().keep();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    "--lang=en-US", format!("--user-data-dir={}", profile.display()),
                ],
                // Downloads (a Download button's file) land in the profile without asking,
                // several from one click too.
                "prefs": {
                    "intl.accept_languages": "en-US",
                    "download.default_directory": downloads_in(&profile),
                    "download.prompt_for_download": false,
                    "profile.default_content_setting_values.automatic_downloads": 1,
                },
            }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let url = format!("http://127.0.0.1:{port}");
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(caps);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let client = loop {
            match builder.connect(&url).await {
                Ok(c) => break c,
                Err(e) if std::time::Instant::now() > deadline => {
                    panic!("chromedriver did not start a Chromium session: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Self {
            driver,
            client: Some(client),
            profile,
        }
    }

    /// Ends the WebDriver session (Chromium quits), stops chromedriver, removes the profile,
    /// and fails if any Chromium process of this session is still alive after 10 s.
    pub async fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close().await;
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let profile = self.profile.clone();
        let gone = wait_until(SOON, || {
            let left = processes_using(&profile);
            async move { left.is_empty() }
        })
        .await;
        let left = processes_using(&profile);
        drop(self);
        assert!(
            gone,
            "Chromium processes left after the session ended: {left:?}"
        );
        assert!(!profile.exists(), "the profile folder was not removed");
    }

    pub fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    pub async fn screenshot(&self, name: &str) -> String {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{name}.png"));
        if let Ok(png) = self.c().screenshot().await {
            let _ = std::fs::write(&path, png);
        }
        path.display().to_string()
    }

    /// Waits up to `timeout` for a visible element matching `css`.
    pub async fn wait(
        &self,
        css: &str,
        timeout: Duration,
    ) -> Result<fantoccini::elements::Element, String> {
        self.c()
            .wait()
            .at_most(timeout)
            .every(Duration::from_millis(50))
            .for_element(Locator::Css(css))
            .await
            .map_err(|e| format!("{css} did not appear: {e}"))
    }

    /// Waits until the text of `css` satisfies `pred`.
    pub async fn wait_text(
        &self,
        css: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = std::time::Instant::now() + timeout;
        let mut last = String::new();
        loop {
            if let Ok(el) = self.c().find(Locator::Css(css)).await
                && let Ok(t) = el.text().await
            {
                if pred(&t) {
                    return Ok(t);
                }
                last = t;
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "{css}: text {last:?} did not match within {timeout:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn click(&self, css: &str) -> Result<(), String> {
        self.wait(css, SOON)
            .await?
            .click()
            .await
            .map_err(|e| format!("click {css}: {e}"))
    }

    pub async fn fill(&self, css: &str, text: &str) -> Result<(), String> {
        let el = self.wait(css, SOON).await?;
        el.clear().await.map_err(|e| format!("clear {css}: {e}"))?;
        el.send_keys(text)
            .await
            .map_err(|e| format!("type into {css}: {e}"))
    }
}

/// chromedriver's log endpoint (not in the W3C set, so fantoccini has no method for it).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

impl Browser {
    /// Console messages at level SEVERE (errors, failed requests) since the last call.
    pub async fn console_errors(&self) -> Vec<String> {
        let Ok(entries) = self.c().issue_cmd(BrowserLog).await else {
            return vec!["the browser log could not be read".into()];
        };
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// Runs one named step; on failure saves a screenshot and fails the test with both.
pub async fn step<F: Future<Output = Result<(), String>>>(b: &Browser, name: &str, f: F) {
    let result = match f.await {
        Ok(()) => {
            // The wrong login answers 401 on purpose; Chromium logs every failed request.
            let errors: Vec<String> = b
                .console_errors()
                .await
                .into_iter()
                .filter(|e| !(e.contains("/login") && e.contains("401")))
                .collect();
            if errors.is_empty() {
                Ok(())
            } else {
                Err(format!("console errors: {errors:?}"))
            }
        }
        e => e,
    };
    match result {
        // Kept for people reviewing the pages (target/browser-screenshots/ok-*.png).
        Ok(()) => drop(b.screenshot(&format!("ok-{name}")).await),
        Err(e) => {
            let shot = b.screenshot(&format!("failed-{name}")).await;
            panic!("step {name:?} failed: {e}\nscreenshot: {shot}");
        }
    }
}

/// chromedriver's Chrome DevTools passthrough (`goog/cdp/execute`): here it switches
/// `prefers-color-scheme` (`"dark"` / `"light"`), which the page follows, without restarting
/// the browser.
#[derive(Debug)]
pub struct ColorScheme(pub &'static str);

impl fantoccini::wd::WebDriverCompatibleCommand for ColorScheme {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({"cmd": "Emulation.setEmulatedMedia",
            "params": {"features": [{"name": "prefers-color-scheme", "value": self.0}]}});
        (http::Method::POST, Some(body.to_string()))
    }
}

impl Browser {
    /// Runs `script` in the page; its `return` value.
    pub async fn js(&self, script: &str) -> Result<serde_json::Value, String> {
        self.c()
            .execute(script, vec![])
            .await
            .map_err(|e| format!("{script}: {e}"))
    }

    /// Whether the element `css` exists and is rendered (not hidden by `display: none`
    /// anywhere up).
    pub async fn shown(&self, css: &str) -> Result<bool, String> {
        let v = self
            .js(&format!(
                "const e = document.querySelector({css:?}); return !!e && e.getClientRects().length > 0;"
            ))
            .await?;
        Ok(v.as_bool().unwrap_or(false))
    }

    /// The attribute `name` of the element `css` (waited for).
    pub async fn attr(&self, css: &str, name: &str) -> Result<String, String> {
        self.wait(css, SOON)
            .await?
            .attr(name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{css} has no {name}"))
    }

    /// Fails when the page is wider than the window (it would scroll sideways on a phone).
    pub async fn no_sideways_scroll(&self) -> Result<(), String> {
        let wide = self
            .js("return [document.documentElement.scrollWidth, innerWidth]")
            .await?;
        match (wide[0].as_u64(), wide[1].as_u64()) {
            (Some(page), Some(window)) if page <= window + 1 => Ok(()),
            _ => Err(format!(
                "the page scrolls sideways: [page, window] = {wide}"
            )),
        }
    }

    /// The folder the session's downloads land in.
    pub fn downloads(&self) -> std::path::PathBuf {
        downloads_in(&self.profile)
    }

    /// Empties the download folder, so the next download keeps its own name.
    pub fn clear_downloads(&self) {
        let _ = std::fs::remove_dir_all(self.downloads());
    }

    /// Waits up to `timeout` until the download `name` is complete (Chromium writes
    /// `name.crdownload` and renames it at the end); its bytes.
    pub async fn downloaded(&self, name: &str, timeout: Duration) -> Result<Vec<u8>, String> {
        let path = self.downloads().join(name);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(bytes) = std::fs::read(&path) {
                return Ok(bytes);
            }
            if std::time::Instant::now() > deadline {
                let got: Vec<String> = std::fs::read_dir(self.downloads())
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                    .collect();
                return Err(format!(
                    "no download {name} within {timeout:?}; the folder holds {got:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Signs in on the login form (`remember`: "Keep me signed in on this device") and waits for
/// the dashboard.
pub async fn sign_in(
    b: &Browser,
    user: &str,
    password: &str,
    remember: bool,
) -> Result<(), String> {
    b.wait("#login-user", SOON).await?;
    b.fill("#login-user", user).await?;
    b.fill("#login-password", password).await?;
    if remember {
        b.click("#login-remember").await?;
    }
    b.click("#login-submit").await?;
    b.wait("#tiles, main[data-view=\"overview\"]", SOON)
        .await
        .map(drop)
}

/// Language (localStorage), page size and page (`#/users`), then a reload.
pub async fn open_at(
    b: &Browser,
    lang: &str,
    (w, h): (u32, u32),
    hash: &str,
) -> Result<(), String> {
    b.c()
        .set_window_size(w, h)
        .await
        .map_err(|e| e.to_string())?;
    // The window includes the browser's frame: grow it until the page itself is h high.
    if let Some(fh) = b
        .js("return outerHeight - innerHeight")
        .await?
        .as_u64()
        .filter(|&f| f > 0 && f < 400)
    {
        b.c()
            .set_window_size(w, h + fh as u32)
            .await
            .map_err(|e| e.to_string())?;
    }
    b.js(&format!(
        "localStorage.setItem('rzmon.lang', '{lang}'); location.hash = '{hash}'; location.reload();"
    ))
    .await?;
    b.wait("main[data-view]", SOON).await?;
    Ok(())
}
