//! Leaked keys: `POST /v1/keys/self-revoke` lets whoever holds a key revoke it, and says
//! nothing about any other string.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Response, TestServer};

async fn self_revoke(server: &TestServer, body: Value) -> Response {
    server
        .send(
            server
                .client
                .post(server.url("/v1/keys/self-revoke"))
                .json(&body),
        )
        .await
}

#[tokio::test]
async fn a_holder_revokes_its_key_active_disabled_or_in_grace() {
    let server = TestServer::spawn_app().await;
    let (active, object) = server
        .create_key(json!({"user_id": "u", "name": "active"}))
        .await;
    let revoked = self_revoke(&server, json!({"key": active})).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(
        revoked.body,
        json!({"key_id": object["id"], "revoked": true})
    );
    assert_eq!(server.verify_code(&active).await, "REVOKED");
    let audit = server
        .admin(
            Method::GET,
            &format!(
                "/v1/audit?key_id={}&action=key.revoke",
                object["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    let record = &audit.body["records"][0];
    assert_eq!(
        record["actor"],
        format!("key:{}", object["id"].as_str().unwrap())
    );
    assert_eq!(record["details"]["self_revoke"], true);

    // A disabled key, and a rotated key still in its grace period, can be revoked too.
    let (disabled, object) = server
        .create_key(json!({"user_id": "u", "name": "disabled"}))
        .await;
    let id = object["id"].as_str().unwrap();
    server
        .admin(
            Method::PATCH,
            &format!("/v1/keys/{id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(
        self_revoke(&server, json!({"key": disabled})).await.status,
        200
    );
    let (old, object) = server
        .create_key(json!({"user_id": "u", "name": "rotated"}))
        .await;
    let id = object["id"].as_str().unwrap();
    server
        .admin(
            Method::POST,
            &format!("/v1/keys/{id}/rotate"),
            Some(json!({"grace_period_seconds": 3600})),
        )
        .await;
    assert_eq!(server.verify_code(&old).await, "VALID");
    assert_eq!(self_revoke(&server, json!({"key": old})).await.status, 200);
    assert_eq!(server.verify_code(&old).await, "REVOKED");

    // Revoked already: nothing left to revoke.
    self_revoke(&server, json!({"key": active}))
        .await
        .assert_problem(404, "NOT_FOUND");
}

#[tokio::test]
async fn an_admin_key_can_be_revoked_by_its_holder() {
    let server = TestServer::spawn_app().await;
    let created = server
        .admin(
            Method::POST,
            "/v1/admin-keys",
            Some(json!({"name": "leaky", "permissions": ["keys:read"]})),
        )
        .await;
    let key = created.body["key"].as_str().unwrap().to_owned();
    let works = server.as_key(&key, Method::GET, "/v1/keys", None).await;
    assert_eq!(works.status, 200);
    let revoked = self_revoke(&server, json!({"key": key})).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(revoked.body["key_id"], created.body["id"]);
    let refused = server.as_key(&key, Method::GET, "/v1/keys", None).await;
    assert_eq!(refused.status, 401, "{}", refused.text);
}

#[tokio::test]
async fn anything_else_is_the_same_404_and_counted_by_the_guard() {
    let server = TestServer::start_with(&["--failure-limit", "3"], &[]).await;
    let (key, _) = server
        .create_key(json!({"user_id": "u", "name": "k"}))
        .await;
    // Without `key`: a malformed request naming the field.
    let missing = self_revoke(&server, json!({})).await;
    missing.assert_problem(422, "VALIDATION_FAILED");
    assert!(missing.text.contains("key"), "{}", missing.text);
    // A bad checksum, an unknown key, a string that is no key: the same 404.
    let mut bad_checksum = key.clone();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'A' { 'B' } else { 'A' });
    for guess in [bad_checksum.as_str(), "sk_live_unknown", "not a key"] {
        self_revoke(&server, json!({"key": guess}))
            .await
            .assert_problem(404, "NOT_FOUND");
    }
    // Three failures: the address is locked out, even with the right key.
    self_revoke(&server, json!({"key": key}))
        .await
        .assert_problem(429, "TOO_MANY_FAILURES");
    assert_eq!(server.verify_code(&key).await, "TOO_MANY_FAILURES");
}

/// A stand-in for GitHub: an ECDSA P-256 key whose public half is in the keys file given to
/// keyward, signing reports as GitHub's secret scanning does.
pub(crate) struct Scanner {
    pair: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
    pub(crate) keys_file: tempfile::NamedTempFile,
}

impl Scanner {
    pub(crate) fn new(identifier: &str) -> Self {
        use base64::Engine as _;
        use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        // SubjectPublicKeyInfo of a P-256 key: a fixed header, then the point.
        let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
        spki.extend_from_slice(pair.public_key().as_ref());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&spki)
        );
        let keys_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            keys_file.path(),
            json!({"public_keys": [{"key_identifier": identifier, "key": pem, "is_current": true}]})
                .to_string(),
        )
        .unwrap();
        Self {
            pair,
            rng,
            keys_file,
        }
    }

    pub(crate) fn sign(&self, body: &[u8]) -> String {
        use base64::Engine as _;
        let signature = self.pair.sign(&self.rng, body).unwrap();
        base64::engine::general_purpose::STANDARD.encode(signature.as_ref())
    }

    pub(crate) async fn report(
        &self,
        server: &TestServer,
        identifier: &str,
        body: &[u8],
        signature: &str,
    ) -> Response {
        server
            .send(
                server
                    .client
                    .post(server.url("/v1/secret-scanning/github"))
                    .header("Content-Type", "application/json")
                    .header("Github-Public-Key-Identifier", identifier)
                    .header("Github-Public-Key-Signature", signature)
                    .body(body.to_vec()),
            )
            .await
    }
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

#[tokio::test]
async fn a_signed_github_report_revokes_the_keys_it_names_and_labels_every_token() {
    let scanner = Scanner::new("github-test-1");
    let keys_file = scanner.keys_file.path().to_str().unwrap().to_owned();
    let server = TestServer::start_with(&["--github-public-keys", &keys_file], &[]).await;
    let (live, object) = server
        .create_key(json!({"user_id": "u", "name": "leaked"}))
        .await;
    let (bystander, _) = server
        .create_key(json!({"user_id": "u", "name": "bystander"}))
        .await;
    let admin = server
        .admin(
            Method::POST,
            "/v1/admin-keys",
            Some(json!({"name": "leaked admin", "permissions": ["keys:read"]})),
        )
        .await;
    let admin_key = admin.body["key"].as_str().unwrap().to_owned();
    let mut bad_checksum = bystander.clone();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'A' { 'B' } else { 'A' });
    let report = json!([
        {"token": live, "type": "keyward_api_key", "url": "https://github.com/o/r/blob/x/.env", "source": "content"},
        {"token": bad_checksum, "type": "keyward_api_key", "url": "https://github.com/o/r", "source": "content"},
        {"token": "sk_live_nothing", "type": "keyward_api_key", "url": "https://github.com/o/r", "source": "commit"},
        {"token": admin_key, "type": "keyward_admin_key", "url": "https://gist.github.com/x", "source": "gist"},
    ])
    .to_string();

    // A wrong signature, or an identifier keyward does not have: 401, nothing changes.
    let forged = scanner.sign(b"another body");
    scanner
        .report(&server, "github-test-1", report.as_bytes(), &forged)
        .await
        .assert_problem(401, "UNAUTHORIZED");
    let signature = scanner.sign(report.as_bytes());
    scanner
        .report(&server, "unknown-id", report.as_bytes(), &signature)
        .await
        .assert_problem(401, "UNAUTHORIZED");
    assert_eq!(server.verify_code(&live).await, "VALID");

    let answered = scanner
        .report(&server, "github-test-1", report.as_bytes(), &signature)
        .await;
    assert_eq!(answered.status, 200, "{}", answered.text);
    assert_eq!(
        answered.body,
        json!([
            {"token_hash": sha256_hex(&live), "token_type": "keyward_api_key", "label": "true_positive"},
            {"token_hash": sha256_hex(&bad_checksum), "token_type": "keyward_api_key", "label": "false_positive"},
            {"token_hash": sha256_hex("sk_live_nothing"), "token_type": "keyward_api_key", "label": "false_positive"},
            {"token_hash": sha256_hex(&admin_key), "token_type": "keyward_admin_key", "label": "true_positive"},
        ])
    );
    crate::support::eventually(std::time::Duration::from_secs(1), || async {
        server.verify_code(&live).await == "REVOKED"
    })
    .await;
    assert_eq!(server.verify_code(&bystander).await, "VALID");
    let refused = server
        .as_key(&admin_key, Method::GET, "/v1/keys", None)
        .await;
    assert_eq!(refused.status, 401, "{}", refused.text);
    let audit = server
        .admin(Method::GET, "/v1/audit?action=key.leak_reported", None)
        .await;
    let records = audit.body["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{}", audit.text);
    assert!(records.iter().all(|r| r["actor"] == "github"));
    let user_key = records
        .iter()
        .find(|r| r["key_id"] == object["id"])
        .unwrap();
    assert_eq!(
        user_key["details"]["url"],
        "https://github.com/o/r/blob/x/.env"
    );
    assert_eq!(user_key["details"]["source"], "content");
    assert_eq!(user_key["details"]["action"], "revoked");

    // More than 1,000 tokens: refused whole.
    let many = serde_json::Value::Array(vec![json!({"token": "x", "type": "t"}); 1001]).to_string();
    scanner
        .report(
            &server,
            "github-test-1",
            many.as_bytes(),
            &scanner.sign(many.as_bytes()),
        )
        .await
        .assert_problem(422, "VALIDATION_FAILED");

    // A second report of the same (now revoked) key is still a true positive, audited.
    let again =
        json!([{"token": live, "type": "keyward_api_key", "url": "u", "source": "s"}]).to_string();
    let answered = scanner
        .report(
            &server,
            "github-test-1",
            again.as_bytes(),
            &scanner.sign(again.as_bytes()),
        )
        .await;
    assert_eq!(
        answered.body[0]["label"], "true_positive",
        "{}",
        answered.text
    );
}

#[tokio::test]
async fn the_leak_action_can_disable_or_only_notify_and_the_endpoint_is_off_by_default() {
    for (action, code) in [("disable", "DISABLED"), ("notify", "VALID")] {
        let scanner = Scanner::new("k");
        let keys_file = scanner.keys_file.path().to_str().unwrap().to_owned();
        let server = TestServer::start_with(
            &["--github-public-keys", &keys_file, "--leak-action", action],
            &[],
        )
        .await;
        let (key, _) = server
            .create_key(json!({"user_id": "u", "name": "k"}))
            .await;
        let report = json!([{"token": key, "type": "t", "url": "u", "source": "s"}]).to_string();
        let answered = scanner
            .report(
                &server,
                "k",
                report.as_bytes(),
                &scanner.sign(report.as_bytes()),
            )
            .await;
        assert_eq!(
            answered.body[0]["label"], "true_positive",
            "{}",
            answered.text
        );
        crate::support::eventually(std::time::Duration::from_secs(1), || async {
            server.verify_code(&key).await == code
        })
        .await;
    }
    let server = TestServer::spawn_app().await;
    let off = server
        .send(
            server
                .client
                .post(server.url("/v1/secret-scanning/github"))
                .header("Content-Type", "application/json")
                .header("Github-Public-Key-Identifier", "k")
                .header("Github-Public-Key-Signature", "c2lnbmF0dXJl")
                .body("[]"),
        )
        .await;
    off.assert_problem(404, "NOT_FOUND");
    // Without the signature headers, a report is refused before anything else.
    let unsigned = server
        .send(
            server
                .client
                .post(server.url("/v1/secret-scanning/github"))
                .header("Content-Type", "application/json")
                .body("[]"),
        )
        .await;
    unsigned.assert_problem(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn githubs_public_keys_are_read_again_on_sighup() {
    let old = Scanner::new("old-key");
    let new = Scanner::new("new-key");
    let keys_file = old.keys_file.path().to_str().unwrap().to_owned();
    let server = TestServer::start_with(&["--github-public-keys", &keys_file], &[]).await;
    let (key, _) = server
        .create_key(json!({"user_id": "u", "name": "k"}))
        .await;
    let report = json!([{"token": key, "type": "t", "url": "u", "source": "s"}]).to_string();
    let signed_by_new = new.sign(report.as_bytes());
    new.report(&server, "new-key", report.as_bytes(), &signed_by_new)
        .await
        .assert_problem(401, "UNAUTHORIZED");
    // A file that is not GitHub's document: the keys in use stay.
    std::fs::write(&keys_file, "not json").unwrap();
    server.signal("HUP");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let still = old
        .report(&server, "old-key", b"[]", &old.sign(b"[]"))
        .await;
    assert_eq!(still.status, 200, "{}", still.text);
    // GitHub's new key saved over the file, then SIGHUP: reports signed with it verify.
    std::fs::copy(new.keys_file.path(), &keys_file).unwrap();
    server.signal("HUP");
    crate::support::eventually(std::time::Duration::from_secs(2), || async {
        new.report(&server, "new-key", report.as_bytes(), &signed_by_new)
            .await
            .status
            == 200
    })
    .await;
    assert_eq!(server.verify_code(&key).await, "REVOKED");
}

#[tokio::test]
async fn a_keys_file_that_is_not_githubs_stops_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    std::fs::write(
        &path,
        r#"{"public_keys": [{"key_identifier": "x", "key": "not a PEM key", "is_current": true}]}"#,
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["serve", "--listen", "127.0.0.1:0", "--github-public-keys"])
        .arg(&path)
        .env(
            "KEYWARD_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("k.db").display()),
        )
        .env("KEYWARD_ADMIN_TOKEN", crate::support::ADMIN_TOKEN)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--github-public-keys") && stderr.contains("`x`"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reported_key_is_refused_by_every_node_within_a_second() {
    let scanner = Scanner::new("gh");
    let keys_file = scanner.keys_file.path().to_str().unwrap().to_owned();
    let database = crate::support::postgres_database().await;
    let args = [
        "--database-url",
        database.as_str(),
        "--github-public-keys",
        &keys_file,
    ];
    let first = TestServer::start_with(&args, &[]).await;
    let second = TestServer::start_with(&args, &[]).await;
    let (key, _) = first.create_key(json!({"user_id": "u", "name": "k"})).await;
    // Both nodes know the key (each has it cached).
    assert_eq!(first.verify_code(&key).await, "VALID");
    assert_eq!(second.verify_code(&key).await, "VALID");
    let report = json!([{"token": key, "type": "t", "url": "u", "source": "s"}]).to_string();
    let answered = scanner
        .report(
            &first,
            "gh",
            report.as_bytes(),
            &scanner.sign(report.as_bytes()),
        )
        .await;
    assert_eq!(
        answered.body[0]["label"], "true_positive",
        "{}",
        answered.text
    );
    assert_eq!(first.verify_code(&key).await, "REVOKED");
    crate::support::eventually(std::time::Duration::from_secs(1), || async {
        second.verify_code(&key).await == "REVOKED"
    })
    .await;
}
