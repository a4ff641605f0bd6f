//! Charts drawn on the server as SVG: no script, no library, nothing fetched. Each chart
//! carries a text alternative, and the figures it draws are also printed on the page.

use std::collections::BTreeMap;

use maud::{Markup, html};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 10.0;

/// The colour a decision code is drawn in.
pub fn colour(code: &str) -> &'static str {
    match code {
        "VALID" => "#2e8b57",
        "RATE_LIMITED" => "#e08e0b",
        "QUOTA_EXCEEDED" => "#8e44ad",
        "INVALID" => "#c0392b",
        "REVOKED" => "#7f1d1d",
        "EXPIRED" => "#a16207",
        "DISABLED" => "#64748b",
        "IP_NOT_ALLOWED" => "#0e7490",
        "INSUFFICIENT_SCOPE" => "#2563eb",
        "TOO_MANY_FAILURES" => "#be185d",
        "admitted" => "#2e8b57",
        "rejected" => "#c0392b",
        _ => "#94a3b8",
    }
}

/// A round upper bound for an axis holding `max`, divisible by 4 (the axis has 4 steps).
fn axis_top(max: u64) -> u64 {
    if max <= 4 {
        return 4;
    }
    let magnitude = 10u64.pow(max.ilog10());
    for step in [1, 2, 4, 8, 10] {
        if step * magnitude >= max {
            return step * magnitude;
        }
    }
    10 * magnitude
}

/// Bars over time, each stacked by code. `points` are (label, counts by code), in order.
pub fn stacked(title: &str, points: &[(String, BTreeMap<String, u64>)]) -> Markup {
    let codes: Vec<&String> = {
        let mut codes: Vec<&String> = points.iter().flat_map(|(_, by)| by.keys()).collect();
        codes.sort();
        codes.dedup();
        codes
    };
    let max = points
        .iter()
        .map(|(_, by)| by.values().sum::<u64>())
        .max()
        .unwrap_or(0);
    let top = axis_top(max);
    let plot_w = WIDTH - LEFT - 8.0;
    let plot_h = HEIGHT - BOTTOM - TOP;
    let slot = plot_w / points.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    let y = |v: u64| TOP + plot_h - (v as f64 / top as f64) * plot_h;
    let every = (points.len() / 8).max(1);
    let total: u64 = points.iter().map(|(_, by)| by.values().sum::<u64>()).sum();
    // (x, top, height, colour, tooltip) of every segment, stacked in code order.
    let mut rects: Vec<(f64, f64, f64, &str, String)> = Vec::new();
    for (i, (label, by)) in points.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let mut base = 0u64;
        for code in &codes {
            let n = by.get(*code).copied().unwrap_or(0);
            if n > 0 {
                rects.push((
                    x,
                    y(base + n),
                    y(base) - y(base + n),
                    colour(code),
                    format!("{label} {code}: {n}"),
                ));
                base += n;
            }
        }
    }
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(format!("{title}: {total} requests")) {
                title { (title) }
                @for tick in 0..=4u64 {
                    @let value = top * tick / 4;
                    line x1=(LEFT) x2=(WIDTH - 8.0) y1=(y(value)) y2=(y(value)) stroke="#e5e7eb" {}
                    text x=(LEFT - 6.0) y=(y(value) + 4.0) text-anchor="end" font-size="11" fill="#5b6475" { (value) }
                }
                @for (x, top_y, height, fill, tip) in &rects {
                    rect x=(format!("{x:.1}")) y=(format!("{top_y:.1}")) width=(format!("{bar:.1}"))
                        height=(format!("{height:.1}")) fill=(fill) { title { (tip) } }
                }
                @for (i, (label, _)) in points.iter().enumerate() {
                    @if i % every == 0 {
                        text x=(format!("{:.1}", LEFT + slot * i as f64 + slot / 2.0)) y=(HEIGHT - 10.0) text-anchor="middle" font-size="11" fill="#5b6475" { (label) }
                    }
                }
            }
            figcaption { (title) }
            ul.legend {
                @for code in &codes {
                    li {
                        svg width="10" height="10" viewBox="0 0 10 10" aria-hidden="true" { rect width="10" height="10" rx="2" fill=(colour(code)) {} }
                        " " (code)
                    }
                }
            }
        }
    }
}

/// Horizontal bars of named values, largest first as given.
pub fn bars(title: &str, items: &[(String, u64)]) -> Markup {
    let max = items.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let row = 22.0;
    let height = (items.len().max(1) as f64) * row + 8.0;
    let label_w = 300.0;
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {WIDTH} {height}")) role="img" aria-label=(title) {
                title { (title) }
                @for (i, (label, value)) in items.iter().enumerate() {
                    @let y = 4.0 + row * i as f64;
                    @let w = (WIDTH - label_w - 80.0) * (*value as f64 / max as f64);
                    text x=(label_w - 6.0) y=(y + 15.0) text-anchor="end" font-size="12" fill="#1d2330" {
                        (truncate(label, 40))
                    }
                    rect x=(label_w) y=(y + 3.0) width=(format!("{w:.1}")) height="14" fill="#2457c5" {}
                    text x=(format!("{:.1}", label_w + w + 6.0)) y=(y + 15.0) font-size="12" fill="#5b6475" { (value) }
                }
            }
            figcaption { (title) }
        }
    }
}

fn truncate(text: &str, most: usize) -> String {
    if text.chars().count() <= most {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(most - 1).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers_above_the_largest_bar() {
        for (max, top) in [
            (0, 4),
            (3, 4),
            (7, 8),
            (11, 20),
            (23, 40),
            (180, 200),
            (201, 400),
            (1000, 1000),
        ] {
            assert_eq!(axis_top(max), top, "{max}");
        }
    }

    #[test]
    fn labels_and_values_are_escaped() {
        let mut by = BTreeMap::new();
        by.insert("VALID".to_owned(), 3);
        let svg = stacked("<b>", &[("<script>".to_owned(), by)]).into_string();
        assert!(!svg.contains("<script>") && !svg.contains("<b>"), "{svg}");
        let svg = bars("t", &[("<img src=x>".to_owned(), 1)]).into_string();
        assert!(!svg.contains("<img"), "{svg}");
    }
}
