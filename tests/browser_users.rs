//! The Users page and the viewer's dashboard in a real headless Chromium, in English and German
//! at a desktop (1280×800) and a phone (390×844) viewport: an admin lists and adds users (the
//! generated password is shown once) and creates an API token on the Account page; a viewer who
//! chose "Keep me signed in on this device" keeps the token in localStorage only, sees no Users
//! page and no control that changes something. Screenshots of every step stay in
//! `target/browser-screenshots/ok-<step>-<lang>-<width>.png`; unknown paths show the 404 page.

use crate::util::browser::{Browser, VIEWPORTS, open_at, sign_in, step};
use crate::util::*;
use serde_json::json;

const LANGS: [&str; 2] = ["en", "de"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_page_and_viewer_dashboard() {
    let app = TestApp::start().await;
    let wall_pw = crate::roles::add_user(&app, "wall", Some("viewer"));
    let ops_pw = crate::roles::add_user(&app, "ops", Some("admin"));
    // Something for each page's change controls to act on: a device, a card, a channel.
    app.add_device("door");
    let admin = app.login().await;
    let (status, body) = app
        .post(
            "/addAccessID",
            Some(&admin),
            json!({"access_id": "card-1", "name": "Ada"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .post(
            "/channels",
            Some(&admin),
            json!({"name": "hook", "kind": "webhook", "settings": {"url": "http://127.0.0.1:9/x"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let b = Browser::start().await;
    let c = b.c();

    step(&b, "admin-login", async {
        c.goto(&app.url("/")).await.map_err(|e| e.to_string())?;
        sign_in(&b, "admin", ADMIN_PASSWORD, false).await
    })
    .await;
    step(&b, "admin-session-storage", async {
        let v = b.js("return [sessionStorage.getItem('rzmon.token') !== null, localStorage.getItem('rzmon.token') === null]").await?;
        if v == serde_json::json!([true, true]) { Ok(()) } else { Err(format!("token storage {v}")) }
    })
    .await;

    for lang in LANGS {
        for vp in VIEWPORTS {
            let name = format!("users-{lang}-{}", vp.0);
            step(&b, &name, async {
                open_at(&b, lang, vp, "#/users").await?;
                let title = if lang == "de" { "Benutzer" } else { "Users" };
                b.wait_text("main h1", SOON, |t| t == title).await?;
                b.wait("#user-list tr[data-user=\"wall\"]", SOON).await?;
                let role = b.wait("#user-role-wall", SOON).await?;
                let label = role.text().await.map_err(|e| e.to_string())?;
                let want = if lang == "de" { "Betrachter" } else { "Viewer" };
                if !label.contains(want) {
                    return Err(format!("role select says {label:?}"));
                }
                if !b.shown("#nav-users").await? && vp.0 > 600 {
                    return Err("an admin does not see the Users link".into());
                }
                // Nothing may stick out of a phone screen sideways.
                b.no_sideways_scroll().await?;
                Ok(())
            })
            .await;
        }
    }

    step(&b, "users-add", async {
        open_at(&b, "en", VIEWPORTS[0], "#/users").await?;
        b.fill("#user-add-name", "kiosk").await?;
        b.click("#user-add-submit").await?;
        let pw = b.wait("#users-new-password", SOON).await?;
        let pw = pw.text().await.map_err(|e| e.to_string())?;
        if pw.len() < 16 {
            return Err(format!("generated password {pw:?}"));
        }
        b.wait("#user-list tr[data-user=\"kiosk\"]", SOON)
            .await
            .map(drop)
    })
    .await;
    let kiosk = app
        .db()
        .query_row("SELECT role FROM users WHERE username = 'kiosk'", [], |r| {
            r.get::<_, String>(0)
        })
        .expect("kiosk stored");
    assert_eq!(kiosk, "viewer", "the form's default role");

    step(&b, "token-add", async {
        open_at(&b, "en", VIEWPORTS[0], "#/account").await?;
        b.fill("#token-add-name", "grafana").await?;
        b.click("#token-add-submit").await?;
        let tok = b.wait("#token-new", SOON).await?;
        let tok = tok.text().await.map_err(|e| e.to_string())?;
        if !tok.starts_with("rzm_") {
            return Err(format!("token {tok:?}"));
        }
        b.wait("#token-list tr[data-token]", SOON).await.map(drop)
    })
    .await;

    // Regression: an admin demoted by another admin kept the admin controls until a reload.
    step(&b, "demoted-while-open", async {
        b.click("#logout").await?;
        sign_in(&b, "ops", &ops_pw, false).await?;
        open_at(&b, "en", VIEWPORTS[0], "#/devices").await?;
        b.wait("#device-add-form", SOON).await?;
        b.js("window.rzmonNoReload = true; return true").await?;
        let out = app.cli(&["user", "role", "ops", "viewer"]);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        b.fill("#device-add-id", "by-ops").await?;
        b.click("#device-add-submit").await?;
        b.wait("#role-changed", SOON).await?;
        // The refused POST is the one console error here, on purpose (read, so `step` passes).
        let errors = b.console_errors().await;
        if errors.len() != 1 || !errors[0].contains("/devices") || !errors[0].contains("403") {
            return Err(format!("console errors: {errors:?}"));
        }
        for css in [
            "#device-add-form",
            "button[data-rekey]",
            "button[data-remove]",
        ] {
            if b.shown(css).await? {
                return Err(format!("a demoted user still sees {css}"));
            }
        }
        let same_page = b.js("return window.rzmonNoReload === true").await?;
        if same_page != json!(true) {
            return Err("the page was reloaded".into());
        }
        b.screenshot("ok-demoted-en-1280").await;
        // Back where the next step signs out.
        b.js("location.hash = '#/account'; return true").await?;
        b.wait("#logout", SOON).await.map(drop)
    })
    .await;

    step(&b, "viewer-login-kept", async {
        b.click("#logout").await?;
        sign_in(&b, "wall", &wall_pw, true).await?;
        let v = b.js("return [localStorage.getItem('rzmon.token') !== null, sessionStorage.getItem('rzmon.token') === null]").await?;
        if v != serde_json::json!([true, true]) {
            return Err(format!("a kept session lives in localStorage only: {v}"));
        }
        Ok(())
    })
    .await;

    for lang in LANGS {
        for vp in VIEWPORTS {
            let name = format!("viewer-{lang}-{}", vp.0);
            step(&b, &name, async {
                open_at(&b, lang, vp, "#/devices").await?;
                b.wait("#device-list [data-configure]", SOON).await?;
                for css in [
                    "#nav-users",
                    "#device-add-form",
                    "button[data-rekey]",
                    "button[data-remove]",
                    "#backup-now",
                ] {
                    if b.shown(css).await? {
                        return Err(format!("a viewer sees {css}"));
                    }
                }
                b.screenshot(&format!("ok-viewer-devices-{lang}-{}", vp.0))
                    .await;
                open_at(&b, lang, vp, "#/access").await?;
                b.wait("tr[data-access-id=\"card-1\"]", SOON).await?;
                for css in ["#access-add-form", "#enrol-form", "button[data-revoke]"] {
                    if b.shown(css).await? {
                        return Err(format!("a viewer sees {css}"));
                    }
                }
                b.screenshot(&format!("ok-viewer-access-{lang}-{}", vp.0))
                    .await;
                open_at(&b, lang, vp, "#/alerts").await?;
                // Wait for what the checks look into: the rule list (built-in rules) and channels.
                b.wait("#alert-rules-table tr[data-rule]", SOON).await?;
                b.wait("#channels-list tr", SOON).await?;
                for css in ["#alert-rule-new", "button[data-rule-edit]", "#channel-add"] {
                    if b.shown(css).await? {
                        return Err(format!("a viewer sees {css}"));
                    }
                }
                // The Users page is not reachable by URL either.
                open_at(&b, lang, vp, "#/users").await?;
                b.wait("main[data-view=\"overview\"]", SOON).await.map(drop)
            })
            .await;
        }
    }
    // Last, outside `step`: the browser logs the expected 404 as a console error.
    c.goto(&app.url("/device")).await.expect("goto /device");
    b.wait_text("h1", SOON, |t| t == "Not found")
        .await
        .expect("the 404 page");
    b.screenshot("ok-not-found").await;
    b.click("a[href=\"/\"]")
        .await
        .expect("link to the dashboard");
    b.wait("main[data-view]", SOON)
        .await
        .expect("the kept session opens the dashboard");
    b.close().await;
}
