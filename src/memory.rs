//! The memory budget of a check: refuse early what cannot fit, and slice the GPU work so
//! that no buffer exceeds the device's limits or the budget.

use crate::error::{Error, Result};
use crate::problem::Problem;

/// Host bytes a check holds per parameter at its peak, whether checked or not: θ and the
/// gradient, the four per-coordinate estimates.
pub const BYTES_PER_PARAM: u64 = 64;
/// And per coordinate evaluated: its cost changes and the device's read-back. Together
/// measured at 3,672,065 parameters (whole-process peak RSS): 123 B (CPU), 159 B (lavapipe
/// f32) and 208 B (lavapipe f64, whose device memory is host memory); 224 with a margin.
pub const BYTES_PER_CHECKED: u64 = 160;

/// When the host's available memory cannot be read.
const FALLBACK_BUDGET: u64 = 4 << 30;

/// Three quarters of the memory the host has available now (`MemAvailable` on Linux), or
/// 4 GiB where that is unknown.
pub fn default_budget() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(FALLBACK_BUDGET, |kib| kib * 1024 / 4 * 3)
}

/// Bytes a check of `checked` coordinates of a network of `widths` over `examples`
/// needs on the host, by the model above plus its data and activations; from the shape
/// alone, so that a network too large is refused before it is built (saturating: widths of
/// 10⁵ must not overflow the estimate).
pub fn host_bytes(widths: &[usize], examples: usize, checked: usize) -> u64 {
    let params = params_of(widths);
    let units = widths.iter().fold(0u64, |a, &w| a.saturating_add(w as u64));
    let activations = units.saturating_mul(examples as u64).saturating_mul(8 * 4);
    params
        .saturating_mul(BYTES_PER_PARAM)
        .saturating_add(
            (checked as u64)
                .min(params)
                .saturating_mul(BYTES_PER_CHECKED),
        )
        .saturating_add(activations)
}

/// Parameters of a network of `widths` (`Σ n_l·(n_(l−1) + 1)`), saturating.
fn params_of(widths: &[usize]) -> u64 {
    widths.windows(2).fold(0u64, |a, pair| {
        a.saturating_add((pair[1] as u64).saturating_mul(pair[0] as u64 + 1))
    })
}

/// Refuses, before anything large is allocated, a check of `checked` coordinates of a
/// network of `widths` over `examples` that needs more than `budget`.
pub fn ensure_fits(widths: &[usize], examples: usize, checked: usize, budget: u64) -> Result<()> {
    let need = host_bytes(widths, examples, checked);
    if need > budget {
        let params = params_of(widths);
        return Err(Error::Memory(format!(
            "checking {} of {} parameters needs about {} but the budget is {} (raise the budget, or check a subset of the coordinates)",
            (checked as u64).min(params),
            params,
            human(need),
            human(budget)
        )));
    }
    Ok(())
}

/// [`ensure_fits`] for a problem already in memory.
pub fn ensure_problem_fits(problem: &Problem, checked: usize, budget: u64) -> Result<()> {
    ensure_fits(&problem.net().widths(), problem.examples(), checked, budget)
}

/// Coordinates per GPU slice: each slice's output (`bytes_per_item` each) stays within the
/// device's largest binding and a sixteenth of the budget (the output, its poison, its
/// staging copy and the decoded values each hold a slice's worth at once).
pub fn slice_items(binding_limit: u64, budget: u64, bytes_per_item: u64) -> usize {
    let bytes = binding_limit.min(budget / 16).max(bytes_per_item);
    (bytes / bytes_per_item.max(1)) as usize
}

/// `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Parses `512M`, `2G`, `1.5GiB`, `100000` (bytes; suffixes are powers of 1024).
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size like 512M or 2G"))?;
    let shift = match suffix.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("'{text}': unknown unit (use K, M, G or T)")),
    };
    let bytes = value * (1u64 << shift) as f64;
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("'{text}' is not a usable size"));
    }
    Ok(bytes as u64)
}

/// Starts a new peak for [`peak_resident`] (Linux: `/proc/self/clear_refs`); elsewhere
/// nothing.
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak resident memory since the last [`reset_peak`], in bytes, where the
/// system reports it (Linux's `VmHWM`).
pub fn peak_resident() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_powers_of_1024() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("100000"), Ok(100_000));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(human(3 << 29), "1.5 GiB");
    }

    #[test]
    fn slices_respect_the_binding_limit_and_the_budget() {
        assert_eq!(slice_items(128 << 20, u64::MAX, 32), (128 << 20) / 32);
        assert_eq!(slice_items(128 << 20, 16 * 3200, 32), 100);
        assert_eq!(slice_items(128 << 20, 1, 32), 1);
    }
}
