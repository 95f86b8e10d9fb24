//! One run's results as a table of numbers: the text table, the JSON and the sentences under
//! them are all drawn from it, so nothing is claimed that the table does not show.
//!
//! Percentiles follow [the rule](crate::percentile): a value only with at least 10 samples
//! beyond it, `None` otherwise.

use std::fmt::Write as _;

use super::live::LiveModeReport;
use super::sim::{Mode, ModeReport};
use crate::percentile;
use crate::verdict::{judge, sentence, Candidate, Metric, Noise};

/// The percentiles of the live tables.
pub const LIVE_PERCENTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];
/// The percentiles of the simulation's table.
pub const SIM_PERCENTILES: [f64; 3] = [0.5, 0.99, 0.999];

/// One mode's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The mode.
    pub mode: Mode,
    /// Its hedging setting, as `serve --hedge` writes it (`fixed:10ms`).
    pub setting: String,
    /// Latency samples behind the percentiles.
    pub samples: u64,
    /// Each percentile in milliseconds, `None` without enough samples.
    pub values: Vec<Option<f64>>,
    /// The slowest sample, in milliseconds.
    pub max_ms: Option<f64>,
    /// Extra calls (or reads) beyond one per key, in percent.
    pub extra_pct: f64,
    /// Calls (or reads) that started work beyond one per key, in percent of keys: the work a
    /// losing hedge or tied copy did although another answered.
    pub duplicate_work_pct: f64,
    /// Requests that failed (their latency is in the samples too).
    pub errors: u64,
}

/// The table of one run: modes simplest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// The percentiles of the columns, in (0, 1).
    pub percentiles: Vec<f64>,
    /// One row per mode, simplest first.
    pub rows: Vec<Row>,
    /// What the extra load is made of: `calls` live, `reads` simulated.
    pub unit: &'static str,
    /// Decimals of the extra load.
    pub cost_decimals: usize,
}

impl Measured {
    /// The table of a live run.
    pub fn live(reports: &[LiveModeReport]) -> Measured {
        Measured {
            percentiles: LIVE_PERCENTILES.to_vec(),
            rows: reports
                .iter()
                .map(|r| Row {
                    mode: r.mode,
                    setting: r.hedge.clone(),
                    samples: r.load.histogram.count(),
                    values: LIVE_PERCENTILES
                        .iter()
                        .map(|&q| percentile::of_ms(&r.load.histogram, q))
                        .collect(),
                    max_ms: r.load.histogram.max().map(crate::ms::of),
                    extra_pct: r.extra_pct,
                    duplicate_work_pct: r.duplicate_work_pct,
                    errors: r.load.errors,
                })
                .collect(),
            unit: "calls",
            cost_decimals: 1,
        }
    }

    /// The table of a simulated run.
    pub fn sim(reports: &[ModeReport]) -> Measured {
        let ms = |d: Option<std::time::Duration>| d.map(crate::ms::of);
        Measured {
            percentiles: SIM_PERCENTILES.to_vec(),
            rows: reports
                .iter()
                .map(|r| Row {
                    mode: r.mode,
                    setting: r.setting.clone(),
                    samples: r.requests as u64,
                    values: vec![ms(r.p50), ms(r.p99), ms(r.p999)],
                    max_ms: ms(Some(r.max)),
                    extra_pct: r.extra_pct,
                    duplicate_work_pct: r.duplicate_work_pct,
                    errors: 0,
                })
                .collect(),
            unit: "reads",
            cost_decimals: 2,
        }
    }

    /// The values of column `p` (one per row).
    pub fn column(&self, p: usize) -> Vec<Option<f64>> {
        self.rows.iter().map(|r| r.values[p]).collect()
    }

    /// What `row` paid: `1.4% extra calls` (nothing for no hedging).
    /// Tied requests also say their duplicate work: their extra copies are mostly cancelled
    /// before they cost anything.
    pub fn cost(&self, row: &Row) -> Option<String> {
        (row.mode != Mode::None).then(|| {
            let mut cost = format!(
                "{:.*}% extra {}",
                self.cost_decimals, row.extra_pct, self.unit
            );
            if row.mode == Mode::Tied {
                cost.push_str(&format!(
                    ", {:.*}% duplicate work",
                    self.cost_decimals, row.duplicate_work_pct
                ));
            }
            cost
        })
    }

    /// The fewest samples of any row.
    pub fn min_samples(&self) -> u64 {
        self.rows.iter().map(|r| r.samples).min().unwrap_or(0)
    }

    /// One sentence per percentile: who was best, at what cost, and whether a simpler mode did
    /// as well (two values are "the same" under `noise`, which `tie` names); then one for the
    /// percentiles the samples cannot support.
    pub fn sentences(&self, noise: Noise, tie: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut unsupported = Vec::new();
        for (p, &q) in self.percentiles.iter().enumerate() {
            let column = self.column(p);
            if column.iter().all(Option::is_none) {
                unsupported.push(q);
                continue;
            }
            let verdict = judge(&column, |i, j| {
                noise.tied(column[i].unwrap_or(0.0), column[j].unwrap_or(0.0))
            });
            let candidates: Vec<Candidate> = self
                .rows
                .iter()
                .map(|r| Candidate {
                    name: r.mode.name().to_string(),
                    value: r.values[p],
                    note: errors_note(r.errors),
                    cost: self.cost(r),
                })
                .collect();
            let label = percentile::label(q);
            let metric = Metric {
                name: &label,
                unit: " ms",
                decimals: 1,
                tie,
            };
            out.push(sentence(&metric, &candidates, verdict));
        }
        if let Some(text) = unsupported_sentence(&unsupported, self.min_samples(), "per mode") {
            out.push(text);
        }
        out
    }
}

/// ` with 356 errors` when requests failed: a fast failure is no win.
pub fn errors_note(errors: u64) -> String {
    if errors == 0 {
        String::new()
    } else {
        format!(" with {errors} errors")
    }
}

/// `p99.9: n/a, 750 samples per mode are too few (...)`.
pub fn unsupported_sentence(percentiles: &[f64], samples: u64, per: &str) -> Option<String> {
    if percentiles.is_empty() {
        return None;
    }
    let needs: Vec<String> = percentiles
        .iter()
        .map(|&q| {
            format!(
                "{} needs {}",
                percentile::label(q),
                percentile::min_samples(q)
            )
        })
        .collect();
    let labels: Vec<String> = percentiles.iter().map(|&q| percentile::label(q)).collect();
    Some(format!(
        "{}: n/a, {samples} samples {per} are too few ({}: at least {} beyond the percentile).",
        labels.join(", "),
        needs.join(", "),
        percentile::BEYOND
    ))
}

/// A plain-text table: mode, samples, the percentiles (`n/a` without enough samples), max and
/// extra load.
pub fn text_table(measured: &Measured, extra: &[(&str, Vec<String>)]) -> String {
    let mut header = vec!["mode".to_string(), "samples".to_string()];
    header.extend(
        measured
            .percentiles
            .iter()
            .map(|&q| format!("{} ms", percentile::label(q))),
    );
    header.push("max ms".into());
    header.push(format!("extra {} %", measured.unit));
    header.push("dup work %".into());
    header.extend(extra.iter().map(|(name, _)| name.to_string()));
    let mut rows = vec![header];
    for (i, r) in measured.rows.iter().enumerate() {
        let mut row = vec![
            format!("{} ({})", r.mode.name(), r.setting),
            r.samples.to_string(),
        ];
        row.extend(
            r.values
                .iter()
                .map(|v| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.1}"))),
        );
        row.push(r.max_ms.map_or_else(|| "-".into(), |v| format!("{v:.1}")));
        row.push(format!("{:.*}", measured.cost_decimals, r.extra_pct));
        row.push(format!(
            "{:.*}",
            measured.cost_decimals, r.duplicate_work_pct
        ));
        row.extend(extra.iter().map(|(_, cells)| cells[i].clone()));
        rows.push(row);
    }
    align(&rows)
}

/// Aligns rows: the first column left, the others right.
pub fn align(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let w = widths[c];
            if c == 0 {
                let _ = write!(line, "{cell:<w$}");
            } else {
                let _ = write!(line, "  {cell:>w$}");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// The table's JSON for one row: every percentile (`null` without enough samples), `samples`,
/// `max_ms` and `extra_pct`.
pub fn row_json(measured: &Measured, row: &Row) -> serde_json::Map<String, serde_json::Value> {
    let mut object = serde_json::Map::new();
    for (&q, &v) in measured.percentiles.iter().zip(&row.values) {
        object.insert(percentile::json_key(q), percentile::json_ms(v));
    }
    object.insert("max_ms".into(), percentile::json_ms(row.max_ms));
    object.insert("samples".into(), row.samples.into());
    object.insert(
        "extra_pct".into(),
        serde_json::json!((row.extra_pct * 1000.0).round() / 1000.0),
    );
    object.insert(
        "duplicate_work_pct".into(),
        serde_json::json!((row.duplicate_work_pct * 1000.0).round() / 1000.0),
    );
    object
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A live-like table: `values[m]` are mode m's p50, p90, p99, p99.9.
    pub(crate) fn table(samples: u64, values: [[Option<f64>; 4]; 3], extra: [f64; 3]) -> Measured {
        Measured {
            percentiles: LIVE_PERCENTILES.to_vec(),
            rows: Mode::ALL
                .iter()
                .zip(values)
                .zip(extra)
                .map(|((&mode, values), extra_pct)| Row {
                    mode,
                    setting: mode.name().into(),
                    samples,
                    values: values.to_vec(),
                    max_ms: values[3].or(values[2]),
                    extra_pct,
                    duplicate_work_pct: 0.0,
                    errors: 0,
                })
                .collect(),
            unit: "calls",
            cost_decimals: 1,
        }
    }

    #[test]
    fn the_tour_run_of_the_issue_names_fixed_not_adaptive() {
        // Fixed: p99 14.7, p99.9 15.5 for 1.4 %; adaptive: 21.1 / 48.5 for 4.0 %.
        let m = table(
            20_000,
            [
                [Some(4.9), Some(12.0), Some(43.3), Some(57.8)],
                [Some(4.6), Some(9.0), Some(14.7), Some(15.5)],
                [Some(4.8), Some(8.0), Some(21.1), Some(48.5)],
            ],
            [0.0, 1.4, 4.0],
        );
        let s = m.sentences(Noise::LIVE, "within noise");
        assert_eq!(s.len(), 4, "{s:?}");
        assert!(
            s[0].starts_with("p50: fixed was lowest (4.6 ms for 1.4% extra calls), but the simpler none did as well within noise: 4.9 ms"),
            "{s:?}"
        );
        assert!(
            s[1].starts_with("p90: adaptive was best, 8.0 ms for 4.0% extra calls; "),
            "{s:?}"
        );
        assert!(
            s[2].starts_with("p99: fixed was best, 14.7 ms for 1.4% extra calls; "),
            "{s:?}"
        );
        assert!(s[2].contains("1.4x lower than adaptive (21.1 ms for 4.0% extra calls)"));
        assert!(s[3].starts_with("p99.9: fixed was best"), "{s:?}");
        assert!(!s.iter().any(|s| s.contains("adaptive was best, 21.1")));
    }

    #[test]
    fn no_hedging_can_win_and_unsupported_percentiles_are_said_so() {
        let m = table(
            750,
            [
                [Some(2.0), Some(3.0), None, None],
                [Some(3.0), Some(6.0), None, None],
                [Some(3.0), Some(4.5), None, None],
            ],
            [0.0, 5.0, 5.0],
        );
        let s = m.sentences(Noise::LIVE, "within noise");
        assert!(s[0].starts_with("p50: none was best, 2.0 ms; "), "{s:?}");
        assert!(s[1].starts_with("p90: none was best, 3.0 ms; "), "{s:?}");
        let mut failing = m.clone();
        failing.rows[2].errors = 356;
        let s = failing.sentences(Noise::LIVE, "within noise");
        assert!(
            s[1].ends_with("(4.5 ms with 356 errors for 5.0% extra calls)."),
            "{s:?}"
        );
        assert_eq!(
            s[2],
            "p99, p99.9: n/a, 750 samples per mode are too few (p99 needs 1000, p99.9 needs \
             10000: at least 10 beyond the percentile)."
        );
    }

    #[test]
    fn the_text_table_and_json_mark_what_is_not_supported() {
        let m = table(
            750,
            [
                [Some(2.0), Some(3.0), None, None],
                [Some(3.0), Some(6.0), None, None],
                [Some(3.0), Some(4.5), None, None],
            ],
            [0.0, 5.0, 5.0],
        );
        let text = text_table(&m, &[]);
        assert!(text.lines().nth(1).unwrap().contains("n/a"), "{text}");
        assert!(text.contains("750"), "{text}");
        let json = row_json(&m, &m.rows[1]);
        assert_eq!(json["p99_ms"], serde_json::Value::Null);
        assert_eq!(json["p90_ms"], serde_json::json!(6.0));
        assert_eq!(json["samples"], serde_json::json!(750));
    }
}
