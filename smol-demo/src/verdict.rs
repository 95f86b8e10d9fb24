//! Conclusions drawn from a measured table, never written in advance.
//!
//! Every experiment compares modes listed **simplest first** (no hedging, fixed, adaptive; no
//! jitter, jitter and a budget) on metrics where lower is better (a latency percentile, wasted
//! calls, recovery time). [`judge`] names the best mode of one metric, and whether a simpler
//! mode did as well (within noise, or within the spread of repeated runs); [`sentence`] writes
//! that down with each mode's value and cost. [`spread`] and [`wins`] aggregate repeated runs.

use std::fmt::Write as _;

/// When two single measurements count as the same: less than `relative` of the larger, or
/// less than `absolute`, apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Noise {
    /// The tolerance as a fraction of the larger value.
    pub relative: f64,
    /// The tolerance in the metric's unit.
    pub absolute: f64,
}

impl Noise {
    /// Live runs over real sockets on a shared machine: 10 % or 0.5 ms.
    pub const LIVE: Noise = Noise {
        relative: 0.10,
        absolute: 0.5,
    };

    /// Whether `a` and `b` are within noise of each other.
    pub fn tied(&self, a: f64, b: f64) -> bool {
        (a - b).abs() <= self.absolute.max(self.relative * a.abs().max(b.abs()))
    }

    /// The rule in words: `less than 10% or 0.5 ms apart`.
    pub fn describe(&self, unit: &str) -> String {
        format!(
            "less than {:.0}% or {}{unit} apart",
            self.relative * 100.0,
            self.absolute
        )
    }
}

/// What [`judge`] found for one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No mode has a value.
    NoData,
    /// This mode is best, and no simpler mode is as good.
    Best(usize),
    /// `best` has the lowest value, but the simpler `simpler` is as good.
    SimplerAsGood {
        /// The mode with the lowest value.
        best: usize,
        /// The simplest mode tied with it.
        simpler: usize,
    },
}

/// Judges one metric (lower is better) over modes listed simplest first: the lowest value, then
/// the simplest mode `tied` with it. `tied(i, j)` is only asked about modes with values.
///
/// ```
/// use tailguard_demo::verdict::{judge, Noise, Verdict};
/// let p99 = [Some(43.3), Some(14.7), Some(21.1)]; // none, fixed, adaptive
/// let tied = |i: usize, j: usize| Noise::LIVE.tied(p99[i].unwrap(), p99[j].unwrap());
/// assert_eq!(judge(&p99, tied), Verdict::Best(1));
/// ```
pub fn judge(values: &[Option<f64>], tied: impl Fn(usize, usize) -> bool) -> Verdict {
    let best = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .fold(None, |best: Option<(usize, f64)>, (i, v)| match best {
            Some((_, b)) if b <= v => best,
            _ => Some((i, v)),
        });
    let Some((best, _)) = best else {
        return Verdict::NoData;
    };
    let simpler = (0..best).find(|&i| values[i].is_some() && tied(i, best));
    match simpler {
        Some(simpler) => Verdict::SimplerAsGood { best, simpler },
        None => Verdict::Best(best),
    }
}

/// One mode of a comparison, as [`sentence`] prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The mode's name.
    pub name: String,
    /// Its value (`None`: not measured or not enough samples).
    pub value: Option<f64>,
    /// Printed right after the value, e.g. ` [13.0-16.0, won 2/5]`.
    pub note: String,
    /// Its cost, printed after the value, e.g. `1.4% extra calls`.
    pub cost: Option<String>,
}

/// How [`sentence`] prints one metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric<'a> {
    /// The metric's name: `p99`, `wasted calls`.
    pub name: &'a str,
    /// The unit after each value: ` ms`, or empty.
    pub unit: &'a str,
    /// Decimals of each value.
    pub decimals: usize,
    /// Why a simpler mode counts as good as the best: `within noise`.
    pub tie: &'a str,
}

/// A mode's value, note and cost: `14.5 ms for 1.4% extra calls`.
fn value_text(metric: &Metric<'_>, c: &Candidate) -> String {
    let mut text = String::new();
    match c.value {
        Some(v) => {
            let _ = write!(text, "{v:.*}{}", metric.decimals, metric.unit);
        }
        None => text.push_str("n/a"),
    }
    text.push_str(&c.note);
    if let Some(cost) = &c.cost {
        let _ = write!(text, " for {cost}");
    }
    text
}

fn ratio(best: f64, other: f64) -> String {
    if best <= 0.0 {
        return "lower than".into();
    }
    let r = other / best;
    if r < 1.05 {
        "about the same as".into()
    } else if r < 10.0 {
        format!("{r:.1}x lower than")
    } else {
        format!("{r:.0}x lower than")
    }
}

/// One sentence about one metric: the best mode with its value and cost, a simpler mode that
/// did as well if there is one, and how far below the others the best is.
///
/// ```
/// use tailguard_demo::verdict::{sentence, Candidate, Metric, Verdict};
/// let c = |name: &str, v: f64, cost: &str| Candidate {
///     name: name.into(),
///     value: Some(v),
///     note: String::new(),
///     cost: Some(cost.into()),
/// };
/// let modes = [c("fixed", 14.7, "1.4% extra"), c("adaptive", 21.1, "4.0% extra")];
/// let metric = Metric { name: "p99", unit: " ms", decimals: 1, tie: "within noise" };
/// assert_eq!(
///     sentence(&metric, &modes, Verdict::Best(0)),
///     "p99: fixed was best, 14.7 ms for 1.4% extra; 1.4x lower than adaptive (21.1 ms for \
///      4.0% extra)."
/// );
/// ```
pub fn sentence(metric: &Metric<'_>, modes: &[Candidate], verdict: Verdict) -> String {
    let (best, simpler) = match verdict {
        Verdict::NoData => return format!("{}: n/a for every mode.", metric.name),
        Verdict::Best(best) => (best, None),
        Verdict::SimplerAsGood { best, simpler } => (best, Some(simpler)),
    };
    let mut text = match simpler {
        None => format!(
            "{}: {} was best, {}",
            metric.name,
            modes[best].name,
            value_text(metric, &modes[best])
        ),
        Some(s) => format!(
            "{}: {} was lowest ({}), but the simpler {} did as well {}: {}",
            metric.name,
            modes[best].name,
            value_text(metric, &modes[best]),
            modes[s].name,
            metric.tie,
            value_text(metric, &modes[s])
        ),
    };
    let best_value = modes[best].value.unwrap_or(0.0);
    let others: Vec<String> = modes
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != best && Some(i) != simpler)
        .map(|(_, c)| match c.value {
            Some(v) => format!(
                "{} {} ({})",
                ratio(best_value, v),
                c.name,
                value_text(metric, c)
            ),
            None => format!("{} n/a", c.name),
        })
        .collect();
    if !others.is_empty() {
        let _ = write!(text, "; {}", others.join(", "));
    }
    text.push('.');
    text
}

/// The median and range of one metric over repeated runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// Runs that had a value.
    pub runs: usize,
}

impl Spread {
    /// Whether the two ranges overlap: neither is clearly below the other.
    pub fn overlaps(&self, other: &Spread) -> bool {
        self.min <= other.max && other.min <= self.max
    }
}

/// The spread of the runs that have a value; `None` if none has.
///
/// ```
/// use tailguard_demo::verdict::spread;
/// let s = spread([Some(3.0), None, Some(1.0), Some(10.0)]).unwrap();
/// assert_eq!((s.median, s.min, s.max, s.runs), (3.0, 1.0, 10.0, 3));
/// ```
pub fn spread(values: impl IntoIterator<Item = Option<f64>>) -> Option<Spread> {
    let mut v: Vec<f64> = values.into_iter().flatten().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[n - 1],
        runs: n,
    })
}

/// How often each mode had the lowest value: `runs[r][m]` is mode `m`'s value in run `r`.
/// A run where several modes share the lowest value counts for each; a run without values
/// counts for none.
///
/// ```
/// use tailguard_demo::verdict::wins;
/// let runs = [vec![Some(3.0), Some(1.0)], vec![Some(2.0), Some(2.5)], vec![None, Some(1.0)]];
/// assert_eq!(wins(&runs, 2), vec![1, 2]);
/// ```
pub fn wins(runs: &[Vec<Option<f64>>], modes: usize) -> Vec<usize> {
    let mut counts = vec![0; modes];
    for run in runs {
        let best = run.iter().flatten().copied().fold(f64::INFINITY, f64::min);
        for (m, v) in run.iter().enumerate().take(modes) {
            if *v == Some(best) {
                counts[m] += 1;
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge_live(values: &[Option<f64>]) -> Verdict {
        judge(values, |i, j| {
            Noise::LIVE.tied(values[i].unwrap(), values[j].unwrap())
        })
    }

    #[test]
    fn the_lowest_wins_unless_a_simpler_mode_is_within_noise() {
        // Each mode loses in turn.
        assert_eq!(
            judge_live(&[Some(40.0), Some(15.0), Some(21.0)]),
            Verdict::Best(1)
        );
        assert_eq!(
            judge_live(&[Some(40.0), Some(21.0), Some(15.0)]),
            Verdict::Best(2)
        );
        assert_eq!(
            judge_live(&[Some(10.0), Some(21.0), Some(15.0)]),
            Verdict::Best(0)
        );
        // Adaptive lowest, fixed within 10 %: fixed did as well.
        assert_eq!(
            judge_live(&[Some(40.0), Some(14.5), Some(13.8)]),
            Verdict::SimplerAsGood {
                best: 2,
                simpler: 1
            }
        );
        // Everything within noise of no hedging at all.
        assert_eq!(
            judge_live(&[Some(4.9), Some(4.6), Some(4.8)]),
            Verdict::SimplerAsGood {
                best: 1,
                simpler: 0
            }
        );
        // Missing values take no part.
        assert_eq!(judge_live(&[None, Some(5.0), Some(4.0)]), Verdict::Best(2));
        assert_eq!(judge_live(&[None, None]), Verdict::NoData);
    }

    #[test]
    fn noise_has_a_relative_and_an_absolute_floor() {
        assert!(Noise::LIVE.tied(100.0, 109.0));
        assert!(!Noise::LIVE.tied(100.0, 112.0));
        assert!(Noise::LIVE.tied(1.0, 1.4));
        assert!(!Noise::LIVE.tied(1.0, 1.6));
        assert_eq!(Noise::LIVE.describe(" ms"), "less than 10% or 0.5 ms apart");
    }

    fn candidate(name: &str, value: Option<f64>, cost: Option<&str>) -> Candidate {
        Candidate {
            name: name.into(),
            value,
            note: String::new(),
            cost: cost.map(Into::into),
        }
    }

    const P99: Metric<'static> = Metric {
        name: "p99",
        unit: " ms",
        decimals: 1,
        tie: "within noise",
    };

    #[test]
    fn the_sentence_names_the_simpler_mode_that_did_as_well() {
        let modes = [
            candidate("none", Some(43.3), None),
            candidate("fixed", Some(14.5), Some("1.4% extra calls")),
            candidate("adaptive", Some(13.8), Some("4.0% extra calls")),
        ];
        let values: Vec<_> = modes.iter().map(|c| c.value).collect();
        let text = sentence(&P99, &modes, judge_live(&values));
        assert_eq!(
            text,
            "p99: adaptive was lowest (13.8 ms for 4.0% extra calls), but the simpler fixed \
             did as well within noise: 14.5 ms for 1.4% extra calls; 3.1x lower than none \
             (43.3 ms)."
        );
    }

    #[test]
    fn the_sentence_gives_ratios_against_every_other_mode() {
        let modes = [
            candidate("none", Some(1754.6), None),
            candidate("fixed", Some(17.0), Some("0.06% extra reads")),
            candidate("adaptive", Some(10.7), Some("1.05% extra reads")),
        ];
        let text = sentence(&P99, &modes, Verdict::Best(2));
        assert_eq!(
            text,
            "p99: adaptive was best, 10.7 ms for 1.05% extra reads; 164x lower than none \
             (1754.6 ms), 1.6x lower than fixed (17.0 ms for 0.06% extra reads)."
        );
        let modes = [candidate("a", None, None), candidate("b", Some(2.0), None)];
        assert_eq!(
            sentence(&P99, &modes, Verdict::Best(1)),
            "p99: b was best, 2.0 ms; a n/a."
        );
        assert_eq!(
            sentence(&P99, &modes, Verdict::NoData),
            "p99: n/a for every mode."
        );
    }

    #[test]
    fn spreads_and_wins_over_runs() {
        let s = spread([Some(4.0), Some(1.0), Some(3.0), Some(2.0)]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.runs), (2.5, 1.0, 4.0, 4));
        assert_eq!(spread([None, None]), None);
        let t = spread([Some(5.0), Some(6.0)]).unwrap();
        assert!(!s.overlaps(&t) && !t.overlaps(&s));
        let u = spread([Some(3.5), Some(9.0)]).unwrap();
        assert!(s.overlaps(&u) && u.overlaps(&s));
        // The issue's four runs: p99 of fixed vs adaptive.
        let runs = [
            vec![Some(16.7), Some(16.9)],
            vec![Some(24.5), Some(32.9)],
            vec![Some(17.2), Some(13.8)],
            vec![Some(16.6), Some(14.5)],
        ];
        assert_eq!(wins(&runs, 2), vec![2, 2]);
        assert_eq!(wins(&[vec![Some(1.0), Some(1.0)]], 2), vec![1, 1]);
    }
}
