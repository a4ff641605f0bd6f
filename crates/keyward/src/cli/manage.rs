//! The other management commands: users, plans, usage, audit, admin keys, webhooks,
//! billing and the database.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

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
