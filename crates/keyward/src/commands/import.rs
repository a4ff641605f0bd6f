//! `keyward import --from-csv FILE`: keys known only by their SHA-256.
//!
//! The whole file is read and checked first; one invalid row stops the import before
//! anything is written, naming its line. Then every row goes in one transaction.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use keyward_core::time::TimeError;
use keyward_core::{KeyHash, KeyId, KeyName, PlanName, UserId};
use keyward_store::{Actor, ImportMode, ImportReport, ImportRow, Metadata};
use serde_json::Value;

use super::Context;
use crate::cli::ImportArgs;
use crate::error::{CliError, CliResult};
use crate::output;
use crate::output::outln;

const COLUMNS: [&str; 11] = [
    "key_hash",
    "user_id",
    "id",
    "name",
    "tier",
    "plan",
    "created_at",
    "expires_at",
    "is_active",
    "metadata",
    "key_prefix",
];

pub async fn run(context: &Context, args: ImportArgs) -> CliResult {
    let file = std::fs::File::open(&args.from_csv).map_err(|error| {
        CliError::failure(format!("cannot read {}: {error}", args.from_csv.display()))
    })?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = ProgressBar::new(size).with_style(
        ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    progress.set_message("reading");
    let rows = read_rows(csv::Reader::from_reader(progress.wrap_read(file)))?;
    progress.finish_and_clear();

    let (mode, verb) = if args.dry_run {
        (ImportMode::DryRun, "checking")
    } else {
        (ImportMode::Commit, "importing")
    };
    let spinner =
        ProgressBar::new_spinner().with_message(format!("{verb} {}", keys(rows.len() as u64)));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let report = context.store.import_keys(&rows, mode, &Actor::cli()).await;
    spinner.finish_and_clear();
    let report = report?;

    if context.json {
        return output::json(&report);
    }
    for line in summary(&report) {
        outln!("{line}");
    }
    Ok(())
}

/// Rows skipped as duplicates listed one by one, at most.
const SKIPPED_SHOWN: usize = 10;

/// What an import did (or, in a dry run, would do): one line of counts, then the first
/// skipped rows.
fn summary(report: &ImportReport) -> Vec<String> {
    let skipped = report.skipped.len();
    let (imported, skip) = if report.dry_run {
        ("dry run, nothing kept: would import", "would skip")
    } else {
        ("imported", "skipped")
    };
    let mut lines = vec![format!(
        "{imported} {}; {skip} {skipped} duplicate{}",
        keys(report.imported),
        if skipped == 1 { "" } else { "s" }
    )];
    lines.extend(
        report
            .skipped
            .iter()
            .take(SKIPPED_SHOWN)
            .map(|row| format!("  line {}: {}", row.line, row.reason)),
    );
    if skipped > SKIPPED_SHOWN {
        lines.push(format!(
            "  … and {} more (--json lists every one)",
            skipped - SKIPPED_SHOWN
        ));
    }
    lines
}

fn keys(count: u64) -> String {
    format!("{count} key{}", if count == 1 { "" } else { "s" })
}

fn read_rows<R: std::io::Read>(mut reader: csv::Reader<R>) -> CliResult<Vec<ImportRow>> {
    let headers = reader
        .headers()
        .map_err(|error| CliError::failure(format!("line 1: cannot read the header row: {error}")))?
        .clone();
    let mut index = HashMap::new();
    for (position, name) in headers.iter().enumerate() {
        let name = name.trim();
        if !COLUMNS.contains(&name) {
            return Err(CliError::failure(format!(
                "line 1: unknown column `{name}` (expected {})",
                COLUMNS.join(", ")
            )));
        }
        if index.insert(name.to_owned(), position).is_some() {
            return Err(CliError::failure(format!(
                "line 1: column `{name}` appears twice"
            )));
        }
    }
    for required in ["key_hash", "user_id"] {
        if !index.contains_key(required) {
            return Err(CliError::failure(format!(
                "line 1: the required column `{required}` is missing"
            )));
        }
    }
    if index.contains_key("tier") && index.contains_key("plan") {
        return Err(CliError::failure(
            "line 1: give either `tier` or `plan`, not both",
        ));
    }

    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|error| {
            let line = error.position().map_or(0, |p| p.line());
            CliError::failure(format!("line {line}: {error}"))
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |name: &str| {
            index
                .get(name)
                .and_then(|&i| record.get(i))
                .map(str::trim)
                .filter(|value| !value.is_empty())
        };
        let row = parse_row(line, &field)
            .map_err(|message| CliError::failure(format!("line {line}: {message}")))?;
        rows.push(row);
    }
    Ok(rows)
}

fn parse_row<'a>(line: u64, field: &dyn Fn(&str) -> Option<&'a str>) -> Result<ImportRow, String> {
    let key_hash = field("key_hash").ok_or("key_hash is empty")?;
    let key_hash = KeyHash::from_hex(&key_hash.to_ascii_lowercase())
        .map_err(|_| "key_hash must be 64 hexadecimal characters (a SHA-256)".to_owned())?;
    let user_id = field("user_id").ok_or("user_id is empty")?;
    let user_id = UserId::parse(user_id).map_err(|e| format!("user_id: {e}"))?;
    let mut metadata = match field("metadata") {
        None => Metadata::new(),
        Some(raw) => match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(object)) => object,
            _ => return Err("metadata must be a JSON object".to_owned()),
        },
    };
    let id = match field("id") {
        None => None,
        Some(raw) => match KeyId::parse(raw) {
            Ok(id) => Some(id),
            Err(_) => {
                metadata.insert("legacy_id".to_owned(), Value::String(raw.to_owned()));
                None
            }
        },
    };
    let plan = field("plan")
        .or_else(|| field("tier"))
        .map(|raw| PlanName::parse(raw).map_err(|e| format!("plan: {e}")))
        .transpose()?;
    let name = field("name").unwrap_or("imported");
    KeyName::parse(name).map_err(|e| format!("name {e}"))?;
    Ok(ImportRow {
        line,
        key_hash,
        user_id,
        id,
        name: name.to_owned(),
        plan,
        created_at: field("created_at")
            .map(|raw| parse_time("created_at", raw))
            .transpose()?,
        expires_at: field("expires_at")
            .map(|raw| parse_time("expires_at", raw))
            .transpose()?,
        is_active: field("is_active").map_or(Ok(true), parse_bool)?,
        metadata,
        key_prefix: field("key_prefix")
            .map(|prefix| {
                // Shown in tables, key objects and log spans: the name rules apply.
                KeyName::parse(prefix)
                    .ok()
                    .filter(|_| prefix.chars().count() <= 64)
                    .map(|_| prefix.to_owned())
                    .ok_or_else(|| {
                        "key_prefix must be 1 to 64 characters without control or bidirectional-formatting characters".to_owned()
                    })
            })
            .transpose()?,
    })
}

/// RFC 3339, or `YYYY-MM-DD HH:MM:SS` (optionally with fractional seconds) in UTC.
fn parse_time(column: &str, raw: &str) -> Result<DateTime<Utc>, String> {
    let at = match keyward_core::time::parse(raw) {
        Err(TimeError::Format) => NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S%.f")
            .map(|t| t.and_utc())
            .map_err(|_| format!("{column} `{raw}` is not RFC 3339 or YYYY-MM-DD HH:MM:SS"))?,
        other => other.map_err(|e| format!("{column} `{raw}` {e}"))?,
    };
    keyward_core::time::in_range(at).map_err(|e| format!("{column} `{raw}` {e}"))
}

fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("is_active `{raw}` is not true/false/1/0/yes/no")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(csv_text: &str) -> CliResult<Vec<ImportRow>> {
        read_rows(csv::Reader::from_reader(csv_text.as_bytes()))
    }

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn every_optional_column_is_understood() {
        let rows = read(&format!(
            "key_hash,user_id,id,name,tier,created_at,expires_at,is_active,metadata,key_prefix\n\
             {HASH},u1,legacy-7,ci,pro,2024-01-02 03:04:05,2030-01-01T00:00:00Z,no,\"{{\"\"a\"\":1}}\",ak_1234…\n"
        ))
        .unwrap();
        let row = &rows[0];
        assert_eq!(row.line, 2);
        assert_eq!(row.name, "ci");
        assert_eq!(row.plan.as_ref().unwrap().as_str(), "pro");
        assert_eq!(row.id, None);
        assert_eq!(row.metadata["legacy_id"], "legacy-7");
        assert_eq!(row.metadata["a"], 1);
        assert!(!row.is_active);
        assert_eq!(
            keyward_core::time::format(&row.created_at.unwrap()),
            "2024-01-02T03:04:05Z"
        );
        assert_eq!(row.key_prefix.as_deref(), Some("ak_1234…"));
    }

    #[test]
    fn defaults_apply_to_missing_columns() {
        let rows = read(&format!("user_id,key_hash\nu1,{}\n", HASH.to_uppercase())).unwrap();
        assert_eq!(rows[0].name, "imported");
        assert!(rows[0].is_active);
        assert_eq!(rows[0].key_hash.to_hex(), HASH);
    }

    #[test]
    fn errors_name_the_line() {
        let error = read(&format!(
            "key_hash,user_id\n{HASH},u1\n{HASH},u2\nnot-hex,u3\n"
        ))
        .unwrap_err();
        assert!(error.to_string().starts_with("line 4:"), "{error}");
        let error = read("key_hash\nabc\n").unwrap_err();
        assert!(error.to_string().contains("user_id"), "{error}");
        let error = read(&format!("key_hash,user_id,is_active\n{HASH},u1,maybe\n")).unwrap_err();
        assert!(error.to_string().starts_with("line 2:"), "{error}");
        let error = read(&format!("key_hash,user_id,colour\n{HASH},u1,red\n")).unwrap_err();
        assert!(error.to_string().contains("colour"), "{error}");
    }
}
