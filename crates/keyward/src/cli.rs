//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Register an endpoint; prints its signing secret.
    Create {
        /// Where events are posted (`http` or `https`).
        #[arg(long, value_name = "URL")]
        url: String,
        /// An event type to receive (repeatable), or `*` for all: key.created, key.updated,
        /// key.revoked, key.rotated, key.expiring, key.expired, key.leaked,
        /// user.plan_changed, quota.threshold, usage.metered.
        #[arg(long = "event", value_name = "TYPE", required = true)]
        events: Vec<String>,
        /// What the endpoint is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// List endpoints, newest first (never their secrets).
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Delete an endpoint (its undelivered deliveries are dropped).
    Delete {
        /// The endpoint's id (whk_…).
        id: String,
    },
    /// An endpoint's deliveries, newest first: status, attempts, last answer.
    Deliveries {
        /// The endpoint's id (whk_…).
        id: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Give an endpoint a new secret; the old one keeps signing for 24 hours.
    RotateSecret {
        /// The endpoint's id (whk_…).
        id: String,
    },
    /// Send again every kept event since a time that the endpoint subscribes to now.
    Replay {
        /// The endpoint's id (whk_…).
        id: String,
        /// RFC 3339 time, e.g. 2026-11-30T00:00:00Z.
        #[arg(long, value_name = "TIME")]
        since: String,
    },
    /// Enable a disabled endpoint (events raised while it was disabled are not sent).
    Enable {
        /// The endpoint's id (whk_…).
        id: String,
    },
    /// Disable an endpoint: no events are queued for it until enabled.
    Disable {
        /// The endpoint's id (whk_…).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Every key's traffic over the last N days: totals, rejections by decision code, the
    /// top keys and endpoints, latency percentiles.
    Summary {
        /// Days back, today included (1–400).
        #[arg(long, value_name = "N", default_value = "7")]
        days: u32,
    },
}

/// `--limit` and `--cursor` of a listing.
#[derive(Debug, Clone, Default, Args)]
pub struct PageArgs {
    /// Print one page of at most N entries (1–1000) and the cursor of the next; without
    /// --limit or --cursor every entry is printed.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,
    /// Continue a listing after the page that printed this cursor.
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only records about this user.
    #[arg(long, value_name = "ID")]
    pub user_id: Option<String>,
    /// Only records about this key.
    #[arg(long, value_name = "ID")]
    pub key_id: Option<String>,
    /// Only this action, e.g. key.revoked (`keyward audit --action help` lists them).
    #[arg(long, value_name = "ACTION")]
    pub action: Option<String>,
    /// At most N records (1–1000; default 50), with the cursor of the next page.
    #[arg(long, value_name = "N", default_value = "50", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Continue after the page that printed this cursor.
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AdminKeysCommand {
    /// Create an admin key and print it, once.
    Create {
        /// What the key is for (shown in listings and the audit log).
        #[arg(long, value_name = "NAME")]
        name: String,
        /// A permission the key holds (repeatable): keys:read, keys:write, users:read,
        /// users:write, plans:write, usage:read, billing:read, audit:read, webhooks:write,
        /// admin:manage, or * for all.
        #[arg(long = "permission", value_name = "P", required = true)]
        permissions: Vec<String>,
        /// Days until it stops working (1–36500). Default: never.
        #[arg(long, value_name = "N")]
        expires_in_days: Option<u32>,
    },
    /// List admin keys, newest first (never their keys).
    List {
        /// Revoked keys too.
        #[arg(long)]
        include_revoked: bool,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Revoke an admin key (idempotent); it stops working on every node at once.
    Revoke {
        /// The admin key's id (adk_…).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BillingCommand {
    /// A user's invoice for a month (prorated per plan segment).
    Invoice {
        /// The user billed.
        user_id: String,
        /// The month, YYYY-MM (UTC). Default: the current one.
        #[arg(long, value_name = "YYYY-MM")]
        period: Option<String>,
    },
    /// The billing outbox: each event's delivery to each sink, newest first.
    Outbox {
        /// Only deliveries in this state.
        #[arg(long, value_enum)]
        status: Option<OutboxStatus>,
        /// At most this many deliveries (1–10000).
        #[arg(long, default_value = "100", value_parser = clap::value_parser!(u32).range(1..=10000))]
        limit: u32,
    },
    /// Every user's invoice for a month, one line per row (csv) or one document (json).
    Export {
        /// The month, YYYY-MM (UTC). Default: the current one.
        #[arg(long, value_name = "YYYY-MM")]
        period: Option<String>,
        /// CSV (one row per invoice line) or JSON (one document); `--json` means json.
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutboxStatus {
    Pending,
    Delivered,
    Skipped,
    Dead,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EnvironmentArg {
    Live,
    Test,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a key; its plaintext is printed once and cannot be shown again.
    Create(CreateKeyArgs),
    /// List keys, newest first (revoked and expired ones with --include-inactive).
    List {
        /// Only this user's keys.
        #[arg(long, value_name = "ID")]
        user_id: Option<String>,
        /// Include revoked and expired keys.
        #[arg(long)]
        include_inactive: bool,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one key: by its id, or — with --from-stdin — by the key itself.
    Show {
        /// The key's id (key_…).
        #[arg(required_unless_present = "from_stdin", conflicts_with = "from_stdin")]
        key_id: Option<String>,
        /// Read a plaintext key from stdin (one line; never echoed or stored) and show the
        /// key it is — for support requests and leak reports. Only its SHA-256 is looked up.
        #[arg(long)]
        from_stdin: bool,
    },
    /// Revoke a key (idempotent; it cannot be undone).
    Revoke {
        /// The key's id (key_…).
        key_id: String,
        /// Do not ask for confirmation (asked only when stdin is a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Change a key's name, scopes, allowed networks, metadata, expiry, plan or hourly limit.
    Update(UpdateKeyArgs),
    /// Disable a key for now: it answers DISABLED until enabled again.
    Disable {
        /// The key's id (key_…).
        key_id: String,
    },
    /// Enable a disabled key again.
    Enable {
        /// The key's id (key_…).
        key_id: String,
    },
    /// Replace a key by a new one with the same settings and rate-limit state.
    Rotate {
        /// The key's id (key_…).
        key_id: String,
        /// How long the old key keeps working: 0, or a duration with its unit such as 90s,
        /// 24h or 7d (at most 30d). A bare number other than 0 is refused.
        #[arg(long, value_name = "DURATION", default_value = "0")]
        grace_period: String,
        /// The new key expires after N days (1–36500).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36_500))]
        expires_in_days: Option<u32>,
    },
    /// A key's usage over the last N days: by day, endpoint and status.
    Usage {
        /// The key's id (key_…).
        key_id: String,
        /// Days back, today included (1–400).
        #[arg(long, value_name = "N", default_value = "30")]
        days: u32,
    },
}

#[derive(Debug, Args)]
pub struct CreateKeyArgs {
    /// The key's user; created on plan `free` if it does not exist.
    #[arg(long, value_name = "ID")]
    pub user_id: String,
    /// What the key is for (shown in listings; 1–200 printable characters).
    #[arg(long)]
    pub name: String,
    /// The key's own plan (overrides its user's plan for rate limits and features).
    #[arg(long, alias = "tier", value_name = "PLAN")]
    pub plan: Option<String>,
    /// `live` keys are billed and count toward quotas; `test` keys are not.
    #[arg(long, value_enum, default_value = "live")]
    pub environment: EnvironmentArg,
    /// Custom key prefix (default `sk_live` / `sk_test`).
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
    /// The key expires after N days (1–36500).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub expires_in_days: Option<u32>,
    /// Stored in the key's metadata (and on the user, if this creates it).
    #[arg(long, value_name = "E")]
    pub email: Option<String>,
    /// Stored in the key's metadata (and on the user, if this creates it).
    #[arg(long, value_name = "C")]
    pub company: Option<String>,
    /// Metadata entry (repeatable).
    #[arg(long = "meta", value_name = "K=V")]
    pub meta: Vec<String>,
    /// Scope the key carries (repeatable; none = unrestricted).
    #[arg(long = "scope", value_name = "S")]
    pub scopes: Vec<String>,
    /// Client address range allowed to use the key (repeatable).
    #[arg(long = "allow-ip", value_name = "CIDR")]
    pub allow_ips: Vec<String>,
    /// Replaces (or adds) the plan's one-hour window for this key.
    #[arg(long, value_name = "N")]
    pub rate_limit_per_hour: Option<u64>,
}

#[derive(Debug, Args)]
pub struct UpdateKeyArgs {
    /// The key's id (key_…).
    pub key_id: String,
    /// A new name.
    #[arg(long)]
    pub name: Option<String>,
    /// The key's scopes become these (repeatable).
    #[arg(long = "scope", value_name = "S", conflicts_with = "clear_scopes")]
    pub scopes: Vec<String>,
    /// Remove every scope: the key is unrestricted by scope.
    #[arg(long)]
    pub clear_scopes: bool,
    /// The key's allowed networks become these (repeatable).
    #[arg(long = "allow-ip", value_name = "CIDR", conflicts_with = "any_ip")]
    pub allow_ips: Vec<String>,
    /// Remove the network allowlist: any client address may use the key.
    #[arg(long)]
    pub any_ip: bool,
    /// Set a metadata entry (repeatable); other entries are kept.
    #[arg(long = "meta", value_name = "K=V")]
    pub meta: Vec<String>,
    /// Remove a metadata entry (repeatable).
    #[arg(long = "remove-meta", value_name = "K")]
    pub remove_meta: Vec<String>,
    /// The key expires N days from now (1–36500).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36_500), conflicts_with = "no_expiry")]
    pub expires_in_days: Option<u32>,
    /// The key never expires.
    #[arg(long)]
    pub no_expiry: bool,
    /// The key's own plan (overrides its user's plan for rate limits and scopes).
    #[arg(long, value_name = "PLAN", conflicts_with = "user_plan")]
    pub plan: Option<String>,
    /// Remove the key's own plan: it follows its user's plan again.
    #[arg(long)]
    pub user_plan: bool,
    /// Replaces (or adds) the plan's one-hour window for this key (at least 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub rate_limit_per_hour: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user.
    Create {
        /// The user's id, as your system knows the customer (e.g. org:42).
        #[arg(long, value_name = "ID")]
        user_id: String,
        /// The user's plan: its quotas, key cap and prices.
        #[arg(long, alias = "tier", default_value = "free")]
        plan: String,
        /// A contact address, kept on the user.
        #[arg(long, value_name = "E")]
        email: Option<String>,
        /// The company's name, kept on the user.
        #[arg(long, value_name = "C")]
        company: Option<String>,
        /// Metadata entry (repeatable).
        #[arg(long = "meta", value_name = "K=V")]
        meta: Vec<String>,
    },
    /// List users (not deleted), newest first.
    List {
        /// Only users on this plan.
        #[arg(long, alias = "tier")]
        plan: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one user (deleted users too).
    Show {
        /// The user's id.
        user_id: String,
    },
    /// Move a user to another plan, from now.
    SetPlan {
        /// The user's id.
        user_id: String,
        /// The new plan.
        plan: String,
    },
    /// Revoke every key of a user (the user stays); prints how many were revoked.
    RevokeKeys {
        /// The user's id.
        user_id: String,
        /// Do not ask for confirmation (asked only when stdin is a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Delete a user: revokes all its keys, keeps its usage and invoices.
    Delete {
        /// The user's id.
        user_id: String,
        /// Do not ask for confirmation (asked only when stdin is a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PlansCommand {
    /// List plans.
    List,
    /// Create a plan, or change the given settings of an existing one.
    Set(SetPlanArgs),
}

#[derive(Debug, Args)]
pub struct SetPlanArgs {
    /// The plan's name (lowercase letters, digits, `-` and `_`).
    pub name: String,
    /// Requests (units) a key may make in any 60 seconds.
    #[arg(long, value_name = "N")]
    pub per_minute: Option<u64>,
    /// Requests (units) a key may make in any hour.
    #[arg(long, value_name = "N")]
    pub per_hour: Option<u64>,
    /// Requests (units) a key may make in any 24 hours.
    #[arg(long, value_name = "N")]
    pub per_day: Option<u64>,
    /// Token bucket: refill rate per second and capacity, e.g. 10/50.
    #[arg(long, value_name = "RATE/CAPACITY")]
    pub burst: Option<String>,
    /// Units a user's live keys may use in a calendar month (UTC), all keys together.
    #[arg(long, value_name = "N")]
    pub monthly_quota: Option<u64>,
    /// Keys a user may hold at once (revoked and expired ones do not count).
    #[arg(long, value_name = "N")]
    pub max_keys: Option<u64>,
    /// The longest a new or rotated key of this plan's users may live, in days (1–36500):
    /// a later or absent expiry becomes that. Existing keys keep theirs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36_500), conflicts_with = "no_max_key_lifetime")]
    pub max_key_lifetime_days: Option<u32>,
    /// Remove the plan's cap on key lifetimes.
    #[arg(long)]
    pub no_max_key_lifetime: bool,
    /// Price: the monthly base fee, in cents (with --included-requests and
    /// --overage-cents-per-1000).
    #[arg(long, value_name = "N", requires_all = ["included_requests", "overage_cents_per_1000"])]
    pub base_cents: Option<u64>,
    /// Price: units the base fee includes each month.
    #[arg(long, value_name = "N", requires_all = ["base_cents", "overage_cents_per_1000"])]
    pub included_requests: Option<u64>,
    /// Price: cents per 1,000 units beyond the included ones.
    #[arg(long, value_name = "N", requires_all = ["base_cents", "included_requests"])]
    pub overage_cents_per_1000: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations.
    Migrate,
    /// Revert the newest applied migrations.
    Rollback {
        /// How many of the newest migrations to revert.
        #[arg(long, default_value_t = 1, value_name = "N")]
        steps: u32,
        /// Do not ask for confirmation (asked only when stdin is a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Show which migrations are applied.
    Status,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// CSV with a header row: key_hash, user_id and optionally id, name, tier|plan,
    /// created_at, expires_at, is_active, metadata, key_prefix.
    #[arg(long, value_name = "FILE")]
    pub from_csv: PathBuf,
    /// Check every row against the database and report what the import would do (new
    /// keys, duplicates, refusals) without keeping anything.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeakActionArg {
    Revoke,
    Disable,
    Notify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageMode {
    On,
    Off,
}

/// Every setting of `serve`, in one place: each field is a flag (with its `KEYWARD_`
/// environment variable, through clap) and a config-file key of the same name (through
/// serde). All are optional here: flag > environment > config file, then the defaults and
/// range checks of `keyward serve`. Adding a setting is adding a field here and using it.
#[derive(Debug, Default, Args, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// Address to listen on (`host:port`; port 0 picks a free port). Default 127.0.0.1:8080.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_LISTEN",
        value_name = "ADDR"
    )]
    pub listen: Option<String>,
    /// Redis for rate limits shared by every node (`redis://host:port`, or
    /// `redis+cluster://host1:port1,host2:port2` for a Redis Cluster). Default: in process.
    #[arg(
        long,
        env = "KEYWARD_REDIS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub redis_url: Option<String>,
    /// Most connections to PostgreSQL (1–1000; ignored for SQLite). Default 16.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_DATABASE_MAX_CONNECTIONS",
        value_name = "N"
    )]
    pub database_max_connections: Option<u32>,
    /// When Redis fails: fall back to per-node limits (`local`), admit (`open`) or answer
    /// 503 (`closed`). Default local.
    #[arg(
        long,
        env = "KEYWARD_REDIS_FAILURE_MODE",
        hide_env_values = true,
        value_enum,
        value_name = "MODE"
    )]
    pub redis_failure_mode: Option<RedisFailureMode>,
    /// Accept the key in the `api_key` query parameter (URLs end up in logs). Default false.
    #[arg(hide_env_values = true, long, env = "KEYWARD_ALLOW_QUERY_KEY", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub allow_query_key: Option<bool>,
    /// A proxy whose X-Forwarded-For is trusted (repeatable; env: comma list). Default: none.
    #[arg(
        long = "trusted-proxy",
        env = "KEYWARD_TRUSTED_PROXIES",
        hide_env_values = true,
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Serve HTTPS with this PEM certificate (its chain may follow it); needs --tls-key.
    /// SIGHUP reloads the pair for new connections.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_TLS_CERT",
        value_name = "FILE"
    )]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The certificate's PEM private key (PKCS#8, PKCS#1 or SEC1); needs --tls-cert.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_TLS_KEY",
        value_name = "FILE"
    )]
    pub tls_key: Option<std::path::PathBuf>,
    /// Refuse credentials sent over plain HTTP (403 HTTPS_REQUIRED) unless the client is in
    /// --https-exempt-network. Default true; `--require-https=false` turns it off.
    #[arg(hide_env_values = true, long, env = "KEYWARD_REQUIRE_HTTPS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub require_https: Option<bool>,
    /// Clients allowed to send credentials over plain HTTP (repeatable; env: comma list;
    /// `none` for no one). Default 127.0.0.0/8 and ::1/128.
    #[arg(
        long = "https-exempt-network",
        env = "KEYWARD_HTTPS_EXEMPT_NETWORKS",
        hide_env_values = true,
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    #[serde(default)]
    pub https_exempt_networks: Vec<String>,
    /// Failed checks per client address per minute before it is refused (0 = off). Default 100.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_FAILURE_LIMIT",
        value_name = "N"
    )]
    pub failure_limit: Option<u32>,
    /// Length of the brute-force guard's window in seconds (1–86400). Default 60.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_FAILURE_WINDOW_SECONDS",
        value_name = "SECONDS"
    )]
    pub failure_window_seconds: Option<u64>,
    /// IPv6 clients are counted by the brute-force guard per network of this prefix length
    /// (one host usually holds a whole /64). 0–128. Default 64.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_FAILURE_IPV6_PREFIX",
        value_name = "BITS"
    )]
    pub failure_ipv6_prefix: Option<u32>,
    /// Read the admin token from this file (its first line; at least 32 characters). The
    /// token itself is never a flag: set it here or in KEYWARD_ADMIN_TOKEN, not both.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_ADMIN_TOKEN_FILE",
        value_name = "PATH"
    )]
    pub admin_token_file: Option<std::path::PathBuf>,
    /// Management calls made with a user's key, per user per 60-second window (0 = off).
    /// Default 60.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_SELF_SERVICE_LIMIT",
        value_name = "N"
    )]
    pub self_service_limit: Option<u32>,
    /// Put `/metrics` behind `Authorization: Bearer <token>`. Default: open.
    #[arg(
        long,
        env = "KEYWARD_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
    /// Time a client has to send a request's headers (e.g. 10s). Default 10s.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_HEADER_READ_TIMEOUT",
        value_name = "DURATION"
    )]
    pub header_read_timeout: Option<String>,
    /// Time a client has to send a request's body before 408 (e.g. 30s). Default 30s.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_BODY_READ_TIMEOUT",
        value_name = "DURATION"
    )]
    pub body_read_timeout: Option<String>,
    /// An idle keep-alive connection is closed after this long. Default 60s.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_IDLE_TIMEOUT",
        value_name = "DURATION"
    )]
    pub idle_timeout: Option<String>,
    /// Connections served at once; further ones wait to be accepted. Default 10000.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_MAX_CONNECTIONS",
        value_name = "N"
    )]
    pub max_connections: Option<u32>,
    /// Usage analytics: hourly rollups and raw events (key counters and quotas are kept
    /// either way). Default on.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_USAGE",
        value_enum,
        value_name = "on|off"
    )]
    pub usage: Option<UsageMode>,
    /// Days raw usage events are kept (1–3650). Default 30.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_USAGE_RETENTION_DAYS",
        value_name = "N"
    )]
    pub usage_retention_days: Option<u32>,
    /// How often each node writes usage (request counts, quota units, analytics), from
    /// 50ms to 60s. A node killed without a chance to flush (SIGKILL, power loss) loses at
    /// most about this much of its latest admissions. Default 200ms.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_USAGE_FLUSH_INTERVAL",
        value_name = "DURATION"
    )]
    pub usage_flush_interval: Option<String>,
    /// Most memory the in-process key cache takes, in MiB (1–1048576). Each key counts
    /// for its size, metadata included, so large keys mean fewer cached keys, never more
    /// memory. Default 512 (about a million keys with little metadata).
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_KEY_CACHE_MB",
        value_name = "MIB"
    )]
    pub key_cache_mb: Option<u64>,
    /// Deliver billing events (JSON, signed) to this URL.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_BILLING_WEBHOOK_URL",
        value_name = "URL"
    )]
    pub billing_webhook_url: Option<String>,
    /// The HMAC-SHA256 secret of the webhook's `Keyward-Signature`.
    #[arg(
        long,
        env = "KEYWARD_BILLING_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub billing_webhook_secret: Option<String>,
    /// Stripe's API base URL. Default https://api.stripe.com.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_BILLING_STRIPE_BASE_URL",
        value_name = "URL"
    )]
    pub stripe_base_url: Option<String>,
    /// Send meter events to Stripe Billing with this secret key.
    #[arg(
        long,
        env = "KEYWARD_BILLING_STRIPE_SECRET_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub stripe_secret_key: Option<String>,
    /// The Stripe meter's event name. Default `api_requests`.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_BILLING_STRIPE_EVENT_NAME",
        value_name = "NAME"
    )]
    pub stripe_event_name: Option<String>,
    /// Delivery attempts before a billing event is dead-lettered (1–100). Default 8.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_BILLING_MAX_ATTEMPTS",
        value_name = "N"
    )]
    pub billing_max_attempts: Option<u32>,
    /// The first retry's delay in milliseconds (1–3600000); each further one doubles (with
    /// jitter). Default 1000.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_BILLING_RETRY_BASE_MS",
        value_name = "MS"
    )]
    pub billing_retry_base_ms: Option<u64>,
    /// Seconds after an hour ends before its usage is metered (0–86400). Default 300.
    #[arg(
        long,
        env = "KEYWARD_BILLING_METER_DELAY_SECONDS",
        hide_env_values = true,
        value_name = "SECONDS"
    )]
    pub billing_meter_delay_seconds: Option<u64>,
    /// Seconds between looks at the last 24 metered hours for late usage (1–86400).
    /// Default 60.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_BILLING_RECHECK_SECONDS",
        value_name = "SECONDS"
    )]
    pub billing_recheck_seconds: Option<u64>,
    /// Seconds a node's claim on a billing delivery keeps other nodes from sending it (a
    /// node that dies mid-delivery leaves it to another after this), 15 to 3600. Default 60.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_BILLING_LEASE_SECONDS",
        value_name = "SECONDS"
    )]
    pub billing_lease_seconds: Option<u64>,
    /// GitHub's secret-scanning public keys: the JSON document GitHub publishes
    /// (`{"public_keys": [...]}`), saved as a file and re-read on SIGHUP. Enables `POST
    /// /v1/secret-scanning/github`. Default: none (the endpoint answers 404).
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_GITHUB_PUBLIC_KEYS",
        value_name = "FILE"
    )]
    pub github_public_keys: Option<std::path::PathBuf>,
    /// What a leak report does to an active or disabled key it names: `revoke`, `disable`,
    /// or `notify` (audit only). Admin keys are always revoked. Default revoke.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_LEAK_ACTION",
        value_enum,
        value_name = "ACTION"
    )]
    pub leak_action: Option<LeakActionArg>,
    /// Multiplies every webhook retry interval (5s, 5m, 30m, 2h, 5h, 10h, 10h) and the
    /// 5 days after which an endpoint failing every attempt is disabled; for tests, e.g.
    /// 0.001 (0.0001–1000). Default 1.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_WEBHOOK_RETRY_SCALE",
        value_name = "F"
    )]
    pub webhook_retry_scale: Option<f64>,
    /// Days webhook events are kept for replays (1–3650). Default 30.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_WEBHOOK_RETENTION_DAYS",
        value_name = "N"
    )]
    pub webhook_retention_days: Option<u32>,
    /// A network webhooks may never be delivered to, checked at creation and on the
    /// resolved address of each attempt (repeatable; env: comma list; `none` for none).
    /// Default 169.254.0.0/16, fe80::/10, 0.0.0.0/8, 100.100.100.200/32 and
    /// fd00:ec2::254/128 (cloud metadata services, "this host").
    #[arg(
        hide_env_values = true,
        long = "webhook-deny-network",
        env = "KEYWARD_WEBHOOK_DENY_NETWORKS",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub webhook_deny_networks: Vec<String>,
    /// Days before a key's expiry that `key.expiring` is sent (1–3650). Default 7.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_EXPIRY_NOTICE_DAYS",
        value_name = "N"
    )]
    pub expiry_notice_days: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisFailureMode {
    Local,
    Open,
    Closed,
}

impl ServeArgs {
    /// These settings (from flags and the environment) over `file`'s: each one not given
    /// here is taken from the file.
    pub fn over(self, file: &ServeArgs) -> Result<ServeArgs, crate::error::CliError> {
        let unset = |value: &serde_json::Value| {
            value.is_null() || value.as_array().is_some_and(Vec::is_empty)
        };
        let internal = |error: serde_json::Error| {
            crate::error::CliError::failure(format!("cannot merge the settings: {error}"))
        };
        let mut merged = serde_json::to_value(file).map_err(internal)?;
        let given = serde_json::to_value(self).map_err(internal)?;
        if let (Some(merged), serde_json::Value::Object(given)) = (merged.as_object_mut(), given) {
            for (name, value) in given {
                if !unset(&value) {
                    merged.insert(name, value);
                }
            }
        }
        serde_json::from_value(merged).map_err(internal)
    }
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
