//! The configuration reference (`documentation/configuration.md`), generated from the
//! command line's own definition: every setting of `keyward serve` with its flag,
//! environment variable, config-file key and default, so the reference cannot drift from
//! the code. A test compares the committed file with what this renders; after changing a
//! setting, `KEYWARD_UPDATE_REFERENCE=1 cargo test -p keyward reference` rewrites it.

use clap::Arg;

/// Settings that are read from the environment only (never a flag or a file key).
const ENVIRONMENT_ONLY: [(&str, &str, &str); 3] = [
    (
        "KEYWARD_ADMIN_TOKEN",
        "generated on first start and printed once",
        "The admin token (at least 32 characters, at least 10 of them different). Never a flag, so it stays out of process listings; or name a file holding it with `--admin-token-file`, not both.",
    ),
    (
        "RUST_LOG",
        "`info`",
        "Log filter, e.g. `warn` or `keyward=debug`; `debug` adds a span and a line per request. Logs go to stderr.",
    ),
    (
        "KEYWARD_LOG_FORMAT",
        "text",
        "`json` for one JSON object per log line.",
    ),
];

/// An option's help text as one line.
fn help_of(arg: &Arg) -> String {
    let help = arg
        .get_long_help()
        .or_else(|| arg.get_help())
        .map(ToString::to_string)
        .unwrap_or_default();
    help.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Splits a help text around the default it states ("Default 60.", "Default: in process.",
/// "Default true; …"): the text before, the default, the text after.
fn split_default(help: &str) -> Option<(&str, &str, &str)> {
    let at = help.find("Default")?;
    let rest = help[at + "Default".len()..]
        .trim_start_matches(':')
        .trim_start();
    let end = [". ", "; "]
        .iter()
        .filter_map(|separator| rest.find(separator))
        .min()
        .unwrap_or(rest.len());
    let after = rest[end..].trim_start_matches(['.', ';']).trim_start();
    Some((
        help[..at].trim_end(),
        rest[..end].trim_end_matches('.').trim(),
        after,
    ))
}

/// The help text without its default (shown in its own column).
fn description(arg: &Arg) -> String {
    let help = help_of(arg);
    match split_default(&help) {
        Some((before, _, "")) => before.to_owned(),
        Some((before, _, after)) => format!("{before} {after}"),
        None => help,
    }
}

/// The default a help text states, or `none`.
fn default_of(arg: &Arg) -> String {
    split_default(&help_of(arg))
        .map_or_else(|| "none".to_owned(), |(_, default, _)| default.to_owned())
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The reference, as Markdown.
pub fn render() -> String {
    // Built, so the global options (`--database-url`, `--config`) are among serve's.
    let mut command = crate::cli::Cli::command();
    command.build();
    let serve = command
        .find_subcommand("serve")
        .expect("`serve` is a subcommand"); // ok: this module exists only in tests
    let mut out = String::from(
        "# Configuration reference\n\n\
         <!-- Generated from the code by `KEYWARD_UPDATE_REFERENCE=1 cargo test -p keyward reference`; a test fails when it is stale. Do not edit by hand. -->\n\n\
         Every setting of `keyward serve` has a flag, an environment variable and a key of the\n\
         same name in the TOML file named by `--config` (or `KEYWARD_CONFIG`). When a setting is\n\
         given in several places, the flag wins over the environment, which wins over the file,\n\
         which wins over the default. A value out of range is refused at start, whichever place\n\
         it came from, naming the setting. An unknown key in the file is refused too.\n\
         [`deploy/keyward.toml`](../deploy/keyward.toml) is an example file.\n\n\
         Durations are written with their unit: `500ms`, `30s`, `5m`, `24h`. A list (networks)\n\
         is repeated as a flag, comma-separated in the environment, and an array in the file.\n\n\
         | flag | environment | file key | default | meaning |\n\
         |---|---|---|---|---|\n",
    );
    let mut args: Vec<&Arg> = serve
        .get_arguments()
        .filter(|arg| arg.get_long().is_some() && !arg.is_hide_set())
        .filter(|arg| !matches!(arg.get_id().as_str(), "help" | "version" | "json"))
        .collect();
    // The global options first, then serve's own, in the order `--help` shows them.
    args.sort_by_key(|arg| !arg.is_global_set());
    for arg in args {
        let id = arg.get_id().as_str();
        let long = arg.get_long().unwrap_or(id);
        let value = arg
            .get_value_names()
            .and_then(|names| names.first())
            .map(|name| format!(" {name}"))
            .unwrap_or_default();
        let environment = arg
            .get_env()
            .map(|env| format!("`{}`", env.to_string_lossy()))
            .unwrap_or_else(|| "—".to_owned());
        // `--config` names the file itself, so it cannot be a key in it.
        let key = if id == "config" {
            "—".to_owned()
        } else {
            format!("`{id}`")
        };
        out.push_str(&format!(
            "| `--{long}{}` | {environment} | {key} | {} | {} |\n",
            cell(&value),
            cell(&default_of(arg)),
            cell(&description(arg)),
        ));
    }
    for (name, default, meaning) in ENVIRONMENT_ONLY {
        out.push_str(&format!(
            "| — | `{name}` | — | {} | {} |\n",
            cell(default),
            cell(meaning)
        ));
    }
    out.push_str(
        "\nThe other commands (`keys`, `users`, `plans`, `import`, `usage`, `audit`, `billing`,\n\
         `admin-keys`, `db`) read only `--database-url` / `KEYWARD_DATABASE_URL` /\n\
         `database_url` and `--config`; `keyward <command> --help` lists their options.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    fn committed() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../documentation/configuration.md")
    }

    #[test]
    fn reference_is_current() {
        let rendered = super::render();
        let path = committed();
        if std::env::var_os("KEYWARD_UPDATE_REFERENCE").is_some() {
            std::fs::write(&path, &rendered).expect("write documentation/configuration.md");
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == rendered,
            "documentation/configuration.md is stale: run \
             `KEYWARD_UPDATE_REFERENCE=1 cargo test -p keyward reference` and commit it"
        );
    }

    #[test]
    fn every_setting_is_in_the_reference_with_its_environment_variable() {
        let rendered = super::render();
        let command = crate::cli::Cli::command();
        let serve = command.find_subcommand("serve").unwrap();
        for arg in serve.get_arguments().filter(|a| !a.is_hide_set()) {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version" | "json") {
                continue;
            }
            assert!(rendered.contains(&format!("`--{long}")), "--{long} missing");
            let env = arg
                .get_env()
                .expect("every setting has an environment variable");
            assert!(rendered.contains(&format!("`{}`", env.to_string_lossy())));
        }
    }

    #[test]
    fn defaults_are_read_from_the_help_texts() {
        let command = crate::cli::Cli::command();
        let serve = command.find_subcommand("serve").unwrap();
        let default = |long: &str| {
            let arg = serve
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .unwrap();
            super::default_of(arg)
        };
        assert_eq!(default("listen"), "127.0.0.1:8080");
        assert_eq!(default("failure-limit"), "100");
        assert_eq!(default("redis-url"), "in process");
        assert_eq!(default("tls-cert"), "none");
        assert_eq!(default("require-https"), "true");
        let require = serve
            .get_arguments()
            .find(|a| a.get_long() == Some("require-https"))
            .unwrap();
        assert!(super::description(require).ends_with("`--require-https=false` turns it off"));
    }

    /// The example file parses and is accepted by `serve`'s checks.
    #[test]
    fn the_example_config_file_is_valid() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/keyward.toml");
        let file = crate::config::FileConfig::load(Some(&path)).expect("deploy/keyward.toml loads");
        assert!(file.database_url.is_some());
        crate::commands::check_serve_settings(&file).expect("deploy/keyward.toml is accepted");
    }
}
