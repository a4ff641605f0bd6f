//! Logging (tracing, JSON or text) and the Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber once: `RUST_LOG` filters (default `info`),
/// `KEYWARD_LOG_FORMAT=json` switches to JSON lines. Logs go to stderr; stdout carries only
/// the `listening` line.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("KEYWARD_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // Already installed (several servers in one test process): keep the first.
    let _ = result;
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001,
                    0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ])
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .clone()
}

/// Registers the counters and gauges that only move when something goes wrong, so that
/// `/metrics` shows them at 0 from the start (an alert on "absent" is never needed). The
/// per-code decision and key-cache counters are registered by the verifier, the HTTP
/// families (each documented operation's success) by the router, and the billing
/// deliveries (each configured sink's outcomes) by the billing task.
pub fn register_quiet_metrics() {
    metrics::counter!("keyward_limiter_fallbacks_total").increment(0);
    metrics::counter!("keyward_usage_events_shed_total").increment(0);
    metrics::counter!("keyward_usage_write_failures_total").increment(0);
    metrics::gauge!("keyward_usage_pending_keys").increment(0.0);
}
