//! Read-only memory maps shared by reference, so data handed out (e.g. chunk bytes)
//! keeps the file mapped even after the block is closed or deleted.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};

/// A memory-mapped file (or an empty buffer for empty files, which cannot be mapped).
#[derive(Debug, Clone)]
pub(crate) struct MappedFile {
    map: Arc<Mapping>,
}

#[derive(Debug)]
enum Mapping {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
    Empty,
}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        match self {
            Mapping::Map(m) => m,
            Mapping::Owned(v) => v,
            Mapping::Empty => &[],
        }
    }
}

/// A shared handle to a sub-range of a mapping, usable as `Bytes` owner.
struct Slice {
    map: Arc<Mapping>,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for Slice {
    fn as_ref(&self) -> &[u8] {
        &AsRef::<[u8]>::as_ref(&*self.map)[self.start..self.end]
    }
}

impl MappedFile {
    /// Maps `path` read-only.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        let map = if len == 0 {
            Mapping::Empty
        } else {
            // SAFETY: block files are immutable once written (blocks are created in a
            // temporary directory and renamed into place, never modified after); a
            // block being deleted only unlinks the files, which keeps mappings valid.
            #[allow(unsafe_code)]
            let m = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(path, e))?;
            Mapping::Map(m)
        };
        Ok(Self { map: Arc::new(map) })
    }

    /// Wraps bytes already in memory (tests, fuzzing, downloaded objects).
    pub(crate) fn from_vec(v: Vec<u8>) -> Self {
        Self {
            map: Arc::new(Mapping::Owned(v)),
        }
    }

    /// The whole file.
    pub(crate) fn bytes(&self) -> &[u8] {
        AsRef::<[u8]>::as_ref(&*self.map)
    }

    /// A zero-copy `Bytes` of `[start, end)`; the caller has bounds-checked it.
    pub(crate) fn slice(&self, start: usize, end: usize) -> Bytes {
        debug_assert!(start <= end && end <= self.bytes().len());
        Bytes::from_owner(Slice {
            map: self.map.clone(),
            start,
            end,
        })
    }
}
