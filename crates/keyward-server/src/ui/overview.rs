//! The overview: what `GET /v1/usage/summary?days=N` answers (the same function), drawn
//! as charts with every figure also printed.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use keyward_core::Permission;
use maud::html;

use super::chart;
use super::layout::{self, Params, count};
use super::session::AdminSession;
use crate::error::ApiError;
use crate::reports;
use crate::state::AppState;

#[derive(Debug, Default, serde::Deserialize)]
pub struct ViewQuery {
    view: Option<String>,
}

/// The views, as (query value, label, days of `/v1/usage/summary`).
const VIEWS: [(&str, &str, u32); 3] = [
    ("24h", "Today", 1),
    ("7d", "7 days", 7),
    ("30d", "30 days", 30),
];

pub async fn page(
    State(state): State<AppState>,
    session: AdminSession,
    Params(query): Params<ViewQuery>,
) -> Response {
    let viewer = session.viewer();
    if !session.may(Permission::UsageRead) {
        let content = html! { p { "This admin key cannot read usage; the sections above are the ones it may open." } };
        return layout::page("Overview", &viewer, None, content).into_response();
    }
    let view = query.view.as_deref().unwrap_or("7d");
    let Some(&(view, label, days)) = VIEWS.iter().find(|(name, _, _)| *name == view) else {
        return layout::message(
            axum::http::StatusCode::NOT_FOUND,
            "No such view",
            "The overview shows today, 7 days or 30 days.",
        );
    };
    let summary = match reports::summary(&*state.store, days, Utc::now()).await {
        Ok(summary) => summary,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let points: Vec<_> = summary
        .timeline
        .iter()
        .map(|point| (point.start.clone(), point.by_code.clone()))
        .collect();
    let content = html! {
        p.views {
            @for (name, text, _) in VIEWS {
                a href={ "/ui/?view=" (name) } aria-current=[(name == view).then_some("page")] { (text) }
            }
        }
        dl.grid #totals data-days=(summary.days) {
            div.stat { dt { "Requests" } dd #total-requests { (count(summary.requests)) } }
            div.stat { dt { "Rejected" } dd #total-rejected { (count(summary.rejected)) } }
            div.stat { dt { "Rejection rate" } dd #rejection-rate { (format!("{:.1} %", summary.rejection_rate * 100.0)) } }
            div.stat { dt { "Latency p50 / p95 / p99" } dd #latency { (ms(summary.latency_ms.p50)) " / " (ms(summary.latency_ms.p95)) " / " (ms(summary.latency_ms.p99)) } }
        }
        h2 { "Requests by decision, " (label.to_lowercase()) }
        (chart::stacked(&format!("Requests by decision code, {}", label.to_lowercase()), &points))
        div.scroll {
            table #by-code {
                caption.hint { "Requests by decision code" }
                thead { tr { th { "Code" } th.num { "Requests" } } }
                tbody {
                    @for (code, n) in &summary.by_code {
                        tr { td { (code) } td.num data-code=(code) { (count(*n)) } }
                    }
                }
            }
        }
        h2 { "Top keys" }
        (chart::bars("Requests per key", &summary.top_keys.iter().map(|k| (k.key_id.clone(), k.requests)).collect::<Vec<_>>()))
        div.scroll {
            table #top-keys {
                thead { tr { th { "Key" } th { "User" } th.num { "Requests" } th.num { "Rejected" } th.num { "Units" } } }
                tbody {
                    @for key in &summary.top_keys {
                        tr {
                            td { a href={ "/ui/keys/" (key.key_id) } { code { (key.key_id) } } }
                            td { (key.user_id.as_deref().unwrap_or("—")) }
                            td.num { (count(key.requests)) }
                            td.num { (count(key.rejected)) }
                            td.num { (count(key.units)) }
                        }
                    }
                }
            }
        }
        h2 { "Top endpoints" }
        div.scroll {
            table #top-endpoints {
                thead { tr { th { "Endpoint" } th.num { "Requests" } th.num { "Rejected" } th.num { "Rejection rate" } } }
                tbody {
                    @for endpoint in &summary.top_endpoints {
                        tr {
                            td { @if endpoint.endpoint.is_empty() { "(none given)" } @else { code { (endpoint.endpoint) } } }
                            td.num { (count(endpoint.requests)) }
                            td.num { (count(endpoint.rejected)) }
                            td.num { (format!("{:.1} %", endpoint.rejection_rate * 100.0)) }
                        }
                    }
                }
            }
        }
        p.hint { "The same figures as GET /v1/usage/summary?days=" (days) ". Usage is written every 200 ms." }
    };
    layout::page("Overview", &viewer, None, content).into_response()
}

/// A latency percentile (`—` when nothing was measured).
fn ms(value: Option<u64>) -> String {
    value.map_or_else(|| "—".to_owned(), |ms| format!("{ms} ms"))
}
