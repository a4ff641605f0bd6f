//! `keyward keys`: create, list, show, update, rotate, revoke and the rest.

use clap::{Args, Subcommand, ValueEnum};

use super::manage::PageArgs;

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
