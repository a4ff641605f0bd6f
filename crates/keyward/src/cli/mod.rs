//! The command line: the commands and their options, declared with clap. `serve`'s
//! settings are in `serve.rs`, the key commands in `keys.rs`, the other management
//! commands in `manage.rs`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod keys;
mod manage;
mod serve;

pub use keys::*;
pub use manage::*;
pub use serve::*;

#[derive(Debug, Parser)]
#[command(
    name = "keyward",
    version,
    about = "API keys, rate limits, usage and billing for HTTP APIs",
    propagate_version = true
)]
pub struct Cli {
    /// Database URL: `sqlite://path` (created if missing) or `postgres://…`. Default
    /// sqlite://keyward.db (in the current directory).
    #[arg(
        long,
        env = "KEYWARD_DATABASE_URL",
        global = true,
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// TOML file with the same settings as the flags (flags and environment win).
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_CONFIG",
        global = true,
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Print one JSON document instead of a table.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// Commands that print no data: `--json` is neither shown nor accepted there.
const WITHOUT_JSON: [&str; 2] = ["serve", "completions"];

impl Cli {
    /// The command line as clap knows it, without `--json` on the commands that print no
    /// data (it is global, so clap would add it to every subcommand: a hidden local `--json`
    /// there keeps it out of their help).
    pub fn command() -> clap::Command {
        let mut command = <Self as clap::CommandFactory>::command();
        for name in WITHOUT_JSON {
            command = command.mut_subcommand(name, |sub| {
                sub.arg(
                    clap::Arg::new("json")
                        .long("json")
                        .action(clap::ArgAction::SetTrue)
                        .hide(true),
                )
            });
        }
        command
    }

    /// Parses the process's arguments; exits with clap's message on an error, and refuses
    /// `--json` on a command that prints no data.
    pub fn parse_args() -> Self {
        let mut command = Self::command();
        let matches = command.get_matches_mut();
        let cli = <Self as clap::FromArgMatches>::from_arg_matches(&matches)
            .unwrap_or_else(|e| e.format(&mut command).exit());
        if let Some((name, sub)) = matches.subcommand() {
            let local = sub
                .try_get_one::<bool>("json")
                .ok()
                .flatten()
                .copied()
                .unwrap_or(false);
            if WITHOUT_JSON.contains(&name) && (cli.json || local) {
                command
                    .error(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!("--json has no meaning for `keyward {name}`, which prints no data"),
                    )
                    .exit();
            }
        }
        cli
    }
}

/// What `serve --help` adds below the options: the settings that are not flags.
const SERVE_ENVIRONMENT: &str = "Environment:
  KEYWARD_ADMIN_TOKEN   the admin token (32 characters or more); never a flag, so it stays
                        out of process listings. Without it (or --admin-token-file), the
                        first start prints a generated token once.
  RUST_LOG              log filter, default `info`; `debug` adds a span and a line per
                        request. Logs go to stderr.
  KEYWARD_LOG_FORMAT    `json` for JSON lines instead of text.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (management API, /v1/verify, /v1/authorize).
    #[command(after_help = SERVE_ENVIRONMENT)]
    Serve(Box<ServeArgs>),
    /// Create, list, show, revoke and rotate API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create, list, show, re-plan and delete users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// List and set plans (rate limits, quotas, key caps, prices).
    #[command(subcommand)]
    Plans(PlansCommand),
    /// Apply, roll back and inspect database migrations.
    #[command(subcommand)]
    Db(DbCommand),
    /// Import keys another system stored as SHA-256 hashes, so their holders keep working.
    Import(ImportArgs),
    /// A user's usage in a month (by day and by key, and the quota), or — with `summary` —
    /// every key's traffic over the last days.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Usage {
        #[command(subcommand)]
        command: Option<UsageCommand>,
        /// The user (a user named `summary` is `keyward usage -- summary`).
        #[arg(required = true)]
        user_id: Option<String>,
        /// The month, YYYY-MM (UTC). Default: the current one.
        #[arg(long, value_name = "YYYY-MM")]
        period: Option<String>,
    },
    /// The audit log, newest first: who changed which key, user, plan or admin key.
    Audit(AuditArgs),
    /// Invoices: one user's, or every user's as CSV or JSON.
    #[command(subcommand)]
    Billing(BillingCommand),
    /// Create, list and revoke admin keys: management API credentials with permissions.
    #[command(subcommand, name = "admin-keys")]
    AdminKeys(AdminKeysCommand),
    /// Endpoints that receive events (signed per Standard Webhooks), their deliveries,
    /// secrets and replays. A running server delivers them.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Print a shell completion script, e.g. `keyward completions bash >
    /// /etc/bash_completion.d/keyward` (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[cfg(test)]
mod tests {
    /// Every option and argument of every command says what it is in `--help`.
    #[test]
    fn every_option_has_help_text() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") || arg.is_hide_set() {
                    continue;
                }
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                if help.trim().is_empty() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut command = super::Cli::command();
        command.build();
        let mut missing = Vec::new();
        walk(&command, "keyward", &mut missing);
        assert!(missing.is_empty(), "options without help: {missing:#?}");
    }
}
