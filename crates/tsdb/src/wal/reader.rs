//! Reading WAL segments: pages, fragments, CRCs, decompression.

use std::fs;
use std::path::{Path, PathBuf};

use super::{PAGE_SIZE, RECORD_HEADER_SIZE};
use crate::encoding::crc32;
use crate::error::{Error, Result};

const FRAG_FULL: u8 = 1;
const FRAG_FIRST: u8 = 2;
const FRAG_MIDDLE: u8 = 3;
const FRAG_LAST: u8 = 4;
const FLAG_SNAPPY: u8 = 0x08;
const FLAG_ZSTD: u8 = 0x10;

/// Numbered segment files (all-digit names) in `dir`, sorted by number.
pub fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for e in rd {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) && e.path().is_file() {
            if let Ok(n) = name.parse::<u64>() {
                out.push((n, e.path()));
            }
        }
    }
    out.sort();
    for w in out.windows(2) {
        if w[1].0 != w[0].0 + 1 {
            return Err(Error::corrupt(
                dir,
                0,
                format!("WAL segments not sequential: {} then {}", w[0].0, w[1].0),
            ));
        }
    }
    Ok(out)
}

/// Reassembles records from one segment's bytes.
pub struct SegmentReader {
    path: PathBuf,
    data: Vec<u8>,
    pos: usize,
    buf: Vec<u8>,
    /// Whether a torn record at the very end is tolerated (newest segment).
    last: bool,
    /// End of the last complete record (or padding) read.
    good_pos: usize,
}

impl SegmentReader {
    /// Reads a segment file. `last` marks the newest segment, where a torn final
    /// record (a crash mid-write) ends reading instead of being an error.
    pub fn open(path: &Path, last: bool) -> Result<Self> {
        let data = fs::read(path).map_err(|e| Error::io(path, e))?;
        Ok(Self::from_bytes(path, data, last))
    }

    /// A reader over bytes already in memory; `path` names them in errors.
    pub fn from_bytes(path: &Path, data: Vec<u8>, last: bool) -> Self {
        Self {
            path: path.to_path_buf(),
            data,
            pos: 0,
            buf: Vec::new(),
            last,
            good_pos: 0,
        }
    }

    /// Byte offset just past the last complete record read so far.
    pub fn good_len(&self) -> usize {
        self.good_pos
    }

    /// Total bytes of the segment.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the segment is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn corrupt(&self, off: usize, msg: impl Into<String>) -> Error {
        Error::corrupt(&self.path, off as u64, msg)
    }

    /// The next record (decompressed), or `None` at the end of the segment.
    pub fn next_record(&mut self) -> Result<Option<Vec<u8>>> {
        self.buf.clear();
        let mut in_record = false;
        let mut compressed = 0u8;
        let start = self.pos;
        loop {
            let page_left = PAGE_SIZE - (self.pos % PAGE_SIZE);
            if page_left < RECORD_HEADER_SIZE {
                self.pos += page_left;
                continue;
            }
            if self.pos >= self.data.len() {
                if in_record {
                    if self.last {
                        return Ok(None);
                    }
                    return Err(self.corrupt(start, "segment ends inside a record"));
                }
                return Ok(None);
            }
            let typ = self.data[self.pos];
            if typ == 0 {
                if in_record {
                    // A record torn by a crash, followed by the padding written when
                    // the segment was reopened: drop it, like Prometheus' repair.
                    if !self.last {
                        return Err(self.corrupt(start, "record torn before page padding"));
                    }
                    return Ok(None);
                }
                // Rest of the page is padding.
                self.pos += page_left;
                continue;
            }
            let hdr = self.pos;
            let Some(h) = self.data.get(hdr..hdr + RECORD_HEADER_SIZE) else {
                if self.last {
                    return Ok(None);
                }
                return Err(self.corrupt(hdr, "truncated record header"));
            };
            let frag = typ & 0x07;
            let flags = typ & 0x18;
            if typ & 0xe0 != 0 || !(FRAG_FULL..=FRAG_LAST).contains(&frag) {
                return Err(self.corrupt(hdr, format!("invalid record type byte {typ:#04x}")));
            }
            let len = usize::from(u16::from_be_bytes([h[1], h[2]]));
            let want = u32::from_be_bytes([h[3], h[4], h[5], h[6]]);
            if len > page_left - RECORD_HEADER_SIZE {
                return Err(self.corrupt(
                    hdr,
                    format!("record fragment of {len} bytes crosses a page boundary"),
                ));
            }
            let body_start = hdr + RECORD_HEADER_SIZE;
            let Some(body) = self.data.get(body_start..body_start + len) else {
                if self.last {
                    return Ok(None);
                }
                return Err(self.corrupt(hdr, "truncated record fragment"));
            };
            if crc32(body) != want {
                return Err(self.corrupt(hdr, "record checksum mismatch"));
            }
            match (frag, in_record) {
                (FRAG_FULL, false) | (FRAG_FIRST, false) => {
                    compressed = flags;
                    in_record = true;
                }
                (FRAG_MIDDLE, true) | (FRAG_LAST, true) => {}
                _ => {
                    return Err(self.corrupt(hdr, format!("unexpected fragment type {frag}")));
                }
            }
            self.buf.extend_from_slice(body);
            self.pos = body_start + len;
            if frag == FRAG_FULL || frag == FRAG_LAST {
                self.good_pos = self.pos;
                break;
            }
        }
        let rec = match compressed {
            0 => std::mem::take(&mut self.buf),
            FLAG_SNAPPY => snap::raw::Decoder::new()
                .decompress_vec(&self.buf)
                .map_err(|e| self.corrupt(start, format!("snappy: {e}")))?,
            FLAG_ZSTD => {
                return Err(
                    self.corrupt(start, "zstd-compressed WAL records are not supported yet")
                );
            }
            _ => return Err(self.corrupt(start, "record has both compression flags")),
        };
        Ok(Some(rec))
    }
}

/// Reads every record of a WAL directory (the newest checkpoint first when
/// `with_checkpoint`, then the segments after it).
pub struct WalReader {
    segs: Vec<PathBuf>,
    cur: Option<SegmentReader>,
    next: usize,
}

impl WalReader {
    /// Opens `wal_dir`: the newest `checkpoint.N` (if any), then segments `> N`.
    pub fn open(wal_dir: &Path) -> Result<Self> {
        let mut segs = Vec::new();
        let mut after = None;
        if let Some((n, cp)) = last_checkpoint(wal_dir)? {
            for (_, p) in segments(&cp)? {
                segs.push(p);
            }
            after = Some(n);
        }
        for (n, p) in segments(wal_dir)? {
            if after.is_none_or(|a| n > a) {
                segs.push(p);
            }
        }
        Ok(Self {
            segs,
            cur: None,
            next: 0,
        })
    }

    /// The next record, or `None` after the last segment.
    pub fn next_record(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            if let Some(r) = &mut self.cur {
                if let Some(rec) = r.next_record()? {
                    return Ok(Some(rec));
                }
                self.cur = None;
            }
            let Some(p) = self.segs.get(self.next) else {
                return Ok(None);
            };
            let last = self.next + 1 == self.segs.len();
            self.cur = Some(SegmentReader::open(p, last)?);
            self.next += 1;
        }
    }
}

/// The newest `checkpoint.NNNNNNNN` directory and its number.
fn last_checkpoint(wal_dir: &Path) -> Result<Option<(u64, PathBuf)>> {
    let rd = match fs::read_dir(wal_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(wal_dir, e)),
    };
    let mut best: Option<(u64, PathBuf)> = None;
    for e in rd {
        let e = e.map_err(|e| Error::io(wal_dir, e))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(num) = name.strip_prefix("checkpoint.") else {
            continue;
        };
        if num.ends_with(".tmp") || !e.path().is_dir() {
            continue;
        }
        if let Ok(n) = num.parse::<u64>() {
            if best.as_ref().is_none_or(|b| n > b.0) {
                best = Some((n, e.path()));
            }
        }
    }
    Ok(best)
}
