//! `--hdr-log`: the run's latency histograms as an HdrHistogram interval log, the format
//! HdrHistogram's own tools read (`HistogramLogProcessor`, HdrHistogram's plotter, this
//! crate's `IntervalLogIterator`).
//!
//! One interval per reporting second, two tagged histograms each: `corrected` (intended send
//! to response end) and `service` (actual send to response end), whole microseconds,
//! encoded as V2 deflate. Only requests of the measured window enter them (a warm-up
//! second's histograms are empty), so the intervals of one tag add up to the run's
//! `latency.count` (`service_time.count`) in the JSON report. Timestamps are seconds since
//! the schedule's start, which the log's `StartTime` and `BaseTime` headers give as wall-clock
//! time, so the logs of several instances line up.
//!
//! Lines are written as the run goes (a buffered file, flushed at the end), so memory stays
//! fixed however long the run.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use crate::error::Error;

/// The tag of the corrected-latency histograms.
pub const CORRECTED_TAG: &str = "corrected";
/// The tag of the service-time histograms.
pub const SERVICE_TAG: &str = "service";

/// An interval log being written.
pub struct HdrLog {
    path: PathBuf,
    file: BufWriter<File>,
    serializer: V2DeflateSerializer,
}

impl std::fmt::Debug for HdrLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HdrLog").field("path", &self.path).finish_non_exhaustive()
    }
}

impl HdrLog {
    /// Creates (truncates) the log file now, so that an unwritable path fails before the run.
    pub fn create(path: &Path) -> Result<Self, Error> {
        let file = File::create(path).map_err(|cause| Error::File { path: path.to_owned(), cause })?;
        Ok(Self { path: path.to_owned(), file: BufWriter::new(file), serializer: V2DeflateSerializer::new() })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the header: the format version and a legend as comments, then `StartTime` and
    /// `BaseTime`, both `start` (the schedule's start: interval timestamps count from it).
    pub fn begin(&mut self, start: SystemTime) -> Result<(), Error> {
        IntervalLogWriterBuilder::new()
            .add_comment("[Logged with loadgen]")
            .add_comment("[Histogram log format version 1.3]")
            .add_comment(
                "[Tags: corrected = intended send to response end, service = actual send to \
                 response end; values in microseconds; measured window only]",
            )
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut self.file, &mut self.serializer)
            .map_err(|cause| Error::File { path: self.path.clone(), cause })?;
        self.file
            .write_all(
                b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
            )
            .map_err(|cause| self.file_error(cause))
    }

    /// Appends one interval: `corrected` and `service` recorded from `start` (since the
    /// schedule's start) for `length`.
    pub fn write_interval(
        &mut self,
        start: Duration,
        length: Duration,
        corrected: &Histogram<u64>,
        service: &Histogram<u64>,
    ) -> Result<(), Error> {
        // A builder with no header lines writes nothing: it only lends the writer for these
        // two lines, so that the log needs no self-borrowing writer kept between seconds.
        let mut writer = IntervalLogWriterBuilder::new()
            .begin_log_with(&mut self.file, &mut self.serializer)
            .map_err(|cause| Error::File { path: self.path.clone(), cause })?;
        for (tag, histogram) in [(CORRECTED_TAG, corrected), (SERVICE_TAG, service)] {
            writer.write_histogram(histogram, start, length, Tag::new(tag)).map_err(|error| Error::File {
                path: self.path.clone(),
                cause: std::io::Error::other(error.to_string()),
            })?;
        }
        Ok(())
    }

    /// Flushes what is buffered to the file.
    pub fn finish(&mut self) -> Result<(), Error> {
        self.file.flush().map_err(|cause| Error::File { path: self.path.clone(), cause })
    }

    fn file_error(&self, cause: std::io::Error) -> Error {
        Error::File { path: self.path.clone(), cause }
    }
}
