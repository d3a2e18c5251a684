//! Chunk segment files `chunks/000001…` (mirrors `tsdb/chunks`): an 8-byte header,
//! then `len uvarint | encoding | data | CRC32C(encoding, data)` records.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use strata_chunkenc::{Encoding, RawChunk};

use crate::encoding::{crc32, uvarint, Encbuf};
use crate::error::{Error, Result};
use crate::mmap::MappedFile;

/// Magic number of a chunk segment file.
pub const MAGIC_CHUNKS: u32 = 0x85BD_40DD;
/// Segment header size.
pub const SEGMENT_HEADER_LEN: usize = 8;
/// Default maximum segment size (512 MiB).
pub const DEFAULT_MAX_SEGMENT_SIZE: u64 = 512 * 1024 * 1024;

/// Segment file name for a 1-based sequence number.
pub fn segment_name(seq: u64) -> String {
    format!("{seq:06}")
}

/// Writes chunks into numbered segment files, returning their refs.
pub struct ChunkWriter {
    dir: PathBuf,
    max_segment_size: u64,
    cur: Option<(PathBuf, BufWriter<File>)>,
    /// 0-based index of the current segment.
    seq: u64,
    pos: u64,
    files: Vec<(String, u64)>,
    buf: Encbuf,
}

impl ChunkWriter {
    /// A writer creating segments in `dir` (created if missing).
    pub fn create(dir: &Path, max_segment_size: u64) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            max_segment_size,
            cur: None,
            seq: 0,
            pos: 0,
            files: Vec::new(),
            buf: Encbuf::default(),
        })
    }

    fn cut(&mut self) -> Result<()> {
        self.finish_segment()?;
        let n = self.files.len() as u64 + 1;
        let path = self.dir.join(segment_name(n));
        let f = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let mut h = [0u8; SEGMENT_HEADER_LEN];
        h[..4].copy_from_slice(&MAGIC_CHUNKS.to_be_bytes());
        h[4] = 1;
        w.write_all(&h).map_err(|e| Error::io(&path, e))?;
        self.seq = n - 1;
        self.pos = SEGMENT_HEADER_LEN as u64;
        self.files.push((segment_name(n), 0));
        self.cur = Some((path, w));
        Ok(())
    }

    fn finish_segment(&mut self) -> Result<()> {
        if let Some((path, mut w)) = self.cur.take() {
            w.flush().map_err(|e| Error::io(&path, e))?;
            w.get_ref().sync_all().map_err(|e| Error::io(&path, e))?;
            if let Some(last) = self.files.last_mut() {
                last.1 = self.pos;
            }
        }
        Ok(())
    }

    /// Appends a chunk and returns its ref (`segment << 32 | offset`).
    pub fn write(&mut self, c: &RawChunk) -> Result<u64> {
        let need = 5 + 1 + c.data.len() as u64 + 4;
        if self.cur.is_none()
            || (self.pos + need > self.max_segment_size && self.pos > SEGMENT_HEADER_LEN as u64)
        {
            self.cut()?;
        }
        let r = (self.seq << 32) | self.pos;
        let mut buf = std::mem::take(&mut self.buf);
        buf.reset();
        buf.uvarint(c.data.len() as u64);
        let len_len = buf.b.len();
        buf.u8(c.encoding.as_u8());
        buf.b.extend_from_slice(&c.data);
        let crc = crc32(&buf.b[len_len..]);
        buf.be32(crc);
        if let Some((path, w)) = &mut self.cur {
            w.write_all(&buf.b).map_err(|e| Error::io(&*path, e))?;
        }
        self.pos += buf.b.len() as u64;
        self.buf = buf;
        Ok(r)
    }

    /// Flushes and syncs; returns the segment files' names and sizes.
    pub fn finish(mut self) -> Result<Vec<(String, u64)>> {
        self.finish_segment()?;
        Ok(self.files)
    }
}

/// Reads chunks from a block's memory-mapped segment files.
#[derive(Debug)]
pub struct ChunkReader {
    dir: PathBuf,
    segments: Vec<(PathBuf, MappedFile)>,
}

impl ChunkReader {
    /// Opens every all-digit file in `dir`, in name order, checking headers.
    pub fn open(dir: &Path) -> Result<Self> {
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        let rd = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        for e in rd {
            let e = e.map_err(|e| Error::io(dir, e))?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(n) = name.parse::<u64>() {
                    names.push((n, e.path()));
                }
            }
        }
        names.sort();
        let mut segments = Vec::with_capacity(names.len());
        for (_, p) in names {
            let m = MappedFile::open(&p)?;
            let b = m.bytes();
            if b.len() < SEGMENT_HEADER_LEN {
                return Err(Error::corrupt(&p, 0, "segment shorter than its header"));
            }
            let magic = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            if magic != MAGIC_CHUNKS {
                return Err(Error::corrupt(
                    &p,
                    0,
                    format!("invalid magic number {magic:#x}"),
                ));
            }
            if b[4] != 1 {
                return Err(Error::corrupt(
                    &p,
                    4,
                    format!("unsupported chunks format version {}", b[4]),
                ));
            }
            segments.push((p, m));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            segments,
        })
    }

    /// Total bytes of all segments.
    pub fn size(&self) -> u64 {
        self.segments.iter().map(|s| s.1.bytes().len() as u64).sum()
    }

    /// The chunk at `r`, sharing the mapped bytes; checks bounds and CRC.
    pub fn chunk(&self, r: u64) -> Result<RawChunk> {
        let seg = (r >> 32) as usize;
        let off = (r & 0xffff_ffff) as usize;
        let Some((path, m)) = self.segments.get(seg) else {
            return Err(Error::corrupt(
                &self.dir,
                off as u64,
                format!(
                    "chunk ref {r:#x}: segment index {seg} out of range ({} segments)",
                    self.segments.len()
                ),
            ));
        };
        let b = m.bytes();
        let bad = |msg: &str| Error::corrupt(path, off as u64, format!("chunk ref {r:#x}: {msg}"));
        if off < SEGMENT_HEADER_LEN || off >= b.len() {
            return Err(bad("offset beyond end of segment"));
        }
        let (len, n) = uvarint(&b[off..]).map_err(|e| bad(&e.to_string()))?;
        let len = usize::try_from(len).map_err(|_| bad("length overflows"))?;
        let enc_at = off + n;
        let data_start = enc_at + 1;
        let data_end = data_start
            .checked_add(len)
            .filter(|e| e + 4 <= b.len())
            .ok_or_else(|| bad(&format!("length {len} beyond end of segment")))?;
        let want = u32::from_be_bytes([
            b[data_end],
            b[data_end + 1],
            b[data_end + 2],
            b[data_end + 3],
        ]);
        if crc32(&b[enc_at..data_end]) != want {
            return Err(bad("checksum mismatch"));
        }
        let encoding = Encoding::from_u8(b[enc_at]).map_err(|e| Error::Chunk {
            path: path.clone(),
            chunk_ref: r,
            source: e,
        })?;
        Ok(RawChunk::new(encoding, m.slice(data_start, data_end)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_chunkenc::XorChunk;

    #[test]
    fn write_read_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ChunkWriter::create(dir.path(), 64).unwrap();
        let mut refs = vec![];
        for i in 0..5 {
            let mut a = XorChunk::new().appender();
            a.append(i, i as f64).unwrap();
            refs.push(w.write(&RawChunk::from_xor(a.finish())).unwrap());
        }
        let files = w.finish().unwrap();
        assert!(files.len() > 1, "{files:?}");
        let r = ChunkReader::open(dir.path()).unwrap();
        for (i, rf) in refs.iter().enumerate() {
            let c = r.chunk(*rf).unwrap();
            assert_eq!(c.num_samples().unwrap(), 1, "chunk {i}");
        }
        assert!(r.chunk(1 << 40).is_err());
        assert!(r.chunk(3).is_err());
    }
}
