//! Printing results: one JSON document with `--json`, else a plain table.

use chrono::{DateTime, Utc};
use comfy_table::{Table, presets};
use serde::Serialize;

use crate::error::{CliError, CliResult};

/// `println!` for results: when the reader has gone (`keyward keys list | head -1`), the
/// command ends quietly with success rather than panicking on the closed pipe.
macro_rules! outln {
    () => {
        $crate::output::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Writes one line of results on stdout; see [`outln!`].
pub fn write_line(args: std::fmt::Arguments<'_>) {
    if let Err(error) = try_write_line(args) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write the output: {error}");
        std::process::exit(1);
    }
}

fn try_write_line(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Writes a line that holds a plaintext key, shown this once: if it cannot be written (a
/// closed pipe included) the command fails, so nobody mistakes a lost key for a delivered
/// one.
pub fn secret_line(args: std::fmt::Arguments<'_>) -> CliResult {
    try_write_line(args).map_err(|error| {
        CliError::failure(format!(
            "the key was created but could not be written out ({error}): revoke it and create another"
        ))
    })
}

/// Asks before something that cannot be undone — only when a person is at the keyboard
/// (stdin is a terminal) and `--yes` was not given; scripts and pipes are never asked.
pub fn confirm(question: &str, yes: bool) -> CliResult {
    use std::io::{BufRead, IsTerminal, Write};
    if yes || !std::io::stdin().is_terminal() {
        return Ok(());
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|error| CliError::failure(format!("cannot read the answer: {error}")))?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(CliError::failure("cancelled; nothing was changed"))
    }
}

/// Prints `value` as one pretty JSON document on stdout.
pub fn json(value: &impl Serialize) -> CliResult {
    outln!("{}", encode(value)?);
    Ok(())
}

/// Prints a JSON document that holds a plaintext key (see [`secret_line`]).
pub fn json_secret(value: &impl Serialize) -> CliResult {
    secret_line(format_args!("{}", encode(value)?))
}

fn encode(value: &impl Serialize) -> CliResult<String> {
    serde_json::to_string_pretty(value)
        .map_err(|error| CliError::failure(format!("cannot encode the result as JSON: {error}")))
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
        // A line break in a value would fake a row of its own.
        table.add_row([format!("{name}:"), value.replace('\n', "\\n")]);
    }
    table
}

/// Prints a table, with every non-printable character written as an escape (`\u{1b}`),
/// so a name or e-mail address cannot move the cursor, recolour or reorder a terminal.
pub fn print_table(table: &Table) {
    outln!("{}", escape_nonprintable(&table.to_string()));
}

/// Escapes control (C0, C1) and bidirectional-formatting characters, keeping line breaks
/// (the table's own layout).
pub fn escape_nonprintable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c != '\n' && keyward_core::name::is_forbidden(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_are_printed_escaped() {
        let mut table = table(["NAME"]);
        table.add_row(["evil\u{1b}[2J\u{202e}gnp"]);
        let shown = escape_nonprintable(&table.to_string());
        assert!(
            !shown.contains('\u{1b}') && !shown.contains('\u{202e}'),
            "{shown}"
        );
        assert!(shown.contains("evil\\u{1b}[2J\\u{202e}gnp"), "{shown}");
        let fields = fields(&[("name", "a\nfake: row".to_owned())]);
        assert_eq!(fields.to_string().lines().count(), 1);
    }
}
