//! A sweep's summary: per point, each metric's mean over the seeds with a 95% confidence
//! interval (Student's t), and the summary written as CSV and JSON.
//!
//! Everything is computed from the rows in task order, so the same rows give the same bytes
//! however many machines ran them.

use std::fmt::Write;

use serde::Serialize;

use super::{Row, Sweep};

/// A metric at one point, over its runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Estimate {
    /// Runs that reported the metric.
    pub n: usize,
    /// Their mean (`None` with no run).
    pub mean: Option<f64>,
    /// Half the width of the 95% confidence interval of the mean (`None` below two runs).
    pub ci95: Option<f64>,
    /// The smallest value.
    pub min: Option<f64>,
    /// The largest.
    pub max: Option<f64>,
}

/// One point of the grid, summarised.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PointSummary {
    /// The value of each varied key, in order.
    pub values: Vec<toml::Value>,
    /// Runs (one per seed).
    pub runs: usize,
    /// Runs in which a named check failed.
    pub runs_with_failed_checks: usize,
    /// Each metric, in the sweep's order.
    pub metrics: Vec<Estimate>,
}

/// A sweep's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// The sweep's name.
    pub name: String,
    /// What it shows.
    pub description: String,
    /// The varied keys.
    pub axes: Vec<String>,
    /// The summarised report keys.
    pub metrics: Vec<String>,
    /// The seeds every point ran with.
    pub seeds: Vec<u64>,
    /// Every point, the first axis varying fastest.
    pub points: Vec<PointSummary>,
}

/// The two-sided 95% quantile of Student's t with `df` degrees of freedom.
pub fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df - 1],
        _ => {
            // Cornish-Fisher expansion around the normal quantile: within 0.001 above 30.
            let z: f64 = 1.959_964;
            let v = df as f64;
            z + (z.powi(3) + z) / (4.0 * v)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * v * v)
        }
    }
}

/// The estimate of a metric from its values.
pub fn estimate(values: &[f64]) -> Estimate {
    let n = values.len();
    if n == 0 {
        return Estimate {
            n,
            mean: None,
            ci95: None,
            min: None,
            max: None,
        };
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let ci95 = (n >= 2).then(|| {
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        t_975(n - 1) * (variance / n as f64).sqrt()
    });
    Estimate {
        n,
        mean: Some(mean),
        ci95,
        min: values.iter().copied().reduce(f64::min),
        max: values.iter().copied().reduce(f64::max),
    }
}

/// Summarises `rows`, every task's, in task order.
pub fn summarise(sweep: &Sweep, rows: &[Row]) -> Summary {
    // Rows grouped by point in one pass (a filter per point was quadratic in the sweep).
    let mut by_point: Vec<Vec<&Row>> = vec![Vec::new(); sweep.points.len()];
    for row in rows {
        if let Some(group) = by_point.get_mut(row.point) {
            group.push(row);
        }
    }
    let points = by_point
        .into_iter()
        .enumerate()
        .map(|(point, mine)| {
            let metrics = (0..sweep.file.metrics.len())
                .map(|m| {
                    let values: Vec<f64> = mine.iter().filter_map(|row| row.values[m]).collect();
                    estimate(&values)
                })
                .collect();
            PointSummary {
                values: sweep.points[point].values.clone(),
                runs: mine.len(),
                runs_with_failed_checks: mine.iter().filter(|row| !row.passed).count(),
                metrics,
            }
        })
        .collect();
    Summary {
        name: sweep.file.name.clone(),
        description: sweep.file.description.clone(),
        axes: sweep
            .file
            .vary
            .iter()
            .map(|axis| axis.key.clone())
            .collect(),
        metrics: sweep.file.metrics.clone(),
        seeds: sweep.seeds.clone(),
        points,
    }
}

impl Summary {
    /// One line per point: the varied keys, the runs, then each metric's mean, confidence
    /// half-width, runs, smallest and largest value.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let mut header: Vec<String> = self.axes.iter().map(|a| csv_field(a)).collect();
        header.extend(["runs".into(), "runs_with_failed_checks".into()]);
        for metric in &self.metrics {
            for part in ["mean", "ci95", "n", "min", "max"] {
                header.push(csv_field(&format!("{metric}_{part}")));
            }
        }
        let _ = writeln!(out, "{}", header.join(","));
        for point in &self.points {
            let mut fields: Vec<String> = point
                .values
                .iter()
                .map(|v| csv_field(&value_text(v)))
                .collect();
            fields.push(point.runs.to_string());
            fields.push(point.runs_with_failed_checks.to_string());
            for estimate in &point.metrics {
                let number = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
                fields.extend([
                    number(estimate.mean),
                    number(estimate.ci95),
                    estimate.n.to_string(),
                    number(estimate.min),
                    number(estimate.max),
                ]);
            }
            let _ = writeln!(out, "{}", fields.join(","));
        }
        out
    }

    /// The summary as pretty JSON.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// A scenario value as text: a string without its quotes.
pub fn value_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A CSV field, quoted when it must be.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_estimate_has_the_mean_and_a_t_interval() {
        let e = estimate(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(e.n, 4);
        assert_eq!(e.mean, Some(2.5));
        // s = sqrt(5/3), t(3) = 3.182: 3.182 * sqrt(5/3) / 2.
        let expected = 3.182 * (5.0f64 / 3.0).sqrt() / 2.0;
        assert!((e.ci95.unwrap() - expected).abs() < 1e-12);
        assert_eq!((e.min, e.max), (Some(1.0), Some(4.0)));
        assert_eq!(estimate(&[7.0]).ci95, None);
        assert_eq!(estimate(&[]).mean, None);
    }

    #[test]
    fn t_quantiles_meet_the_normal_one() {
        assert!((t_975(30) - 2.042).abs() < 1e-9);
        assert!((t_975(31) - 2.040).abs() < 0.001);
        assert!((t_975(120) - 1.980).abs() < 0.001);
        assert!((t_975(100_000) - 1.960).abs() < 0.001);
        assert!((2..200).all(|df| t_975(df) < t_975(df - 1)));
    }

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
    }
}
