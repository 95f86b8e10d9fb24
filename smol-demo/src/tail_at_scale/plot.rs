//! The latency CDF of several runs, as an SVG image.
//!
//! The x axis is the latency on a log scale; the y axis is the percentile on a "nines" scale
//! (p0, p90, p99, p99.9 evenly spaced, `y = -log10(1 - q)`), so the tail, where hedging does
//! its work, gets as much room as the median.

use plotters::prelude::*;
use tailguard::latency::LatencyHistogram;

use crate::experiment::ExperimentError;
use crate::percentile;

/// One line of the plot: a name for the legend and the latencies behind it.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    /// The legend's label.
    pub name: &'a str,
    /// The latencies.
    pub histogram: &'a LatencyHistogram,
}

/// Line colours, one per series in order, from the Okabe–Ito palette (safe for colour-blind
/// readers): black, orange and blue first, which stay far apart in lightness and hue under
/// every kind of colour blindness (no hedging, fixed, adaptive); then reddish purple, bluish
/// green and vermillion.
pub const COLORS: [RGBColor; 6] = [
    RGBColor(0, 0, 0),
    RGBColor(230, 159, 0),
    RGBColor(0, 114, 178),
    RGBColor(204, 121, 167),
    RGBColor(0, 158, 115),
    RGBColor(213, 94, 0),
];

/// Points per line.
const POINTS: usize = 240;

/// The top of the y axis: the whole nine at or past the deepest percentile `count` samples
/// support ([the rule](crate::percentile): 10 samples beyond it), from p90 to p99.99.
fn nines(count: u64) -> f64 {
    percentile::deepest_nines(count).ceil().clamp(1.0, 4.0)
}

/// The label of a y value: `p90` for 1, `p99.9` for 3.
fn percentile_label(y: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-y));
    let text = format!("{p:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("p{text}")
}

/// The CDF points of one histogram: `(latency ms, nines)`, up to `top` nines or the deepest
/// percentile its samples support, whichever is shallower.
fn cdf_points(histogram: &LatencyHistogram, top: f64) -> Vec<(f64, f64)> {
    let top = top.min(percentile::deepest_nines(histogram.count()));
    (0..=POINTS)
        .filter_map(|i| {
            let y = top * i as f64 / POINTS as f64;
            let q = 1.0 - 10f64.powf(-y);
            histogram
                .quantile(q)
                .map(|d| (crate::ms::of(d).max(1e-3), y))
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
/// // 1,000 samples support p99 (10 beyond it), not p99.9: the axis stops at p99.
/// assert!(svg.starts_with("<svg") && svg.contains("fast") && svg.contains("p99"));
/// assert!(!svg.contains("p99.9"));
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
        .max()
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
            .x_desc(
                "latency of the whole fan-out, ms (log scale); each line stops where fewer than \
                 10 samples lie beyond",
            )
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
    use std::time::Duration;

    use super::*;

    #[test]
    fn percentiles_are_labelled_in_nines() {
        assert_eq!(percentile_label(0.0), "p0");
        assert_eq!(percentile_label(1.0), "p90");
        assert_eq!(percentile_label(2.0), "p99");
        assert_eq!(percentile_label(3.0), "p99.9");
        assert_eq!(nines(100_000), 4.0);
        assert_eq!(nines(750), 2.0);
        assert_eq!(nines(1000), 2.0);
        assert_eq!(nines(1001), 3.0);
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
        // 2,000 samples support p99.5 (10 beyond it), not p99.9: the line stops there.
        let deepest = points.last().unwrap().1;
        assert!((deepest - 200f64.log10()).abs() < 1e-9, "{deepest}");
        assert!(points
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
        assert!(
            (points.last().unwrap().0 - 199.0).abs() < 10.0,
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
        for color in ["#000000", "#E69F00"] {
            let lines: Vec<&str> = svg
                .split("<polyline")
                .filter(|e| {
                    let element = &e[..e.find("/>").unwrap_or(e.len())];
                    element.contains(&format!("stroke=\"{color}\""))
                        && element.contains("stroke-width=\"2\"")
                })
                .collect();
            assert_eq!(lines.len(), 2, "{svg}");
            assert!(lines.iter().any(|l| l.matches(',').count() > 10), "{svg}");
        }
        assert!(
            svg.contains(">\na\n</text>") || svg.contains(">a</text>"),
            "{svg}"
        );
    }

    /// sRGB (0-255) to linear light.
    fn linear(c: u8) -> f64 {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    }

    /// Linear light to sRGB (0-255).
    fn gamma(c: f64) -> f64 {
        let c = c.clamp(0.0, 1.0);
        255.0
            * if c <= 0.0031308 {
                12.92 * c
            } else {
                1.055 * c.powf(1.0 / 2.4) - 0.055
            }
    }

    /// How `color` looks to a reader with the colour blindness `m` (Machado, Oliveira and
    /// Fernandes 2009, severity 1), in sRGB.
    fn simulate(color: RGBColor, m: &[[f64; 3]; 3]) -> [f64; 3] {
        let rgb = [linear(color.0), linear(color.1), linear(color.2)];
        let row = |r: &[f64; 3]| gamma(r[0] * rgb[0] + r[1] * rgb[1] + r[2] * rgb[2]);
        [row(&m[0]), row(&m[1]), row(&m[2])]
    }

    const NORMAL: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    const PROTANOPIA: [[f64; 3]; 3] = [
        [0.152286, 1.052583, -0.204868],
        [0.114503, 0.786281, 0.099216],
        [-0.003882, -0.048116, 1.051998],
    ];
    const DEUTERANOPIA: [[f64; 3]; 3] = [
        [0.367322, 0.860646, -0.227968],
        [0.280085, 0.672501, 0.047413],
        [-0.011820, 0.042940, 0.968881],
    ];
    const TRITANOPIA: [[f64; 3]; 3] = [
        [1.255528, -0.076749, -0.178779],
        [-0.078411, 0.930809, 0.147602],
        [0.004733, 0.691367, 0.303900],
    ];

    /// The smallest distance (in sRGB units) between two of the first `n` colours, as a reader
    /// with each kind of colour vision sees them.
    fn closest_pair(colors: &[RGBColor], n: usize) -> f64 {
        let mut closest = f64::INFINITY;
        for m in [&NORMAL, &PROTANOPIA, &DEUTERANOPIA, &TRITANOPIA] {
            for i in 0..n {
                for j in i + 1..n {
                    let (a, b) = (simulate(colors[i], m), simulate(colors[j], m));
                    let d = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>();
                    closest = closest.min(d.sqrt());
                }
            }
        }
        closest
    }

    #[test]
    fn the_three_modes_colours_stay_apart_for_colour_blind_readers() {
        // The old pair for fixed and adaptive, blue and bluish green, nearly merge for a
        // reader without blue cones.
        let old = [RGBColor(0, 114, 178), RGBColor(0, 158, 115)];
        assert!(closest_pair(&old, 2) < 60.0, "{}", closest_pair(&old, 2));
        // Black, orange and blue: far apart under every kind of colour vision.
        let d = closest_pair(&COLORS, 3);
        assert!(
            d > 120.0,
            "closest pair of the three modes' colours: {d:.0}"
        );
        // The series' colours are all different.
        for (i, a) in COLORS.iter().enumerate() {
            assert!(COLORS[i + 1..].iter().all(|b| b != a), "{a:?} twice");
        }
    }
}
