//! PNG charts with plotters: line charts (one or more panels, one curve per series) and
//! bar charts (optionally on a logarithmic axis, for numbers that differ by orders of
//! magnitude).
//!
//! A [`Chart`] is plain data, built by the experiments and drawn here, so the experiments
//! stay testable without touching fonts or files. Text needs a system font
//! (fontconfig's `sans-serif`).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::LabError;

/// One curve of a [`LinePanel`], drawn in its own colour with a legend entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its entry in the panel's legend (upper left), beside a stroke of its colour.
    pub name: String,
    /// (x, y) points in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// One plotting area with axes and curves.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePanel {
    /// Panel title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// The curves, drawn in order with the palette's colours.
    pub series: Vec<Series>,
}

/// One bar of a bar chart: bars are drawn in the order given, not sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Label under the bar.
    pub label: String,
    /// Height, in the unit of the chart's y-axis label; printed above the bar, and on a
    /// log axis only positive values show.
    pub value: f64,
}

/// What a chart draws.
#[derive(Debug, Clone, PartialEq)]
pub enum ChartKind {
    /// Line panels laid out in a grid, two per row when there are several.
    Lines(Vec<LinePanel>),
    /// Vertical bars with their values written above them.
    Bars {
        /// Chart title.
        title: String,
        /// Y axis label.
        y_label: String,
        /// The bars, left to right.
        bars: Vec<Bar>,
        /// Draw the y axis logarithmically.
        log_y: bool,
    },
}

/// A chart and the file it goes to.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// File name inside the output directory, e.g. `swap-rss.png`.
    pub file_name: String,
    /// Alt text and caption in the Markdown page.
    pub caption: String,
    /// What is drawn: line panels or bars.
    pub kind: ChartKind,
}

const PANEL_WIDTH: u32 = 960;
const PANEL_HEIGHT: u32 = 540;
const GRID_PANEL_WIDTH: u32 = 800;
const GRID_PANEL_HEIGHT: u32 = 420;
const FONT: &str = "sans-serif";

/// Draws `chart` into the PNG file `path`.
pub fn draw(path: &Path, chart: &Chart) -> Result<(), LabError> {
    let fail = |reason: String| LabError::Chart { path: path.to_path_buf(), reason };
    match &chart.kind {
        ChartKind::Lines(panels) => {
            let columns = if panels.len() > 1 { 2 } else { 1 };
            let rows = panels.len().div_ceil(columns).max(1);
            let (width, height) = if columns == 1 {
                (PANEL_WIDTH, PANEL_HEIGHT)
            } else {
                (GRID_PANEL_WIDTH * columns as u32, GRID_PANEL_HEIGHT * rows as u32)
            };
            let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
            let areas = root.split_evenly((rows, columns));
            for (area, panel) in areas.iter().zip(panels) {
                draw_line_panel(area, panel).map_err(fail)?;
            }
            root.present().map_err(|e| fail(e.to_string()))
        }
        ChartKind::Bars { title, y_label, bars, log_y } => {
            let root = BitMapBackend::new(path, (PANEL_WIDTH, PANEL_HEIGHT)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
            draw_bars(&root, title, y_label, bars, *log_y).map_err(fail)?;
            root.present().map_err(|e| fail(e.to_string()))
        }
    }
}

fn color(index: usize) -> RGBColor {
    const COLORS: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
    ];
    COLORS[index % COLORS.len()]
}

fn bounds(panel: &LinePanel) -> (f64, f64, f64, f64) {
    let points = panel.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= 0.0 {
        y1 = 1.0;
    }
    (x0, x1, 0.0, y1 * 1.08)
}

fn draw_line_panel(area: &DrawingArea<BitMapBackend<'_>, Shift>, panel: &LinePanel) -> Result<(), String> {
    let (x0, x1, y0, y1) = bounds(panel);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FONT, 22))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (index, series) in panel.series.iter().enumerate() {
        let style = color(index).stroke_width(2);
        chart
            .draw_series(LineSeries::new(series.points.iter().copied(), style))
            .map_err(|e| e.to_string())?
            .label(series.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()
        .map_err(|e| e.to_string())
}

fn draw_bars(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    y_label: &str,
    bars: &[Bar],
    log_y: bool,
) -> Result<(), String> {
    let max = bars.iter().map(|b| b.value).fold(0.0f64, f64::max).max(f64::MIN_POSITIVE);
    let min_positive = bars.iter().map(|b| b.value).filter(|v| *v > 0.0).fold(max, f64::min);
    let n = bars.len().max(1) as f64;
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    let x_formatter = move |x: &f64| {
        let index = x.floor();
        if (x - index - 0.5).abs() < 1e-6 && index >= 0.0 {
            labels.get(index as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let mut builder = ChartBuilder::on(area);
    builder.caption(title, (FONT, 22)).margin(12).x_label_area_size(42).y_label_area_size(72);
    let value_label = |v: f64| if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.1}") };
    if log_y {
        let floor = min_positive / 3.0;
        let mut chart =
            builder.build_cartesian_2d(0.0..n, (floor..max * 3.0).log_scale()).map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len() * 2 + 1)
            .x_label_formatter(&x_formatter)
            .y_desc(y_label)
            .label_style((FONT, 14))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, bar) in bars.iter().enumerate() {
            let x = i as f64;
            let top = bar.value.max(floor);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x + 0.2, floor), (x + 0.8, top)],
                    color(i).filled(),
                )))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(std::iter::once(Text::new(
                    value_label(bar.value),
                    (x + 0.3, top * 1.7),
                    (FONT, 16),
                )))
                .map_err(|e| e.to_string())?;
        }
    } else {
        let mut chart = builder.build_cartesian_2d(0.0..n, 0.0..max * 1.15).map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len() * 2 + 1)
            .x_label_formatter(&x_formatter)
            .y_desc(y_label)
            .label_style((FONT, 14))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, bar) in bars.iter().enumerate() {
            let x = i as f64;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x + 0.2, 0.0), (x + 0.8, bar.value)],
                    color(i).filled(),
                )))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(std::iter::once(Text::new(
                    value_label(bar.value),
                    (x + 0.3, bar.value + max * 0.07),
                    (FONT, 16),
                )))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_bar_charts_are_written_as_png() {
        let dir = crate::process::TempDir::new("chart-test").unwrap();
        let lines = Chart {
            file_name: "lines.png".into(),
            caption: "lines".into(),
            kind: ChartKind::Lines(vec![LinePanel {
                title: "t".into(),
                x_label: "x".into(),
                y_label: "y".into(),
                series: vec![Series { name: "a".into(), points: vec![(0.0, 1.0), (1.0, 3.0)] }],
            }]),
        };
        let bars = Chart {
            file_name: "bars.png".into(),
            caption: "bars".into(),
            kind: ChartKind::Bars {
                title: "b".into(),
                y_label: "ns".into(),
                bars: vec![
                    Bar { label: "malloc".into(), value: 20.0 },
                    Bar { label: "mmap".into(), value: 900.0 },
                ],
                log_y: true,
            },
        };
        for chart in [&lines, &bars] {
            let path = dir.path().join(&chart.file_name);
            draw(&path, chart).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        }
    }
}
