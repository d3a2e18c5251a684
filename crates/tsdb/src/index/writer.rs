//! Writes an index file in one pass: symbols, then series in label order, then
//! postings and the offset table on `finish`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use strata_model::Labels;

use super::{ChunkRef, Toc, FORMAT_V2, MAGIC_INDEX};
use crate::encoding::{crc32, Encbuf};
use crate::error::{Error, Result};

/// Streams an index file. Call [`IndexWriter::add_symbols`] once with every label
/// name and value, then [`IndexWriter::add_series`] in label order, then
/// [`IndexWriter::finish`].
pub struct IndexWriter {
    path: PathBuf,
    f: BufWriter<File>,
    pos: u64,
    toc: Toc,
    symbols: HashMap<String, u32>,
    symbols_written: bool,
    last_labels: Option<Labels>,
    last_chunk_ref: u64,
    /// (name ordinal, value ordinal) → series refs.
    postings: HashMap<(u32, u32), Vec<u32>>,
    all: Vec<u32>,
    buf: Encbuf,
}

impl IndexWriter {
    /// Creates the index file at `path` and writes its header.
    pub fn create(path: &Path) -> Result<Self> {
        let f = File::create(path).map_err(|e| Error::io(path, e))?;
        let mut w = Self {
            path: path.to_path_buf(),
            f: BufWriter::with_capacity(1 << 20, f),
            pos: 0,
            toc: Toc::default(),
            symbols: HashMap::new(),
            symbols_written: false,
            last_labels: None,
            last_chunk_ref: 0,
            postings: HashMap::new(),
            all: Vec::new(),
            buf: Encbuf::default(),
        };
        let mut h = Vec::with_capacity(5);
        h.extend_from_slice(&MAGIC_INDEX.to_be_bytes());
        h.push(FORMAT_V2);
        w.write(&h)?;
        Ok(w)
    }

    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.f.write_all(b).map_err(|e| Error::io(&self.path, e))?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn pad_to(&mut self, align: u64) -> Result<()> {
        let rem = self.pos % align;
        if rem != 0 {
            let zeros = [0u8; 16];
            let n = (align - rem) as usize;
            self.write(&zeros[..n])?;
        }
        Ok(())
    }

    /// Writes the symbol table. `symbols` must be sorted and unique and contain every
    /// label name and value of the series to come.
    pub fn add_symbols<'a>(&mut self, symbols: impl IntoIterator<Item = &'a str>) -> Result<()> {
        if self.symbols_written {
            return Err(Error::InvalidWrite("symbols already written".into()));
        }
        let mut body = Encbuf::default();
        body.be32(0);
        let mut n: u32 = 0;
        let mut prev: Option<&str> = None;
        for s in symbols {
            if prev.is_some_and(|p| p >= s) {
                return Err(Error::InvalidWrite(format!(
                    "symbol {s:?} out of order after {:?}",
                    prev.unwrap_or_default()
                )));
            }
            body.uvarint_str(s);
            self.symbols.insert(s.to_string(), n);
            n = n
                .checked_add(1)
                .ok_or_else(|| Error::InvalidWrite("too many symbols".into()))?;
            prev = Some(s);
        }
        body.b[..4].copy_from_slice(&n.to_be_bytes());
        let len = u32::try_from(body.b.len())
            .map_err(|_| Error::InvalidWrite("symbol table exceeds 4 GiB".into()))?;
        self.toc.symbols = self.pos;
        let crc = crc32(&body.b);
        self.write(&len.to_be_bytes())?;
        let b = std::mem::take(&mut body.b);
        self.write(&b)?;
        self.write(&crc.to_be_bytes())?;
        self.symbols_written = true;
        Ok(())
    }

    fn sym(&self, s: &str) -> Result<u32> {
        self.symbols
            .get(s)
            .copied()
            .ok_or_else(|| Error::InvalidWrite(format!("symbol {s:?} missing from symbol table")))
    }

    /// Adds a series with its chunks. Series must come in strictly increasing label
    /// order; chunks in time order, not overlapping, with non-decreasing refs.
    pub fn add_series(&mut self, labels: &Labels, chunks: &[ChunkRef]) -> Result<()> {
        if !self.symbols_written {
            return Err(Error::InvalidWrite("add_series before add_symbols".into()));
        }
        if let Some(last) = &self.last_labels {
            if last >= labels {
                return Err(Error::InvalidWrite(format!(
                    "series {labels} out of order after {last}"
                )));
            }
        }
        if self.toc.series == 0 {
            self.pad_to(16)?;
            self.toc.series = self.pos;
        } else {
            self.pad_to(16)?;
        }
        let sref = u32::try_from(self.pos / 16)
            .map_err(|_| Error::InvalidWrite("index exceeds 64 GiB".into()))?;

        let mut buf = std::mem::take(&mut self.buf);
        buf.reset();
        buf.uvarint(labels.len() as u64);
        for l in labels {
            let n = self.sym(&l.name)?;
            let v = self.sym(&l.value)?;
            buf.uvarint(u64::from(n));
            buf.uvarint(u64::from(v));
            self.postings.entry((n, v)).or_default().push(sref);
        }
        buf.uvarint(chunks.len() as u64);
        let mut prev: Option<&ChunkRef> = None;
        for c in chunks {
            if c.min_time > c.max_time {
                return Err(Error::InvalidWrite(format!(
                    "series {labels}: chunk mint {} > maxt {}",
                    c.min_time, c.max_time
                )));
            }
            if c.chunk_ref < self.last_chunk_ref {
                return Err(Error::InvalidWrite(format!(
                    "series {labels}: chunk ref {:#x} before {:#x}",
                    c.chunk_ref, self.last_chunk_ref
                )));
            }
            match prev {
                None => {
                    buf.varint(c.min_time);
                    buf.uvarint((c.max_time - c.min_time) as u64);
                    buf.uvarint(c.chunk_ref);
                }
                Some(p) => {
                    if c.min_time <= p.max_time {
                        return Err(Error::InvalidWrite(format!(
                            "series {labels}: chunks overlap at {}",
                            c.min_time
                        )));
                    }
                    buf.uvarint((c.min_time - p.max_time) as u64);
                    buf.uvarint((c.max_time - c.min_time) as u64);
                    buf.varint(c.chunk_ref.wrapping_sub(p.chunk_ref) as i64);
                }
            }
            self.last_chunk_ref = c.chunk_ref;
            prev = Some(c);
        }
        let mut head = Encbuf::default();
        head.uvarint(buf.b.len() as u64);
        let crc = crc32(&buf.b);
        self.write(&head.b)?;
        let body = std::mem::take(&mut buf.b);
        self.write(&body)?;
        self.write(&crc.to_be_bytes())?;
        buf.b = body;
        self.buf = buf;
        self.all.push(sref);
        self.last_labels = Some(labels.clone());
        Ok(())
    }

    /// Writes postings, the postings offset table and the TOC, and syncs the file.
    pub fn finish(mut self) -> Result<()> {
        if !self.symbols_written {
            self.add_symbols(std::iter::empty())?;
        }
        if self.toc.series == 0 {
            self.pad_to(16)?;
            self.toc.series = self.pos;
        }
        self.toc.label_indices = self.pos;
        self.toc.postings = self.pos;
        self.pad_to(4)?;

        // Ordinal → string, to write the offset table keys.
        let symbols = std::mem::take(&mut self.symbols);
        let mut by_ord: Vec<&str> = vec![""; symbols.len()];
        for (s, &o) in &symbols {
            by_ord[o as usize] = s.as_str();
        }
        let mut keys: Vec<(u32, u32)> = self.postings.keys().copied().collect();
        keys.sort_unstable();

        let mut table = Encbuf::default();
        let entries = u32::try_from(keys.len() + 1)
            .map_err(|_| Error::InvalidWrite("too many postings lists".into()))?;
        table.be32(entries);

        let all = std::mem::take(&mut self.all);
        table.uvarint(2);
        table.uvarint_str("");
        table.uvarint_str("");
        table.uvarint(self.pos);
        self.write_postings(&all)?;
        let postings = std::mem::take(&mut self.postings);
        for k in keys {
            table.uvarint(2);
            table.uvarint_str(by_ord[k.0 as usize]);
            table.uvarint_str(by_ord[k.1 as usize]);
            table.uvarint(self.pos);
            if let Some(refs) = postings.get(&k) {
                self.write_postings(refs)?;
            }
        }

        self.toc.label_indices_table = self.pos;
        self.toc.postings_offset_table = self.pos;
        let len = u32::try_from(table.b.len())
            .map_err(|_| Error::InvalidWrite("postings offset table exceeds 4 GiB".into()))?;
        let crc = crc32(&table.b);
        self.write(&len.to_be_bytes())?;
        self.write(&table.b)?;
        self.write(&crc.to_be_bytes())?;

        let mut toc = Encbuf::default();
        for v in [
            self.toc.symbols,
            self.toc.series,
            self.toc.label_indices,
            self.toc.label_indices_table,
            self.toc.postings,
            self.toc.postings_offset_table,
        ] {
            toc.be64(v);
        }
        let crc = crc32(&toc.b);
        toc.be32(crc);
        self.write(&toc.b)?;
        self.f.flush().map_err(|e| Error::io(&self.path, e))?;
        self.f
            .get_ref()
            .sync_all()
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(())
    }

    fn write_postings(&mut self, refs: &[u32]) -> Result<()> {
        let mut b = Vec::with_capacity(12 + refs.len() * 4);
        let n = refs.len() as u32;
        let len = 4 + 4 * n;
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(&n.to_be_bytes());
        for r in refs {
            b.extend_from_slice(&r.to_be_bytes());
        }
        let crc = crc32(&b[4..]);
        b.extend_from_slice(&crc.to_be_bytes());
        self.write(&b)
    }
}
