//! Writing WAL segments the way Prometheus does: records split into fragments that
//! never cross a 32 KiB page, pages zero-padded when fewer than 7 bytes remain,
//! records never crossing a segment, optional snappy compression per record.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::reader::segments;
use super::{PAGE_SIZE, RECORD_HEADER_SIZE};
use crate::encoding::crc32;
use crate::error::{Error, Result};

/// Default segment size (128 MiB).
pub const DEFAULT_SEGMENT_SIZE: usize = 128 * 1024 * 1024;

/// Cuts a torn record off the end of a segment (left by a crash mid-write) and pads
/// the last page, so the segment reads cleanly once it is no longer the newest.
fn repair_tail(path: &Path) -> Result<()> {
    let mut r = super::SegmentReader::open(path, true)?;
    while r.next_record()?.is_some() {}
    let good = r.good_len();
    let len = r.len();
    // Everything after the last complete record must be padding (zeros).
    let tail_is_padding = std::fs::read(path)
        .map_err(|e| Error::io(path, e))?
        .get(good..)
        .is_some_and(|t| t.iter().all(|b| *b == 0));
    let keep = if tail_is_padding { len } else { good };
    let padded = keep.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    if keep != len || padded != len {
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        f.set_len(keep as u64).map_err(|e| Error::io(path, e))?;
        f.set_len(padded as u64).map_err(|e| Error::io(path, e))?;
        f.sync_all().map_err(|e| Error::io(path, e))?;
        if keep != len {
            tracing::warn!(segment = %path.display(), dropped = len - keep, "cut a torn record off the WAL");
        }
    }
    Ok(())
}

/// Appends records to a WAL directory.
#[derive(Debug)]
pub struct WalWriter {
    dir: PathBuf,
    segment_size: usize,
    compress: bool,
    /// Current segment number, file and bytes written to it.
    seq: u64,
    file: Option<File>,
    /// Bytes of the current segment already on disk.
    written: usize,
    /// The current page: its bytes so far (`page.len()` is the fill level) and how
    /// many of them are already written to the file.
    page: Vec<u8>,
    page_flushed: usize,
}

impl WalWriter {
    /// Opens `dir` for appending: continues after the last segment in a new one
    /// (like Prometheus, which starts a fresh segment on open).
    pub fn open(dir: &Path, segment_size: usize, compress: bool) -> Result<Self> {
        if !segment_size.is_multiple_of(PAGE_SIZE) || segment_size == 0 {
            return Err(Error::InvalidWrite(format!(
                "WAL segment size {segment_size} is not a positive multiple of the page size {PAGE_SIZE}"
            )));
        }
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let segs = segments(dir)?;
        if let Some((_, last)) = segs.last() {
            repair_tail(last)?;
        }
        let next = segs.last().map(|s| s.0 + 1).unwrap_or(0);
        let mut w = Self {
            dir: dir.to_path_buf(),
            segment_size,
            compress,
            seq: next,
            file: None,
            written: 0,
            page: Vec::with_capacity(PAGE_SIZE),
            page_flushed: 0,
        };
        w.create_segment(next)?;
        Ok(w)
    }

    /// The current segment number.
    pub fn segment(&self) -> u64 {
        self.seq
    }

    fn create_segment(&mut self, n: u64) -> Result<()> {
        let path = self.dir.join(format!("{n:08}"));
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        self.seq = n;
        self.file = Some(f);
        self.written = 0;
        self.page.clear();
        self.page_flushed = 0;
        Ok(())
    }

    fn seg_path(&self) -> PathBuf {
        self.dir.join(format!("{:08}", self.seq))
    }

    /// Writes the not-yet-written part of the current page.
    fn flush_page(&mut self) -> Result<()> {
        if self.page_flushed < self.page.len() {
            let path = self.seg_path();
            if let Some(f) = &mut self.file {
                f.write_all(&self.page[self.page_flushed..])
                    .map_err(|e| Error::io(&path, e))?;
            }
            self.page_flushed = self.page.len();
        }
        Ok(())
    }

    /// Pads the current page with zeros, writes it and starts the next one.
    fn finish_page(&mut self) -> Result<()> {
        if self.page.is_empty() {
            return Ok(());
        }
        self.page.resize(PAGE_SIZE, 0);
        self.flush_page()?;
        self.written += PAGE_SIZE;
        self.page.clear();
        self.page_flushed = 0;
        Ok(())
    }

    /// Finishes the current segment (padding its last page) and starts the next.
    pub fn next_segment(&mut self) -> Result<()> {
        self.finish_page()?;
        self.sync()?;
        self.create_segment(self.seq + 1)
    }

    /// Logs one record (its first byte is the record type).
    pub fn log(&mut self, rec: &[u8]) -> Result<()> {
        let compressed;
        let (data, flag) = if self.compress {
            compressed = snap::raw::Encoder::new()
                .compress_vec(rec)
                .map_err(|e| Error::InvalidWrite(format!("snappy: {e}")))?;
            if compressed.len() < rec.len() {
                (compressed.as_slice(), 0x08u8)
            } else {
                (rec, 0)
            }
        } else {
            (rec, 0)
        };
        // Space left in the segment, counting the current page's free bytes.
        let pages_left = (self.segment_size - self.written) / PAGE_SIZE;
        let free_now = PAGE_SIZE - self.page.len();
        let fits = |n: usize, free: usize, pages: usize| {
            // Bytes usable: the current page's free space (if it can take a header),
            // then whole pages, each holding at most PAGE_SIZE - 7 of payload.
            let mut cap = 0usize;
            if free >= RECORD_HEADER_SIZE {
                cap += free - RECORD_HEADER_SIZE;
            }
            cap += pages.saturating_sub(1) * (PAGE_SIZE - RECORD_HEADER_SIZE);
            n <= cap
        };
        if !fits(data.len(), free_now, pages_left) {
            if data.len() > (self.segment_size / PAGE_SIZE) * (PAGE_SIZE - RECORD_HEADER_SIZE) {
                return Err(Error::InvalidWrite(format!(
                    "WAL record of {} bytes exceeds the segment size",
                    data.len()
                )));
            }
            self.next_segment()?;
        }
        let mut rest = data;
        let mut first = true;
        loop {
            if PAGE_SIZE - self.page.len() < RECORD_HEADER_SIZE {
                self.finish_page()?;
            }
            let room = PAGE_SIZE - self.page.len() - RECORD_HEADER_SIZE;
            let n = rest.len().min(room);
            let (part, tail) = rest.split_at(n);
            let last = tail.is_empty();
            let typ = match (first, last) {
                (true, true) => 1,
                (true, false) => 2,
                (false, false) => 3,
                (false, true) => 4,
            } | flag;
            self.page.push(typ);
            self.page.extend_from_slice(&(n as u16).to_be_bytes());
            self.page.extend_from_slice(&crc32(part).to_be_bytes());
            self.page.extend_from_slice(part);
            rest = tail;
            first = false;
            if self.page.len() == PAGE_SIZE {
                self.finish_page()?;
            }
            if last {
                break;
            }
        }
        Ok(())
    }

    /// Writes buffered bytes to the file (without fsync): enough to survive the
    /// process being killed.
    pub fn flush(&mut self) -> Result<()> {
        self.flush_page()
    }

    /// Writes buffered bytes to the file and fsyncs it.
    pub fn sync(&mut self) -> Result<()> {
        self.flush_page()?;
        let path = self.seg_path();
        if let Some(f) = &self.file {
            f.sync_data().map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }

    /// Syncs and closes.
    pub fn close(mut self) -> Result<()> {
        self.sync()
    }
}
