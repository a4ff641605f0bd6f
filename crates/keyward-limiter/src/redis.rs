//! The Redis limiter: one EVALSHA per check (the script is loaded once and re-sent only if
//! Redis lost it), Redis's own clock, one hash per owner that expires by itself, a
//! multiplexed auto-reconnecting connection, and a timeout on every call.
//!
//! A Redis Cluster (`redis+cluster://host1:port1,host2:port2`) works the same way: every key
//! of a user (its keys' state and its quota) carries the hash tag `{kw:<user>}`, so they
//! share a slot and one script sees them all; the cluster client follows the slot map.
//!
//! The connection is made lazily: a node whose Redis is down when it starts still starts
//! (its failure policy applies) and connects by itself once Redis answers, trying at most
//! once per [`RECONNECT_INTERVAL`] so an outage costs requests nothing but a failed check.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;

use crate::{
    Check, LimitKind, LimitStatus, Limiter, LimiterError, Month, Outcome, QuotaState,
    burst_window_seconds,
};

const TIMEOUT: Duration = Duration::from_millis(500);

/// How long after a failed first connection the next attempt waits.
pub const RECONNECT_INTERVAL: Duration = Duration::from_secs(1);

/// Where Redis is: one server, or a cluster's seed nodes.
enum Client {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

/// A connection to one server (reconnecting by itself) or to a cluster (following its
/// slot map).
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(cmd, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

/// The cluster's seed nodes in `redis+cluster://h1:p1,h2:p2` (`None`: not a cluster URL).
fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    let rest = url.strip_prefix("redis+cluster://")?;
    Some(
        rest.trim_end_matches('/')
            .split(',')
            .map(str::trim)
            .filter(|node| !node.is_empty())
            .map(|node| format!("redis://{node}"))
            .collect(),
    )
}

pub struct RedisLimiter {
    client: Client,
    /// Set once the first connection succeeds; it reconnects by itself from then on.
    connection: OnceLock<Connection>,
    /// Serialises connection attempts; checks arriving meanwhile fail at once.
    connecting: tokio::sync::Mutex<()>,
    /// Milliseconds after `epoch` before which no new attempt is made.
    next_attempt_ms: AtomicU64,
    epoch: Instant,
    script: Script,
    seed: Script,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisLimiter")
    }
}

impl RedisLimiter {
    /// A limiter for `url` (`redis://host:port/db`, or `redis+cluster://h1:p1,h2:p2` for a
    /// Redis Cluster). Only the URL is checked here; the connection is made by
    /// [`RedisLimiter::connect`] or the first check.
    pub fn new(url: &str) -> Result<Self, LimiterError> {
        let bad = |e: redis::RedisError| LimiterError(format!("bad Redis URL: {e}"));
        let client = match cluster_nodes(url) {
            Some(nodes) if nodes.is_empty() => {
                return Err(LimiterError(
                    "bad Redis URL: redis+cluster:// names no node".to_owned(),
                ));
            }
            Some(nodes) => Client::Cluster(
                // One quick retry (a redirection, a reconnect) and then the failure
                // mode decides: while a master fails over, a check must not spend its
                // whole timeout in the client's retries.
                redis::cluster::ClusterClientBuilder::new(nodes)
                    .connection_timeout(TIMEOUT)
                    .response_timeout(TIMEOUT)
                    .retries(1)
                    .min_retry_wait(5)
                    .max_retry_wait(50)
                    .build()
                    .map_err(bad)?,
            ),
            None => Client::Single(redis::Client::open(url).map_err(bad)?),
        };
        Ok(Self {
            client,
            connection: OnceLock::new(),
            connecting: tokio::sync::Mutex::new(()),
            next_attempt_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            script: Script::new(include_str!("../scripts/check.lua")),
            seed: Script::new(include_str!("../scripts/seed_quota.lua")),
        })
    }

    /// A limiter for `url`, connected (an error when Redis cannot be reached now).
    pub async fn connect(url: &str) -> Result<Self, LimiterError> {
        let limiter = Self::new(url)?;
        limiter.connection().await?;
        Ok(limiter)
    }

    /// The shared connection, made now if it does not exist yet and no attempt failed in
    /// the last [`RECONNECT_INTERVAL`].
    async fn connection(&self) -> Result<Connection, LimiterError> {
        if let Some(connection) = self.connection.get() {
            return Ok(connection.clone());
        }
        let unreachable = || LimiterError("Redis is unreachable".to_owned());
        let elapsed =
            |epoch: Instant| u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        if elapsed(self.epoch) < self.next_attempt_ms.load(Ordering::Relaxed) {
            return Err(unreachable());
        }
        let Ok(_attempt) = self.connecting.try_lock() else {
            return Err(unreachable());
        };
        if let Some(connection) = self.connection.get() {
            return Ok(connection.clone());
        }
        let connect = async {
            match &self.client {
                Client::Single(client) => {
                    let config = redis::aio::ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(TIMEOUT))
                        .set_response_timeout(Some(TIMEOUT))
                        .set_number_of_retries(1);
                    client
                        .get_connection_manager_with_config(config)
                        .await
                        .map(Connection::Single)
                }
                Client::Cluster(client) => {
                    client.get_async_connection().await.map(Connection::Cluster)
                }
            }
        };
        let made = tokio::time::timeout(TIMEOUT * 2, connect)
            .await
            .map_err(|_| LimiterError("timed out connecting to Redis".to_owned()))
            .and_then(|made| {
                made.map_err(|e| LimiterError(format!("cannot connect to Redis: {e}")))
            });
        match made {
            Ok(connection) => Ok(self.connection.get_or_init(|| connection).clone()),
            Err(error) => {
                let retry_at = elapsed(self.epoch)
                    .saturating_add(u64::try_from(RECONNECT_INTERVAL.as_millis()).unwrap_or(0));
                self.next_attempt_ms.store(retry_at, Ordering::Relaxed);
                Err(error)
            }
        }
    }

    /// Whether Redis answers a `PING` now.
    pub async fn ping(&self) -> Result<(), LimiterError> {
        let mut connection = self.connection().await?;
        let _: String =
            tokio::time::timeout(TIMEOUT, redis::cmd("PING").query_async(&mut connection))
                .await
                .map_err(|_| LimiterError("Redis did not answer in time".to_owned()))?
                .map_err(|e| LimiterError(e.to_string()))?;
        Ok(())
    }

    /// The Redis key of an owner's state. The braces are a Redis Cluster hash tag: a
    /// group's (user's) keys and its quota share one slot, so one script sees them all.
    pub fn state_key(group: &str, owner: u128) -> String {
        format!("{{kw:{group}}}:s:{owner:032x}")
    }

    /// The Redis key of a group's quota for a period (`YYYY-MM`): a hash of the units each
    /// node process admitted, and their sum in field `*`.
    pub fn quota_key(group: &str, period: impl std::fmt::Display) -> String {
        format!("{{kw:{group}}}:qn:{period}")
    }
}

fn ms_to_seconds(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).div_ceil(1000)
}

#[async_trait]
impl Limiter for RedisLimiter {
    fn shares_quota(&self) -> bool {
        true
    }

    async fn ping(&self) -> Result<(), LimiterError> {
        RedisLimiter::ping(self).await
    }

    async fn seed_quota(
        &self,
        group: &str,
        period: Month,
        units_by_node: &[(String, u64)],
        ttl_seconds: u64,
    ) -> Result<(), LimiterError> {
        let mut invocation = self.seed.key(Self::quota_key(group, period));
        invocation.arg(ttl_seconds.max(1));
        for (node, units) in units_by_node {
            invocation.arg(node).arg(*units);
        }
        let mut connection = self.connection().await?;
        let _: i64 = tokio::time::timeout(TIMEOUT, invocation.invoke_async(&mut connection))
            .await
            .map_err(|_| LimiterError("Redis did not answer in time".to_owned()))?
            .map_err(|e| LimiterError(e.to_string()))?;
        Ok(())
    }

    async fn check(&self, check: &Check<'_>) -> Result<Outcome, LimiterError> {
        let mut invocation = self
            .script
            .key(Self::state_key(check.group.as_str(), check.owner));
        invocation.key(match check.quota {
            Some(quota) => Self::quota_key(check.group.as_str(), quota.period),
            None => Self::quota_key(check.group.as_str(), "-"),
        });
        invocation.arg(check.cost).arg(check.windows.len());
        for window in check.windows {
            invocation.arg(window.window_seconds).arg(window.max);
        }
        match check.burst {
            Some(burst) => invocation.arg(burst.rate_per_second).arg(burst.capacity),
            None => invocation.arg(0).arg(0),
        };
        match check.quota {
            Some(quota) => invocation
                .arg(quota.limit)
                .arg(quota.ttl_seconds)
                .arg(quota.node)
                .arg(quota.node_units),
            None => invocation.arg(0).arg(0).arg("-").arg(0),
        };
        let mut connection = self.connection().await?;
        let reply: Vec<i64> =
            tokio::time::timeout(TIMEOUT, invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| LimiterError("Redis did not answer in time".to_owned()))?
                .map_err(|e| LimiterError(e.to_string()))?;
        if reply.first() == Some(&2) {
            return Ok(Outcome {
                admitted: false,
                limits: Vec::new(),
                quota: Some(QuotaState::Unknown),
            });
        }
        let expected = 1
            + 3 * (check.windows.len() + usize::from(check.burst.is_some()))
            + usize::from(check.quota.is_some());
        if reply.len() != expected {
            return Err(LimiterError(format!(
                "unexpected script reply of {} values",
                reply.len()
            )));
        }
        let admitted = reply[0] == 1;
        let quota = check.quota.map(|_| QuotaState::Used {
            used: reply
                .last()
                .and_then(|&used| u64::try_from(used).ok())
                .unwrap_or(0),
            exceeded: reply[0] == 3,
        });
        let status = |index: usize,
                      kind: LimitKind,
                      own_name: Option<String>,
                      limit: u64,
                      window_seconds: u64| {
            let base = 1 + 3 * index;
            LimitStatus {
                kind,
                own_name,
                limit,
                window_seconds,
                remaining: u64::try_from(reply[base]).unwrap_or(0),
                reset_seconds: ms_to_seconds(reply[base + 1]),
                retry_after: (reply[base + 2] >= 0).then(|| ms_to_seconds(reply[base + 2])),
            }
        };
        let mut limits: Vec<LimitStatus> = check
            .windows
            .iter()
            .enumerate()
            .map(|(i, w)| {
                status(
                    i,
                    LimitKind::Window,
                    w.name.clone(),
                    w.max,
                    w.window_seconds,
                )
            })
            .collect();
        if let Some(burst) = check.burst {
            limits.push(status(
                check.windows.len(),
                LimitKind::Burst,
                None,
                burst.capacity,
                burst_window_seconds(burst),
            ));
        }
        Ok(Outcome {
            admitted,
            limits,
            quota,
        })
    }
}
