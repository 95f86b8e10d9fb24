//! Repeated runs (`tail-at-scale --repeat N`, the tour's rounds): the median and range of each
//! percentile per mode, how often each mode won it, and whether the winner was stable.

use super::measured::{align, errors_note, unsupported_sentence, Measured};
use super::sim::Mode;
use crate::percentile;
use crate::verdict::{judge, sentence, spread, wins, Candidate, Metric, Spread};

/// One mode over every run.
#[derive(Debug, Clone, PartialEq)]
pub struct RepeatRow {
    /// The mode.
    pub mode: Mode,
    /// Its hedging setting.
    pub setting: String,
    /// The fewest samples it had in one run.
    pub samples: u64,
    /// Each percentile's spread over the runs that supported it.
    pub values: Vec<Option<Spread>>,
    /// Runs in which it had the lowest value of each percentile.
    pub wins: Vec<usize>,
    /// The spread of its extra load, in percent.
    pub extra: Spread,
    /// The spread of its duplicate work, in percent of keys.
    pub duplicate: Spread,
    /// Its failed requests over every run.
    pub errors: u64,
}

/// Every mode over every run.
#[derive(Debug, Clone, PartialEq)]
pub struct Repeated {
    /// Runs aggregated.
    pub runs: usize,
    /// The percentiles of the columns.
    pub percentiles: Vec<f64>,
    /// One row per mode, simplest first.
    pub rows: Vec<RepeatRow>,
    /// What the extra load is made of.
    pub unit: &'static str,
    /// Decimals of the extra load.
    pub cost_decimals: usize,
}

/// Aggregates runs of the same modes (in the same order); `None` without runs.
pub fn aggregate(runs: &[Measured]) -> Option<Repeated> {
    let first = runs.first()?;
    let modes = first.rows.len();
    let per_percentile: Vec<Vec<Vec<Option<f64>>>> = (0..first.percentiles.len())
        .map(|p| runs.iter().map(|r| r.column(p)).collect())
        .collect();
    let win_counts: Vec<Vec<usize>> = per_percentile.iter().map(|c| wins(c, modes)).collect();
    let rows = first
        .rows
        .iter()
        .enumerate()
        .map(|(m, row)| RepeatRow {
            mode: row.mode,
            setting: row.setting.clone(),
            samples: runs.iter().map(|r| r.rows[m].samples).min().unwrap_or(0),
            values: per_percentile
                .iter()
                .map(|column| spread(column.iter().map(|run| run[m])))
                .collect(),
            wins: win_counts.iter().map(|w| w[m]).collect(),
            extra: spread(runs.iter().map(|r| Some(r.rows[m].extra_pct)))
                .expect("every run has an extra load"),
            duplicate: spread(runs.iter().map(|r| Some(r.rows[m].duplicate_work_pct)))
                .expect("every run has a duplicate work"),
            errors: runs.iter().map(|r| r.rows[m].errors).sum(),
        })
        .collect();
    Some(Repeated {
        runs: runs.len(),
        percentiles: first.percentiles.clone(),
        rows,
        unit: first.unit,
        cost_decimals: first.cost_decimals,
    })
}

impl Repeated {
    fn cost(&self, row: &RepeatRow) -> Option<String> {
        (row.mode != Mode::None).then(|| {
            format!(
                "{:.*}% extra {}",
                self.cost_decimals, row.extra.median, self.unit
            )
        })
    }

    /// One sentence per percentile: the mode with the lowest median, its range and wins, and a
    /// simpler mode whose range overlaps it; then which winners were stable (the same mode won
    /// every run) and which percentiles the samples cannot support.
    pub fn sentences(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut unsupported = Vec::new();
        let mut stable = Vec::new();
        let mut unstable = Vec::new();
        for (p, &q) in self.percentiles.iter().enumerate() {
            let spreads: Vec<Option<Spread>> = self.rows.iter().map(|r| r.values[p]).collect();
            if spreads.iter().all(Option::is_none) {
                unsupported.push(q);
                continue;
            }
            let medians: Vec<Option<f64>> = spreads.iter().map(|s| s.map(|s| s.median)).collect();
            let verdict = judge(&medians, |i, j| match (spreads[i], spreads[j]) {
                (Some(a), Some(b)) => a.overlaps(&b),
                _ => false,
            });
            let candidates: Vec<Candidate> = self
                .rows
                .iter()
                .map(|r| Candidate {
                    name: r.mode.name().to_string(),
                    value: r.values[p].map(|s| s.median),
                    note: r.values[p].map_or_else(String::new, |s| {
                        format!(
                            " [{:.1}-{:.1}, lowest in {}/{}]{}",
                            s.min,
                            s.max,
                            r.wins[p],
                            self.runs,
                            errors_note(r.errors)
                        )
                    }),
                    cost: self.cost(r),
                })
                .collect();
            let label = percentile::label(q);
            let name = format!("{label} (median of {} runs)", self.runs);
            let metric = Metric {
                name: &name,
                unit: " ms",
                decimals: 1,
                tie: "(their ranges over the runs overlap)",
            };
            out.push(sentence(&metric, &candidates, verdict));
            let top = self.rows.iter().map(|r| r.wins[p]).max().unwrap_or(0);
            if top == self.runs {
                stable.push(label);
            } else {
                let counts: Vec<String> = self
                    .rows
                    .iter()
                    .filter(|r| r.wins[p] > 0)
                    .map(|r| format!("{} {}", r.mode.name(), r.wins[p]))
                    .collect();
                unstable.push(format!("{label} ({})", counts.join(", ")));
            }
        }
        if self.runs > 1 {
            let mut text = String::new();
            if !stable.is_empty() {
                text.push_str(&format!(
                    "Stable over the {} runs (one mode lowest in every run): {}.",
                    self.runs,
                    stable.join(", ")
                ));
            }
            if !unstable.is_empty() {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(&format!(
                    "Not stable, the lowest mode changed from run to run: {}.",
                    unstable.join("; ")
                ));
            }
            if !text.is_empty() {
                out.push(text);
            }
        }
        let min = self.rows.iter().map(|r| r.samples).min().unwrap_or(0);
        if let Some(text) = unsupported_sentence(&unsupported, min, "per mode and run") {
            out.push(text);
        }
        out
    }

    /// The table: per mode, the median [min-max] of each percentile over the runs, its extra
    /// load, and how many runs it was lowest in each percentile.
    pub fn table(&self) -> String {
        let labels: Vec<String> = self
            .percentiles
            .iter()
            .map(|&q| percentile::label(q))
            .collect();
        let mut header = vec!["mode".to_string(), "samples/run".to_string()];
        header.extend(labels.iter().map(|l| format!("{l} ms")));
        header.push(format!("extra {} %", self.unit));
        header.push("dup work %".into());
        header.push(format!("lowest in ({})", labels.join("/")));
        let mut rows = vec![header];
        for r in &self.rows {
            let mut row = vec![
                format!("{} ({})", r.mode.name(), r.setting),
                r.samples.to_string(),
            ];
            row.extend(r.values.iter().map(|v| {
                v.map_or_else(
                    || "n/a".into(),
                    |s| format!("{:.1} [{:.1}-{:.1}]", s.median, s.min, s.max),
                )
            }));
            row.push(format!(
                "{:.d$} [{:.d$}-{:.d$}]",
                r.extra.median,
                r.extra.min,
                r.extra.max,
                d = self.cost_decimals
            ));
            row.push(format!(
                "{:.d$} [{:.d$}-{:.d$}]",
                r.duplicate.median,
                r.duplicate.min,
                r.duplicate.max,
                d = self.cost_decimals
            ));
            let w: Vec<String> = r.wins.iter().map(usize::to_string).collect();
            row.push(w.join("/"));
            rows.push(row);
        }
        format!(
            "{}median [min-max] over {} runs; n/a: fewer than {} samples beyond the percentile\n",
            align(&rows),
            self.runs,
            percentile::BEYOND
        )
    }

    /// One JSON object keyed by mode: for each percentile `{median, min, max, runs, wins}` (or
    /// `null`), `extra_pct` likewise, `samples` (the fewest in one run); plus `runs`.
    pub fn to_json(&self) -> serde_json::Value {
        let spread_json = |s: &Spread, wins: Option<usize>| {
            let mut v = serde_json::json!({
                "median": percentile::json_ms(Some(s.median)),
                "min": percentile::json_ms(Some(s.min)),
                "max": percentile::json_ms(Some(s.max)),
                "runs": s.runs,
            });
            if let Some(w) = wins {
                v["wins"] = w.into();
            }
            v
        };
        let mut object = serde_json::Map::new();
        for r in &self.rows {
            let mut mode = serde_json::Map::new();
            mode.insert("hedge".into(), r.setting.clone().into());
            for (p, &q) in self.percentiles.iter().enumerate() {
                mode.insert(
                    percentile::json_key(q),
                    r.values[p].map_or(serde_json::Value::Null, |s| {
                        spread_json(&s, Some(r.wins[p]))
                    }),
                );
            }
            mode.insert("extra_pct".into(), spread_json(&r.extra, None));
            mode.insert("duplicate_work_pct".into(), spread_json(&r.duplicate, None));
            mode.insert("samples".into(), r.samples.into());
            object.insert(r.mode.name().into(), serde_json::Value::Object(mode));
        }
        object.insert("runs".into(), self.runs.into());
        serde_json::Value::Object(object)
    }
}

#[cfg(test)]
mod tests {
    use super::super::measured::tests::table;
    use super::*;

    /// The issue's four runs (p99: fixed vs adaptive 16.7/16.9, 24.5/32.9, 17.2/13.8,
    /// 16.6/14.5), with none far behind and p99.9 unsupported.
    fn issue_runs() -> Vec<Measured> {
        [(16.7, 16.9), (24.5, 32.9), (17.2, 13.8), (16.6, 14.5)]
            .into_iter()
            .map(|(fixed, adaptive)| {
                table(
                    1000,
                    [
                        [Some(4.9), Some(12.0), Some(45.0), None],
                        [Some(4.7), Some(9.0), Some(fixed), None],
                        [Some(4.8), Some(8.0), Some(adaptive), None],
                    ],
                    [0.0, 1.5, 4.0],
                )
            })
            .collect()
    }

    #[test]
    fn medians_ranges_and_wins_per_mode() {
        let r = aggregate(&issue_runs()).unwrap();
        assert_eq!(r.runs, 4);
        let fixed = &r.rows[1];
        let p99 = fixed.values[2].unwrap();
        assert_eq!((p99.min, p99.max, p99.runs), (16.6, 24.5, 4));
        assert!((p99.median - 16.95).abs() < 1e-9);
        assert_eq!(fixed.values[3], None);
        assert_eq!(r.rows[1].wins, vec![4, 0, 2, 0]);
        assert_eq!(r.rows[2].wins, vec![0, 4, 2, 0]);
        assert_eq!(r.rows[0].wins, vec![0, 0, 0, 0]);
        assert_eq!(aggregate(&[]), None);
    }

    #[test]
    fn an_unstable_winner_is_reported_as_such() {
        let r = aggregate(&issue_runs()).unwrap();
        let s = r.sentences();
        let p99 = s.iter().find(|s| s.starts_with("p99 ")).unwrap();
        // Adaptive has the lower median (15.7 vs 16.95), but fixed is simpler and overlaps.
        assert!(
            p99.starts_with(
                "p99 (median of 4 runs): adaptive was lowest (15.7 ms [13.8-32.9, lowest in 2/4]"
            ),
            "{p99}"
        );
        assert!(
            p99.contains("but the simpler fixed did as well (their ranges over the runs overlap)"),
            "{p99}"
        );
        let stability = s.iter().find(|s| s.contains("Not stable")).unwrap();
        assert!(stability.contains("Stable over the 4 runs"), "{stability}");
        assert!(
            stability.contains("p99 (fixed 2, adaptive 2)"),
            "{stability}"
        );
        assert!(s
            .last()
            .unwrap()
            .starts_with("p99.9: n/a, 1000 samples per mode and run"));
    }

    #[test]
    fn the_table_and_json_carry_the_spread() {
        let r = aggregate(&issue_runs()).unwrap();
        let text = r.table();
        assert!(
            text.contains("16.9 [16.6-24.5]") || text.contains("17.0 [16.6-24.5]"),
            "{text}"
        );
        assert!(text.contains("4/0/2/0"), "{text}");
        let json = r.to_json();
        assert_eq!(json["runs"], serde_json::json!(4));
        assert_eq!(json["fixed"]["p99_ms"]["wins"], serde_json::json!(2));
        assert_eq!(json["fixed"]["p99_ms"]["max"], serde_json::json!(24.5));
        assert_eq!(json["fixed"]["p999_ms"], serde_json::Value::Null);
        assert_eq!(
            json["adaptive"]["extra_pct"]["median"],
            serde_json::json!(4.0)
        );
    }
}
