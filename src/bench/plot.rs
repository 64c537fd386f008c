//! The benchmark picture: wall time against parameter count, log-log, one line per
//! device, method and precision.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use super::BenchRow;
use crate::error::{Error, Result};

/// Line colours, distinct on white (Tableau 10 without its pale yellow-green).
const PALETTE: [RGBColor; 9] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(127, 127, 127),
];

/// Writes an SVG plot of `rows` to `path`.
pub fn write_svg(rows: &[BenchRow], path: &Path) -> Result<()> {
    let failed = |e: &dyn std::fmt::Display| Error::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    };
    if rows.is_empty() {
        return Err(Error::Option(
            "nothing was measured, so there is nothing to plot".into(),
        ));
    }
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in rows {
        series
            .entry(format!(
                "{} · {} · {}",
                short_device(&r.device),
                r.method.as_str(),
                r.precision.as_str()
            ))
            .or_default()
            .push((r.params as f64, r.wall_seconds.max(1e-6)));
    }
    let bounds = |values: Vec<f64>, below: f64| {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(0.0, f64::max);
        (lo / below, hi * 2.0)
    };
    let (x_lo, x_hi) = bounds(rows.iter().map(|r| r.params as f64).collect(), 2.0);
    // Room below the fastest line for the legend (lower right).
    let (y_lo, y_hi) = bounds(
        rows.iter().map(|r| r.wall_seconds.max(1e-6)).collect(),
        30.0,
    );

    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "gradcheck: one whole check, every coordinate",
            ("sans-serif", 24),
        )
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(80)
        .build_cartesian_2d((x_lo..x_hi).log_scale(), (y_lo..y_hi).log_scale())
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .x_desc("parameters (log scale)")
        .y_desc("wall time, seconds (log scale)")
        .x_label_formatter(&|x| format!("{x:.0e}"))
        .y_label_formatter(&|y| format!("{y:.0e}"))
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| failed(&e))?;
    for (i, (label, mut points)) in series.into_iter().enumerate() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| failed(&e))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| failed(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(|e| failed(&e))?;
    root.present().map_err(|e| failed(&e))?;
    Ok(())
}

/// "gpu: llvmpipe (LLVM 15.0.6, 256 bits) (vulkan)" → "gpu: llvmpipe (vulkan)".
fn short_device(device: &str) -> String {
    match (device.find(" ("), device.rfind(" (")) {
        (Some(first), Some(last)) if first != last => {
            format!("{}{}", &device[..first], &device[last..])
        }
        _ => device.to_string(),
    }
}
