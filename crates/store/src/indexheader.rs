//! The index-header: Thanos' binary format (tsdb-formats.md §6.5, thanos
//! `pkg/block/indexheader/binary_reader.go`), built from three ranged reads of
//! a block's `index` in the bucket (its header, its TOC, then the symbol table
//! and the postings offset table) and written to
//! `<data-dir>/<ULID>/index-header`.
//!
//! ```text
//! magic BE32 0xBAAAD792 | version 1B = 1 | index version 1B | index postings-table offset BE64
//! symbol table copy    (index bytes [TOC.symbols, TOC.series))
//! postings table copy  (index bytes [TOC.postingsOffsetTable, EOF), the index's TOC included)
//! TOC: symbols offset BE64 | postings table offset BE64 | CRC32C BE32 of those 16 bytes
//! ```
//!
//! Loaded, it answers symbol lookups, label names and values, and the byte range
//! of every postings list in the index (list i ends where list i+1 starts; the
//! last one ends at the postings offset table).

use std::ops::Range;
use std::path::Path;

use strata_objstore::Bucket;
use ulid::Ulid;

use crate::decode::{crc32, Dec};
use crate::error::{Error, Result};

/// Magic number of an index-header file.
pub const MAGIC_INDEX_HEADER: u32 = 0xBAAA_D792;
/// Index-header format version.
pub const INDEX_HEADER_VERSION: u8 = 1;
/// File name inside `<data-dir>/<ULID>/`.
pub const INDEX_HEADER_FILENAME: &str = "index-header";

const HEADER_LEN: usize = 14;
const TOC_LEN: usize = 20;
const INDEX_TOC_LEN: usize = 52;
const INDEX_MAGIC: u32 = 0xBAAA_D700;

/// The index's table of contents (what the store needs of it).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IndexToc {
    pub symbols: u64,
    pub series: u64,
    pub label_indices: u64,
    pub postings: u64,
    pub postings_offset_table: u64,
}

fn parse_index_toc(b: &[u8]) -> std::result::Result<IndexToc, String> {
    if b.len() != INDEX_TOC_LEN {
        return Err(format!("table of contents is {} bytes, want 52", b.len()));
    }
    let mut d = Dec::new(&b[..48]);
    let want = u32::from_be_bytes([b[48], b[49], b[50], b[51]]);
    if crc32(&b[..48]) != want {
        return Err("table of contents checksum mismatch".into());
    }
    let mut next = || d.be64().unwrap_or(0);
    let symbols = next();
    let series = next();
    let label_indices = next();
    let _label_indices_table = next();
    let postings = next();
    let postings_offset_table = next();
    Ok(IndexToc {
        symbols,
        series,
        label_indices,
        postings,
        postings_offset_table,
    })
}

/// Checks a `len BE32 | body | CRC32C` section at the start of `b`; returns the
/// body's range within `b`.
fn section(b: &[u8]) -> std::result::Result<Range<usize>, String> {
    let mut d = Dec::new(b);
    let len = d.be32().map_err(|e| e.to_string())? as usize;
    let body = d
        .bytes(len)
        .map_err(|_| format!("section length {len} beyond end of data"))?;
    let want = d.be32().map_err(|e| format!("section checksum: {e}"))?;
    if crc32(body) != want {
        return Err("section checksum mismatch".into());
    }
    Ok(4..4 + len)
}

/// Builds the index-header of block `id` from ranged reads of `<id>/index` and
/// writes it to `path` (via a temporary file and rename). Returns the number of
/// bytes read from the bucket.
pub(crate) async fn build(bucket: &Bucket, id: Ulid, path: &Path) -> Result<u64> {
    let key = format!("{id}/index");
    let corrupt = |off: u64, msg: String| Error::corrupt(id, "index", off, msg);
    let size = bucket
        .attributes(&key)
        .await
        .map_err(|e| Error::bucket(id, "index attributes", e))?
        .size;
    if size < (5 + INDEX_TOC_LEN) as u64 {
        return Err(corrupt(0, format!("index too short ({size} bytes)")));
    }
    let get = |off: u64, len: u64, what: &'static str| {
        let key = key.clone();
        async move {
            let b = bucket
                .get_range(&key, off, len)
                .await
                .map_err(|e| Error::bucket(id, format!("read index {what}"), e))?;
            if (b.len() as u64) < len {
                return Err(Error::corrupt(
                    id,
                    "index",
                    off,
                    format!("{what}: got {} of {len} bytes", b.len()),
                ));
            }
            Ok(b)
        }
    };
    let head = get(0, 5, "header").await?;
    let magic = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    if magic != INDEX_MAGIC {
        return Err(corrupt(0, format!("invalid magic number {magic:#x}")));
    }
    let version = head[4];
    if version != 2 && version != 3 {
        return Err(corrupt(
            4,
            format!("unsupported index version {version} (2 and 3 are supported)"),
        ));
    }
    let toc_off = size - INDEX_TOC_LEN as u64;
    let tocb = get(toc_off, INDEX_TOC_LEN as u64, "table of contents").await?;
    let toc = parse_index_toc(&tocb).map_err(|m| corrupt(toc_off, m))?;
    if !(toc.symbols >= 5
        && toc.symbols < toc.series
        && toc.series <= toc.postings_offset_table
        && toc.postings_offset_table < toc_off)
    {
        return Err(corrupt(
            toc_off,
            format!("table of contents out of order or beyond the file: {toc:?}"),
        ));
    }
    let symbols = get(toc.symbols, toc.series - toc.symbols, "symbol table").await?;
    section(&symbols).map_err(|m| corrupt(toc.symbols, format!("symbol table: {m}")))?;
    let table = get(
        toc.postings_offset_table,
        size - toc.postings_offset_table,
        "postings offset table",
    )
    .await?;
    section(&table).map_err(|m| {
        corrupt(
            toc.postings_offset_table,
            format!("postings offset table: {m}"),
        )
    })?;

    let mut out = Vec::with_capacity(HEADER_LEN + symbols.len() + table.len() + TOC_LEN);
    out.extend_from_slice(&MAGIC_INDEX_HEADER.to_be_bytes());
    out.push(INDEX_HEADER_VERSION);
    out.push(version);
    out.extend_from_slice(&toc.postings_offset_table.to_be_bytes());
    out.extend_from_slice(&symbols);
    let table_off = out.len() as u64;
    out.extend_from_slice(&table);
    let mut t = Vec::with_capacity(16);
    t.extend_from_slice(&(HEADER_LEN as u64).to_be_bytes());
    t.extend_from_slice(&table_off.to_be_bytes());
    out.extend_from_slice(&t);
    out.extend_from_slice(&crc32(&t).to_be_bytes());

    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| Error::io(dir, e))?;
    }
    let tmp = path.with_extension("tmp");
    tokio::fs::write(&tmp, &out)
        .await
        .map_err(|e| Error::io(&tmp, e))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| Error::io(path, e))?;
    Ok(5 + INDEX_TOC_LEN as u64 + symbols.len() as u64 + table.len() as u64)
}

/// One postings offset table entry: its value (a range of the file) and the
/// index offset of its postings list.
#[derive(Clone, Copy, Debug)]
struct Entry {
    value_off: u32,
    value_len: u32,
    list_off: u64,
}

/// A label name and its entries.
#[derive(Debug)]
struct Name {
    name: String,
    entries: Range<u32>,
}

/// A loaded index-header.
#[derive(Debug)]
pub(crate) struct IndexHeader {
    buf: Vec<u8>,
    /// Index offset of the postings offset table (the end of the last list).
    postings_table_off: u64,
    /// The index's TOC.
    pub toc: IndexToc,
    /// File offset of each symbol.
    symbols: Vec<u32>,
    entries: Vec<Entry>,
    /// Sorted by name; `""` (all postings) first when present.
    names: Vec<Name>,
}

impl IndexHeader {
    /// Reads and validates `path`.
    pub(crate) fn load(id: Ulid, path: &Path) -> Result<Self> {
        let buf = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::parse(id, buf)
    }

    pub(crate) fn parse(id: Ulid, buf: Vec<u8>) -> Result<Self> {
        let corrupt =
            |off: usize, msg: String| Error::corrupt(id, INDEX_HEADER_FILENAME, off as u64, msg);
        if buf.len() < HEADER_LEN + TOC_LEN + INDEX_TOC_LEN {
            return Err(corrupt(0, format!("file too short ({} bytes)", buf.len())));
        }
        let mut d = Dec::new(&buf);
        let magic = d.be32().unwrap_or(0);
        let version = d.u8().unwrap_or(0);
        let _index_version = d.u8().unwrap_or(0);
        let postings_table_off = d.be64().unwrap_or(0);
        if magic != MAGIC_INDEX_HEADER || version != INDEX_HEADER_VERSION {
            return Err(corrupt(
                0,
                format!("invalid magic {magic:#x} or version {version}"),
            ));
        }
        let toc_start = buf.len() - TOC_LEN;
        let tb = &buf[toc_start..];
        if crc32(&tb[..16]) != u32::from_be_bytes([tb[16], tb[17], tb[18], tb[19]]) {
            return Err(corrupt(
                toc_start,
                "table of contents checksum mismatch".into(),
            ));
        }
        let mut d = Dec::new(&tb[..16]);
        let sym_off = d.be64().unwrap_or(0) as usize;
        let table_off = d.be64().unwrap_or(0) as usize;
        let index_toc_start = toc_start - INDEX_TOC_LEN;
        if sym_off != HEADER_LEN || table_off < sym_off || table_off > index_toc_start {
            return Err(corrupt(toc_start, "section offsets out of range".into()));
        }
        let toc = parse_index_toc(&buf[index_toc_start..toc_start])
            .map_err(|m| corrupt(index_toc_start, format!("index {m}")))?;

        // Symbols.
        let r = section(&buf[sym_off..table_off])
            .map_err(|m| corrupt(sym_off, format!("symbol table: {m}")))?;
        let (sstart, send) = (sym_off + r.start, sym_off + r.end);
        let mut d = Dec::new(&buf[sstart..send]);
        let n = d
            .be32()
            .map_err(|e| corrupt(sstart, format!("symbol table: {e}")))?;
        let mut symbols = Vec::with_capacity((n as usize).min(buf.len()));
        for i in 0..n {
            let pos = send - d.len();
            symbols.push(pos as u32);
            d.uvarint_str()
                .map_err(|e| corrupt(pos, format!("symbol {i}: {e}")))?;
        }

        // Postings offset table.
        let r = section(&buf[table_off..index_toc_start])
            .map_err(|m| corrupt(table_off, format!("postings offset table: {m}")))?;
        let (pstart, pend) = (table_off + r.start, table_off + r.end);
        let mut d = Dec::new(&buf[pstart..pend]);
        let n = d
            .be32()
            .map_err(|e| corrupt(pstart, format!("postings offset table: {e}")))?;
        let mut entries: Vec<Entry> = Vec::with_capacity((n as usize).min(buf.len()));
        let mut names: Vec<Name> = Vec::new();
        for i in 0..n {
            let pos = pend - d.len();
            let err = |e: crate::decode::DecodeError| {
                corrupt(pos, format!("postings offset table entry {i}: {e}"))
            };
            if d.uvarint().map_err(err)? != 2 {
                return Err(corrupt(
                    pos,
                    format!("postings offset table entry {i}: key count is not 2"),
                ));
            }
            let name = d.uvarint_str().map_err(err)?;
            let value = d.uvarint_str().map_err(err)?;
            let value_off = (pend - d.len() - value.len()) as u32;
            let list_off = d.uvarint().map_err(err)?;
            if let Some(p) = entries.last() {
                if list_off <= p.list_off {
                    return Err(corrupt(
                        pos,
                        "postings lists are not in ascending order".into(),
                    ));
                }
            }
            if list_off >= postings_table_off {
                return Err(corrupt(
                    pos,
                    format!("postings list offset {list_off} beyond the postings offset table"),
                ));
            }
            match names.last_mut() {
                Some(last) if last.name == name => last.entries.end = i + 1,
                Some(last) if last.name.as_str() > name => {
                    return Err(corrupt(pos, "postings offset table is not sorted".into()));
                }
                _ => names.push(Name {
                    name: name.to_string(),
                    entries: i..i + 1,
                }),
            }
            entries.push(Entry {
                value_off,
                value_len: value.len() as u32,
                list_off,
            });
        }
        let mut h = Self {
            buf,
            postings_table_off,
            toc,
            symbols,
            entries,
            names,
        };
        h.buf.shrink_to_fit();
        Ok(h)
    }

    /// Approximate heap bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.buf.capacity()
            + self.symbols.capacity() * 4
            + self.entries.capacity() * std::mem::size_of::<Entry>()
            + self
                .names
                .iter()
                .map(|n| n.name.capacity() + std::mem::size_of::<Name>())
                .sum::<usize>()
    }

    /// The symbol with ordinal `r`.
    pub(crate) fn symbol(&self, r: u32) -> std::result::Result<&str, String> {
        let pos = *self.symbols.get(r as usize).ok_or_else(|| {
            format!(
                "symbol reference {r} out of range ({} symbols)",
                self.symbols.len()
            )
        })?;
        Dec::new(self.buf.get(pos as usize..).unwrap_or(&[]))
            .uvarint_str()
            .map_err(|e| format!("symbol {r}: {e}"))
    }

    /// End of the series section in the index.
    pub(crate) fn series_end(&self) -> u64 {
        if self.toc.label_indices > self.toc.series {
            self.toc.label_indices
        } else {
            self.toc.postings.max(self.toc.series)
        }
    }

    /// Label names, sorted (without the all-postings key).
    pub(crate) fn label_names(&self) -> Vec<String> {
        self.names
            .iter()
            .filter(|n| !n.name.is_empty())
            .map(|n| n.name.clone())
            .collect()
    }

    fn value(&self, e: &Entry) -> &str {
        let s = e.value_off as usize;
        self.buf
            .get(s..s + e.value_len as usize)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// Entry indices of label `name`.
    pub(crate) fn entries_of(&self, name: &str) -> Range<usize> {
        match self.names.binary_search_by(|n| n.name.as_str().cmp(name)) {
            Ok(i) => {
                let r = &self.names[i].entries;
                r.start as usize..r.end as usize
            }
            Err(_) => 0..0,
        }
    }

    /// The value of entry `i`.
    pub(crate) fn entry_value(&self, i: usize) -> &str {
        self.entries.get(i).map(|e| self.value(e)).unwrap_or("")
    }

    /// Values of `name`, sorted.
    pub(crate) fn label_values(&self, name: &str) -> Vec<&str> {
        self.entries_of(name).map(|i| self.entry_value(i)).collect()
    }

    /// The entry of (`name`, `value`), if any.
    pub(crate) fn find(&self, name: &str, value: &str) -> Option<usize> {
        let r = self.entries_of(name);
        let slice = self.entries.get(r.clone())?;
        slice
            .binary_search_by(|e| self.value(e).cmp(value))
            .ok()
            .map(|i| r.start + i)
    }

    /// The all-postings entry.
    pub(crate) fn all_postings(&self) -> Option<usize> {
        self.find("", "")
    }

    /// Byte range `[start, end)` of entry `i`'s postings list in the index.
    pub(crate) fn postings_range(&self, i: usize) -> (u64, u64) {
        let start = self.entries.get(i).map(|e| e.list_off).unwrap_or(0);
        let end = self
            .entries
            .get(i + 1)
            .map(|e| e.list_off)
            .unwrap_or(self.postings_table_off);
        (start, end)
    }
}
