//! The benchmark picture: wall time against parameter count, log-log, one line per
//! device, method and precision; for a single network size, a dot per case instead (a
//! log-log line of one point has no x scale and hides cases at the same time).

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

/// Refuses a plot path that is not `.svg` (the only format drawn).
pub fn ensure_svg(path: &Path) -> Result<()> {
    match path.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("svg") => Ok(()),
        _ => Err(Error::Option(format!(
            "plots are drawn as SVG: give a path ending in .svg, not '{}'",
            path.display()
        ))),
    }
}

/// What the plot says besides the rows: where and when they were measured, and the sizes
/// each case skipped.
#[derive(Clone, Debug, Default)]
pub struct PlotNotes {
    pub machine: String,
    pub date: String,
    pub skipped: Vec<SkippedSize>,
}

/// A size a case skipped: its parameters, and the case (`cpu` or `gpu`, method, precision).
#[derive(Clone, Debug)]
pub struct SkippedSize {
    pub params: usize,
    pub device: String,
    pub method: String,
    pub precision: String,
}

/// `device · method · precision` as the plot's series are named.
pub fn case_label(device: &str, method: &str, precision: &str) -> String {
    format!("{} · {method} · {precision}", short_device(device))
}

/// Writes an SVG plot of `rows` to `path`: undecided rows drawn hollow, skipped sizes as
/// crosses along the top, the machine and date under the title.
pub fn write_svg(rows: &[BenchRow], path: &Path, notes: &PlotNotes) -> Result<()> {
    ensure_svg(path)?;
    if rows.is_empty() {
        return Err(Error::Option(
            "nothing was measured, so there is nothing to plot".into(),
        ));
    }
    let first = rows[0].params;
    if rows.iter().all(|r| r.params == first) {
        return write_dots(rows, path, notes);
    }
    let mut series: BTreeMap<String, Vec<(f64, f64, bool)>> = BTreeMap::new();
    for r in rows {
        series
            .entry(case_label(
                &r.device,
                r.method.as_str(),
                r.precision.as_str(),
            ))
            .or_default()
            .push((
                r.params as f64,
                r.wall_seconds.max(1e-6),
                r.verdict == "pass",
            ));
    }
    let bounds = |values: Vec<f64>, below: f64| {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(0.0, f64::max);
        (lo / below, hi * 2.0)
    };
    let (x_lo, x_hi) = bounds(
        rows.iter()
            .map(|r| r.params as f64)
            .chain(notes.skipped.iter().map(|s| s.params as f64))
            .collect(),
        2.0,
    );
    // Room below the fastest line for the legend (lower right).
    let (y_lo, y_hi) = bounds(
        rows.iter().map(|r| r.wall_seconds.max(1e-6)).collect(),
        30.0,
    );

    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "gradcheck: one whole check, every coordinate — {} · {}",
                notes.machine, notes.date
            ),
            ("sans-serif", 18),
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
    let colors: BTreeMap<String, RGBColor> = series
        .keys()
        .enumerate()
        .map(|(i, k)| (k.clone(), PALETTE[i % PALETTE.len()]))
        .collect();
    for (label, mut points) in series.into_iter() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let color = colors[&label];
        // Decided rows filled, undecided ones hollow.
        let dots = chart
            .draw_series(points.iter().map(|&(x, y, decided)| {
                let style = if decided {
                    color.filled()
                } else {
                    color.stroke_width(2)
                };
                Circle::new((x, y), if decided { 4 } else { 6 }, style)
            }))
            .map_err(|e| failed(&e))?;
        let points: Vec<(f64, f64)> = points.iter().map(|&(x, y, _)| (x, y)).collect();
        if points.len() == 1 {
            // One size only for this case: a dot, and a dot in the legend.
            dots.label(label)
                .legend(move |(x, y)| Circle::new((x + 12, y), 4, color.filled()));
            continue;
        }
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| failed(&e))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
    }
    // Skipped sizes: a cross along the top, in the case's colour.
    for skipped in &notes.skipped {
        let tail = format!(" · {} · {}", skipped.method, skipped.precision);
        let color = colors
            .iter()
            .find(|(k, _)| k.starts_with(&skipped.device) && k.ends_with(&tail))
            .map_or(PALETTE[8], |(_, c)| *c);
        chart
            .draw_series(std::iter::once(Cross::new(
                (skipped.params as f64, y_hi / 1.5),
                6,
                color.stroke_width(2),
            )))
            .map_err(|e| failed(&e))?;
    }
    chart
        .draw_series(std::iter::once(Text::new(
            "filled: pass · hollow: undecided (inconclusive) · × along the top: skipped (--max-seconds)",
            (x_lo * 1.1, y_hi / 1.15),
            ("sans-serif", 13).into_font(),
        )))
        .map_err(|e| failed(&e))?;
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

/// The drawing error, once (plotters nests the backend's error in two layers of its own).
fn failed(e: &dyn std::fmt::Display) -> Error {
    let text = e.to_string();
    let root = text.rsplit(": ").next().unwrap_or(&text).to_string();
    Error::Option(format!("cannot draw the plot: {root}"))
}

/// One network size: a dot per device · method · precision on a log time axis, each
/// labelled with its case and time, fastest first.
fn write_dots(rows: &[BenchRow], path: &Path, notes: &PlotNotes) -> Result<()> {
    let mut cases: Vec<(String, f64)> = rows
        .iter()
        .map(|r| {
            let label = case_label(&r.device, r.method.as_str(), r.precision.as_str());
            let label = if r.verdict == "pass" {
                label
            } else {
                format!("{label} ({})", r.verdict)
            };
            (label, r.wall_seconds.max(1e-6))
        })
        .collect();
    cases.sort_by(|a, b| a.1.total_cmp(&b.1));
    let lo = cases.iter().map(|c| c.1).fold(f64::INFINITY, f64::min) / 3.0;
    let hi = cases.iter().map(|c| c.1).fold(0.0, f64::max) * 30.0;
    let n = cases.len();
    let height = (160 + 44 * n).min(2000) as u32;
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let r = &rows[0];
    let widths: Vec<String> = r.widths.iter().map(usize::to_string).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "gradcheck: one whole check of {} ({} parameters, m = {}) — {} · {}",
                widths.join("-"),
                r.params,
                r.examples,
                notes.machine,
                notes.date
            ),
            ("sans-serif", 16),
        )
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(16)
        .build_cartesian_2d((lo..hi).log_scale(), -0.75f64..(n as f64 - 0.25))
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .x_desc("wall time, seconds (log scale)")
        .x_label_formatter(&|x| format!("{x:.0e}"))
        .disable_y_mesh()
        .y_labels(0)
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| failed(&e))?;
    for (i, (label, seconds)) in cases.iter().enumerate() {
        let y = (n - 1 - i) as f64;
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(std::iter::once(Circle::new(
                (*seconds, y),
                6,
                color.filled(),
            )))
            .map_err(|e| failed(&e))?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{label}   {seconds:.4} s"),
                (*seconds * 1.25, y + 0.12),
                ("sans-serif", 15).into_font(),
            )))
            .map_err(|e| failed(&e))?;
    }
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
