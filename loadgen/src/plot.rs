//! Charts (plotters): a run's memory and latency over time (`--plot`), and the demo's RSS
//! of both modes on one chart. The format follows the file extension: `.png` or `.svg`.
//!
//! A chart is a stack of panels sharing the time axis; each panel draws one line per curve
//! with a legend. Curves with no points (a metric the server does not export) are left
//! out. Text needs a system sans-serif font (fontconfig), as plotters' `ttf` feature does.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::Error;
use crate::report::RunReport;
use crate::scrape::ServerSample;

/// Pixel size of every chart.
const SIZE: (u32, u32) = (1200, 800);
const MIB: f64 = 1024.0 * 1024.0;
/// Line colours, distinguishable and print-safe (the tab10 palette).
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One line: `(seconds, value)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// Legend text (the mode or the series name).
    pub label: String,
    /// Points in time order.
    pub points: Vec<(f64, f64)>,
}

/// One panel of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Caption above the panel.
    pub title: String,
    /// Y axis description, with the unit (`MiB`, `ms`).
    pub y_label: String,
    /// The lines; empty ones are skipped.
    pub curves: Vec<Curve>,
}

/// The `--plot` chart of one run: server memory (RSS, jemalloc, arena, cache) above,
/// corrected and service p99 per second below.
pub fn plot_run(report: &RunReport, path: &Path) -> Result<(), Error> {
    let memory_curve = |label: &str, figure: fn(&ServerSample) -> Option<f64>| Curve {
        label: label.to_owned(),
        points: report
            .series
            .iter()
            .filter_map(|row| figure(&row.server).map(|bytes| (row.elapsed_s, bytes / MIB)))
            .collect(),
    };
    let latency_curve = |label: &str, figure: fn(&crate::report::SeriesRow) -> Option<f64>| Curve {
        label: label.to_owned(),
        points: report.series.iter().filter_map(|row| figure(row).map(|ms| (row.elapsed_s, ms))).collect(),
    };
    let memory = Panel {
        title: "Server memory".to_owned(),
        y_label: "MiB".to_owned(),
        curves: vec![
            memory_curve("RSS", |server| server.rss_bytes),
            memory_curve("jemalloc resident", |server| server.jemalloc_resident_bytes),
            memory_curve("jemalloc allocated", |server| server.jemalloc_allocated_bytes),
            memory_curve("arena committed", |server| server.arena_committed_bytes),
            memory_curve("cache", |server| server.cache_bytes),
        ],
    };
    let latency = Panel {
        title: format!("p99 latency per second at {} rps", report.target_rps),
        y_label: "ms".to_owned(),
        curves: vec![
            latency_curve("corrected (from intended send)", |row| row.p99_ms),
            latency_curve("service (from actual send)", |row| row.service_p99_ms),
        ],
    };
    draw_chart(path, &[memory, latency])
}

/// The demo chart: the server RSS of each run on one panel, labelled by the runs' labels.
pub fn plot_rss_comparison(reports: &[&RunReport], path: &Path) -> Result<(), Error> {
    let curves = reports
        .iter()
        .map(|report| Curve {
            label: report.label.clone(),
            points: report
                .series
                .iter()
                .filter_map(|row| row.server.rss_bytes.map(|bytes| (row.elapsed_s, bytes / MIB)))
                .collect(),
        })
        .collect();
    let rate = reports.first().map_or(0.0, |report| report.target_rps);
    draw_chart(
        path,
        &[Panel { title: format!("Server RSS at {rate} rps"), y_label: "RSS (MiB)".to_owned(), curves }],
    )
}

/// Draws `panels` stacked, into a PNG or SVG file chosen by `path`'s extension.
pub fn draw_chart(path: &Path, panels: &[Panel]) -> Result<(), Error> {
    let plot_error = |message: String| Error::Plot { path: path.to_owned(), message };
    match path.extension().and_then(|extension| extension.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("png") => {
            let root = BitMapBackend::new(path, SIZE).into_drawing_area();
            draw_panels(&root, panels)
                .and_then(|()| root.present().map_err(|e| e.to_string()))
                .map_err(plot_error)
        }
        Some("svg") => {
            let root = SVGBackend::new(path, SIZE).into_drawing_area();
            draw_panels(&root, panels)
                .and_then(|()| root.present().map_err(|e| e.to_string()))
                .map_err(plot_error)
        }
        _ => Err(plot_error("the file name must end in .png or .svg".to_owned())),
    }
}

fn draw_panels<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, panels: &[Panel]) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let x_max = panels
        .iter()
        .flat_map(|panel| panel.curves.iter())
        .flat_map(|curve| curve.points.iter().map(|point| point.0))
        .fold(1.0_f64, f64::max);
    let areas = root.split_evenly((panels.len().max(1), 1));
    for (area, panel) in areas.iter().zip(panels) {
        draw_panel(area, panel, x_max).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    x_max: f64,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let curves: Vec<&Curve> = panel.curves.iter().filter(|curve| !curve.points.is_empty()).collect();
    let y_max =
        curves.iter().flat_map(|curve| curve.points.iter().map(|point| point.1)).fold(0.0_f64, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let title = if curves.is_empty() { format!("{} (no data)", panel.title) } else { panel.title.clone() };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart.configure_mesh().x_desc("seconds").y_desc(panel.y_label.as_str()).draw()?;
    for (number, curve) in curves.iter().enumerate() {
        let color = COLORS[number % COLORS.len()];
        chart
            .draw_series(LineSeries::new(curve.points.iter().copied(), color.stroke_width(2)))?
            .label(curve.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2)));
    }
    if !curves.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}
