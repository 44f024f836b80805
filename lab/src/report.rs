//! How an experiment's result is shown: a readable table on the terminal, and with
//! `--out DIR` a Markdown page, CSV files with the raw numbers, and PNG charts.
//!
//! Every experiment returns a result struct that implements [`Outcome`]; this module turns
//! any outcome into text or files, and `all` stitches the pages into one report. Tables
//! hold already-formatted cells (units chosen for reading); CSV files hold the raw numbers
//! (bytes, nanoseconds, seconds) for anyone who wants to plot them differently.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::LabError;
use crate::chart::{self, Chart};
use crate::process::Machine;

/// A table of formatted cells with a caption.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// One line saying what the table shows.
    pub caption: String,
    /// Column headers.
    pub headers: Vec<String>,
    /// Rows of cells, each as long as `headers`.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with a caption and column headers and no rows yet.
    pub fn new(caption: impl Into<String>, headers: &[&str]) -> Table {
        Table {
            caption: caption.into(),
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// Aligned plain text: text columns left, numeric columns right.
    pub fn to_text(&self) -> String {
        let widths = self.column_widths();
        let numeric = self.numeric_columns();
        let mut out = format!("{}\n", self.caption);
        let line = |cells: &[String], out: &mut String| {
            for (i, cell) in cells.iter().enumerate() {
                let width = widths.get(i).copied().unwrap_or(0);
                if i > 0 {
                    out.push_str("  ");
                }
                if numeric.get(i).copied().unwrap_or(false) {
                    let _ = write!(out, "{cell:>width$}");
                } else {
                    let _ = write!(out, "{cell:<width$}");
                }
            }
            while out.ends_with(' ') {
                out.pop();
            }
            out.push('\n');
        };
        line(&self.headers, &mut out);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&rule, &mut out);
        for row in &self.rows {
            line(row, &mut out);
        }
        out
    }

    /// A GitHub-flavoured Markdown table, preceded by its caption in bold.
    pub fn to_markdown(&self) -> String {
        let numeric = self.numeric_columns();
        let escape = |cell: &str| cell.replace('|', "\\|");
        let mut out = format!("**{}**\n\n| ", self.caption);
        out.push_str(&self.headers.iter().map(|h| escape(h)).collect::<Vec<_>>().join(" | "));
        out.push_str(" |\n|");
        for is_numeric in &numeric {
            out.push_str(if *is_numeric { "---:|" } else { "---|" });
        }
        out.push('\n');
        for row in &self.rows {
            out.push_str("| ");
            out.push_str(&row.iter().map(|c| escape(c)).collect::<Vec<_>>().join(" | "));
            out.push_str(" |\n");
        }
        out
    }

    /// RFC 4180 CSV: a header line, then one line per row.
    pub fn to_csv(&self) -> String {
        let quote = |cell: &str| {
            if cell.contains([',', '"', '\n']) {
                format!("\"{}\"", cell.replace('"', "\"\""))
            } else {
                cell.to_owned()
            }
        };
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            out.push_str(&row.iter().map(|c| quote(c)).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        out
    }

    fn column_widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(width) = widths.get_mut(i) {
                    *width = (*width).max(cell.chars().count());
                }
            }
        }
        widths
    }

    fn numeric_columns(&self) -> Vec<bool> {
        (0..self.headers.len())
            .map(|i| {
                let mut cells =
                    self.rows.iter().filter_map(|row| row.get(i)).filter(|c| !c.is_empty() && *c != "-");
                let mut any = false;
                let all = cells.all(|cell| {
                    any = true;
                    looks_numeric(cell)
                });
                any && all
            })
            .collect()
    }
}

fn looks_numeric(cell: &str) -> bool {
    let first = cell.trim_start_matches(['+', '-', '~', '×']).chars().next();
    first.is_some_and(|c| c.is_ascii_digit())
}

/// A CSV file of raw numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvFile {
    /// File name, e.g. `usable-size.csv`.
    pub file_name: String,
    /// The data (the caption is not written).
    pub table: Table,
}

/// The result of one experiment, in the shapes the report writers need.
pub trait Outcome {
    /// File-name stem and section anchor, e.g. `usable-size`.
    fn slug(&self) -> &'static str;
    /// Section title.
    fn title(&self) -> String;
    /// One-line conclusions, each carrying its measured numbers.
    fn findings(&self) -> Vec<String>;
    /// Tables for the terminal and the Markdown page.
    fn tables(&self) -> Vec<Table>;
    /// Raw-number CSV files.
    fn csv_files(&self) -> Vec<CsvFile>;
    /// Charts to draw.
    fn charts(&self) -> Vec<Chart>;
    /// Markdown paragraphs that explain the numbers (only in the Markdown page).
    fn explanation(&self) -> String;
    /// Other files to write next to the page (name, contents), such as a raw profile.
    fn extra_files(&self) -> Vec<(String, Vec<u8>)> {
        Vec::new()
    }
}

/// The outcome as terminal text: title, tables, findings.
pub fn render_text(outcome: &dyn Outcome) -> String {
    let title = outcome.title();
    let mut out = format!("{title}\n{}\n\n", "=".repeat(title.chars().count()));
    for table in outcome.tables() {
        out.push_str(&table.to_text());
        out.push('\n');
    }
    for finding in outcome.findings() {
        let _ = writeln!(out, "* {finding}");
    }
    out
}

/// The outcome as a Markdown section whose title has `level` hashes.
pub fn render_markdown(outcome: &dyn Outcome, level: usize) -> String {
    let hashes = "#".repeat(level);
    let mut out = format!("{hashes} {}\n\n", outcome.title());
    let findings = outcome.findings();
    if !findings.is_empty() {
        for finding in findings {
            let _ = writeln!(out, "* {finding}");
        }
        out.push('\n');
    }
    for table in outcome.tables() {
        out.push_str(&table.to_markdown());
        out.push('\n');
    }
    for chart in outcome.charts() {
        let _ = writeln!(out, "![{}]({})\n", chart.caption, chart.file_name);
    }
    let explanation = outcome.explanation();
    if !explanation.is_empty() {
        out.push_str(explanation.trim_end());
        out.push_str("\n\n");
    }
    let csv: Vec<String> = outcome.csv_files().iter().map(|f| format!("[{0}]({0})", f.file_name)).collect();
    if !csv.is_empty() {
        let _ = writeln!(out, "Raw numbers: {}.\n", csv.join(", "));
    }
    out
}

fn machine_line(machine: &Machine) -> String {
    format!("Measured on: {machine}.\n\n")
}

/// Writes `<slug>.md`, the CSV files and the charts of one outcome into `dir`.
pub fn write_outcome(dir: &Path, outcome: &dyn Outcome, machine: &Machine) -> Result<Vec<PathBuf>, LabError> {
    std::fs::create_dir_all(dir).map_err(|e| LabError::file("create directory", dir, e))?;
    let mut written = Vec::new();
    let page = format!("{}{}", machine_line(machine), render_markdown(outcome, 1));
    written.push(write_file(&dir.join(format!("{}.md", outcome.slug())), &page)?);
    for csv in outcome.csv_files() {
        written.push(write_file(&dir.join(&csv.file_name), &csv.table.to_csv())?);
    }
    for spec in outcome.charts() {
        let path = dir.join(&spec.file_name);
        chart::draw(&path, &spec)?;
        written.push(path);
    }
    for (name, contents) in outcome.extra_files() {
        let path = dir.join(name);
        std::fs::write(&path, contents).map_err(|e| LabError::file("write", &path, e))?;
        written.push(path);
    }
    Ok(written)
}

/// Writes every outcome's files and `report.md`, one page with every section, into `dir`.
pub fn write_report(
    dir: &Path,
    outcomes: &[Box<dyn Outcome>],
    machine: &Machine,
) -> Result<PathBuf, LabError> {
    let mut page = String::from("# allockit-lab report\n\n");
    page.push_str(&machine_line(machine));
    page.push_str("Every number below was measured by `allockit-lab` on this machine in this run.\n\n");
    for outcome in outcomes {
        let _ = writeln!(page, "* [{}](#{})", outcome.title(), anchor(&outcome.title()));
    }
    page.push('\n');
    for outcome in outcomes {
        write_outcome(dir, outcome.as_ref(), machine)?;
        page.push_str(&render_markdown(outcome.as_ref(), 2));
    }
    write_file(&dir.join("report.md"), &page)
}

/// The anchor GitHub generates for a heading.
fn anchor(title: &str) -> String {
    title
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn write_file(path: &Path, contents: &str) -> Result<PathBuf, LabError> {
    std::fs::write(path, contents).map_err(|e| LabError::file("write", path, e))?;
    Ok(path.to_path_buf())
}

/// Formats a byte count with a binary unit: `512 B`, `4.0 KiB`, `12.3 MiB`.
pub fn bytes(value: f64) -> String {
    let abs = value.abs();
    if abs < 1024.0 {
        format!("{value:.0} B")
    } else if abs < 1024.0 * 1024.0 {
        format!("{:.1} KiB", value / 1024.0)
    } else if abs < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", value / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GiB", value / (1024.0 * 1024.0 * 1024.0))
    }
}

/// Formats a signed byte count: `+9.3 MiB`, `-15.0 MiB`.
pub fn signed_bytes(value: f64) -> String {
    format!("{}{}", if value < 0.0 { "-" } else { "+" }, bytes(value.abs()))
}

/// Formats a ratio as `12.3×`.
pub fn ratio(value: f64) -> String {
    if value >= 100.0 { format!("{value:.0}×") } else { format!("{value:.2}×") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut table = Table::new("Sizes", &["allocator", "usable"]);
        table.push(vec!["glibc".into(), "24".into()]);
        table.push(vec!["jemalloc, x".into(), "8".into()]);
        table
    }

    #[test]
    fn text_tables_right_align_numeric_columns() {
        let text = sample().to_text();
        assert!(text.contains("glibc            24\n"), "{text}");
        assert!(text.contains("jemalloc, x       8\n"), "{text}");
    }

    #[test]
    fn markdown_tables_mark_numeric_columns_right_aligned() {
        let md = sample().to_markdown();
        assert!(md.contains("|---|---:|"), "{md}");
        assert!(md.starts_with("**Sizes**"));
    }

    #[test]
    fn csv_quotes_cells_with_commas() {
        assert_eq!(sample().to_csv(), "allocator,usable\nglibc,24\n\"jemalloc, x\",8\n");
    }

    #[test]
    fn byte_counts_use_binary_units() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(4096.0), "4.0 KiB");
        assert_eq!(bytes(3.5 * 1024.0 * 1024.0), "3.5 MiB");
    }

    #[test]
    fn anchors_follow_github_rules() {
        assert_eq!(anchor("Task 1: usable size (malloc)"), "task-1-usable-size-malloc");
    }
}
