//! HTTPS: TLS in the binary with certificates made here (a test CA and a leaf for
//! 127.0.0.1 and localhost), driven by real clients — curl and Python's httpx, over HTTP/1.1
//! and HTTP/2 — and certificate reload on SIGHUP; and credentials refused over plain HTTP
//! from clients beyond the exempt networks (all traffic stays on loopback: remote clients
//! are named by a trusted proxy's X-Forwarded-For).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{ADMIN_TOKEN, TestServer};

/// A test CA and files for a leaf it signed.
struct Certificates {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Certificates {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "keyward test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        let certificates = Self {
            dir: tempfile::tempdir().unwrap(),
            ca,
            ca_key,
        };
        std::fs::write(certificates.ca_file(), certificates.ca.pem()).unwrap();
        certificates.issue();
        certificates
    }

    /// Writes a new leaf (and its key) over the served files; returns its DER.
    fn issue(&self) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        std::fs::write(self.cert_file(), leaf.pem()).unwrap();
        std::fs::write(self.key_file(), key.serialize_pem()).unwrap();
        leaf.der().to_vec()
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn cert_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    async fn serve(&self, extra: &[&str]) -> TestServer {
        let cert = self.cert_file().display().to_string();
        let key = self.key_file().display().to_string();
        let mut args = vec!["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];
        args.extend_from_slice(extra);
        TestServer::start_with(&args, &[]).await
    }

    /// A reqwest client that trusts the test CA.
    fn client(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.ca.pem().as_bytes()).unwrap();
        reqwest::Client::builder()
            .add_root_certificate(ca)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// A raw TLS client that trusts the test CA.
    fn connector(&self) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// `curl --cacert` over the HTTP version named: (HTTP version, status, headers).
fn curl(ca: &Path, version_flag: &str, url: &str) -> (String, u16, String) {
    let output = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(ca)
        .args([
            version_flag,
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .arg(url)
        .output()
        .expect("curl runs (scripts/test.sh installs it)");
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let last = text.lines().last().unwrap_or("").to_owned();
    let (version, status) = last.split_once(' ').unwrap();
    (
        version.to_owned(),
        status.parse().unwrap(),
        text.to_ascii_lowercase(),
    )
}

/// Python's httpx with the test CA: one request, as JSON `{version, status, hsts, body}`.
fn python_get(ca: &Path, http2: bool, url: &str, key: &str) -> Value {
    let python = std::env::var("KEYWARD_TEST_PYTHON").expect(
        "KEYWARD_TEST_PYTHON must name a Python with httpx[http2] (scripts/test.sh installs it)",
    );
    let script = r#"
import json, sys, httpx
ca, http2, url, key = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4]
with httpx.Client(verify=ca, http2=http2) as client:
    response = client.get(url, headers={"X-API-Key": key})
print(json.dumps({"version": response.http_version, "status": response.status_code,
                  "hsts": response.headers.get("strict-transport-security"),
                  "body": response.text}))
"#;
    let output = Command::new(python)
        .args(["-c", script])
        .arg(ca)
        .args([if http2 { "1" } else { "0" }, url, key])
        .output()
        .expect("run Python");
    assert!(
        output.status.success(),
        "httpx failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn https_serves_curl_and_httpx_over_http1_and_h2_with_hsts() {
    let certificates = Certificates::new();
    let server = certificates.serve(&[]).await;
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let url = |path: &str| server.url(path).replace("127.0.0.1", "localhost");

    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let (got, status, headers) = curl(&certificates.ca_file(), flag, &url("/healthz"));
        assert_eq!((got.as_str(), status), (version, 200));
        assert!(
            headers.contains("strict-transport-security: max-age=31536000"),
            "{headers}"
        );
    }

    // A key made over HTTPS, checked by httpx over both versions.
    let client = certificates.client();
    let created: Value = client
        .post(server.url("/v1/keys"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"user_id": "u", "name": "k"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().expect("a new key");
    for (http2, version) in [(false, "HTTP/1.1"), (true, "HTTP/2")] {
        let answer = python_get(&certificates.ca_file(), http2, &url("/v1/authorize"), key);
        assert_eq!(answer["version"], version, "{answer}");
        assert_eq!(answer["status"], 200, "{answer}");
        assert_eq!(answer["hsts"], "max-age=31536000", "{answer}");
    }

    // Plain HTTP never carries HSTS.
    let plain = TestServer::spawn_app().await;
    let response = plain.send(plain.client.get(plain.url("/healthz"))).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("strict-transport-security"), None);
}

#[tokio::test]
async fn sighup_swaps_the_certificate_for_new_connections_while_an_old_request_completes() {
    let certificates = Certificates::new();
    let server = certificates.serve(&[]).await;
    let address = server.base.trim_start_matches("https://").to_owned();
    let connector = certificates.connector();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
        connector.connect(name.clone(), tcp).await.unwrap()
    };
    let served_certificate = |stream: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| {
        stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    };

    // A slow request on an old connection: headers and half its body now.
    let mut old = connect().await;
    let first = served_certificate(&old);
    let body = br#"{"key": "sk_live_not_a_key"}"#;
    let head = format!(
        "POST /v1/verify HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    old.write_all(head.as_bytes()).await.unwrap();
    old.write_all(&body[..10]).await.unwrap();
    old.flush().await.unwrap();

    let renewed = certificates.issue();
    assert_ne!(renewed, first);
    server.signal("HUP");
    // Within a second, new connections get the new certificate.
    let mut seen = Vec::new();
    for _ in 0..20 {
        seen = served_certificate(&connect().await);
        if seen == renewed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, renewed, "a new connection sees the new certificate");

    // The old connection finishes its request.
    old.write_all(&body[10..]).await.unwrap();
    old.flush().await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), old.read(&mut answer))
        .await
        .expect("the old request is answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("INVALID"), "{answer}");

    // A broken pair is refused, the current one kept, and serve goes on.
    std::fs::write(certificates.key_file(), "not a key").unwrap();
    server.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(served_certificate(&connect().await), renewed);
}

#[tokio::test]
async fn unusable_certificates_stop_startup_naming_the_file() {
    let certificates = Certificates::new();
    let other = tempfile::tempdir().unwrap();
    let wrong_key = other.path().join("wrong.pem");
    std::fs::write(&wrong_key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let missing = other.path().join("missing.pem");
    let serve = |args: &[&Path]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
        command
            .env("KEYWARD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env_remove("KEYWARD_CONFIG")
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
            .arg(format!("sqlite://{}", other.path().join("k.db").display()));
        for (flag, path) in ["--tls-cert", "--tls-key"].iter().zip(args) {
            command.arg(flag).arg(path);
        }
        command.output().unwrap()
    };
    let only_cert = serve(&[&certificates.cert_file()]);
    assert_eq!(only_cert.status.code(), Some(2));
    let mismatched = serve(&[&certificates.cert_file(), &wrong_key]);
    assert_eq!(mismatched.status.code(), Some(1));
    let said = String::from_utf8_lossy(&mismatched.stderr);
    assert!(
        said.contains("wrong.pem") && said.contains("cert.pem"),
        "{said}"
    );
    let unreadable = serve(&[&missing, &certificates.key_file()]);
    assert_eq!(unreadable.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unreadable.stderr).contains("missing.pem"));
}

#[tokio::test]
async fn credentials_over_plain_http_from_beyond_loopback_are_refused_first() {
    let server = TestServer::start_with(
        &["--trusted-proxy", "127.0.0.1/32", "--failure-limit", "3"],
        &[],
    )
    .await;
    let (key, created) = server
        .create_key(json!({"user_id": "u", "name": "k"}))
        .await;
    let remote = |proto: Option<&str>, key: &str| {
        let mut request = server
            .client
            .get(server.url("/v1/authorize"))
            .header("X-API-Key", key.to_owned())
            .header("X-Forwarded-For", "198.51.100.7");
        if let Some(proto) = proto {
            request = request.header("X-Forwarded-Proto", proto.to_owned());
        }
        server.send(request)
    };
    for proto in [None, Some("http"), Some("https, http")] {
        let refused = remote(proto, &key).await;
        refused.assert_problem(403, "HTTPS_REQUIRED");
        assert!(refused.body["detail"].as_str().unwrap().contains("exposed"));
    }
    // Through the TLS-terminating proxy, the key is served, with HSTS.
    let served = remote(Some("https"), &key).await;
    assert_eq!(served.status, 200, "{}", served.text);
    assert_eq!(
        served.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    // A loopback client may use plain HTTP, and gets no HSTS.
    let local = server.authorize(&key).await;
    assert_eq!(local.status, 200);
    assert_eq!(local.header("strict-transport-security"), None);

    // Refusals are not key checks: many wrong keys in clear text do not trip the guard,
    // and refused requests are not usage.
    for _ in 0..6 {
        remote(
            Some("http"),
            "sk_live_guessguessguessguessguessguessguessguessguessgu",
        )
        .await
        .assert_problem(403, "HTTPS_REQUIRED");
    }
    remote(
        Some("https"),
        "sk_live_guessguessguessguessguessguessguessguessguessgu",
    )
    .await
    .assert_problem(401, "INVALID");
    let id = created["id"].as_str().unwrap();
    crate::support::eventually(Duration::from_secs(3), || async {
        let key = server
            .admin(Method::GET, &format!("/v1/keys/{id}"), None)
            .await;
        key.body["request_count"] == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let key_now = server
        .admin(Method::GET, &format!("/v1/keys/{id}"), None)
        .await;
    assert_eq!(
        key_now.body["request_count"], 2,
        "only the two served requests count"
    );

    // A key in the query string counts too, whatever --allow-query-key says; the admin
    // token is a credential like any other; paths that take no credential still answer.
    let query = server
        .send(
            server
                .client
                .get(server.url(&format!("/v1/authorize?api_key={key}")))
                .header("X-Forwarded-For", "198.51.100.7"),
        )
        .await;
    query.assert_problem(403, "HTTPS_REQUIRED");
    let admin = server
        .send(
            server
                .client
                .get(server.url("/v1/keys"))
                .bearer_auth(ADMIN_TOKEN)
                .header("X-Forwarded-For", "198.51.100.7"),
        )
        .await;
    admin.assert_problem(403, "HTTPS_REQUIRED");
    let open = server
        .send(
            server
                .client
                .get(server.url("/healthz"))
                .header("X-Forwarded-For", "198.51.100.7"),
        )
        .await;
    assert_eq!(open.status, 200);
}

#[tokio::test]
async fn verify_judges_its_caller_and_the_exempt_networks_can_be_emptied() {
    // /v1/verify's caller is the socket peer: a loopback backend passes any `ip`.
    let server = TestServer::spawn_app().await;
    let (key, _) = server
        .create_key(json!({"user_id": "u", "name": "k"}))
        .await;
    let answer = server
        .verify(json!({"key": key, "ip": "198.51.100.7"}))
        .await;
    assert_eq!(answer.body["code"], "VALID", "{}", answer.text);

    // With no exempt network, even loopback must use HTTPS: a body's key, a header's key.
    let strict = TestServer::start_with(&["--https-exempt-network", "none"], &[]).await;
    strict
        .verify(json!({"key": "sk_live_anything"}))
        .await
        .assert_problem(403, "HTTPS_REQUIRED");
    strict
        .authorize("sk_live_anything")
        .await
        .assert_problem(403, "HTTPS_REQUIRED");
    // An empty key carries nothing: it is simply MISSING.
    assert_eq!(
        strict.verify(json!({"key": ""})).await.body["code"],
        "MISSING"
    );

    // Turned off, plain HTTP is accepted from anywhere.
    let lax = TestServer::start_with(
        &["--require-https=false", "--trusted-proxy", "127.0.0.1/32"],
        &[],
    )
    .await;
    let (key, _) = lax.create_key(json!({"user_id": "u", "name": "k"})).await;
    let remote = lax
        .send(
            lax.client
                .get(lax.url("/v1/authorize"))
                .header("X-API-Key", key)
                .header("X-Forwarded-For", "198.51.100.7"),
        )
        .await;
    assert_eq!(remote.status, 200, "{}", remote.text);
}

#[tokio::test]
async fn serving_plain_http_beyond_loopback_warns_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let start = |listen: &str, extra: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
            .env("KEYWARD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env_remove("KEYWARD_CONFIG")
            .env("RUST_LOG", "warn")
            .args(["serve", "--listen", listen, "--database-url"])
            .arg(format!("sqlite://{}", dir.path().join("k.db").display()))
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The listening line comes after the start-up warnings.
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(line.starts_with("keyward listening on http://"), "{line}");
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    // Bound to every address (traffic in this test stays on loopback: none is sent).
    let warned = start("0.0.0.0:0", &[]);
    assert!(warned.contains("without TLS"), "{warned}");
    assert!(!start("127.0.0.1:0", &[]).contains("without TLS"));
    assert!(!start("0.0.0.0:0", &["--require-https=false"]).contains("without TLS"));
}
