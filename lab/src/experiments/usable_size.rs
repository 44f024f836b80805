//! Task 1: what `malloc(n)` really gives and really costs.
//!
//! For every allocator available (glibc in a plain child, the others through
//! `LD_PRELOAD`), a child process measures:
//!
//! * `malloc_usable_size` for a few requests (1, 8, 16, 17, 24, 25, 32, 100, 1000 bytes);
//! * the size classes up to a limit: starting at 1 byte, the usable size `u` of a request
//!   is the top of its class, so the next class starts at `u + 1` (checked, with a binary
//!   search when an allocator is not that regular). This finds every boundary with two
//!   `malloc` calls per class instead of one per byte;
//! * the resident memory of one million live 1-byte objects, read from `/proc/self/statm`
//!   before and after, giving the real cost per object including headers, rounding and
//!   the allocator's metadata.
//!
//! It cannot see allocator metadata that is not resident yet, and the RSS delta includes
//! whatever the allocator touched for its own bookkeeping: that is the point.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::LabError;
use crate::allocator::{self, AllocatorKind};
use crate::chart::{Chart, ChartKind, LinePanel, Series};
use crate::child::{ChildTask, Launch};
use crate::process;
use crate::report::{self, CsvFile, Outcome, Table};

/// The requests of task 1.
pub const PROBE_SIZES: [usize; 9] = [1, 8, 16, 17, 24, 25, 32, 100, 1000];

/// The measurement a child performs on its own allocator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeProbe {
    /// Requests whose usable size is reported one by one.
    pub probes: Vec<usize>,
    /// Size classes are searched from 1 byte up to this request size.
    pub class_limit: usize,
    /// How many 1-byte objects to keep live for the RSS measurement.
    pub objects: usize,
}

impl SizeProbe {
    /// Task 1 in full: classes up to 64 KiB, one million objects.
    pub fn full() -> SizeProbe {
        SizeProbe { probes: PROBE_SIZES.to_vec(), class_limit: 64 * 1024, objects: 1_000_000 }
    }

    /// The test-suite version: classes up to 4 KiB, still one million objects (30 ms).
    pub fn quick() -> SizeProbe {
        SizeProbe { probes: PROBE_SIZES.to_vec(), class_limit: 4096, objects: 1_000_000 }
    }
}

/// Requested and usable bytes of one allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsableSize {
    /// Bytes asked for.
    pub requested: usize,
    /// `malloc_usable_size` of the result.
    pub usable: usize,
}

/// A run of request sizes that all get the same usable size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeClass {
    /// Smallest request in the class.
    pub first_request: usize,
    /// Largest request in the class.
    pub last_request: usize,
    /// Usable bytes every request in the class gets.
    pub usable: usize,
}

/// The resident cost of many tiny objects.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SmallObjects {
    /// Objects kept live at once.
    pub objects: usize,
    /// Bytes requested per object.
    pub object_size: usize,
    /// RSS before allocating (the pointer array already touched).
    pub rss_before: u64,
    /// RSS with every object live.
    pub rss_after: u64,
}

impl SmallObjects {
    /// Resident bytes per object.
    pub fn bytes_per_object(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.objects.max(1) as f64
    }
}

/// What one child measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeReport {
    /// Usable size of each probe.
    pub probes: Vec<UsableSize>,
    /// Size classes from 1 byte to the class limit, in order.
    pub classes: Vec<SizeClass>,
    /// The one-million-objects measurement.
    pub small_objects: SmallObjects,
}

impl ChildTask for SizeProbe {
    const NAME: &'static str = "usable-size";
    type Output = SizeReport;

    fn run(self) -> Result<SizeReport, LabError> {
        measure(&self)
    }
}

/// `malloc_usable_size(malloc(n))`, freed again.
fn usable_size_of(requested: usize) -> Result<usize, LabError> {
    // SAFETY: malloc has no preconditions; the result is checked for null below.
    let ptr = unsafe { libc::malloc(requested) };
    if ptr.is_null() {
        return Err(LabError::InvalidArgument {
            flag: "--class-limit",
            reason: format!("malloc({requested}) failed"),
        });
    }
    // SAFETY: `ptr` is a live allocation from this process's malloc.
    let usable = unsafe { libc::malloc_usable_size(ptr) };
    // SAFETY: `ptr` is live and freed exactly once.
    unsafe { libc::free(ptr) };
    Ok(usable)
}

/// Runs the probe in this process, on whatever allocator serves `malloc` here.
pub fn measure(probe: &SizeProbe) -> Result<SizeReport, LabError> {
    let probes = probe
        .probes
        .iter()
        .map(|&requested| Ok(UsableSize { requested, usable: usable_size_of(requested)? }))
        .collect::<Result<Vec<_>, LabError>>()?;
    let classes = size_classes(probe.class_limit, usable_size_of)?;
    let small_objects = small_object_cost(probe.objects)?;
    Ok(SizeReport { probes, classes, small_objects })
}

/// Finds the size classes of `usable` for requests 1 ..= `limit`.
///
/// Assumes `usable` is non-decreasing in the request, as every real allocator is.
pub fn size_classes(
    limit: usize,
    mut usable: impl FnMut(usize) -> Result<usize, LabError>,
) -> Result<Vec<SizeClass>, LabError> {
    let mut classes = Vec::new();
    let mut first = 1;
    while first <= limit {
        let top = usable(first)?;
        let last = if top <= first || usable(top)? == top {
            top.max(first)
        } else {
            let (mut low, mut high) = (first, top);
            while low < high {
                let mid = low + (high - low).div_ceil(2);
                if usable(mid)? == top { low = mid } else { high = mid - 1 }
            }
            low
        };
        classes.push(SizeClass { first_request: first, last_request: last, usable: top });
        first = last + 1;
    }
    Ok(classes)
}

fn small_object_cost(objects: usize) -> Result<SmallObjects, LabError> {
    let mut pointers: Vec<*mut libc::c_void> = vec![std::ptr::null_mut(); objects];
    std::hint::black_box(&mut pointers);
    let rss_before =
        process::own_resident_bytes().map_err(|e| LabError::file("read", "/proc/self/statm", e))?;
    for (i, slot) in pointers.iter_mut().enumerate() {
        // SAFETY: malloc has no preconditions; null is checked below.
        let ptr = unsafe { libc::malloc(1) };
        if ptr.is_null() {
            break;
        }
        // SAFETY: `ptr` points to at least one writable byte.
        unsafe { ptr.cast::<u8>().write_volatile(i as u8) };
        *slot = ptr;
    }
    let rss_after =
        process::own_resident_bytes().map_err(|e| LabError::file("read", "/proc/self/statm", e))?;
    let live = pointers.iter().filter(|p| !p.is_null()).count();
    for ptr in pointers {
        // SAFETY: each pointer is null or a live allocation freed exactly once.
        unsafe { libc::free(ptr) };
    }
    Ok(SmallObjects { objects: live, object_size: 1, rss_before, rss_after })
}

/// One allocator's measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocatorSizes {
    /// The allocator the child was started on (checked against `library`).
    pub allocator: AllocatorKind,
    /// The library that served `malloc` in the child.
    pub library: String,
    /// What the child measured.
    pub report: SizeReport,
}

/// Task 1's result: one entry per allocator available, and the ones that are missing.
#[derive(Debug, Clone, PartialEq)]
pub struct UsableSizeOutcome {
    /// The request sizes, class limit and object count every allocator was probed with.
    pub probe: SizeProbe,
    /// Allocators measured, glibc first.
    pub runs: Vec<AllocatorSizes>,
    /// Allocators not installed, with their install command.
    pub missing: Vec<(AllocatorKind, String)>,
}

/// Runs the probe in one child per allocator.
pub fn run(exe: &Path, probe: &SizeProbe) -> Result<UsableSizeOutcome, LabError> {
    let mut runs = Vec::new();
    let mut missing = Vec::new();
    for located in allocator::locate_all() {
        if let allocator::Availability::Missing { install } = &located.availability {
            missing.push((located.kind, install.clone()));
            continue;
        }
        let (report, _) = Launch::new(exe, &located).run(probe)?;
        runs.push(AllocatorSizes {
            allocator: located.kind,
            library: located.preload().map_or_else(|| "libc".to_owned(), |p| p.display().to_string()),
            report,
        });
    }
    Ok(UsableSizeOutcome { probe: probe.clone(), runs, missing })
}

/// glibc's rule: an 8-byte size header, 16-byte chunk granularity, a 32-byte minimum chunk.
pub fn glibc_model_usable(requested: usize) -> usize {
    ((requested + 8).div_ceil(16) * 16).max(32) - 8
}

/// The largest share of a class's usable bytes a request can waste, over classes whose
/// smallest request exceeds `above` bytes.
pub fn worst_waste(classes: &[SizeClass], above: usize) -> Option<f64> {
    classes
        .iter()
        .filter(|class| class.first_request > above)
        .map(|class| (class.usable - class.first_request) as f64 / class.usable as f64)
        .max_by(f64::total_cmp)
}

impl UsableSizeOutcome {
    fn run_of(&self, kind: AllocatorKind) -> Option<&AllocatorSizes> {
        self.runs.iter().find(|run| run.allocator == kind)
    }

    fn glibc_explanation(&self) -> String {
        let Some(glibc) = self.run_of(AllocatorKind::Glibc) else { return String::new() };
        let probes_matching =
            glibc.report.probes.iter().filter(|p| glibc_model_usable(p.requested) == p.usable).count();
        let classes_matching = glibc
            .report
            .classes
            .iter()
            .filter(|c| {
                glibc_model_usable(c.first_request) == c.usable
                    && glibc_model_usable(c.last_request) == c.usable
            })
            .count();
        let one = glibc.report.probes.iter().find(|p| p.requested == 1).map_or(0, |p| p.usable);
        let mut text = String::from("### Why glibc's numbers are what they are\n\n");
        let _ = write!(
            text,
            "glibc's malloc (ptmalloc2) carves the heap into *chunks*. Each chunk starts with an \
             8-byte size field (the header); the previous chunk's size field is only needed while \
             that chunk is free, so a chunk in use lends those 8 bytes to its neighbour. Chunks are \
             multiples of 16 bytes (twice the word size, so any C type is aligned), and no chunk is \
             smaller than 32 bytes, because a free chunk must hold its size plus the forward and \
             backward links of a free list. Hence usable = max(32, round_up(n + 8, 16)) − 8: \
             `malloc(1)` returned {one} usable bytes here, and a live 1-byte object occupies a \
             32-byte chunk. The measured RSS of {objects} such objects was {per:.1} bytes each.\n\n\
             Checked against the measurements: the rule predicts {probes_matching} of {probe_count} \
             probes and {classes_matching} of {class_count} size classes up to {limit} bytes exactly.{exceptions}\n\n",
            objects = glibc.report.small_objects.objects,
            per = glibc.report.small_objects.bytes_per_object(),
            probe_count = glibc.report.probes.len(),
            class_count = glibc.report.classes.len(),
            limit = self.probe.class_limit,
            exceptions = if classes_matching < glibc.report.classes.len() {
                " The exceptions got a bigger chunk than the rule says: when the free chunk glibc \
                 finds would leave a remainder below the 32-byte minimum after splitting, it hands \
                 out the whole chunk, so the usable size also depends on the heap's history."
            } else {
                ""
            },
        );
        text.push_str(
            "The other allocators keep no per-object header: jemalloc, tcmalloc and mimalloc carve \
             *slabs* (runs of pages) into equal slots of one size class and find an object's size \
             from the page it lives on (a radix tree in jemalloc, a page map in tcmalloc, the \
             segment/page header in mimalloc). Their smallest class is 8 bytes, so a 1-byte \
             object costs about 8 bytes, but every request is rounded up to its class: with four \
             classes per doubling, up to about 20% of a mid-sized request is slack (the \
             \"worst waste\" column).\n",
        );
        text
    }
}

impl Outcome for UsableSizeOutcome {
    fn slug(&self) -> &'static str {
        "usable-size"
    }

    fn title(&self) -> String {
        "Task 1: usable size and the real cost of malloc".to_owned()
    }

    fn findings(&self) -> Vec<String> {
        let mut findings: Vec<String> = self
            .runs
            .iter()
            .map(|run| {
                let one = run.report.probes.iter().find(|p| p.requested == 1).map_or(0, |p| p.usable);
                format!(
                    "{}: malloc(1) gives {} usable bytes; {} live 1-byte objects cost {:.1} bytes of RSS each; {} size classes up to {} bytes",
                    run.allocator,
                    one,
                    run.report.small_objects.objects,
                    run.report.small_objects.bytes_per_object(),
                    run.report.classes.len(),
                    self.probe.class_limit,
                )
            })
            .collect();
        for (kind, install) in &self.missing {
            findings.push(format!("{kind} is not installed and was skipped; install it with `{install}`"));
        }
        findings
    }

    fn tables(&self) -> Vec<Table> {
        let mut headers = vec!["requested"];
        headers.extend(self.runs.iter().map(|run| run.allocator.name()));
        let mut usable = Table::new("Usable bytes per request (malloc_usable_size)", &headers);
        for (i, requested) in self.probe.probes.iter().enumerate() {
            let mut row = vec![requested.to_string()];
            row.extend(
                self.runs
                    .iter()
                    .map(|run| run.report.probes.get(i).map_or("-".to_owned(), |p| p.usable.to_string())),
            );
            usable.push(row);
        }

        let mut rss = Table::new(
            "One million live malloc(1): resident memory",
            &["allocator", "objects", "RSS before", "RSS after", "bytes/object", "usable(1)"],
        );
        for run in &self.runs {
            let small = &run.report.small_objects;
            let one = run.report.probes.iter().find(|p| p.requested == 1).map_or(0, |p| p.usable);
            rss.push(vec![
                run.allocator.to_string(),
                small.objects.to_string(),
                report::bytes(small.rss_before as f64),
                report::bytes(small.rss_after as f64),
                format!("{:.1}", small.bytes_per_object()),
                one.to_string(),
            ]);
        }

        let mut classes = Table::new(
            format!(
                "Size classes found up to {} bytes (boundary = largest request of a class)",
                self.probe.class_limit
            ),
            &["allocator", "classes", "first boundaries", "worst waste > 256 B"],
        );
        for run in &self.runs {
            let boundaries: Vec<String> =
                run.report.classes.iter().take(12).map(|c| c.last_request.to_string()).collect();
            classes.push(vec![
                run.allocator.to_string(),
                run.report.classes.len().to_string(),
                format!("{} …", boundaries.join(", ")),
                worst_waste(&run.report.classes, 256)
                    .map_or("-".to_owned(), |w| format!("{:.1}%", w * 100.0)),
            ]);
        }
        vec![usable, rss, classes]
    }

    fn csv_files(&self) -> Vec<CsvFile> {
        let mut probes =
            Table::new("", &["allocator", "requested", "usable", "overhead_bytes", "overhead_percent"]);
        let mut classes = Table::new("", &["allocator", "first_request", "last_request", "usable"]);
        let mut rss = Table::new(
            "",
            &[
                "allocator",
                "objects",
                "object_size",
                "rss_before_bytes",
                "rss_after_bytes",
                "bytes_per_object",
            ],
        );
        for run in &self.runs {
            let name = run.allocator.to_string();
            for p in &run.report.probes {
                probes.push(vec![
                    name.clone(),
                    p.requested.to_string(),
                    p.usable.to_string(),
                    (p.usable - p.requested).to_string(),
                    format!("{:.2}", (p.usable - p.requested) as f64 * 100.0 / p.requested as f64),
                ]);
            }
            for c in &run.report.classes {
                classes.push(vec![
                    name.clone(),
                    c.first_request.to_string(),
                    c.last_request.to_string(),
                    c.usable.to_string(),
                ]);
            }
            let small = &run.report.small_objects;
            rss.push(vec![
                name,
                small.objects.to_string(),
                small.object_size.to_string(),
                small.rss_before.to_string(),
                small.rss_after.to_string(),
                format!("{:.3}", small.bytes_per_object()),
            ]);
        }
        vec![
            CsvFile { file_name: "usable-size.csv".into(), table: probes },
            CsvFile { file_name: "usable-size-classes.csv".into(), table: classes },
            CsvFile { file_name: "usable-size-rss.csv".into(), table: rss },
        ]
    }

    fn charts(&self) -> Vec<Chart> {
        const SHOWN: usize = 1024;
        let panels = self
            .runs
            .iter()
            .map(|run| LinePanel {
                title: format!("{}: usable − requested", run.allocator),
                x_label: "requested bytes".into(),
                y_label: "slack bytes".into(),
                series: vec![Series {
                    name: run.allocator.to_string(),
                    points: run
                        .report
                        .classes
                        .iter()
                        .take_while(|c| c.first_request <= SHOWN)
                        .flat_map(|c| {
                            let last = c.last_request.min(SHOWN);
                            [
                                (c.first_request as f64, (c.usable - c.first_request) as f64),
                                (last as f64, (c.usable - last) as f64),
                            ]
                        })
                        .collect(),
                }],
            })
            .collect();
        vec![Chart {
            file_name: "usable-size.png".into(),
            caption: "Slack (usable − requested bytes) for requests of 1 to 1024 bytes, per allocator".into(),
            kind: ChartKind::Lines(panels),
        }]
    }

    fn explanation(&self) -> String {
        self.glibc_explanation()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_search_finds_every_boundary_of_a_regular_allocator() {
        let classes = size_classes(100, |n| Ok(glibc_model_usable(n))).unwrap();
        assert_eq!(classes[0], SizeClass { first_request: 1, last_request: 24, usable: 24 });
        assert_eq!(classes[1], SizeClass { first_request: 25, last_request: 40, usable: 40 });
        assert_eq!(classes.last().unwrap().last_request, 104);
        for pair in classes.windows(2) {
            assert_eq!(pair[0].last_request + 1, pair[1].first_request);
        }
    }

    #[test]
    fn class_search_handles_an_allocator_whose_top_request_jumps_class() {
        // A contrived allocator: usable(n) = next multiple of 10, except that a request of
        // exactly a multiple of 10 moves up a class. The class of 1 therefore ends at 9.
        let odd = |n: usize| Ok(if n.is_multiple_of(10) { n + 10 } else { n.div_ceil(10) * 10 });
        let classes = size_classes(25, odd).unwrap();
        assert_eq!(classes[0], SizeClass { first_request: 1, last_request: 9, usable: 10 });
        assert_eq!(classes[1], SizeClass { first_request: 10, last_request: 19, usable: 20 });
    }

    #[test]
    fn glibc_model_matches_the_textbook_values() {
        let expected = [(1, 24), (24, 24), (25, 40), (40, 40), (41, 56), (100, 104), (1000, 1000)];
        for (requested, usable) in expected {
            assert_eq!(glibc_model_usable(requested), usable, "request {requested}");
        }
    }

    #[test]
    fn in_process_measurement_on_glibc_gives_usable_at_least_requested() {
        let report =
            measure(&SizeProbe { probes: PROBE_SIZES.to_vec(), class_limit: 512, objects: 10_000 }).unwrap();
        assert!(report.probes.iter().all(|p| p.usable >= p.requested));
        assert!(report.classes.iter().all(|c| c.usable >= c.last_request));
        assert_eq!(report.small_objects.objects, 10_000);
    }
}
