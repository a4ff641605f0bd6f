//! The Redis limiter: one EVALSHA per check (the script is loaded once and re-sent only if
//! Redis lost it), Redis's own clock, one hash per owner that expires by itself, a
//! multiplexed auto-reconnecting connection, and a timeout on every call.

use std::borrow::Cow;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;

use crate::{Check, LimitStatus, Limiter, LimiterError, Outcome, burst_window_seconds};

const TIMEOUT: Duration = Duration::from_millis(500);

pub struct RedisLimiter {
    connection: ConnectionManager,
    script: Script,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisLimiter")
    }
}

impl RedisLimiter {
    /// Connects to `url` (`redis://host:port/db`).
    pub async fn connect(url: &str) -> Result<Self, LimiterError> {
        let client =
            redis::Client::open(url).map_err(|e| LimiterError(format!("bad Redis URL: {e}")))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let connection = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| LimiterError("timed out connecting to Redis".to_owned()))?
        .map_err(|e| LimiterError(format!("cannot connect to Redis: {e}")))?;
        Ok(Self {
            connection,
            script: Script::new(include_str!("../scripts/check.lua")),
        })
    }

    /// The Redis key of an owner's state; the braces are a Redis Cluster hash tag.
    pub fn state_key(owner: u128) -> String {
        format!("{{kw:{owner:032x}}}")
    }
}

fn ms_to_seconds(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).div_ceil(1000)
}

#[async_trait]
impl Limiter for RedisLimiter {
    async fn check(&self, check: &Check<'_>) -> Result<Outcome, LimiterError> {
        let mut invocation = self.script.key(Self::state_key(check.owner));
        invocation.arg(check.cost).arg(check.windows.len());
        for window in check.windows {
            invocation.arg(window.window_seconds).arg(window.max);
        }
        match check.burst {
            Some(burst) => invocation.arg(burst.rate_per_second).arg(burst.capacity),
            None => invocation.arg(0).arg(0),
        };
        let mut connection = self.connection.clone();
        let reply: Vec<i64> =
            tokio::time::timeout(TIMEOUT, invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| LimiterError("Redis did not answer in time".to_owned()))?
                .map_err(|e| LimiterError(e.to_string()))?;
        let expected = 1 + 3 * (check.windows.len() + usize::from(check.burst.is_some()));
        if reply.len() != expected {
            return Err(LimiterError(format!(
                "unexpected script reply of {} values",
                reply.len()
            )));
        }
        let admitted = reply[0] == 1;
        let status = |index: usize, name: Cow<'static, str>, limit: u64, window_seconds: u64| {
            let base = 1 + 3 * index;
            LimitStatus {
                name,
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
            .map(|(i, w)| status(i, w.display_name(), w.max, w.window_seconds))
            .collect();
        if let Some(burst) = check.burst {
            limits.push(status(
                check.windows.len(),
                Cow::Borrowed("burst"),
                burst.capacity,
                burst_window_seconds(burst),
            ));
        }
        Ok(Outcome { admitted, limits })
    }
}
