//! The latency CDF of several runs, as an SVG image.
//!
//! The x axis is the latency on a log scale; the y axis is the percentile on a "nines" scale
//! (p0, p90, p99, p99.9 evenly spaced, `y = -log10(1 - q)`), so the tail, where hedging does
//! its work, gets as much room as the median.

use std::time::Duration;

use plotters::prelude::*;
use tailguard::latency::LatencyHistogram;

use crate::experiment::ExperimentError;

/// One line of the plot: a name for the legend and the latencies behind it.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    /// The legend's label.
    pub name: &'a str,
    /// The latencies.
    pub histogram: &'a LatencyHistogram,
}

/// Line colours, one per series in order (colour-blind safe: Okabe–Ito).
const COLORS: [RGBColor; 6] = [
    RGBColor(213, 94, 0),
    RGBColor(0, 114, 178),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
];

/// Points per line.
const POINTS: usize = 240;

/// The deepest percentile drawn: the whole nine at or just past the data's depth (p99.9 for
/// 500 to 5,000 samples: beyond `1 - 1/count` the line is the maximum), at most p99.99.
fn nines(count: u64) -> f64 {
    (count.max(10) as f64).log10().round().clamp(1.0, 4.0)
}

/// The label of a y value: `p90` for 1, `p99.9` for 3.
fn percentile_label(y: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-y));
    let text = format!("{p:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("p{text}")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The CDF points of one histogram: `(latency ms, nines)`.
fn cdf_points(histogram: &LatencyHistogram, top: f64) -> Vec<(f64, f64)> {
    (0..=POINTS)
        .filter_map(|i| {
            let y = top * i as f64 / POINTS as f64;
            let q = 1.0 - 10f64.powf(-y);
            histogram.quantile(q).map(|d| (ms(d).max(1e-3), y))
        })
        .collect()
}

/// Draws the CDF of every series into an SVG document of `width` × `height` pixels.
///
/// ```
/// use std::time::Duration;
/// use tailguard::latency::LatencyHistogram;
/// use tailguard_demo::tail_at_scale::plot::{cdf_svg, Series};
///
/// let fast = LatencyHistogram::new();
/// let slow = LatencyHistogram::new();
/// for i in 1..=1000u64 {
///     fast.record(Duration::from_micros(1000 + i));
///     slow.record(Duration::from_micros(1000 + i * i));
/// }
/// let svg = cdf_svg(
///     "two runs",
///     &[Series { name: "fast", histogram: &fast }, Series { name: "slow", histogram: &slow }],
///     (800, 480),
/// )?;
/// assert!(svg.starts_with("<svg") && svg.contains("fast") && svg.contains("p99.9"));
/// # Ok::<(), tailguard_demo::experiment::ExperimentError>(())
/// ```
pub fn cdf_svg(
    title: &str,
    series: &[Series<'_>],
    (width, height): (u32, u32),
) -> Result<String, ExperimentError> {
    let plot_error = |e: &dyn std::fmt::Display| ExperimentError::Plot(e.to_string());
    let count = series
        .iter()
        .map(|s| s.histogram.count())
        .min()
        .unwrap_or(0);
    let top = nines(count);
    let lines: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|s| (s.name, cdf_points(s.histogram, top)))
        .collect();
    let xs = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.0));
    let (lo, hi) = xs.fold((f64::INFINITY, 0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    // From a power of ten: the log axis labels its decades from the first one in range.
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (10f64.powf(lo.log10().floor()), hi * 1.25)
    } else {
        (0.1, 1000.0)
    };
    // One label per nine: with this many labels at most, the axis picks whole numbers.
    let y_labels = top.floor() as usize + 1;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d((lo..hi).log_scale(), 0.0..top)
            .map_err(|e| plot_error(&e))?;
        chart
            .configure_mesh()
            .x_desc("latency of the whole fan-out, ms (log scale)")
            .y_desc("percentile")
            .y_labels(y_labels)
            .light_line_style(TRANSPARENT)
            .x_labels(16)
            .x_label_formatter(&|x| format!("{x}"))
            .y_label_formatter(&|y| percentile_label(*y))
            .draw()
            .map_err(|e| plot_error(&e))?;
        for (i, (name, points)) in lines.into_iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| plot_error(&e))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(|e| plot_error(&e))?;
        root.present().map_err(|e| plot_error(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_labelled_in_nines() {
        assert_eq!(percentile_label(0.0), "p0");
        assert_eq!(percentile_label(1.0), "p90");
        assert_eq!(percentile_label(2.0), "p99");
        assert_eq!(percentile_label(3.0), "p99.9");
        assert_eq!(nines(100_000), 4.0);
        assert_eq!(nines(750), 3.0);
        assert_eq!(nines(3), 1.0);
    }

    #[test]
    fn points_rise_with_the_percentile() {
        let h = LatencyHistogram::new();
        for i in 1..=2000u64 {
            h.record(Duration::from_micros(100 * i));
        }
        let points = cdf_points(&h, 3.0);
        assert_eq!(points.len(), POINTS + 1);
        assert!(points
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
        assert!(
            (points.last().unwrap().0 - 200.0).abs() < 10.0,
            "{points:?}"
        );
    }

    #[test]
    fn every_series_is_one_path() {
        let a = LatencyHistogram::new();
        let b = LatencyHistogram::new();
        for i in 1..=100u64 {
            a.record(Duration::from_millis(i));
            b.record(Duration::from_millis(2 * i));
        }
        let svg = cdf_svg(
            "t",
            &[
                Series {
                    name: "a",
                    histogram: &a,
                },
                Series {
                    name: "b",
                    histogram: &b,
                },
            ],
            (400, 300),
        )
        .unwrap();
        // Each series is one line of many points, plus a short swatch in the legend.
        for color in ["#D55E00", "#0072B2"] {
            let lines: Vec<&str> = svg
                .split("<polyline")
                .filter(|e| e.contains(&format!("stroke=\"{color}\"")))
                .collect();
            assert_eq!(lines.len(), 2, "{svg}");
            assert!(lines.iter().any(|l| l.matches(',').count() > 10), "{svg}");
        }
        assert!(
            svg.contains(">\na\n</text>") || svg.contains(">a</text>"),
            "{svg}"
        );
    }
}
