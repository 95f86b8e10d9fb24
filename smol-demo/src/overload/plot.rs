//! Goodput and p99 against offered load, one line per mode, as an SVG image (Okabe–Ito
//! colours, as every plot of the demo).

use plotters::prelude::*;

use super::{load_key, Mode, Report};
use crate::experiment::ExperimentError;
use crate::tail_at_scale::plot::COLORS;

/// Two panels side by side: goodput (requests/s within their deadline) and the p99 of admitted
/// requests (ms, log scale), against offered load (× capacity, log scale).
pub fn svg(report: &Report, (width, height): (u32, u32)) -> Result<String, ExperimentError> {
    let plot_error = |e: &dyn std::fmt::Display| ExperimentError::Plot(e.to_string());
    let lo = report.loads.iter().copied().fold(f64::INFINITY, f64::min) * 0.8;
    let hi = report.loads.iter().copied().fold(0.0, f64::max) * 1.25;
    let max_goodput = report
        .points
        .iter()
        .flatten()
        .map(|p| p.goodput_rps)
        .fold(report.capacity, f64::max)
        * 1.1;
    let p99s = report.points.iter().flatten().filter_map(|p| p.p99_ms);
    let (p_lo, p_hi) = p99s.fold((f64::INFINITY, 0f64), |(a, b), x| (a.min(x), b.max(x)));
    let (p_lo, p_hi) = if p_lo.is_finite() && p_hi > p_lo {
        (p_lo * 0.8, p_hi * 1.25)
    } else {
        (1.0, 1000.0)
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error(&e))?;
        let (left, right) = root.split_horizontally(width / 2);
        let mut goodput = ChartBuilder::on(&left)
            .caption("goodput", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d((lo..hi).log_scale(), 0.0..max_goodput)
            .map_err(|e| plot_error(&e))?;
        goodput
            .configure_mesh()
            .x_desc("offered load, × capacity")
            .y_desc("answers within deadline / s")
            .x_label_formatter(&|x| load_key((x * 100.0).round() / 100.0))
            .draw()
            .map_err(|e| plot_error(&e))?;
        let mut latency = ChartBuilder::on(&right)
            .caption("p99 of admitted requests", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d((lo..hi).log_scale(), (p_lo..p_hi).log_scale())
            .map_err(|e| plot_error(&e))?;
        latency
            .configure_mesh()
            .x_desc("offered load, × capacity")
            .y_desc("ms (log scale)")
            .x_label_formatter(&|x| load_key((x * 100.0).round() / 100.0))
            .draw()
            .map_err(|e| plot_error(&e))?;
        for (i, (mode, row)) in Mode::ALL.iter().zip(&report.points).enumerate() {
            let color = COLORS[i];
            let style = ShapeStyle::from(color).stroke_width(2);
            let g: Vec<(f64, f64)> = report
                .loads
                .iter()
                .zip(row)
                .map(|(l, p)| (*l, p.goodput_rps))
                .collect();
            goodput
                .draw_series(LineSeries::new(g, style))
                .map_err(|e| plot_error(&e))?
                .label(mode.name())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            let p: Vec<(f64, f64)> = report
                .loads
                .iter()
                .zip(row)
                .filter_map(|(l, p)| p.p99_ms.map(|v| (*l, v)))
                .collect();
            latency
                .draw_series(LineSeries::new(p, style))
                .map_err(|e| plot_error(&e))?;
        }
        goodput
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| plot_error(&e))?;
        root.present().map_err(|e| plot_error(&e))?;
    }
    Ok(svg)
}
