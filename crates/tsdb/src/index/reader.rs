//! Reads an index file through a memory map, checking magic, version and CRCs.
//! Symbols and the postings offset table are sampled (every 32nd entry) in memory,
//! like Prometheus, so a reader's footprint is a small fraction of the index size.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use strata_model::{Label, Labels, MatchType, Matcher};

use super::postings::{self, BoxPostings, PostingsList};
use super::{ChunkRef, Toc, MAGIC_INDEX, TOC_LEN};
use crate::encoding::{crc32, Decbuf, DecodeError};
use crate::error::{Error, Result};
use crate::mmap::MappedFile;

/// Keep every n-th symbol / postings offset entry in memory.
const SAMPLE_EVERY: usize = 32;

/// A series as stored in the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesEntry {
    /// The labels.
    pub labels: Labels,
    /// Chunk metas in time order.
    pub chunks: Vec<ChunkRef>,
}

/// Postings offset table entries of one label name.
#[derive(Debug, Default)]
struct NameEntries {
    /// (value, file position of the table entry) of every 32nd entry and the last.
    sampled: Vec<(String, usize)>,
    /// Number of entries for the name.
    count: usize,
}

/// A memory-mapped index file.
#[derive(Debug)]
pub struct IndexReader {
    path: PathBuf,
    file: MappedFile,
    version: u8,
    toc: Toc,
    /// File offset of the first symbol string, number of symbols, and every 32nd
    /// symbol's offset.
    symbols_start: usize,
    symbols_end: usize,
    num_symbols: u32,
    symbol_samples: Vec<u32>,
    names: BTreeMap<String, NameEntries>,
    /// File position of the all-postings table entry's list.
    all_postings_off: Option<u64>,
}

impl IndexReader {
    /// Opens and validates the index at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        Self::from_file(path, MappedFile::open(path)?)
    }

    /// Reads an index held in memory; `name` is used in error messages.
    pub fn from_bytes(name: &Path, bytes: Vec<u8>) -> Result<Self> {
        Self::from_file(name, MappedFile::from_vec(bytes))
    }

    fn from_file(path: &Path, file: MappedFile) -> Result<Self> {
        let mut r = Self {
            path: path.to_path_buf(),
            file,
            version: 0,
            toc: Toc::default(),
            symbols_start: 0,
            symbols_end: 0,
            num_symbols: 0,
            symbol_samples: Vec::new(),
            names: BTreeMap::new(),
            all_postings_off: None,
        };
        r.read_header()?;
        r.read_toc()?;
        r.read_symbols()?;
        r.read_postings_table()?;
        Ok(r)
    }

    /// The index file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The format version (2 or 3).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The table of contents.
    pub fn toc(&self) -> Toc {
        self.toc
    }

    /// Size of the file in bytes.
    pub fn size(&self) -> u64 {
        self.file.bytes().len() as u64
    }

    fn b(&self) -> &[u8] {
        self.file.bytes()
    }

    fn corrupt(&self, off: usize, msg: impl Into<String>) -> Error {
        Error::corrupt(&self.path, off as u64, msg)
    }

    fn dec_err(&self, off: usize, what: &str, e: DecodeError) -> Error {
        self.corrupt(off, format!("{what}: {e}"))
    }

    fn read_header(&mut self) -> Result<()> {
        let b = self.b();
        if b.len() < 5 + TOC_LEN {
            return Err(self.corrupt(0, format!("file too short ({} bytes)", b.len())));
        }
        let magic = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        if magic != MAGIC_INDEX {
            return Err(self.corrupt(0, format!("invalid magic number {magic:#x}")));
        }
        let v = b[4];
        if v != 2 && v != 3 {
            return Err(self.corrupt(
                4,
                format!("unsupported index version {v} (versions 2 and 3 are supported)"),
            ));
        }
        self.version = v;
        Ok(())
    }

    fn read_toc(&mut self) -> Result<()> {
        let b = self.b();
        let start = b.len() - TOC_LEN;
        let body = &b[start..start + 48];
        let want = u32::from_be_bytes([b[start + 48], b[start + 49], b[start + 50], b[start + 51]]);
        if crc32(body) != want {
            return Err(self.corrupt(start, "table of contents checksum mismatch"));
        }
        let mut d = Decbuf::new(body);
        let mut next = || d.be64().unwrap_or(0);
        let toc = Toc {
            symbols: next(),
            series: next(),
            label_indices: next(),
            label_indices_table: next(),
            postings: next(),
            postings_offset_table: next(),
        };
        for (name, off) in [
            ("symbols", toc.symbols),
            ("series", toc.series),
            ("postings offset table", toc.postings_offset_table),
        ] {
            if off as usize >= start {
                return Err(self.corrupt(
                    start,
                    format!("{name} offset {off} beyond table of contents"),
                ));
            }
        }
        self.toc = toc;
        Ok(())
    }

    /// Validates the length-prefixed section at `off` (len BE32, body, CRC32C) and
    /// returns the body's range.
    fn section(&self, off: usize, what: &str) -> Result<(usize, usize)> {
        let b = self.b();
        let len_b = b
            .get(off..off + 4)
            .ok_or_else(|| self.corrupt(off, format!("{what}: length beyond end of file")))?;
        let len = u32::from_be_bytes([len_b[0], len_b[1], len_b[2], len_b[3]]) as usize;
        let start = off + 4;
        let end = start
            .checked_add(len)
            .filter(|e| e + 4 <= b.len())
            .ok_or_else(|| self.corrupt(off, format!("{what}: length {len} beyond end of file")))?;
        let want = u32::from_be_bytes([b[end], b[end + 1], b[end + 2], b[end + 3]]);
        if crc32(&b[start..end]) != want {
            return Err(self.corrupt(off, format!("{what}: checksum mismatch")));
        }
        Ok((start, end))
    }

    fn read_symbols(&mut self) -> Result<()> {
        let off = self.toc.symbols as usize;
        let (start, end) = self.section(off, "symbol table")?;
        let b = self.file.bytes();
        let mut d = Decbuf::new(&b[start..end]);
        let n = d
            .be32()
            .map_err(|e| self.dec_err(start, "symbol table", e))?;
        let mut samples = Vec::with_capacity(n as usize / SAMPLE_EVERY + 1);
        for i in 0..n as usize {
            let pos = end - d.len();
            if i % SAMPLE_EVERY == 0 {
                samples.push(pos as u32);
            }
            d.uvarint_str()
                .map_err(|e| self.dec_err(pos, &format!("symbol {i}"), e))?;
        }
        self.symbols_start = start + 4;
        self.symbols_end = end;
        self.num_symbols = n;
        self.symbol_samples = samples;
        Ok(())
    }

    /// Number of symbols.
    pub fn num_symbols(&self) -> usize {
        self.num_symbols as usize
    }

    /// All symbols in order.
    pub fn symbols(&self) -> impl Iterator<Item = Result<&str>> + '_ {
        let b = &self.file.bytes()[self.symbols_start..self.symbols_end];
        let mut d = Decbuf::new(b);
        let base = self.symbols_start;
        let end = self.symbols_end;
        (0..self.num_symbols).map(move |i| {
            let pos = base + (b.len() - d.len());
            let _ = end;
            d.uvarint_str()
                .map_err(|e| self.dec_err(pos, &format!("symbol {i}"), e))
        })
    }

    /// The symbol with ordinal `r`.
    pub fn symbol(&self, r: u32) -> Result<&str> {
        if r >= self.num_symbols {
            return Err(self.corrupt(
                0,
                format!(
                    "symbol reference {r} out of range ({} symbols)",
                    self.num_symbols
                ),
            ));
        }
        let s = (r as usize) / SAMPLE_EVERY;
        let pos = self.symbol_samples[s] as usize;
        let b = self.file.bytes();
        let mut d = Decbuf::new(&b[pos..self.symbols_end]);
        for _ in 0..(r as usize % SAMPLE_EVERY) {
            d.uvarint_str()
                .map_err(|e| self.dec_err(pos, "symbol", e))?;
        }
        d.uvarint_str().map_err(|e| self.dec_err(pos, "symbol", e))
    }

    fn read_postings_table(&mut self) -> Result<()> {
        let off = self.toc.postings_offset_table as usize;
        let (start, end) = self.section(off, "postings offset table")?;
        let b = self.file.bytes();
        let mut d = Decbuf::new(&b[start..end]);
        let n = d
            .be32()
            .map_err(|e| self.dec_err(start, "postings offset table", e))?;
        let mut names: BTreeMap<String, NameEntries> = BTreeMap::new();
        let mut last_name: Option<&str> = None;
        let mut last_entry: Option<(&str, usize)> = None;
        let mut prev_key: Option<(&str, &str)> = None;
        for i in 0..n {
            let pos = end - d.len();
            let (name, value, poff) = decode_table_entry(&mut d)
                .map_err(|e| self.dec_err(pos, &format!("postings offset table entry {i}"), e))?;
            if let Some(p) = prev_key {
                if p >= (name, value) {
                    return Err(self.corrupt(pos, "postings offset table is not sorted"));
                }
            }
            prev_key = Some((name, value));
            if name.is_empty() && value.is_empty() {
                self.all_postings_off = Some(poff);
                continue;
            }
            if last_name != Some(name) {
                // Close the previous name: make sure its last value is sampled.
                if let (Some(ln), Some((lv, lp))) = (last_name, last_entry) {
                    if let Some(e) = names.get_mut(ln) {
                        if e.sampled.last().map(|s| s.1) != Some(lp) {
                            e.sampled.push((lv.to_string(), lp));
                        }
                    }
                }
                last_name = Some(name);
            }
            let e = names.entry(name.to_string()).or_default();
            if e.count.is_multiple_of(SAMPLE_EVERY) {
                e.sampled.push((value.to_string(), pos));
            }
            e.count += 1;
            last_entry = Some((value, pos));
        }
        if let (Some(ln), Some((lv, lp))) = (last_name, last_entry) {
            if let Some(e) = names.get_mut(ln) {
                if e.sampled.last().map(|s| s.1) != Some(lp) {
                    e.sampled.push((lv.to_string(), lp));
                }
            }
        }
        self.names = names;
        Ok(())
    }

    /// Label names of the block, sorted.
    pub fn label_names(&self) -> Vec<String> {
        self.names.keys().cloned().collect()
    }

    /// Iterates the postings table entries of `name` from the sampled position `pos`.
    fn entries_from(&self, pos: usize) -> impl Iterator<Item = Result<(&str, &str, u64)>> + '_ {
        let end = self.toc.postings_offset_table as usize + 4;
        let (_, table_end) = (end, self.table_end());
        let b = self.file.bytes();
        let mut d = Decbuf::new(b.get(pos..table_end).unwrap_or(&[]));
        std::iter::from_fn(move || {
            if d.is_empty() {
                return None;
            }
            let p = table_end - d.len();
            Some(
                decode_table_entry(&mut d)
                    .map_err(|e| self.dec_err(p, "postings offset table entry", e)),
            )
        })
    }

    fn table_end(&self) -> usize {
        // The table body ends 4 bytes (CRC) before the TOC.
        self.file.bytes().len() - TOC_LEN - 4
    }

    /// Values of label `name`, sorted.
    pub fn label_values(&self, name: &str) -> Result<Vec<&str>> {
        let Some(e) = self.names.get(name) else {
            return Ok(Vec::new());
        };
        let Some((_, pos)) = e.sampled.first() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(e.count);
        for r in self.entries_from(*pos).take(e.count) {
            let (n, v, _) = r?;
            if n != name {
                break;
            }
            out.push(v);
        }
        Ok(out)
    }

    /// Values of `name` with their postings list offsets, for values satisfying
    /// `keep`; scanning starts at the first sampled value `>= prefix`.
    fn values_with_offsets(
        &self,
        name: &str,
        prefix: &str,
        mut keep: impl FnMut(&str) -> bool,
    ) -> Result<Vec<u64>> {
        let Some(e) = self.names.get(name) else {
            return Ok(Vec::new());
        };
        // Start at the last sample whose value is <= prefix.
        let i = e.sampled.partition_point(|(v, _)| v.as_str() <= prefix);
        let start = e.sampled.get(i.saturating_sub(1)).map(|s| s.1);
        let Some(start) = start else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for r in self.entries_from(start) {
            let (n, v, off) = r?;
            if n != name {
                break;
            }
            if !prefix.is_empty() && v > prefix && !v.starts_with(prefix) {
                break;
            }
            if keep(v) {
                out.push(off);
            }
        }
        Ok(out)
    }

    /// Offset of the postings list for exactly (`name`, `value`).
    fn postings_offset(&self, name: &str, value: &str) -> Result<Option<u64>> {
        let Some(e) = self.names.get(name) else {
            return Ok(None);
        };
        let i = e.sampled.partition_point(|(v, _)| v.as_str() <= value);
        if i == 0 {
            return Ok(None);
        }
        let start = e.sampled[i - 1].1;
        for r in self.entries_from(start) {
            let (n, v, off) = r?;
            if n != name || v > value {
                return Ok(None);
            }
            if v == value {
                return Ok(Some(off));
            }
        }
        Ok(None)
    }

    /// Reads the postings list at file offset `off`, checking length and CRC.
    fn postings_at(&self, off: u64) -> Result<PostingsList<'_>> {
        let off = usize::try_from(off).map_err(|_| self.corrupt(0, "postings offset overflows"))?;
        let (start, end) = self.section(off, "postings list")?;
        let b = &self.file.bytes()[start..end];
        let n = Decbuf::new(b)
            .be32()
            .map_err(|e| self.dec_err(start, "postings list", e))? as usize;
        if b.len() != 4 + n * 4 {
            return Err(self.corrupt(
                off,
                format!("postings list length {} does not hold {n} refs", b.len()),
            ));
        }
        Ok(PostingsList::new(&b[4..]))
    }

    /// Every series ref.
    pub fn all_postings(&self) -> Result<BoxPostings<'_>> {
        match self.all_postings_off {
            Some(off) => Ok(Box::new(self.postings_at(off)?)),
            None => Ok(postings::empty()),
        }
    }

    /// Union of the postings of `name` = each of `values`.
    pub fn postings(&self, name: &str, values: &[String]) -> Result<BoxPostings<'_>> {
        let mut its: Vec<BoxPostings<'_>> = Vec::new();
        for v in values {
            if let Some(off) = self.postings_offset(name, v)? {
                its.push(Box::new(self.postings_at(off)?));
            }
        }
        Ok(postings::merge(its))
    }

    /// Union of the postings of every value of `name` that `m` accepts
    /// (`inverse` flips the test).
    fn postings_for_matcher(&self, m: &Matcher, inverse: bool) -> Result<BoxPostings<'_>> {
        if !inverse {
            if let Some(vals) = m.set_matches() {
                return self.postings(&m.name, &vals);
            }
        }
        let prefix = if inverse { "" } else { m.prefix() };
        let offs = self.values_with_offsets(&m.name, prefix, |v| m.matches(v) != inverse)?;
        let mut its: Vec<BoxPostings<'_>> = Vec::with_capacity(offs.len());
        for off in offs {
            its.push(Box::new(self.postings_at(off)?));
        }
        Ok(postings::merge(its))
    }

    /// Series refs matching all `matchers` (Prometheus `PostingsForMatchers`):
    /// matchers that accept the empty value also select series without the label.
    pub fn postings_for_matchers(&self, matchers: &[Matcher]) -> Result<BoxPostings<'_>> {
        let mut its: Vec<BoxPostings<'_>> = Vec::new();
        let mut not_its: Vec<BoxPostings<'_>> = Vec::new();
        for m in matchers {
            let matches_empty = m.matches_empty();
            let is_not = matches!(m.kind, MatchType::NotEqual | MatchType::NotRegex);
            match (is_not, matches_empty) {
                // l!="foo": subtract series with l="foo".
                (true, true) => not_its.push(self.postings_for_matcher(&m.inverse(), false)?),
                // l!="": series having some value the inverse rejects.
                (true, false) => its.push(self.postings_for_matcher(&m.inverse(), true)?),
                // l="foo"
                (false, false) => its.push(self.postings_for_matcher(m, false)?),
                // l="" or l=~"|foo": subtract series with a value the matcher rejects.
                (false, true) => {
                    if m.kind == MatchType::Regex && m.value == ".*" {
                        continue;
                    }
                    not_its.push(self.postings_for_matcher(m, true)?)
                }
            }
        }
        if its.is_empty() {
            its.push(self.all_postings()?);
        }
        let mut it = postings::intersect(its);
        for n in not_its {
            it = postings::without(it, n);
        }
        Ok(it)
    }

    /// Decodes series `r` (a v2 ref: offset / 16).
    pub fn series(&self, r: u32) -> Result<SeriesEntry> {
        let off = r as usize * 16;
        let b = self.file.bytes();
        let series_end = self.toc.label_indices.max(self.toc.series) as usize;
        let b = b.get(off..series_end.max(off)).unwrap_or(&[]);
        let mut d = Decbuf::new(b);
        let len = d
            .uvarint()
            .map_err(|e| self.dec_err(off, &format!("series {r}"), e))? as usize;
        let hdr = b.len() - d.len();
        let body = d
            .bytes(len)
            .map_err(|e| self.dec_err(off, &format!("series {r}"), e))?;
        let want = d
            .be32()
            .map_err(|e| self.dec_err(off, &format!("series {r}"), e))?;
        if crc32(body) != want {
            return Err(self.corrupt(off, format!("series {r}: checksum mismatch")));
        }
        let _ = hdr;
        let mut d = Decbuf::new(body);
        let err = |e| self.dec_err(off, &format!("series {r}"), e);
        let nl = d.uvarint().map_err(err)? as usize;
        let mut labels = Vec::with_capacity(nl.min(256));
        for _ in 0..nl {
            let n = d.uvarint().map_err(err)?;
            let v = d.uvarint().map_err(err)?;
            let name = self
                .symbol(u32::try_from(n).map_err(|_| self.corrupt(off, "symbol ref overflow"))?)?;
            let value = self
                .symbol(u32::try_from(v).map_err(|_| self.corrupt(off, "symbol ref overflow"))?)?;
            labels.push(Label::new(name, value));
        }
        if !labels.windows(2).all(|w| w[0].name < w[1].name) {
            return Err(self.corrupt(off, format!("series {r}: labels not sorted")));
        }
        let nc = d.uvarint().map_err(err)? as usize;
        let mut chunks = Vec::with_capacity(nc.min(4096));
        let mut prev: Option<ChunkRef> = None;
        for _ in 0..nc {
            let c = match prev {
                None => {
                    let mint = d.varint().map_err(err)?;
                    let dt = d.uvarint().map_err(err)? as i64;
                    let cref = d.uvarint().map_err(err)?;
                    ChunkRef {
                        min_time: mint,
                        max_time: mint.wrapping_add(dt),
                        chunk_ref: cref,
                    }
                }
                Some(p) => {
                    let mint = p.max_time.wrapping_add(d.uvarint().map_err(err)? as i64);
                    let maxt = mint.wrapping_add(d.uvarint().map_err(err)? as i64);
                    let cref = p.chunk_ref.wrapping_add(d.varint().map_err(err)? as u64);
                    ChunkRef {
                        min_time: mint,
                        max_time: maxt,
                        chunk_ref: cref,
                    }
                }
            };
            chunks.push(c);
            prev = Some(c);
        }
        Ok(SeriesEntry {
            labels: Labels::from_sorted(labels),
            chunks,
        })
    }
}

fn decode_table_entry<'a>(d: &mut Decbuf<'a>) -> Result<(&'a str, &'a str, u64), DecodeError> {
    let keys = d.uvarint()?;
    if keys != 2 {
        // Only 2-key entries exist; treat anything else as short data.
        return Err(DecodeError::Short);
    }
    let name = d.uvarint_str()?;
    let value = d.uvarint_str()?;
    let off = d.uvarint()?;
    Ok((name, value, off))
}
