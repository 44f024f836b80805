//! glibc's own view of its heap: the `mallinfo2` counters and the free-chunk bins that
//! `malloc_info` prints, read without disturbing the heap being measured.
//!
//! `mallinfo2` gives totals (bytes taken from the system, free bytes, free chunks, the
//! top chunk) but not the largest free chunk, which external fragmentation needs. That
//! comes from `malloc_info`: an XML listing that names, for every bin holding free
//! chunks, the smallest and the largest chunk in it (`<size from=".." to=".."/>`). The
//! chunks a thread cache (tcache) holds count as in use for both, as they do for
//! `malloc` itself (at most seven per size class).
//!
//! Reading the listing must not allocate from the heap it describes: [`MallocInfoReader`]
//! opens its temporary file and lets stdio allocate that file's buffer once, up front;
//! each reading then rewinds the file, lets glibc write into it, and reads it back into
//! a buffer allocated at the start (large enough that glibc maps it outside the heap).
//!
//! Only meaningful in a process whose `malloc` is glibc's (the lab runs it in a child
//! without `LD_PRELOAD` and checks that). Reading is O(free chunks): glibc walks every
//! bin.

use serde::{Deserialize, Serialize};

use crate::LabError;

/// glibc's heap figures, summed over all arenas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlibcHeapStats {
    /// Bytes taken from the system: `sbrk` heap plus `mmap`ed chunks (`arena + hblkhd`).
    pub system_bytes: u64,
    /// Free bytes, top chunk and fast bins included (`fordblks`).
    pub free_bytes: u64,
    /// Free chunks, top chunk and fast bins included (`ordblks + smblks`).
    pub free_chunks: u64,
    /// Free chunks parked in fast bins, not yet coalesced with their neighbours (`smblks`).
    pub fastbin_chunks: u64,
    /// The top chunk: free space at the end of the heap (`keepcost`).
    pub top_bytes: u64,
    /// The largest free chunk, the top chunk included.
    pub largest_free: u64,
}

/// Reads glibc's heap figures without allocating from the heap. See the module docs.
#[derive(Debug)]
pub struct MallocInfoReader {
    file: *mut libc::FILE,
    listing: Vec<u8>,
}

/// Room for `malloc_info`'s listing: one line per non-empty bin (about 250 bins at most per
/// arena). Above glibc's mmap threshold, so the buffer lives outside the heap.
const LISTING_BYTES: usize = 1 << 20;

impl MallocInfoReader {
    /// Opens the temporary file and reads once, so that everything stdio allocates for it
    /// is allocated now.
    pub fn new() -> Result<Self, LabError> {
        // SAFETY: tmpfile has no preconditions; null is checked below.
        let file = unsafe { libc::tmpfile() };
        if file.is_null() {
            return Err(LabError::file("create", "tmpfile()", std::io::Error::last_os_error()));
        }
        let mut reader = MallocInfoReader { file, listing: vec![0; LISTING_BYTES] };
        reader.read()?;
        Ok(reader)
    }

    /// Reads the figures now (parses `malloc_info`'s XML for this process).
    pub fn read(&mut self) -> Result<GlibcHeapStats, LabError> {
        let listing = self.listing()?;
        // SAFETY: mallinfo2 only reads the allocator's state.
        let info = unsafe { libc::mallinfo2() };
        let top = info.keepcost as u64;
        Ok(GlibcHeapStats {
            system_bytes: (info.arena + info.hblkhd) as u64,
            free_bytes: info.fordblks as u64,
            free_chunks: (info.ordblks + info.smblks) as u64,
            fastbin_chunks: info.smblks as u64,
            top_bytes: top,
            largest_free: largest_binned_chunk(listing).max(top),
        })
    }

    fn listing(&mut self) -> Result<&str, LabError> {
        let failed = || LabError::file("write", "malloc_info listing", std::io::Error::last_os_error());
        // SAFETY: `file` is the stream opened in `new`, exclusively ours; malloc_info and
        // the stdio calls only use its buffer, allocated by the first reading.
        let written = unsafe {
            libc::rewind(self.file);
            if libc::malloc_info(0, self.file) != 0 || libc::fflush(self.file) != 0 {
                return Err(failed());
            }
            libc::ftell(self.file)
        };
        let written = usize::try_from(written).map_err(|_| failed())?;
        if written > self.listing.len() {
            return Err(LabError::ChildOutput {
                command: "malloc_info".into(),
                reason: format!("listing of {written} bytes exceeds {LISTING_BYTES}"),
            });
        }
        // SAFETY: the buffer holds at least `written` bytes; pread writes only into it.
        let read =
            unsafe { libc::pread(libc::fileno(self.file), self.listing.as_mut_ptr().cast(), written, 0) };
        if read != written as isize {
            return Err(LabError::file("read", "malloc_info listing", std::io::Error::last_os_error()));
        }
        std::str::from_utf8(&self.listing[..written])
            .map_err(|e| LabError::ChildOutput { command: "malloc_info".into(), reason: e.to_string() })
    }
}

impl Drop for MallocInfoReader {
    fn drop(&mut self) {
        // SAFETY: the stream opened in `new`, closed once. A failure leaves a temporary
        // file that the system deletes anyway (tmpfile unlinks it at creation).
        unsafe { libc::fclose(self.file) };
    }
}

/// The largest chunk named by a `malloc_info` listing's bins (`<size>` and `<unsorted>`
/// elements, attribute `to`), in bytes. glibc prints the raw size word, so the flag bits
/// (the low three) are masked off.
pub fn largest_binned_chunk(listing: &str) -> u64 {
    listing
        .lines()
        .map(str::trim_start)
        .filter(|line| line.starts_with("<size ") || line.starts_with("<unsorted "))
        .filter_map(|line| attribute(line, "to"))
        .map(|to| to & !7)
        .max()
        .unwrap_or(0)
}

fn attribute(element: &str, name: &str) -> Option<u64> {
    let start = element.find(&format!(" {name}=\""))? + name.len() + 3;
    let rest = &element[start..];
    rest[..rest.find('"')?].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = r#"<malloc version="1">
<heap nr="0">
<sizes>
  <size from="17" to="32" total="64" count="2"/>
  <size from="81" to="81" total="39933" count="493"/>
  <unsorted from="1041" to="4113" total="5154" count="2"/>
</sizes>
<total type="rest" count="494" size="90333"/>
<system type="current" size="135168"/>
</heap>
</malloc>
"#;

    #[test]
    fn the_largest_bin_entry_is_found_with_its_flag_bits_masked() {
        assert_eq!(largest_binned_chunk(LISTING), 4112);
        assert_eq!(largest_binned_chunk("<malloc version=\"1\">\n</malloc>\n"), 0);
    }

    #[test]
    fn repeated_readings_give_consistent_figures() {
        let mut reader = MallocInfoReader::new().unwrap();
        for _ in 0..3 {
            let stats = reader.read().unwrap();
            assert!(stats.system_bytes > 0, "{stats:?}");
            assert!(stats.free_bytes >= stats.top_bytes, "{stats:?}");
            assert!(stats.largest_free >= stats.top_bytes, "{stats:?}");
            assert!(stats.free_chunks > stats.fastbin_chunks, "the top chunk always counts: {stats:?}");
        }
    }
}
