//! The dashboard and the portal over HTTP, without a browser: sessions, CSRF, portal links,
//! headers, permissions, and what a portal user can reach. (The browser tests in
//! `tests/browser/` drive the same pages in Chromium.)

use std::time::Duration;

use reqwest::Method;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::support::{ADMIN_TOKEN, TestServer};

/// A browser-like client that keeps nothing and follows no redirect: each test passes the
/// cookies it means to.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The `name=value` of a `Set-Cookie` named `name`, and the whole header.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<(String, String)> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| (v.split(';').next().unwrap().to_owned(), v.to_owned()))
}

/// The value of `<input … name="csrf" value="…">` on a page.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

/// Signs in with `credential`; the session cookie.
async fn sign_in(server: &TestServer, credential: &str) -> String {
    let http = client();
    let form = http.get(server.url("/ui/sign-in")).send().await.unwrap();
    let (pre, _) = set_cookie(form.headers(), "kw_sign_in").expect("a sign-in cookie");
    let csrf = csrf_of(&form.text().await.unwrap());
    let signed = http
        .post(server.url("/ui/sign-in"))
        .header("cookie", pre)
        .form(&[("csrf", csrf.as_str()), ("credential", credential)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303, "{}", signed.text().await.unwrap());
    assert_eq!(signed.headers()[LOCATION], "/ui/");
    let (cookie, whole) = set_cookie(signed.headers(), "kw_session").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(whole.contains(attribute), "{whole}");
    }
    assert!(!whole.contains("Secure"), "plain HTTP: {whole}");
    cookie
}

async fn get(server: &TestServer, path: &str, cookie: &str) -> (u16, HeaderMap, String) {
    let response = client()
        .get(server.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

async fn post(
    server: &TestServer,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> (u16, HeaderMap, String) {
    let response = client()
        .post(server.url(path))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn sign_in_forms_need_their_token_and_pages_carry_the_security_headers() {
    let server = TestServer::spawn_app().await;
    // Pages send a signed-out browser to sign in.
    let (status, headers, _) = get(&server, "/ui/keys", "").await;
    assert_eq!(
        (status, headers[LOCATION].to_str().unwrap()),
        (303, "/ui/sign-in")
    );
    // The sign-in page and every other one: nothing from elsewhere, never framed.
    let (status, headers, page) = get(&server, "/ui/sign-in", "").await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no outside asset: {page}"
    );
    // A sign-in without the form's token, or with a wrong credential, opens nothing.
    let (pre, _) = set_cookie(&headers, "kw_sign_in").unwrap();
    let (status, headers, _) =
        post(&server, "/ui/sign-in", &pre, &[("credential", ADMIN_TOKEN)]).await;
    assert_eq!(status, 403);
    assert!(set_cookie(&headers, "kw_session").is_none());
    let csrf = csrf_of(&page);
    let (status, headers, page) = post(
        &server,
        "/ui/sign-in",
        &pre,
        &[("csrf", &csrf), ("credential", "guess")],
    )
    .await;
    assert_eq!(status, 401, "{page}");
    assert!(set_cookie(&headers, "kw_session").is_none());
    // The right one does; the session opens every page, and signing out ends it.
    let session = sign_in(&server, ADMIN_TOKEN).await;
    for path in [
        "/ui/",
        "/ui/?view=24h",
        "/ui/?view=30d",
        "/ui/keys",
        "/ui/users",
        "/ui/plans",
        "/ui/audit",
        "/ui/webhooks",
    ] {
        let (status, _, page) = get(&server, path, &session).await;
        assert_eq!(status, 200, "{path}: {page}");
    }
    let (_, _, page) = get(&server, "/ui/", &session).await;
    let csrf = csrf_of(&page);
    let (status, _, _) = post(&server, "/ui/sign-out", &session, &[]).await;
    assert_eq!(status, 403, "signing out needs the token too");
    let (status, _, _) = post(&server, "/ui/sign-out", &session, &[("csrf", &csrf)]).await;
    assert_eq!(status, 303);
    let (status, headers, _) = get(&server, "/ui/keys", &session).await;
    assert_eq!(
        (status, headers[LOCATION].to_str().unwrap()),
        (303, "/ui/sign-in")
    );
}

#[tokio::test]
async fn a_form_without_the_session_token_changes_nothing() {
    let server = TestServer::spawn_app().await;
    let (key, created) = server
        .create_key(json!({"user_id": "acme", "name": "k"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let session = sign_in(&server, ADMIN_TOKEN).await;
    for form in [vec![], vec![("csrf", "forged")]] {
        let (status, _, _) = post(&server, &format!("/ui/keys/{id}/revoke"), &session, &form).await;
        assert_eq!(status, 403);
    }
    assert_eq!(server.verify_code(&key).await, "VALID");
    // With it, the key is revoked at once.
    let (_, _, page) = get(&server, &format!("/ui/keys/{id}/revoke"), &session).await;
    let (status, headers, _) = post(
        &server,
        &format!("/ui/keys/{id}/revoke"),
        &session,
        &[("csrf", &csrf_of(&page))],
    )
    .await;
    assert_eq!(status, 303);
    assert!(
        headers[LOCATION]
            .to_str()
            .unwrap()
            .starts_with(&format!("/ui/keys/{id}"))
    );
    assert_eq!(server.verify_code(&key).await, "REVOKED");
    let audit = server
        .admin(Method::GET, &format!("/v1/audit?key_id={id}"), None)
        .await;
    let revoke = audit.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "key.revoke")
        .cloned()
        .expect("audited");
    assert_eq!(revoke["actor"], "admin");
}

#[tokio::test]
async fn an_admin_key_session_has_the_key_s_permissions_and_ends_with_it() {
    let server = TestServer::spawn_app().await;
    let made = server
        .admin(
            Method::POST,
            "/v1/admin-keys",
            Some(json!({"name": "support", "permissions": ["keys:read"]})),
        )
        .await;
    let admin_key = made.body["key"].as_str().unwrap().to_owned();
    let admin_key_id = made.body["id"].as_str().unwrap().to_owned();
    let (_, created) = server
        .create_key(json!({"user_id": "acme", "name": "k"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let session = sign_in(&server, &admin_key).await;
    let (status, _, page) = get(&server, "/ui/keys", &session).await;
    assert_eq!(status, 200);
    assert!(
        !page.contains("href=\"/ui/audit\""),
        "no section it cannot open"
    );
    for path in [
        "/ui/audit",
        "/ui/users",
        "/ui/webhooks",
        &format!("/ui/keys/{id}/revoke"),
    ] {
        let (status, _, _) = get(&server, path, &session).await;
        assert_eq!(status, 403, "{path}");
    }
    let (_, _, page) = get(&server, &format!("/ui/keys/{id}"), &session).await;
    assert!(!page.contains("Revoke…"), "no action it may not take");
    let (status, _, _) = post(
        &server,
        &format!("/ui/keys/{id}/revoke"),
        &session,
        &[("csrf", &csrf_of(&page))],
    )
    .await;
    assert_eq!(status, 403);
    // Revoking the admin key ends its session at once.
    server
        .admin(
            Method::DELETE,
            &format!("/v1/admin-keys/{admin_key_id}"),
            None,
        )
        .await;
    let (status, headers, _) = get(&server, "/ui/keys", &session).await;
    assert_eq!(
        (status, headers[LOCATION].to_str().unwrap()),
        (303, "/ui/sign-in")
    );
}

/// Makes a portal link for `user`; its URL's path and query.
async fn portal_link(server: &TestServer, user: &str) -> String {
    let made = server
        .admin(
            Method::POST,
            &format!("/v1/users/{user}/portal-sessions"),
            None,
        )
        .await;
    let url = made.body["url"].as_str().expect("a url").to_owned();
    assert!(
        url.starts_with(&server.url("/portal/enter?token=")),
        "{url}"
    );
    assert!(made.body["expires_at"].is_string());
    url.strip_prefix(&server.url("")).unwrap().to_owned()
}

async fn enter(server: &TestServer, link: &str) -> (u16, Option<String>) {
    let (status, headers, _) = get(server, link, "").await;
    (
        status,
        set_cookie(&headers, "kw_portal").map(|(cookie, whole)| {
            assert!(
                whole.contains("HttpOnly")
                    && whole.contains("SameSite=Strict")
                    && whole.contains("Path=/portal"),
                "{whole}"
            );
            assert_eq!(headers[LOCATION], "/portal/");
            cookie
        }),
    )
}

#[tokio::test]
async fn a_portal_link_works_once_and_its_user_sees_only_its_own_keys() {
    let server = TestServer::spawn_app().await;
    server
        .create_key(json!({"user_id": "acme", "name": "acme-prod"}))
        .await;
    let (_, other) = server
        .create_key(json!({"user_id": "globex", "name": "globex-secret"}))
        .await;
    let refused = server
        .admin_call(Method::POST, "/v1/users/nobody/portal-sessions", None)
        .await;
    assert_eq!(refused.status, 404, "{}", refused.text);
    let link = portal_link(&server, "acme").await;
    let (status, cookie) = enter(&server, &link).await;
    assert_eq!(status, 303);
    let cookie = cookie.expect("a portal session");
    // A second use of the link opens nothing.
    assert_eq!(enter(&server, &link).await, (401, None));
    let (status, _, page) = get(&server, "/portal/", &cookie).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("acme-prod") && !page.contains("globex"),
        "{page}"
    );
    // Another user's key is out of reach.
    let other_id = other["id"].as_str().unwrap();
    let (status, _, _) = get(&server, &format!("/portal/keys/{other_id}/revoke"), &cookie).await;
    assert_eq!(status, 404);
    let csrf = csrf_of(&page);
    let (status, _, _) = post(
        &server,
        &format!("/portal/keys/{other_id}/revoke"),
        &cookie,
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 404);
    // A key made in the portal is the user's, shown once, audited as its portal.
    let (status, _, _) = post(&server, "/portal/keys", &cookie, &[("name", "no token")]).await;
    assert_eq!(status, 403);
    let (status, _, page) = post(
        &server,
        "/portal/keys",
        &cookie,
        &[("csrf", &csrf), ("name", "made in portal")],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let at = page.find("id=\"new-key\"").expect("the new key shown");
    let plaintext = page[at..]
        .split("value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(server.verify_code(plaintext).await, "VALID");
    let (_, _, again) = get(&server, "/portal/", &cookie).await;
    assert!(!again.contains(plaintext), "shown once only");
    let audit = server
        .admin(
            Method::GET,
            "/v1/audit?action=key.create&user_id=acme",
            None,
        )
        .await;
    let actors: Vec<&Value> = audit.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["actor"])
        .collect();
    assert!(actors.contains(&&json!("portal:acme")), "{actors:?}");
    // Ending the user's portal sessions signs the browser out.
    let ended = server
        .admin(Method::DELETE, "/v1/users/acme/portal-sessions", None)
        .await;
    assert!(ended.body["ended"].as_u64().unwrap() >= 1, "{}", ended.body);
    let (status, headers, _) = get(&server, "/portal/", &cookie).await;
    assert_eq!(
        (status, headers[LOCATION].to_str().unwrap()),
        (303, "/portal/signed-out")
    );
    let audit = server
        .admin(Method::GET, "/v1/audit?user_id=acme", None)
        .await;
    let actions: Vec<&Value> = audit.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["action"])
        .collect();
    for action in ["portal_session.create", "portal_session.revoke"] {
        assert!(actions.contains(&&json!(action)), "{actions:?}");
    }
}

#[tokio::test]
async fn an_expired_or_forged_portal_link_is_refused_and_counted() {
    let server = TestServer::spawn_app_with(|config| {
        config.ui.portal_link_ttl = Duration::from_secs(1);
        config.failure_limit = 3;
    })
    .await;
    server
        .create_key(json!({"user_id": "acme", "name": "k"}))
        .await;
    let link = portal_link(&server, "acme").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(enter(&server, &link).await, (401, None));
    assert_eq!(
        enter(&server, "/portal/enter?token=forged").await,
        (401, None)
    );
    assert_eq!(enter(&server, "/portal/enter?token=").await, (401, None));
    // The guard counted the three: the address is blocked.
    let (status, _, _) = get(&server, "/portal/enter?token=another", "").await;
    assert_eq!(status, 429);
}

#[tokio::test]
async fn the_overview_shows_what_the_usage_summary_answers() {
    let server = TestServer::spawn_app().await;
    let (key, _) = server
        .create_key(json!({"user_id": "acme", "name": "k"}))
        .await;
    for _ in 0..5 {
        server.authorize(&key).await;
    }
    server.authorize("kw_live_notakey").await;
    let session = sign_in(&server, ADMIN_TOKEN).await;
    // Usage is written every 200 ms.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let summary = server
        .admin(Method::GET, "/v1/usage/summary?days=7", None)
        .await;
    let (_, _, page) = get(&server, "/ui/", &session).await;
    let shown = |id: &str| {
        let at = page
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("{id} on the page"));
        page[at..]
            .split('>')
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .replace(',', "")
    };
    assert_eq!(
        shown("total-requests"),
        summary.body["requests"].to_string()
    );
    assert_eq!(
        shown("total-rejected"),
        summary.body["rejected"].to_string()
    );
    assert!(summary.body["requests"].as_u64().unwrap() >= 5);
    assert_eq!(summary.body["timeline"].as_array().unwrap().len(), 7);
    assert!(page.contains("<svg"), "a chart");
}

#[tokio::test]
async fn links_need_a_navigation_and_both_permissions_and_planted_cookies_open_nothing() {
    let server = TestServer::spawn_app().await;
    server
        .create_key(json!({"user_id": "acme", "name": "k"}))
        .await;
    // An admin key that may change users but not make keys cannot make portal links.
    let made = server
        .admin(
            Method::POST,
            "/v1/admin-keys",
            Some(json!({"name": "u", "permissions": ["users:write"]})),
        )
        .await;
    let users_only = made.body["key"].as_str().unwrap().to_owned();
    let refused = server
        .as_key(
            &users_only,
            Method::POST,
            "/v1/users/acme/portal-sessions",
            None,
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    // A link loaded by another page (an image, a script) is neither used up nor counted.
    let link = portal_link(&server, "acme").await;
    let loaded = client()
        .get(server.url(&link))
        .header("sec-fetch-mode", "no-cors")
        .send()
        .await
        .unwrap();
    assert_eq!(loaded.status(), 400);
    let followed = client()
        .get(server.url(&link))
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(followed.status(), 303, "still usable");
    let (cookie, _) = set_cookie(followed.headers(), "kw_portal").unwrap();
    let (status, _, _) = get(&server, "/portal/", &cookie).await;
    assert_eq!(status, 200);
    // A second cookie of the same name (planted by a sibling domain) opens nothing.
    let planted = format!("{cookie}; kw_portal=planted");
    let (status, headers, _) = get(&server, "/portal/", &planted).await;
    assert_eq!(
        (status, headers[LOCATION].to_str().unwrap()),
        (303, "/portal/signed-out")
    );
    // A dashboard cookie is no portal session, nor the other way round.
    let session = sign_in(&server, ADMIN_TOKEN).await;
    let swapped = session.replacen("kw_session=", "kw_portal=", 1);
    let (status, _, _) = get(&server, "/portal/", &swapped).await;
    assert_eq!(status, 303);
    let swapped = cookie.replacen("kw_portal=", "kw_session=", 1);
    let (status, _, _) = get(&server, "/ui/keys", &swapped).await;
    assert_eq!(status, 303);
}

#[tokio::test]
async fn a_new_admin_token_ends_the_sessions_of_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("shared.db").display());
    let first = {
        let database = database.clone();
        TestServer::spawn_app_with(move |config| config.database_url = database).await
    };
    let session = sign_in(&first, ADMIN_TOKEN).await;
    let (status, _, _) = get(&first, "/ui/keys", &session).await;
    assert_eq!(status, 200);
    drop(first);
    let second = TestServer::spawn_app_with(move |config| {
        config.database_url = database;
        config.admin_token = Some(zeroize::Zeroizing::new(
            "a-new-admin-token-0123456789abcdefgh".to_owned(),
        ));
    })
    .await;
    let (status, headers, _) = get(&second, "/ui/keys", &session).await;
    assert_eq!(
        (status, headers[LOCATION].to_str().unwrap()),
        (303, "/ui/sign-in")
    );
}

#[tokio::test]
async fn plans_are_shown_to_every_session_and_edited_with_plans_write() {
    let server = TestServer::spawn_app().await;
    let made = server
        .admin(
            Method::POST,
            "/v1/admin-keys",
            Some(json!({"name": "p", "permissions": ["plans:write"]})),
        )
        .await;
    let session = sign_in(&server, made.body["key"].as_str().unwrap()).await;
    let (status, _, page) = get(&server, "/ui/plans", &session).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Save free"), "{page}");
    let spec = r#"{"limits": [{"window_seconds": 60, "max": 7}]}"#;
    let (status, _, _) = post(
        &server,
        "/ui/plans/free",
        &session,
        &[("csrf", &csrf_of(&page)), ("spec", spec)],
    )
    .await;
    assert_eq!(status, 303);
    let plans = server.admin(Method::GET, "/v1/plans", None).await;
    let free = plans.body["plans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "free")
        .unwrap()
        .clone();
    assert_eq!(free["limits"][0]["max"], 7, "{free}");
    // A broken plan is refused with the API's reason, and nothing changes.
    let (status, _, page) = post(
        &server,
        "/ui/plans/free",
        &session,
        &[
            ("csrf", &csrf_of(&page)),
            ("spec", r#"{"limits": [{"window_seconds": 0, "max": 1}]}"#),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(page.contains("Not saved"), "{page}");
}

#[tokio::test]
async fn the_key_listing_s_search_and_filters_are_checked() {
    let server = TestServer::spawn_app().await;
    server
        .create_key(json!({"user_id": "acme", "name": "Checkout"}))
        .await;
    server
        .create_key(json!({"user_id": "globex", "name": "batch"}))
        .await;
    for query in [
        "q=",
        &format!("q={}", "a".repeat(201)),
        "status=gone",
        "plan=no%20such",
    ] {
        let refused = server
            .admin_call(Method::GET, &format!("/v1/keys?{query}"), None)
            .await;
        assert_eq!(refused.status, 422, "{query}: {}", refused.text);
    }
    let found = server
        .admin(
            Method::GET,
            "/v1/keys?q=checkout&status=active&plan=free",
            None,
        )
        .await;
    let names: Vec<&Value> = found.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["name"])
        .collect();
    assert_eq!(names, [&json!("Checkout")]);
    // A user's own key searches its own keys only.
    let (own, _) = server
        .create_key(json!({"user_id": "acme", "name": "mine"}))
        .await;
    let mine = server
        .as_key(&own, Method::GET, "/v1/keys?q=batch", None)
        .await;
    assert_eq!(mine.status, 200);
    assert!(
        mine.body["keys"].as_array().unwrap().is_empty(),
        "{}",
        mine.body
    );
}

#[tokio::test]
async fn portal_session_endpoints_refuse_users_keys_and_hostile_ids() {
    let server = TestServer::spawn_app().await;
    let (own, _) = server
        .create_key(json!({"user_id": "acme", "name": "k"}))
        .await;
    // A user's own key cannot make itself a portal (nor end the portal of another).
    for method in [Method::POST, Method::DELETE] {
        let refused = server
            .as_key(&own, method.clone(), "/v1/users/acme/portal-sessions", None)
            .await;
        assert!(
            matches!(refused.status, 401 | 403),
            "{method}: {}",
            refused.text
        );
    }
    let long = "a".repeat(300);
    for user in ["nobody", long.as_str(), "%2e%2e", "acme%00"] {
        for method in [Method::POST, Method::DELETE] {
            let refused = server
                .admin_call(
                    method.clone(),
                    &format!("/v1/users/{user}/portal-sessions"),
                    None,
                )
                .await;
            assert_eq!(refused.status, 404, "{method} {user}: {}", refused.text);
        }
    }
    // Links of a deleted user are refused too.
    server.admin(Method::DELETE, "/v1/users/acme", None).await;
    let refused = server
        .admin_call(Method::POST, "/v1/users/acme/portal-sessions", None)
        .await;
    assert_eq!(refused.status, 404, "{}", refused.text);
}
