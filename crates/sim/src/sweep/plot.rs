//! A sweep's summary as an SVG plot: one panel per metric, the first varied key on the x
//! axis, one series per combination of the other keys, the mean with its 95% interval as an
//! error bar, reference values dashed, marks as vertical lines, axes with ticks and titles,
//! and a legend.

use std::fmt::Write;

use super::SweepFile;
use super::stats::{Summary, value_text};
use crate::report::escape;
use crate::scenario::{parse_size, parse_span};

const WIDTH: f64 = 760.0;
const PANEL_HEIGHT: f64 = 300.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 220.0;
const TOP: f64 = 50.0;
const GAP: f64 = 70.0;
/// References are grey, told apart by their dashes.
const REFERENCE_DASHES: [&str; 4] = ["8 4", "2 3", "12 3 2 3", "4 4"];
const REFERENCE_GREYS: [&str; 4] = ["#333", "#777", "#aaa", "#555"];
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
];

/// Where each point lies on the x axis: numbers as they are, durations in seconds, sizes in
/// MB, anything else by its place in the list.
struct XAxis {
    positions: Vec<f64>,
    /// Tick labels for a categorical axis.
    categories: Option<Vec<String>>,
}

fn x_axis(summary: &Summary) -> XAxis {
    let values: Vec<&toml::Value> = summary
        .points
        .iter()
        .filter_map(|p| p.values.first())
        .collect();
    let numeric: Option<Vec<f64>> = values
        .iter()
        .map(|value| match value {
            toml::Value::Integer(i) => Some(*i as f64),
            toml::Value::Float(f) => Some(*f),
            // A duration in seconds, a size in megabytes.
            toml::Value::String(text) => parse_span(text)
                .map(|span| span.as_secs_f64())
                .or_else(|_| parse_size(text).map(|size| size.0 as f64 / 1e6))
                .ok(),
            _ => None,
        })
        .collect();
    match numeric {
        Some(positions) if !positions.is_empty() => XAxis {
            positions,
            categories: None,
        },
        _ => {
            let mut labels: Vec<String> = Vec::new();
            let positions = values
                .iter()
                .map(|value| {
                    let text = value_text(value);
                    let at = labels.iter().position(|l| *l == text).unwrap_or_else(|| {
                        labels.push(text);
                        labels.len() - 1
                    });
                    at as f64
                })
                .collect();
            XAxis {
                positions,
                categories: Some(labels),
            }
        }
    }
}

/// About five round tick values covering `[low, high]`.
pub fn ticks(low: f64, high: f64) -> Vec<f64> {
    let span = (high - low).abs().max(1e-12);
    let raw = span / 5.0;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|step| span / step <= 6.0)
        .unwrap_or(10.0 * power);
    let first = (low / step).ceil() as i64;
    let last = (high / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A tick's label: no more digits than the step needs.
fn tick_label(value: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{value:.decimals$}")
}

/// Draws `summary` (of `file`'s sweep).
pub fn svg(summary: &Summary, file: &SweepFile) -> String {
    let x = x_axis(summary);
    let series_key = |point: usize| -> String {
        summary.points[point]
            .values
            .iter()
            .zip(&summary.axes)
            .skip(1)
            .map(|(value, axis)| format!("{axis} = {}", value_text(value)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut series: Vec<(String, Vec<usize>)> = Vec::new();
    for point in 0..summary.points.len() {
        let key = series_key(point);
        match series.iter_mut().find(|(k, _)| *k == key) {
            Some((_, points)) => points.push(point),
            None => series.push((key, vec![point])),
        }
    }
    let (x_low, x_high) = {
        let mut all: Vec<f64> = x.positions.clone();
        all.extend(
            file.reference
                .iter()
                .flat_map(|r| r.points.iter().map(|p| p[0])),
        );
        all.extend(file.mark.iter().map(|m| m.x));
        let low = all.iter().copied().fold(f64::INFINITY, f64::min);
        let high = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let pad = ((high - low) * 0.05).max(if x.categories.is_some() { 0.5 } else { 1e-9 });
        (low - pad, high + pad)
    };
    let plot_width = WIDTH - LEFT - RIGHT;
    let x_of = |v: f64| LEFT + (v - x_low) / (x_high - x_low) * plot_width;
    let x_title = if file.labels.x.is_empty() {
        summary.axes.first().cloned().unwrap_or_default()
    } else {
        file.labels.x.clone()
    };
    let mut body = String::new();
    for (m, metric) in summary.metrics.iter().enumerate() {
        let top = TOP + m as f64 * (PANEL_HEIGHT + GAP);
        let bottom = top + PANEL_HEIGHT;
        let mut ys: Vec<f64> = Vec::new();
        for point in &summary.points {
            let e = &point.metrics[m];
            if let Some(mean) = e.mean {
                let half = e.ci95.unwrap_or(0.0);
                ys.extend([mean - half, mean + half]);
            }
        }
        for reference in file.reference.iter().filter(|r| r.metric == *metric) {
            ys.extend(reference.points.iter().map(|p| p[1]));
        }
        let mut y_low = ys.iter().copied().fold(f64::INFINITY, f64::min);
        let mut y_high = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !y_low.is_finite() {
            (y_low, y_high) = (0.0, 1.0);
        }
        if y_low >= 0.0 && y_low < (y_high - y_low) {
            y_low = 0.0;
        }
        let pad = ((y_high - y_low) * 0.08).max(1e-9);
        let (y_low, y_high) = (y_low - if y_low == 0.0 { 0.0 } else { pad }, y_high + pad);
        let y_of = |v: f64| bottom - (v - y_low) / (y_high - y_low) * PANEL_HEIGHT;
        let y_title = file
            .labels
            .y
            .get(metric)
            .and_then(|v| v.as_str())
            .unwrap_or(metric);
        // The frame, the ticks and the titles.
        let _ = writeln!(
            body,
            "<rect x=\"{LEFT}\" y=\"{top}\" width=\"{plot_width}\" height=\"{PANEL_HEIGHT}\" fill=\"none\" stroke=\"#444\"/>"
        );
        let y_ticks = ticks(y_low, y_high);
        let y_step = y_ticks.get(1).map_or(1.0, |t| t - y_ticks[0]);
        for tick in &y_ticks {
            let y = y_of(*tick);
            let _ = writeln!(
                body,
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{LEFT}\" y2=\"{y:.1}\" stroke=\"#444\"/><line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
                LEFT - 5.0,
                LEFT + plot_width,
                LEFT - 8.0,
                y + 4.0,
                tick_label(*tick, y_step)
            );
        }
        let x_ticks: Vec<(f64, String)> = match &x.categories {
            Some(labels) => labels
                .iter()
                .enumerate()
                .map(|(i, label)| (i as f64, label.clone()))
                .collect(),
            None => {
                let ticks = ticks(x_low, x_high);
                let step = ticks.get(1).map_or(1.0, |t| t - ticks[0]);
                ticks.iter().map(|t| (*t, tick_label(*t, step))).collect()
            }
        };
        for (tick, label) in &x_ticks {
            let at = x_of(*tick);
            let _ = writeln!(
                body,
                "<line x1=\"{at:.1}\" y1=\"{bottom}\" x2=\"{at:.1}\" y2=\"{:.1}\" stroke=\"#444\"/><text x=\"{at:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
                bottom + 5.0,
                bottom + 18.0,
                escape(label)
            );
        }
        let _ = writeln!(
            body,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">{}</text><text transform=\"translate({:.1} {:.1}) rotate(-90)\" font-size=\"12\" text-anchor=\"middle\">{}</text>",
            LEFT + plot_width / 2.0,
            bottom + 36.0,
            escape(&x_title),
            LEFT - 55.0,
            top + PANEL_HEIGHT / 2.0,
            escape(y_title)
        );
        // Marks.
        for mark in &file.mark {
            let at = x_of(mark.x);
            let _ = writeln!(
                body,
                "<line x1=\"{at:.1}\" y1=\"{top}\" x2=\"{at:.1}\" y2=\"{bottom}\" stroke=\"#888\" stroke-dasharray=\"2 3\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#555\">{}</text>",
                at + 3.0,
                top + 12.0,
                escape(&mark.label)
            );
        }
        // References: dashed, hollow squares.
        for (r, reference) in file
            .reference
            .iter()
            .filter(|r| r.metric == *metric)
            .enumerate()
        {
            let points: Vec<String> = reference
                .points
                .iter()
                .map(|p| format!("{:.1},{:.1}", x_of(p[0]), y_of(p[1])))
                .collect();
            let colour = REFERENCE_GREYS[r % REFERENCE_GREYS.len()];
            let dash = REFERENCE_DASHES[r % REFERENCE_DASHES.len()];
            let _ = writeln!(
                body,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" stroke-dasharray=\"{dash}\" points=\"{}\"/>",
                points.join(" ")
            );
            for p in &reference.points {
                let _ = writeln!(
                    body,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"7\" height=\"7\" fill=\"white\" stroke=\"{colour}\"/>",
                    x_of(p[0]) - 3.5,
                    y_of(p[1]) - 3.5
                );
            }
            legend_entry(
                &mut body,
                top + 14.0 * r as f64,
                colour,
                Some(dash),
                &reference.label,
            );
        }
        // Measured series: the mean joined, the interval as an error bar.
        let references = file
            .reference
            .iter()
            .filter(|r| r.metric == *metric)
            .count();
        for (s, (key, points)) in series.iter().enumerate() {
            let colour = COLOURS[s % COLOURS.len()];
            let mut line: Vec<String> = Vec::new();
            for &point in points {
                let e = &summary.points[point].metrics[m];
                let Some(mean) = e.mean else { continue };
                let (px, py) = (x_of(x.positions[point]), y_of(mean));
                line.push(format!("{px:.1},{py:.1}"));
                if let Some(half) = e.ci95 {
                    let (low, high) = (y_of(mean - half), y_of(mean + half));
                    let _ = writeln!(
                        body,
                        "<line x1=\"{px:.1}\" y1=\"{low:.1}\" x2=\"{px:.1}\" y2=\"{high:.1}\" stroke=\"{colour}\"/><line x1=\"{:.1}\" y1=\"{low:.1}\" x2=\"{:.1}\" y2=\"{low:.1}\" stroke=\"{colour}\"/><line x1=\"{:.1}\" y1=\"{high:.1}\" x2=\"{:.1}\" y2=\"{high:.1}\" stroke=\"{colour}\"/>",
                        px - 4.0,
                        px + 4.0,
                        px - 4.0,
                        px + 4.0
                    );
                }
                let _ = writeln!(
                    body,
                    "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3.5\" fill=\"{colour}\"/>"
                );
            }
            let _ = writeln!(
                body,
                "<polyline fill=\"none\" stroke=\"{colour}\" points=\"{}\"/>",
                line.join(" ")
            );
            let label = if key.is_empty() { "measured" } else { key };
            legend_entry(
                &mut body,
                top + 14.0 * (references + s) as f64,
                colour,
                None,
                label,
            );
        }
    }
    let height = TOP + summary.metrics.len() as f64 * (PANEL_HEIGHT + GAP);
    let seeds = summary.seeds.len();
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH:.0}\" height=\"{height:.0}\" font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-size=\"14\">{}</text>\n<text x=\"10\" y=\"36\" font-size=\"11\" fill=\"#555\">mean of {seeds} seed{} per point, bars: 95% confidence interval</text>\n{body}</svg>\n",
        escape(&summary.name),
        if seeds == 1 { "" } else { "s" }
    )
}

fn legend_entry(body: &mut String, y: f64, colour: &str, dash: Option<&str>, label: &str) {
    let x = WIDTH - RIGHT + 12.0;
    let dash = dash
        .map(|dash| format!(" stroke-dasharray=\"{dash}\""))
        .unwrap_or_default();
    let _ = writeln!(
        body,
        "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">{}</text>",
        x + 18.0,
        x + 22.0,
        y + 3.5,
        escape(label)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let labels: Vec<String> = ticks(0.0, 1.0)
            .iter()
            .map(|t| tick_label(*t, 0.2))
            .collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let t = ticks(0.23, 0.47);
        assert!(t.len() >= 3 && t.len() <= 7, "{t:?}");
        assert!(t.iter().all(|v| (0.23..=0.47).contains(v)));
        assert_eq!(ticks(0.0, 57.8), vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0]);
    }
}
