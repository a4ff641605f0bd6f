//! Printing results: one JSON document with `--json`, else a plain table.

use chrono::{DateTime, Utc};
use comfy_table::{Table, presets};
use serde::Serialize;

use crate::error::{CliError, CliResult};

/// Prints `value` as one pretty JSON document on stdout.
pub fn json(value: &impl Serialize) -> CliResult {
    let text = serde_json::to_string_pretty(value)
        .map_err(|error| CliError::failure(format!("cannot encode the result as JSON: {error}")))?;
    println!("{text}");
    Ok(())
}

/// A borderless table with a header row, like `kubectl get`.
pub fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_header(header);
    table
}

/// A two-column table of field names and values, for one object.
pub fn fields(rows: &[(&str, String)]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    for (name, value) in rows {
        table.add_row([format!("{name}:"), value.clone()]);
    }
    table
}

pub fn time(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "-".to_owned(), |at| keyward_core::time::format(&at))
}

pub fn or_dash<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

pub fn list<T: std::fmt::Display>(values: &[T]) -> String {
    if values.is_empty() {
        "-".to_owned()
    } else {
        values
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}
