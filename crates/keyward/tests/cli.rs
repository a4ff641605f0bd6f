//! Black-box tests of the `keyward` binary: each runs the real executable against its own
//! SQLite file in a temporary directory, as a user's shell session would.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest, Sha256};

struct Session {
    dir: tempfile::TempDir,
}

impl Session {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn db_path(&self) -> PathBuf {
        self.dir.path().join("keyward.db")
    }

    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
        command
            .current_dir(self.dir.path())
            .env_remove("KEYWARD_CONFIG")
            .env(
                "KEYWARD_DATABASE_URL",
                format!("sqlite://{}", self.db_path().display()),
            );
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run keyward")
    }

    /// Runs a command that must succeed with `--json`, and parses its one document.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let output = self.run(&all);
        assert!(
            output.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// Every byte the database keeps on disk (main file, WAL and shared memory).
    fn database_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let path = PathBuf::from(format!("{}{suffix}", self.db_path().display()));
            if let Ok(content) = std::fs::read(&path) {
                bytes.extend(content);
            }
        }
        bytes
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn ids(list: &Value) -> Vec<String> {
    list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn create_prints_the_key_once_and_the_database_holds_only_its_hash() {
    let session = Session::new();
    let created = session.json(&[
        "keys",
        "create",
        "--user-id",
        "alice",
        "--name",
        "ci",
        "--email",
        "a@example.com",
        "--company",
        "Acme",
        "--meta",
        "team=core",
        "--scope",
        "read",
        "--allow-ip",
        "10.0.0.0/8",
        "--rate-limit-per-hour",
        "500",
        "--tier",
        "pro",
    ]);
    let key = created["key"]
        .as_str()
        .expect("plaintext in `key`")
        .to_owned();
    let body = key.strip_prefix("sk_live_").expect("live prefix");
    assert_eq!(body.len(), 49);
    assert_eq!(created["key_prefix"], format!("sk_live_{}…", &body[..4]));
    assert_eq!(created["user_id"], "alice");
    assert_eq!(created["plan"], "pro");
    assert_eq!(created["effective_plan"], "pro");
    assert_eq!(created["status"], "active");
    assert_eq!(created["scopes"], serde_json::json!(["read"]));
    assert_eq!(created["allowed_ips"], serde_json::json!(["10.0.0.0/8"]));
    assert_eq!(created["rate_limit_per_hour"], 500);
    assert_eq!(
        created["metadata"],
        serde_json::json!({"email": "a@example.com", "company": "Acme", "team": "core"})
    );
    assert!(created["id"].as_str().unwrap().starts_with("key_"));
    assert!(created.get("key_hash").is_none());

    let user = session.json(&["users", "show", "alice"]);
    assert_eq!(user["email"], "a@example.com");
    assert_eq!(user["company"], "Acme");
    assert_eq!(user["plan"], "free");

    // Never shown again.
    let id = created["id"].as_str().unwrap();
    for args in [
        vec!["keys", "show", id],
        vec!["keys", "list"],
        vec!["--json", "keys", "list"],
        vec!["--json", "keys", "show", id],
    ] {
        let output = session.run(&args);
        assert!(output.status.success());
        assert!(
            !contains(&output.stdout, body) && !contains(&output.stderr, body),
            "{args:?} showed the key"
        );
    }

    // On disk: the hash, never the key or its body.
    let bytes = session.database_bytes();
    assert!(!bytes.is_empty());
    assert!(!contains(&bytes, &key) && !contains(&bytes, body) && !contains(&bytes, &body[..20]));
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    assert!(contains(&bytes, &hash), "the SHA-256 is what is stored");
}

#[test]
fn human_create_prints_the_key_exactly_once_with_a_warning() {
    let session = Session::new();
    let output = session.run(&[
        "keys",
        "create",
        "--user-id",
        "bob",
        "--name",
        "laptop",
        "--environment",
        "test",
        "--prefix",
        "acme",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let keys: Vec<&str> = stdout
        .split_whitespace()
        .filter(|w| w.starts_with("acme_") && !w.ends_with('…'))
        .collect();
    assert_eq!(keys.len(), 1, "{stdout}");
    assert_eq!(keys[0].len(), "acme_".len() + 49);
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot be shown again"));
    let list = session.json(&["keys", "list", "--user-id", "bob"]);
    assert_eq!(list["keys"][0]["environment"], "test");
}

#[test]
fn list_hides_revoked_keys_unless_asked_and_revoke_is_idempotent() {
    let session = Session::new();
    let a = session.json(&["keys", "create", "--user-id", "carol", "--name", "a"]);
    let b = session.json(&["keys", "create", "--user-id", "carol", "--name", "b"]);
    session.json(&["keys", "create", "--user-id", "dave", "--name", "c"]);
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());

    let revoked = session.json(&["keys", "revoke", a_id]);
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(revoked["is_active"], false);
    let again = session.json(&["keys", "revoke", a_id]);
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);

    let active = session.json(&["keys", "list", "--user-id", "carol"]);
    assert_eq!(ids(&active), [b_id]);
    assert_eq!(active["next_cursor"], Value::Null);
    let all = session.json(&["keys", "list", "--user-id", "carol", "--include-inactive"]);
    assert_eq!(ids(&all), [b_id, a_id], "newest first");
    assert_eq!(ids(&session.json(&["keys", "list"])).len(), 2);

    let table =
        String::from_utf8(session.run(&["keys", "list", "--include-inactive"]).stdout).unwrap();
    assert!(table.contains("STATUS") && table.contains("revoked") && table.contains(b_id));
}

#[test]
fn rotate_replaces_the_key_after_its_grace_period() {
    let session = Session::new();
    let old = session.json(&[
        "keys",
        "create",
        "--user-id",
        "erin",
        "--name",
        "deploy",
        "--scope",
        "write",
    ]);
    let old_id = old["id"].as_str().unwrap();
    let rotated = session.json(&["keys", "rotate", old_id, "--grace-period", "24h"]);
    let new = &rotated["key"];
    assert!(new["key"].as_str().unwrap().starts_with("sk_live_"));
    assert_ne!(new["key"], old["key"]);
    assert_eq!(new["name"], "deploy");
    assert_eq!(new["scopes"], serde_json::json!(["write"]));
    assert_eq!(rotated["old_key"]["id"], old_id);
    assert_eq!(rotated["old_key"]["replaced_by"], new["id"]);
    assert_eq!(
        rotated["old_key"]["status"], "active",
        "inside the grace period"
    );
    assert!(rotated["old_key"]["expires_at"].is_string());

    let new_id = new["id"].as_str().unwrap();
    let immediate = session.json(&["keys", "rotate", new_id, "--grace-period", "0"]);
    assert_eq!(immediate["old_key"]["status"], "expired");

    session.json(&["keys", "revoke", old_id]);
    let refused = session.run(&["keys", "rotate", old_id]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("revoked"));
    let bad_grace = session.run(&["keys", "rotate", new_id, "--grace-period", "forever"]);
    assert_eq!(bad_grace.status.code(), Some(2));
}

#[test]
fn wrong_arguments_exit_2_with_usage_and_unknown_ids_exit_1() {
    let session = Session::new();
    for args in [
        vec!["keys", "create", "--name", "no-user"],
        vec!["keys", "frobnicate"],
        vec![
            "keys",
            "create",
            "--user-id",
            "u",
            "--name",
            "n",
            "--environment",
            "staging",
        ],
        vec!["keys", "create", "--user-id", "has space", "--name", "n"],
        vec![
            "keys",
            "create",
            "--user-id",
            "u",
            "--name",
            "n",
            "--prefix",
            "Bad_Prefix",
        ],
        vec![
            "keys",
            "create",
            "--user-id",
            "u",
            "--name",
            "n",
            "--allow-ip",
            "10.0.0.0/99",
        ],
        vec!["plans", "set", "x", "--burst", "fast"],
        vec![],
    ] {
        let output = session.run(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.trim().is_empty(), "{args:?} explains itself");
    }
    let usage = session.run(&["keys", "create", "--name", "x"]);
    assert!(String::from_utf8_lossy(&usage.stderr).contains("Usage"));

    for args in [
        vec!["keys", "show", "key_01ARZ3NDEKTSV4RRFFQ69G5FAV"],
        vec!["keys", "show", "key_nonexistent"],
        vec!["keys", "revoke", "key_01ARZ3NDEKTSV4RRFFQ69G5FAV"],
        vec!["keys", "rotate", "key_01ARZ3NDEKTSV4RRFFQ69G5FAV"],
        vec!["users", "show", "nobody"],
        vec![
            "keys",
            "create",
            "--user-id",
            "u",
            "--name",
            "n",
            "--plan",
            "platinum",
        ],
    ] {
        let output = session.run(&args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one sentence: {stderr}");
    }
}

#[test]
fn an_unreachable_database_exits_1() {
    let session = Session::new();
    let output = session
        .command()
        .args(["keys", "list"])
        .env(
            "KEYWARD_DATABASE_URL",
            "sqlite:///nonexistent-dir/deeper/keyward.db",
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("database"));
}

fn hash_of(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[test]
fn importing_ten_thousand_rows_reports_imports_and_duplicates() {
    let session = Session::new();
    let path = session.dir.path().join("keys.csv");
    let mut file = std::fs::File::create(&path).unwrap();
    writeln!(
        file,
        "id,key_hash,user_id,name,tier,created_at,expires_at,is_active,metadata"
    )
    .unwrap();
    for i in 0..10_000 {
        let tier = ["free", "pro", "enterprise"][i % 3];
        writeln!(
            file,
            "legacy-{i},{},user{},svc-{i},{tier},2024-05-01 12:00:00,,{},\"{{\"\"n\"\":{i}}}\"",
            hash_of(&format!("legacy-secret-{i}")),
            i % 500,
            if i % 10 == 0 { "false" } else { "true" },
        )
        .unwrap();
    }
    writeln!(
        file,
        "dup,{},user1,dup,free,,,true,",
        hash_of("legacy-secret-5")
    )
    .unwrap();
    drop(file);

    let report = session.json(&["import", "--from-csv", path.to_str().unwrap()]);
    assert_eq!(report["imported"], 10_000);
    assert_eq!(report["skipped"].as_array().unwrap().len(), 1);
    assert_eq!(report["skipped"][0]["line"], 10_002);

    let all = session.json(&["keys", "list", "--include-inactive"]);
    assert_eq!(all["keys"].as_array().unwrap().len(), 10_000);
    let active = session.json(&["keys", "list"]);
    assert_eq!(active["keys"].as_array().unwrap().len(), 9_000);
    let sample = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "svc-7")
        .unwrap();
    assert_eq!(sample["metadata"]["legacy_id"], "legacy-7");
    assert_eq!(sample["metadata"]["n"], 7);
    assert_eq!(sample["plan"], "pro");
    assert_eq!(sample["created_at"], "2024-05-01T12:00:00Z");

    // Importing the same file again imports nothing new.
    let again = session.json(&["import", "--from-csv", path.to_str().unwrap()]);
    assert_eq!(again["imported"], 0);
    assert_eq!(again["skipped"].as_array().unwrap().len(), 10_001);
}

#[test]
fn a_csv_with_one_bad_row_imports_nothing_and_names_the_line() {
    let session = Session::new();
    let path = session.dir.path().join("bad.csv");
    let mut text = String::from("key_hash,user_id,plan\n");
    for i in 0..50 {
        let plan = if i == 37 { "no-such-plan" } else { "free" };
        text.push_str(&format!("{},u{i},{plan}\n", hash_of(&format!("s{i}"))));
    }
    std::fs::write(&path, &text).unwrap();
    let output = session.run(&["import", "--from-csv", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 39"), "{stderr}");
    assert_eq!(
        ids(&session.json(&["keys", "list", "--include-inactive"])).len(),
        0
    );

    let malformed = text.replace(&hash_of("s20"), "xyz");
    std::fs::write(&path, malformed).unwrap();
    let output = session.run(&["import", "--from-csv", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("line 22"));
    assert_eq!(
        ids(&session.json(&["keys", "list", "--include-inactive"])).len(),
        0
    );
    assert_eq!(
        session.json(&["users", "list"])["users"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn users_can_be_created_listed_replanned_and_deleted() {
    let session = Session::new();
    let created = session.json(&[
        "users",
        "create",
        "--user-id",
        "org:1",
        "--plan",
        "pro",
        "--email",
        "o@x.io",
        "--meta",
        "region=eu",
    ]);
    assert_eq!(created["plan"], "pro");
    assert_eq!(created["metadata"]["region"], "eu");
    assert_eq!(created["deleted_at"], Value::Null);
    let exists = session.run(&["users", "create", "--user-id", "org:1"]);
    assert_eq!(exists.status.code(), Some(1));
    session.json(&["users", "create", "--user-id", "org:2"]);

    let pros = session.json(&["users", "list", "--plan", "pro"]);
    assert_eq!(pros["users"].as_array().unwrap().len(), 1);
    assert_eq!(
        session.json(&["users", "list"])["users"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let moved = session.json(&["users", "set-plan", "org:1", "enterprise"]);
    assert_eq!(moved["plan"], "enterprise");
    let unknown = session.run(&["users", "set-plan", "org:1", "diamond"]);
    assert_eq!(unknown.status.code(), Some(1));

    let key = session.json(&["keys", "create", "--user-id", "org:1", "--name", "k"]);
    assert_eq!(session.json(&["users", "show", "org:1"])["key_count"], 1);
    let deleted = session.json(&["users", "delete", "org:1"]);
    assert!(deleted["deleted_at"].is_string());
    let key = session.json(&["keys", "show", key["id"].as_str().unwrap()]);
    assert_eq!(key["status"], "revoked");
    assert_eq!(
        session.json(&["users", "show", "org:1"])["deleted_at"],
        deleted["deleted_at"]
    );
}

#[test]
fn plans_can_be_listed_and_set() {
    let session = Session::new();
    let plans = session.json(&["plans", "list"]);
    let names: Vec<&str> = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["free", "pro", "enterprise"]);
    assert_eq!(
        plans["plans"][0]["limits"][0],
        serde_json::json!({"window_seconds": 60, "max": 60})
    );

    let gold = session.json(&[
        "plans",
        "set",
        "gold",
        "--per-minute",
        "100",
        "--per-day",
        "5000",
        "--burst",
        "5/20",
        "--monthly-quota",
        "100000",
        "--max-keys",
        "3",
        "--base-cents",
        "4900",
        "--included-requests",
        "50000",
        "--overage-cents-per-1000",
        "20",
    ]);
    assert_eq!(
        gold["limits"],
        serde_json::json!([{"window_seconds": 60, "max": 100}, {"window_seconds": 86400, "max": 5000}])
    );
    assert_eq!(
        gold["burst"],
        serde_json::json!({"rate_per_second": 5.0, "capacity": 20})
    );
    assert_eq!(gold["monthly_quota"], 100_000);
    assert_eq!(gold["price"]["base_cents"], 4900);

    // Changing one setting keeps the others.
    let free = session.json(&["plans", "set", "free", "--per-hour", "2000"]);
    assert_eq!(
        free["limits"][1],
        serde_json::json!({"window_seconds": 3600, "max": 2000})
    );
    assert_eq!(free["limits"][0]["max"], 60);
    assert_eq!(free["max_keys"], 5);
    assert_eq!(
        session.json(&["plans", "list"])["plans"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    let incomplete_price = session.run(&["plans", "set", "gold", "--base-cents", "1"]);
    assert_eq!(incomplete_price.status.code(), Some(2));
}

#[test]
fn db_commands_migrate_roll_back_and_report() {
    let session = Session::new();
    let applied = session.json(&["db", "migrate"]);
    let status = session.json(&["db", "status"]);
    // Every migration the binary knows was applied by that one command.
    assert_eq!(
        applied["applied"].as_array().unwrap().len(),
        status["migrations"].as_array().unwrap().len()
    );
    assert!(status["migrations"].as_array().unwrap().len() >= 7);
    assert!(
        status["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["applied"] == true)
    );

    session.json(&["keys", "create", "--user-id", "u", "--name", "kept"]);
    let rolled = session.json(&["db", "rollback"]);
    assert_eq!(rolled["rolled_back"].as_array().unwrap().len(), 1);
    let status = session.json(&["db", "status"]);
    assert_eq!(
        status["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["applied"] == false)
            .count(),
        1
    );

    // Any other command applies pending migrations first; the key survived.
    let keys = session.json(&["keys", "list"]);
    assert_eq!(keys["keys"][0]["name"], "kept");
    assert!(
        session.json(&["db", "status"])["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["applied"] == true)
    );

    let human = String::from_utf8(session.run(&["db", "status"]).stdout).unwrap();
    assert!(human.contains("VERSION") && human.contains("yes"));
}

#[test]
fn global_options_work_before_or_after_the_subcommand_and_from_a_config_file() {
    let session = Session::new();
    let other = session.dir.path().join("other.db");
    let url = format!("sqlite://{}", other.display());
    let created = session
        .command()
        .args([
            "keys",
            "create",
            "--user-id",
            "u",
            "--name",
            "n",
            "--json",
            "--database-url",
            &url,
        ])
        .output()
        .unwrap();
    assert!(created.status.success());
    let value: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert!(value["key"].is_string());
    assert!(other.exists());

    let listed = session
        .command()
        .args(["--database-url", &url, "--json", "keys", "list"])
        .output()
        .unwrap();
    let value: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(value["keys"].as_array().unwrap().len(), 1);
    // The environment's database (a different file) has no keys.
    assert_eq!(
        session.json(&["keys", "list"])["keys"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let config = session.dir.path().join("keyward.toml");
    std::fs::write(&config, format!("database_url = \"{url}\"\n")).unwrap();
    let from_file = session
        .command()
        .env_remove("KEYWARD_DATABASE_URL")
        .args([
            "--config",
            config.to_str().unwrap(),
            "--json",
            "keys",
            "list",
        ])
        .output()
        .unwrap();
    let value: Value = serde_json::from_slice(&from_file.stdout).unwrap();
    assert_eq!(
        value["keys"].as_array().unwrap().len(),
        1,
        "the file's database is used"
    );
}

/// A setting outside its range stops `serve` before it listens, whether it came from a
/// flag, an environment variable or the configuration file: exit 2 and one sentence that
/// names the setting.
#[test]
fn out_of_range_settings_stop_serve_from_every_source() {
    let session = Session::new();
    let token = "settings-admin-token-0123456789abcdef";
    /// Flags, environment, configuration file, and the setting the error must name.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 12] = [
        (
            &[],
            &[],
            "billing_max_attempts = 0\n",
            "--billing-max-attempts",
        ),
        (
            &["--billing-max-attempts", "101"],
            &[],
            "",
            "--billing-max-attempts",
        ),
        (
            &[],
            &[],
            "database_max_connections = 0\n",
            "--database-max-connections",
        ),
        (
            &[],
            &[("KEYWARD_FAILURE_WINDOW_SECONDS", "0")],
            "",
            "--failure-window-seconds",
        ),
        (&[], &[], "key_cache_mb = 0\n", "--key-cache-mb"),
        (
            &[],
            &[],
            "failure_ipv6_prefix = 129\n",
            "--failure-ipv6-prefix",
        ),
        (
            &["--usage-flush-interval", "10ms"],
            &[],
            "",
            "--usage-flush-interval",
        ),
        (
            &[],
            &[("KEYWARD_USAGE_FLUSH_INTERVAL", "2m")],
            "",
            "--usage-flush-interval",
        ),
        (
            &[],
            &[],
            "usage_flush_interval = \"61s\"\n",
            "--usage-flush-interval",
        ),
        (
            &["--billing-lease-seconds", "5"],
            &[],
            "",
            "--billing-lease-seconds",
        ),
        (
            &[],
            &[("KEYWARD_BILLING_LEASE_SECONDS", "3601")],
            "",
            "--billing-lease-seconds",
        ),
        (
            &[],
            &[],
            "billing_lease_seconds = 14\n",
            "--billing-lease-seconds",
        ),
    ];
    for (args, env, file, setting) in cases {
        let config = session.dir.path().join("keyward.toml");
        std::fs::write(&config, file).unwrap();
        let mut command = session.command();
        command
            .env("KEYWARD_ADMIN_TOKEN", token)
            .args([
                "--config",
                config.to_str().unwrap(),
                "serve",
                "--listen",
                "127.0.0.1:0",
            ])
            .args(args);
        for (name, value) in env {
            command.env(name, value);
        }
        let output = command.output().expect("run keyward serve");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?} {env:?} {file:?}: {stderr}"
        );
        assert!(stderr.contains(setting), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one sentence: {stderr}");
        assert!(output.stdout.is_empty(), "it never listened");
    }
}

/// Each setting is taken from the flag, else its environment variable, else the config
/// file; a config-file key that names no setting is refused.
#[test]
fn flags_beat_the_environment_which_beats_the_config_file() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let session = Session::new();
    let config = session.dir.path().join("keyward.toml");
    // The file's value alone would stop the start (out of range).
    std::fs::write(&config, "max_connections = 0\nfailure_limit = 7\n").unwrap();
    let token = "settings-admin-token-0123456789abcdef";
    let start = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = session.command();
        command
            .env("KEYWARD_ADMIN_TOKEN", token)
            .args([
                "--config",
                config.to_str().unwrap(),
                "serve",
                "--listen",
                "127.0.0.1:0",
            ])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn keyward serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // It may have exited already (a refused setting); either way it is reaped below.
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        (line, output)
    };
    let (line, _) = start(
        &["--max-connections", "5"],
        &[("KEYWARD_MAX_CONNECTIONS", "0")],
    );
    assert!(
        line.starts_with("keyward listening on"),
        "the flag wins: {line:?}"
    );
    let (line, _) = start(&[], &[("KEYWARD_MAX_CONNECTIONS", "5")]);
    assert!(
        line.starts_with("keyward listening on"),
        "the environment beats the file: {line:?}"
    );
    let (line, output) = start(&[], &[]);
    assert!(line.is_empty(), "the file's 0 is refused");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--max-connections"));

    std::fs::write(&config, "max_conections = 5\n").unwrap();
    let (line, output) = start(&[], &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(line.is_empty());
    assert!(
        stderr.contains("is invalid") && stderr.contains("max_conections"),
        "{stderr}"
    );
}

/// Runs `args` with stdout going to a pipe nobody reads (closed before the command writes),
/// as `keyward … | head -0` would.
fn run_into_closed_pipe(session: &Session, args: &[&str]) -> Output {
    let mut child = session
        .command()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run keyward");
    drop(child.stdout.take());
    child.wait_with_output().expect("keyward ends")
}

#[test]
fn a_reader_that_goes_away_ends_a_listing_quietly_but_never_loses_a_new_key_silently() {
    let session = Session::new();
    for i in 0..3 {
        session.json(&[
            "keys",
            "create",
            "--user-id",
            "pipe",
            "--name",
            &format!("k{i}"),
        ]);
    }
    for args in [
        &["keys", "list"][..],
        &["--json", "keys", "list"],
        &["users", "list"],
    ] {
        let output = run_into_closed_pipe(&session, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // A key shown nowhere must not look delivered.
    for args in [
        &["keys", "create", "--user-id", "pipe2", "--name", "lost"][..],
        &[
            "--json",
            "keys",
            "create",
            "--user-id",
            "pipe2",
            "--name",
            "lost2",
        ],
    ] {
        let output = run_into_closed_pipe(&session, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("could not be written out"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_grace_period_needs_its_unit_and_expiry_days_start_at_one() {
    let session = Session::new();
    let key = session.json(&["keys", "create", "--user-id", "grace", "--name", "k"]);
    let id = key["id"].as_str().unwrap();
    let bare = session.run(&["keys", "rotate", id, "--grace-period", "24"]);
    let stderr = String::from_utf8_lossy(&bare.stderr);
    assert_eq!(bare.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("24h") && stderr.contains("24s"), "{stderr}");
    assert_eq!(
        session.json(&["keys", "show", id])["status"],
        "active",
        "nothing rotated"
    );
    for args in [
        &[
            "keys",
            "create",
            "--user-id",
            "grace",
            "--name",
            "z",
            "--expires-in-days",
            "0",
        ][..],
        &["keys", "rotate", id, "--expires-in-days", "0"],
        &[
            "admin-keys",
            "create",
            "--name",
            "z",
            "--permission",
            "keys:read",
            "--expires-in-days",
            "0",
        ],
    ] {
        let output = session.run(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let keys = session.json(&["keys", "list", "--user-id", "grace"]);
    assert_eq!(ids(&keys).len(), 1, "no key was created");
}

#[test]
fn import_summarises_duplicates_and_a_dry_run_keeps_nothing() {
    let session = Session::new();
    let path = session.dir.path().join("few.csv");
    let write = |count: usize| {
        let mut file = std::fs::File::create(&path).unwrap();
        writeln!(file, "key_hash,user_id").unwrap();
        for i in 0..count {
            writeln!(file, "{},few{i}", hash_of(&format!("few-secret-{i}"))).unwrap();
        }
    };
    let path_arg = path.to_str().unwrap();

    write(1);
    let dry = session.run(&["import", "--from-csv", path_arg, "--dry-run"]);
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert_eq!(
        text.trim(),
        "dry run, nothing kept: would import 1 key; would skip 0 duplicates"
    );
    assert!(
        ids(&session.json(&["keys", "list"])).is_empty(),
        "nothing kept"
    );
    assert!(session.run(&["users", "show", "few0"]).status.code() == Some(1));

    let once = session.run(&["import", "--from-csv", path_arg]);
    assert_eq!(
        String::from_utf8_lossy(&once.stdout).trim(),
        "imported 1 key; skipped 0 duplicates"
    );

    write(13);
    let again = session.run(&["import", "--from-csv", path_arg]);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).lines().next(),
        Some("imported 12 keys; skipped 1 duplicate")
    );
    let twice = session.run(&["import", "--from-csv", path_arg]);
    let lines: Vec<String> = String::from_utf8_lossy(&twice.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines[0], "imported 0 keys; skipped 13 duplicates");
    assert_eq!(
        lines.len(),
        12,
        "the first ten rows, then the rest counted: {lines:?}"
    );
    assert!(lines[1].starts_with("  line 2: "), "{lines:?}");
    assert_eq!(lines[11], "  … and 3 more (--json lists every one)");
}

#[test]
fn a_database_in_a_missing_directory_is_named_in_the_error() {
    let session = Session::new();
    let missing = session.dir.path().join("no-such-dir").join("keyward.db");
    let url = format!("sqlite://{}", missing.display());
    let output = session.run(&["--database-url", &url, "keys", "list"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&*session.dir.path().join("no-such-dir").to_string_lossy()),
        "{stderr}"
    );
    assert!(!missing.parent().unwrap().exists(), "nothing was created");
}

#[test]
fn keys_show_from_stdin_finds_a_key_by_its_plaintext_and_never_echoes_it() {
    let session = Session::new();
    let created = session.json(&["keys", "create", "--user-id", "leak", "--name", "k"]);
    let key = created["key"].as_str().unwrap();
    let show = |input: &str, args: &[&str]| {
        let mut child = session
            .command()
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run keyward");
        // keyward stops reading after the first line (or 4 KiB): the rest may not fit.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
        child.wait_with_output().expect("keyward ends")
    };
    let found = show(
        &format!("{key}\n"),
        &["--json", "keys", "show", "--from-stdin"],
    );
    assert!(
        found.status.success(),
        "{}",
        String::from_utf8_lossy(&found.stderr)
    );
    let object: Value = serde_json::from_slice(&found.stdout).unwrap();
    assert_eq!(object["id"], created["id"]);
    let human = show(key, &["keys", "show", "--from-stdin"]);
    assert!(human.status.success());
    for output in [&found, &human] {
        assert!(!contains(&output.stdout, key) && !contains(&output.stderr, key));
    }
    let unknown = show(
        "sk_live_notakeyAAAAAAAAAAAAAAAA\n",
        &["keys", "show", "--from-stdin"],
    );
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        !contains(&unknown.stderr, "sk_live_notakey"),
        "never echoed"
    );
    let both = show(
        key,
        &[
            "keys",
            "show",
            created["id"].as_str().unwrap(),
            "--from-stdin",
        ],
    );
    assert_eq!(both.status.code(), Some(2));
    let empty = show("\n", &["keys", "show", "--from-stdin"]);
    assert_eq!(empty.status.code(), Some(2));
    let huge = show(&"k".repeat(1 << 20), &["keys", "show", "--from-stdin"]);
    assert_eq!(huge.status.code(), Some(2), "a megabyte line is no key");
    assert!(huge.stderr.len() < 1000, "and is not echoed");
}

#[test]
fn serve_help_names_the_settings_that_are_not_flags() {
    let session = Session::new();
    let help = session.run(&["serve", "--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for needed in [
        "KEYWARD_ADMIN_TOKEN ",
        "RUST_LOG",
        "KEYWARD_LOG_FORMAT",
        "KEYWARD_LISTEN]",
    ] {
        assert!(
            text.contains(needed),
            "{needed} missing from serve --help:\n{text}"
        );
    }
}

#[test]
fn keys_disable_and_enable_and_users_revoke_keys() {
    let session = Session::new();
    let key = session.json(&["keys", "create", "--user-id", "dis", "--name", "a"]);
    session.json(&["keys", "create", "--user-id", "dis", "--name", "b"]);
    let id = key["id"].as_str().unwrap();
    assert_eq!(session.json(&["keys", "disable", id])["status"], "disabled");
    assert_eq!(session.json(&["keys", "show", id])["status"], "disabled");
    assert_eq!(session.json(&["keys", "enable", id])["status"], "active");
    let unknown = session.run(&["keys", "disable", "key_01ARZ3NDEKTSV4RRFFQ69G5FAV"]);
    assert_eq!(unknown.status.code(), Some(1));

    let nobody = session.run(&["users", "revoke-keys", "nobody"]);
    assert_eq!(nobody.status.code(), Some(1), "an unknown user is an error");
    let revoked = session.run(&["users", "revoke-keys", "dis"]);
    assert!(revoked.status.success());
    assert_eq!(
        String::from_utf8_lossy(&revoked.stdout).trim(),
        "revoked 2 keys of dis"
    );
    assert!(ids(&session.json(&["keys", "list", "--user-id", "dis"])).is_empty());
    assert_eq!(session.json(&["keys", "show", id])["status"], "revoked");
    assert_eq!(
        session.json(&["users", "revoke-keys", "dis"])["revoked"],
        0,
        "idempotent"
    );
}

#[test]
fn completions_are_printed_for_each_shell_without_touching_a_database() {
    let session = Session::new();
    let bash = session.run(&["completions", "bash"]);
    assert!(bash.status.success());
    let script = String::from_utf8_lossy(&bash.stdout);
    assert!(
        script.contains("_keyward") && script.contains("revoke-keys"),
        "{script}"
    );
    let zsh = session.run(&["completions", "zsh"]);
    assert!(String::from_utf8_lossy(&zsh.stdout).starts_with("#compdef keyward"));
    assert_eq!(session.run(&["completions", "tcsh"]).status.code(), Some(2));
    assert!(!session.db_path().exists(), "no database was opened");
}

/// Runs `keyward args…` on a pseudo-terminal (util-linux `script`), answering `answer`.
fn run_on_a_terminal(session: &Session, args: &[&str], answer: &str) -> Output {
    let command = std::iter::once(env!("CARGO_BIN_EXE_keyward").to_owned())
        .chain(args.iter().map(|arg| (*arg).to_owned()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(session.dir.path())
        .env(
            "KEYWARD_DATABASE_URL",
            format!("sqlite://{}", session.db_path().display()),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux script runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    child.wait_with_output().expect("script ends")
}

#[test]
fn destructive_commands_ask_on_a_terminal_unless_yes() {
    let session = Session::new();
    let key = session.json(&["keys", "create", "--user-id", "ask", "--name", "k"]);
    let id = key["id"].as_str().unwrap();
    let declined = run_on_a_terminal(&session, &["keys", "revoke", id], "n\n");
    let shown = String::from_utf8_lossy(&declined.stdout);
    assert!(!declined.status.success(), "{shown}");
    assert!(
        shown.contains("[y/N]") && shown.contains("cancelled"),
        "{shown}"
    );
    assert_eq!(session.json(&["keys", "show", id])["status"], "active");

    let accepted = run_on_a_terminal(&session, &["keys", "revoke", id], "y\n");
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stdout)
    );
    assert_eq!(session.json(&["keys", "show", id])["status"], "revoked");

    let other = session.json(&["keys", "create", "--user-id", "ask", "--name", "k2"]);
    let other_id = other["id"].as_str().unwrap();
    let forced = run_on_a_terminal(&session, &["keys", "revoke", other_id, "--yes"], "");
    assert!(forced.status.success());
    assert!(!String::from_utf8_lossy(&forced.stdout).contains("[y/N]"));
    for args in [
        &["users", "delete", "ask"][..],
        &["users", "revoke-keys", "ask"],
        &["db", "rollback"],
    ] {
        let declined = run_on_a_terminal(&session, args, "\n");
        assert!(
            !declined.status.success(),
            "{args:?} asks and an empty answer is no"
        );
    }
    assert_eq!(
        session.json(&["users", "show", "ask"])["user_id"],
        "ask",
        "not deleted"
    );
}

#[test]
fn keys_update_changes_only_what_is_given_and_refuses_nothing_or_nonsense() {
    let session = Session::new();
    let key = session.json(&[
        "keys",
        "create",
        "--user-id",
        "alice",
        "--name",
        "ci",
        "--scope",
        "read",
        "--meta",
        "team=core",
        "--meta",
        "tier=gold",
    ]);
    let id = key["id"].as_str().unwrap();
    let updated = session.json(&[
        "keys",
        "update",
        id,
        "--name",
        "deploys",
        "--scope",
        "deploy",
        "--scope",
        "read",
        "--allow-ip",
        "10.0.0.0/8",
        "--meta",
        "team=infra",
        "--remove-meta",
        "tier",
        "--expires-in-days",
        "30",
        "--rate-limit-per-hour",
        "500",
        "--plan",
        "pro",
    ]);
    assert_eq!(updated["name"], "deploys");
    assert_eq!(updated["scopes"], serde_json::json!(["deploy", "read"]));
    assert_eq!(updated["allowed_ips"], serde_json::json!(["10.0.0.0/8"]));
    assert_eq!(updated["metadata"], serde_json::json!({"team": "infra"}));
    assert_eq!(updated["rate_limit_per_hour"], 500);
    assert_eq!(updated["plan"], "pro");
    assert!(updated["expires_at"].is_string());
    // The undoing options clear exactly what they name.
    let cleared = session.json(&[
        "keys",
        "update",
        id,
        "--clear-scopes",
        "--any-ip",
        "--no-expiry",
        "--user-plan",
    ]);
    assert_eq!(cleared["scopes"], serde_json::json!([]));
    assert!(cleared["allowed_ips"].is_null());
    assert!(cleared["expires_at"].is_null());
    assert!(cleared["plan"].is_null());
    assert_eq!(
        cleared["name"], "deploys",
        "an option not given changes nothing"
    );
    // Every change is audited, by the CLI.
    let audit = session.json(&["audit", "--key-id", id, "--action", "key.update"]);
    let records = audit["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{audit}");
    assert!(records.iter().all(|r| r["actor"] == "cli"), "{audit}");

    for (args, expected) in [
        (vec!["keys", "update", id], "nothing to change"),
        (vec!["keys", "update", id, "--name", ""], "--name"),
        (
            vec!["keys", "update", id, "--allow-ip", "10.0.0.0/33"],
            "--allow-ip",
        ),
        (
            vec!["keys", "update", id, "--scope", "a", "--clear-scopes"],
            "cannot be used",
        ),
        (
            vec!["keys", "update", id, "--meta", "a=1", "--remove-meta", "a"],
            "both name",
        ),
        (
            vec!["keys", "update", id, "--rate-limit-per-hour", "0"],
            "0",
        ),
        (vec!["keys", "update", id, "--plan", "no-such-plan"], "plan"),
    ] {
        let output = session.run(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(
            output.status.code() != Some(101),
            "{args:?} panicked: {stderr}"
        );
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // The API's own rules: at most 100 scopes or networks, an hourly limit within 2^63 − 1.
    let scopes: Vec<String> = (0..101).map(|n| format!("s{n}")).collect();
    let networks: Vec<String> = (0..101).map(|n| format!("10.0.{n}.0/24")).collect();
    for (option, values) in [("--scope", &scopes), ("--allow-ip", &networks)] {
        let mut args = vec!["keys", "update", id];
        for value in values {
            args.extend([option, value.as_str()]);
        }
        let output = session.run(&args);
        assert_eq!(output.status.code(), Some(2), "{option}: {output:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("at most 100"));
    }
    for command in ["update", "create"] {
        let mut args = vec!["keys", command];
        if command == "update" {
            args.push(id);
        } else {
            args.extend(["--user-id", "alice", "--name", "n"]);
        }
        args.extend(["--rate-limit-per-hour", "9223372036854775808"]);
        let output = session.run(&args);
        assert_eq!(output.status.code(), Some(2), "{command}: {output:?}");
    }
    let unknown = session.run(&[
        "keys",
        "update",
        "key_01JD2Y4J8ZV0Q7S8K3M1H6T4RE",
        "--name",
        "x",
    ]);
    assert_eq!(unknown.status.code(), Some(1));
    let after = session.json(&["keys", "show", id]);
    assert_eq!(after["name"], "deploys", "a refused update changed the key");
}

#[test]
fn lists_page_with_limit_and_cursor_and_a_forged_cursor_is_refused() {
    let session = Session::new();
    for n in 0..5 {
        session.json(&[
            "keys",
            "create",
            "--user-id",
            "alice",
            "--name",
            &format!("k{n}"),
        ]);
        session.json(&["users", "create", "--user-id", &format!("u{n}")]);
    }
    for (list, field) in [("keys", "keys"), ("users", "users")] {
        let all = session.json(&[list, "list"]);
        let every: Vec<Value> = all[field].as_array().unwrap().clone();
        assert!(all["next_cursor"].is_null());
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut args = vec![list, "list", "--limit", "2"];
            if let Some(cursor) = &cursor {
                args.extend(["--cursor", cursor]);
            }
            let page = session.json(&args);
            let items = page[field].as_array().unwrap();
            assert!(items.len() <= 2, "{page}");
            seen.extend(items.iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(
            seen, every,
            "{list}: the pages together are the whole listing"
        );
        // A human page says where the next one starts, on stderr.
        let human = session.run(&[list, "list", "--limit", "1"]);
        assert!(String::from_utf8_lossy(&human.stderr).contains("more: --cursor "));
    }
    for args in [
        vec!["keys", "list", "--cursor", "not-a-cursor"],
        vec!["users", "list", "--limit", "0"],
        vec!["keys", "list", "--limit", "1001"],
        vec!["audit", "--cursor", "forged.00"],
    ] {
        let output = session.run(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
    }
}

#[test]
fn usage_tables_show_what_help_promises_and_json_where_it_means_something() {
    let session = Session::new();
    let key = session.json(&["keys", "create", "--user-id", "alice", "--name", "ci"]);
    let id = key["id"].as_str().unwrap();
    let text = |args: &[&str]| {
        let output = session.run(args);
        assert!(output.status.success(), "{args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let by_key = text(&["keys", "usage", id, "--days", "7"]);
    for column in ["DATE", "ENDPOINT", "STATUS"] {
        assert!(
            by_key.contains(column),
            "keys usage lacks {column}: {by_key}"
        );
    }
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(
        by_key.contains(&today),
        "a row per day, today's included: {by_key}"
    );
    // 400 days: a row per month, not 400 rows.
    let long = text(&["keys", "usage", id, "--days", "400"]);
    assert!(long.contains("MONTH") && !long.contains("DATE"), "{long}");
    assert!(
        long.lines().count() < 40,
        "{} lines: {long}",
        long.lines().count()
    );
    let by_user = text(&["usage", "alice"]);
    assert!(
        by_user.contains("DATE") && by_user.contains("KEY"),
        "{by_user}"
    );
    let summary = text(&["usage", "summary", "--days", "7"]);
    for column in ["CODE", "KEY", "ENDPOINT", "latency ms"] {
        assert!(
            summary.contains(column),
            "usage summary lacks {column}: {summary}"
        );
    }
    let document = session.json(&["usage", "summary", "--days", "7"]);
    assert_eq!(document["days"], 7);
    assert_eq!(
        session
            .run(&["usage", "summary", "--days", "401"])
            .status
            .code(),
        Some(2)
    );
    // A user literally named `summary` is still reachable.
    session.json(&["users", "create", "--user-id", "summary"]);
    assert_eq!(
        session.json(&["usage", "--", "summary"])["user_id"],
        "summary"
    );

    // --json is neither offered nor accepted where nothing is printed.
    for args in [
        vec!["serve", "--json"],
        vec!["--json", "serve"],
        vec!["completions", "bash", "--json"],
    ] {
        let output = session.run(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("--json has no meaning"));
    }
    assert!(!text(&["serve", "--help"]).contains("--json"));
    assert!(text(&["keys", "list", "--help"]).contains("--json"));
}

#[test]
fn a_plans_key_lifetime_cap_clamps_new_keys_but_not_imports() {
    let session = Session::new();
    let plan = session.json(&[
        "plans",
        "set",
        "short",
        "--per-minute",
        "10",
        "--max-key-lifetime-days",
        "3",
    ]);
    assert_eq!(plan["max_key_lifetime_days"], 3);
    session.json(&["users", "create", "--user-id", "acme", "--plan", "short"]);
    let key = session.json(&[
        "keys",
        "create",
        "--user-id",
        "acme",
        "--name",
        "k",
        "--expires-in-days",
        "30",
    ]);
    let expires: chrono::DateTime<chrono::Utc> =
        key["expires_at"].as_str().unwrap().parse().unwrap();
    let days = (expires - chrono::Utc::now()).num_hours();
    assert!((71..=72).contains(&days), "expires in {days} h: {key}");
    // An import keeps what the other system said, cap or not.
    let csv = session.dir.path().join("keys.csv");
    std::fs::write(
        &csv,
        format!("key_hash,user_id\n{},acme\n", hash_of("legacy-key")),
    )
    .unwrap();
    let imported = session.run(&["import", "--from-csv", csv.to_str().unwrap()]);
    assert!(imported.status.success(), "{imported:?}");
    let keys = session.json(&["keys", "list", "--user-id", "acme"]);
    let legacy = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "imported")
        .unwrap();
    assert!(legacy["expires_at"].is_null(), "{legacy}");
    let listed = session.run(&["plans", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("3 d"));
    let cleared = session.json(&["plans", "set", "short", "--no-max-key-lifetime"]);
    assert!(cleared["max_key_lifetime_days"].is_null());
    assert_eq!(
        session
            .run(&["plans", "set", "short", "--max-key-lifetime-days", "0"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn webhooks_are_managed_from_the_cli_with_the_apis_rules() {
    let session = Session::new();
    let created = session.json(&[
        "webhooks",
        "create",
        "--url",
        "https://hooks.example/keyward",
        "--event",
        "key.created",
        "--event",
        "key.revoked",
        "--description",
        "billing",
    ]);
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(
        id.starts_with("whk_") && secret.starts_with("whsec_"),
        "{created}"
    );
    assert_eq!(
        created["events"],
        serde_json::json!(["key.created", "key.revoked"])
    );
    let listed = session.json(&["webhooks", "list"]);
    assert_eq!(listed["webhooks"][0]["id"], id.as_str());
    assert!(listed["webhooks"][0].get("secret").is_none(), "{listed}");
    assert_eq!(
        session.json(&["webhooks", "disable", &id])["enabled"],
        false
    );
    assert_eq!(session.json(&["webhooks", "enable", &id])["enabled"], true);
    let rotated = session.json(&["webhooks", "rotate-secret", &id]);
    assert_ne!(rotated["secret"], secret.as_str());
    // A key made now is an event for this endpoint: one pending delivery.
    session.json(&["keys", "create", "--user-id", "alice", "--name", "k"]);
    let deliveries = session.json(&["webhooks", "deliveries", &id]);
    assert_eq!(deliveries["deliveries"][0]["type"], "key.created");
    assert_eq!(deliveries["deliveries"][0]["status"], "pending");
    let since = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    assert_eq!(
        session.json(&["webhooks", "replay", &id, "--since", &since])["replayed"],
        1
    );
    for args in [
        vec!["webhooks", "create", "--url", "ftp://x", "--event", "*"],
        vec![
            "webhooks",
            "create",
            "--url",
            "http://169.254.169.254/",
            "--event",
            "*",
        ],
        vec![
            "webhooks",
            "create",
            "--url",
            "https://x.example",
            "--event",
            "key.nope",
        ],
        vec!["webhooks", "create", "--url", "https://x.example"],
        vec!["webhooks", "replay", &id, "--since", "yesterday"],
    ] {
        assert_eq!(session.run(&args).status.code(), Some(2), "{args:?}");
    }
    assert_eq!(
        session.json(&["webhooks", "delete", &id])["id"],
        id.as_str()
    );
    assert_eq!(
        session.run(&["webhooks", "delete", &id]).status.code(),
        Some(1)
    );
}
