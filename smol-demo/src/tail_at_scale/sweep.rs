//! `tail-at-scale --sweep`: fixed hedging at several delays and adaptive hedging at several
//! budgets, each point's p99 and p99.9 against the extra load it cost, so the two are compared
//! where they cost the same: the frontier (points nothing else beats on both) is visible.

use std::fmt::Write as _;
use std::time::Duration;

use plotters::prelude::*;

use super::command::Args;
use super::live::{self, LiveConfig};
use super::measured::align;
use super::plot::COLORS;
use super::sim::{self, Mode, ModeReport, SimConfig};
use crate::experiment::ExperimentError;
use crate::percentile;
use crate::rt::{self, Runtime};

/// The settings swept.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPlan {
    /// Delays of fixed hedging (no budget).
    pub fixed_delays: Vec<Duration>,
    /// Budgets of adaptive hedging (at the configured percentile), as ratios.
    pub budgets: Vec<f64>,
}

impl SweepPlan {
    /// Fixed at 5, 10, 20 and 40 ms; adaptive within 1, 2, 5 and 10 %.
    pub fn standard() -> SweepPlan {
        SweepPlan {
            fixed_delays: [5, 10, 20, 40].map(Duration::from_millis).to_vec(),
            budgets: vec![0.01, 0.02, 0.05, 0.10],
        }
    }

    /// Every point to run: `(mode, fixed delay, budget)`, no hedging first.
    pub fn points(&self, fixed_delay: Duration, budget: f64) -> Vec<(Mode, Duration, f64)> {
        let mut points = vec![(Mode::None, fixed_delay, budget)];
        points.extend(self.fixed_delays.iter().map(|&d| (Mode::Fixed, d, budget)));
        points.extend(
            self.budgets
                .iter()
                .map(|&b| (Mode::Adaptive, fixed_delay, b)),
        );
        points
    }
}

/// One point of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The mode.
    pub mode: Mode,
    /// Its setting: `10ms`, `2% budget`.
    pub setting: String,
    /// Extra load, in percent.
    pub extra_pct: f64,
    /// Latency samples.
    pub samples: u64,
    /// p99 in ms, if supported.
    pub p99: Option<f64>,
    /// p99.9 in ms, if supported.
    pub p999: Option<f64>,
    /// Requests that failed (live), or key reads that missed the deadline (simulated): such a
    /// point is left off the frontier, its cost and latency are not comparable.
    pub errors: u64,
}

impl Point {
    fn value(&self, p999: bool) -> Option<f64> {
        if p999 {
            self.p999
        } else {
            self.p99
        }
    }

    fn name(&self) -> String {
        match self.mode {
            Mode::None => self.mode.name().to_string(),
            _ => format!("{} {}", self.mode.name(), self.setting),
        }
    }
}

/// Extra loads this close (5 % of the larger, or 0.01 points) count as the same cost.
fn same_cost(a: f64, b: f64) -> bool {
    (a - b).abs() <= 0.01f64.max(0.05 * a.abs().max(b.abs()))
}

/// The points on the frontier of one percentile, cheapest first: no other point costs the same
/// or less (within 5 % or 0.01 points) with a lower value, or less with the same value. Points with
/// errors are left off.
pub fn frontier(points: &[Point], p999: bool) -> Vec<usize> {
    let dominated = |i: usize| {
        let (a, va) = (&points[i], points[i].value(p999));
        let Some(va) = va else { return true };
        if a.errors > 0 {
            return true;
        }
        points
            .iter()
            .filter(|b| b.errors == 0)
            .any(|b| match b.value(p999) {
                Some(vb) => {
                    let cheaper = b.extra_pct < a.extra_pct && !same_cost(a.extra_pct, b.extra_pct);
                    let no_dearer =
                        b.extra_pct <= a.extra_pct || same_cost(a.extra_pct, b.extra_pct);
                    (no_dearer && vb < va) || (cheaper && vb <= va)
                }
                None => false,
            })
    };
    let mut on: Vec<usize> = (0..points.len()).filter(|&i| !dominated(i)).collect();
    on.sort_by(|&i, &j| points[i].extra_pct.total_cmp(&points[j].extra_pct));
    on
}

/// The table of every point.
pub fn table(points: &[Point]) -> String {
    let mut rows = vec![[
        "mode", "setting", "samples", "extra %", "p99 ms", "p99.9 ms", "errors",
    ]
    .map(String::from)
    .to_vec()];
    for p in points {
        let cell = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{v:.1}"));
        rows.push(vec![
            p.mode.name().into(),
            p.setting.clone(),
            p.samples.to_string(),
            format!("{:.2}", p.extra_pct),
            cell(p.p99),
            cell(p.p999),
            p.errors.to_string(),
        ]);
    }
    align(&rows)
}

/// For each percentile: which points are on the frontier, and how many of each hedging mode.
pub fn sentences(points: &[Point]) -> Vec<String> {
    let mut out = Vec::new();
    let failed: Vec<String> = points
        .iter()
        .filter(|p| p.errors > 0)
        .map(|p| format!("{} ({} errors)", p.name(), p.errors))
        .collect();
    if !failed.is_empty() {
        out.push(format!(
            "Left off the frontier, requests failed: {}.",
            failed.join(", ")
        ));
    }
    for (p999, label) in [(false, "p99"), (true, "p99.9")] {
        if points.iter().all(|p| p.value(p999).is_none()) {
            let fewest = points.iter().map(|p| p.samples).min().unwrap_or(0);
            out.push(format!(
                "{label}: n/a, {fewest} samples per point are too few (it needs {}).",
                percentile::min_samples(if p999 { 0.999 } else { 0.99 })
            ));
            continue;
        }
        let on = frontier(points, p999);
        let names: Vec<String> = on
            .iter()
            .map(|&i| {
                let p = &points[i];
                format!(
                    "{} ({:.1} ms for {:.2}%)",
                    p.name(),
                    p.value(p999).unwrap_or(0.0),
                    p.extra_pct
                )
            })
            .collect();
        let count = |mode: Mode| {
            let total = points.iter().filter(|p| p.mode == mode).count();
            let on = on.iter().filter(|&&i| points[i].mode == mode).count();
            format!("{} {on} of {total}", mode.name())
        };
        out.push(format!(
            "{label} frontier (nothing else is both cheaper and faster): {}. On it: {}, {}.",
            names.join(", "),
            count(Mode::Fixed),
            count(Mode::Adaptive)
        ));
    }
    out
}

/// Two charts side by side, p99 and p99.9 against extra load: a line per hedging mode through
/// its settings, no hedging a point at 0 %.
pub fn svg(title: &str, points: &[Point]) -> Result<String, ExperimentError> {
    let plot_error = |e: &dyn std::fmt::Display| ExperimentError::Plot(e.to_string());
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error(&e))?;
        let root = root
            .titled(title, ("sans-serif", 18))
            .map_err(|e| plot_error(&e))?;
        let panels = root.split_evenly((1, 2));
        for (panel, (p999, label)) in panels.iter().zip([(false, "p99"), (true, "p99.9")]) {
            let values: Vec<f64> = points.iter().filter_map(|p| p.value(p999)).collect();
            let x_max = points.iter().map(|p| p.extra_pct).fold(1.0f64, f64::max) * 1.1;
            let (lo, hi) = values
                .iter()
                .fold((f64::INFINITY, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let (lo, hi) = if lo.is_finite() && hi > lo {
                (10f64.powf(lo.max(1e-3).log10().floor()), hi * 1.25)
            } else {
                (1.0, 1000.0)
            };
            let caption = if values.is_empty() {
                format!("{label}: n/a (too few samples)")
            } else {
                format!("{label} against extra load")
            };
            let mut chart = ChartBuilder::on(panel)
                .caption(caption, ("sans-serif", 16))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(0.0..x_max, (lo..hi).log_scale())
                .map_err(|e| plot_error(&e))?;
            chart
                .configure_mesh()
                .x_desc("extra load, %")
                .y_desc(format!("{label}, ms (log scale)"))
                .light_line_style(TRANSPARENT)
                .y_label_formatter(&|y| format!("{y}"))
                .draw()
                .map_err(|e| plot_error(&e))?;
            for (k, mode) in Mode::ALL.into_iter().enumerate() {
                let color = COLORS[k];
                let mut line: Vec<(f64, f64)> = points
                    .iter()
                    .filter(|p| p.mode == mode)
                    .filter_map(|p| p.value(p999).map(|v| (p.extra_pct, v)))
                    .collect();
                line.sort_by(|a, b| a.0.total_cmp(&b.0));
                if line.is_empty() {
                    continue;
                }
                chart
                    .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
                    .map_err(|e| plot_error(&e))?
                    .label(mode.name())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(line.iter().map(|&p| Circle::new(p, 4, color.filled())))
                    .map_err(|e| plot_error(&e))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .draw()
                .map_err(|e| plot_error(&e))?;
        }
        root.present().map_err(|e| plot_error(&e))?;
    }
    Ok(svg)
}

/// The whole report: table, then sentences.
pub fn report(heading: &str, points: &[Point]) -> String {
    let mut out = format!("{heading}\n");
    out.push_str(&table(points));
    for line in sentences(points) {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// `--sweep`: every point of [`SweepPlan::standard`], live or
/// simulated; the table, the frontier sentences and the SVG.
pub fn run(args: &Args) -> Result<String, String> {
    let path = args.out_path();
    let plan = SweepPlan::standard();
    let setting = |mode: Mode, delay: Duration, budget: f64| match mode {
        Mode::None => "off".to_string(),
        Mode::Fixed => format!("{delay:?}"),
        Mode::Adaptive | Mode::P2c => format!("{}% budget", budget * 100.0),
        Mode::Tied => "tied".to_string(),
    };
    let (heading, points) = if args.sim {
        let config = args.config()?;
        config.validate().map_err(|e| e.to_string())?;
        let runs = plan.points(config.fixed_delay, config.budget_ratio);
        eprintln!(
            "tail-at-scale --sim --sweep: {} points in parallel threads...",
            runs.len()
        );
        let reports: Result<Vec<ModeReport>, String> = std::thread::scope(|scope| {
            let threads: Vec<_> = runs
                .iter()
                .map(|&(mode, delay, budget)| {
                    let config = SimConfig {
                        fixed_delay: delay,
                        budget_ratio: budget,
                        ..config.clone()
                    };
                    scope.spawn(move || sim::run_mode(&config, mode))
                })
                .collect();
            threads
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                        .map_err(|e| e.to_string())
                })
                .collect()
        });
        let ms = |d: Option<Duration>| d.map(crate::ms::of);
        let points = runs
            .iter()
            .zip(reports?)
            .map(|(&(mode, delay, budget), r)| Point {
                mode,
                setting: setting(mode, delay, budget),
                extra_pct: r.extra_pct,
                samples: r.requests as u64,
                p99: ms(r.p99),
                p999: ms(r.p999),
                errors: r.timed_out_keys,
            })
            .collect::<Vec<_>>();
        (super::sim_heading(&config), points)
    } else {
        let config = args.live_config()?;
        let runs = plan.points(config.fixed_delay, config.budget_ratio);
        let runtime = Runtime::new(args.threads.unwrap_or_else(rt::default_threads));
        let mut points = Vec::with_capacity(runs.len());
        for (k, &(mode, delay, budget)) in runs.iter().enumerate() {
            let config = LiveConfig {
                fixed_delay: delay,
                budget_ratio: budget,
                ..config.clone()
            };
            let name = setting(mode, delay, budget);
            eprintln!(
                "tail-at-scale --sweep: point {} of {}: {} {name} ({} fan-outs/s for {:?})...",
                k + 1,
                runs.len(),
                mode.name(),
                config.rate,
                config.duration
            );
            let r = runtime
                .block_on(live::run_mode(runtime.executor(), &config, mode))
                .map_err(|e| e.to_string())?;
            points.push(Point {
                mode,
                setting: name,
                extra_pct: r.extra_pct,
                samples: r.load.histogram.count(),
                p99: crate::percentile::of_ms(&r.load.histogram, 0.99),
                p999: crate::percentile::of_ms(&r.load.histogram, 0.999),
                errors: r.load.errors,
            });
        }
        (live::heading(&config), points)
    };
    let svg = svg(&format!("Tail at Scale: {heading}"), &points).map_err(|e| e.to_string())?;
    std::fs::write(&path, svg)
        .map_err(|e| format!("cannot write the plot to {}: {e}", path.display()))?;
    Ok(if args.json {
        let points: Vec<serde_json::Value> = points
            .iter()
            .map(|p| {
                serde_json::json!({
                    "mode": p.mode.name(),
                    "setting": p.setting,
                    "extra_pct": (p.extra_pct * 1000.0).round() / 1000.0,
                    "samples": p.samples,
                    "p99_ms": crate::percentile::json_ms(p.p99),
                    "p999_ms": crate::percentile::json_ms(p.p999),
                    "errors": p.errors,
                })
            })
            .collect();
        serde_json::json!({ "points": points, "svg": path.display().to_string() }).to_string()
    } else {
        let mut text = report(&heading, &points);
        let _ = writeln!(text, "p99 and p99.9 against extra load: {}", path.display());
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(mode: Mode, setting: &str, extra: f64, p99: Option<f64>) -> Point {
        Point {
            mode,
            setting: setting.into(),
            extra_pct: extra,
            samples: 2000,
            p99,
            p999: None,
            errors: 0,
        }
    }

    fn sweep() -> Vec<Point> {
        vec![
            point(Mode::None, "", 0.0, Some(50.0)),
            point(Mode::Fixed, "5ms", 4.0, Some(12.0)),
            point(Mode::Fixed, "10ms", 1.5, Some(16.0)),
            point(Mode::Fixed, "40ms", 0.5, Some(45.0)),
            point(Mode::Adaptive, "1% budget", 1.0, Some(30.0)),
            point(Mode::Adaptive, "5% budget", 4.0, Some(14.0)),
        ]
    }

    #[test]
    fn the_frontier_keeps_what_nothing_beats_on_both() {
        let points = sweep();
        // Cheapest first: none, fixed 40 ms, adaptive 1 %, fixed 10 ms, fixed 5 ms; adaptive 5 %
        // costs what fixed 5 ms costs and is slower.
        assert_eq!(frontier(&points, false), vec![0, 3, 4, 2, 1]);
        // A point slower at (nearly) the same cost is off it; one as fast at (nearly) the
        // same cost ties, and both stay.
        let mut close = sweep();
        close.push(point(Mode::Fixed, "20ms", 1.51, Some(20.0)));
        close.push(point(Mode::Adaptive, "2% budget", 3.9, Some(12.0)));
        assert_eq!(frontier(&close, false), vec![0, 3, 4, 2, 7, 1]);
        // A point whose requests failed is off it, however cheap and fast, and said so.
        let mut failing = sweep();
        failing.push(Point {
            errors: 356,
            ..point(Mode::Adaptive, "1% budget", -8.0, Some(1.0))
        });
        assert_eq!(frontier(&failing, false), vec![0, 3, 4, 2, 1]);
        assert_eq!(
            sentences(&failing)[0],
            "Left off the frontier, requests failed: adaptive 1% budget (356 errors)."
        );
        assert!(frontier(&points, true).is_empty());
        let s = sentences(&points);
        assert!(
            s[0].contains("On it: fixed 3 of 3, adaptive 1 of 2"),
            "{s:?}"
        );
        assert!(
            s[1].starts_with("p99.9: n/a, 2000 samples per point are too few"),
            "{s:?}"
        );
    }

    #[test]
    fn the_plot_has_a_line_per_hedging_mode_in_its_colour() {
        let svg = svg("sweep", &sweep()).unwrap();
        assert!(svg.starts_with("<svg"));
        for color in ["#E69F00", "#0072B2"] {
            assert!(
                svg.split("<polyline")
                    .any(|e| e.contains(&format!("stroke=\"{color}\""))
                        && e.contains("stroke-width=\"2\"")),
                "{color}"
            );
        }
        assert!(svg.contains("n/a (too few samples)"));
    }

    #[test]
    fn the_plan_runs_none_once_then_each_setting() {
        let points = SweepPlan::standard().points(Duration::from_millis(10), 0.05);
        assert_eq!(points.len(), 9);
        assert_eq!(points[0].0, Mode::None);
        assert_eq!(points.iter().filter(|p| p.0 == Mode::Fixed).count(), 4);
    }
}
