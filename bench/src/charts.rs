//! SVG charts with plotters: round-trip time distributions (one chart per I/O
//! mode: latency against percentile, the tail stretched), median round trip per
//! row, and throughput bars.

use std::path::Path;

use plotters::prelude::*;

use crate::rtt::{IoMode, RowResult};
use crate::throughput::ThroughputResult;
use crate::BenchResult;

const WIDTH: u32 = 960;

/// Percentiles drawn on the distribution charts.
const PERCENTILES: [f64; 14] = [
    0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.97, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999,
];

/// Writes every chart into `dir`; returns the file names.
pub fn write_all(
    dir: &Path,
    rows: &[RowResult],
    throughput: &[ThroughputResult],
) -> BenchResult<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for mode in [IoMode::BusyPoll, IoMode::Blocking, IoMode::Tokio] {
        let selected: Vec<&RowResult> = rows
            .iter()
            .filter(|r| r.row.mode == mode && r.skipped.is_none() && !r.samples.is_empty())
            .collect();
        if selected.is_empty() {
            continue;
        }
        let name = format!("rtt-{}.svg", mode.name());
        distribution(&dir.join(&name), mode, &selected)?;
        written.push(name);
    }
    let measured: Vec<&RowResult> = rows
        .iter()
        .filter(|r| r.skipped.is_none() && r.summary.count > 0)
        .collect();
    if !measured.is_empty() {
        let bars: Vec<(String, f64, f64)> = measured
            .iter()
            .map(|r| (r.row.id.to_string(), r.summary.p50, r.summary.p99))
            .collect();
        hbars(
            &dir.join("rtt-p50-p99.svg"),
            "64-byte round trip: p50 (bar) and p99 (tick, when on scale), µs: label p50 / p99",
            &bars,
        )?;
        written.push("rtt-p50-p99.svg".into());
    }
    let tp: Vec<(String, f64, f64)> = throughput
        .iter()
        .filter(|t| t.skipped.is_none() && t.message_bytes <= 1200)
        .map(|t| {
            (
                format!("{} B {}", t.message_bytes, short_sender(t)),
                t.messages_per_sec / 1e3,
                0.0,
            )
        })
        .collect();
    if !tp.is_empty() {
        hbars(
            &dir.join("throughput.svg"),
            "One-way throughput, thousand messages per second",
            &tp,
        )?;
        written.push("throughput.svg".into());
    }
    Ok(written)
}

fn short_sender(t: &ThroughputResult) -> &'static str {
    use crate::throughput::Sender;
    match t.sender {
        Sender::RawUdp => "raw UDP",
        Sender::FastnetEach => "FastNet send_now",
        Sender::FastnetBatched => "FastNet batched",
        Sender::FastnetBig => "FastNet 1 MiB",
        Sender::TokioEach => "FastNet Tokio",
        Sender::TokioBig => "FastNet Tokio 1 MiB",
    }
}

/// Position of a percentile on the x axis: -log10(1 - p), so 90, 99, 99.9 and
/// 99.99 are equally spaced.
fn tail_x(p: f64) -> f64 {
    -(1.0 - p).max(1e-4).log10()
}

fn percentile_us(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1e3
}

fn distribution(path: &Path, mode: IoMode, rows: &[&RowResult]) -> BenchResult<()> {
    let curves: Vec<(String, Vec<(f64, f64)>)> = rows
        .iter()
        .map(|r| {
            let mut sorted = r.samples.clone();
            sorted.sort_unstable();
            let points = PERCENTILES
                .iter()
                .map(|&p| (tail_x(p), percentile_us(&sorted, p)))
                .collect();
            (r.row.id.to_string(), points)
        })
        .collect();
    let max = curves
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .fold(1.0f64, f64::max);
    let min = curves
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .fold(f64::MAX, f64::min)
        .max(0.1);
    let root = SVGBackend::new(path, (WIDTH, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "64-byte round trip by percentile ({} rows), µs, log scale",
        mode.name()
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..4f64, (min * 0.8..max * 1.25).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("µs")
        .x_labels(5)
        .x_label_formatter(&|x| match x.round() as i64 {
            0 => "0".into(),
            1 => "90".into(),
            2 => "99".into(),
            3 => "99.9".into(),
            _ => "99.99".into(),
        })
        .draw()?;
    for (i, (name, points)) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Horizontal bars `(label, value, marker)`: the bar is `value`; a non-zero
/// `marker` draws a tick at that value (p99 beside p50).
fn hbars(path: &Path, title: &str, bars: &[(String, f64, f64)]) -> BenchResult<()> {
    let n = bars.len();
    // The axis follows the bars; a marker beyond it is given in the label only.
    let max = bars.iter().map(|b| b.1).fold(1.0f64, f64::max) * 1.6;
    let height = 90 + 28 * n as u32;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(10)
        .build_cartesian_2d(0f64..max, 0f64..n as f64)?;
    chart.configure_mesh().disable_y_mesh().y_labels(0).draw()?;
    for (i, (label, value, marker)) in bars.iter().enumerate() {
        let y = (n - 1 - i) as f64;
        let color = Palette99::pick(i).to_rgba();
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, y + 0.15), (*value, y + 0.85)],
            color.filled(),
        )))?;
        let marker_shown = *marker > 0.0 && *marker <= max;
        if marker_shown {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(*value, y + 0.5), (*marker, y + 0.5)],
                BLACK.stroke_width(1),
            )))?;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(*marker, y + 0.2), (*marker, y + 0.8)],
                BLACK.stroke_width(2),
            )))?;
        }
        let text = if *marker > 0.0 {
            format!("{label}  {value:.1} / {marker:.1}")
        } else {
            format!("{label}  {value:.1}")
        };
        chart.draw_series(std::iter::once(Text::new(
            text,
            (
                if marker_shown {
                    value.max(*marker)
                } else {
                    *value
                } + max * 0.01,
                y + 0.3,
            ),
            ("sans-serif", 13),
        )))?;
    }
    root.present()?;
    Ok(())
}
