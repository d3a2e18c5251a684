//! Entry points for the fuzz targets in `fuzz/` (not a stable API).
//!
//! Every decoder of bucket data checks a CRC32C before it reads a body, so a
//! fuzzer feeding raw bytes would stop at the checksum. These functions wrap
//! the fuzzer's bytes in valid envelopes (lengths and checksums computed here)
//! so that the bodies themselves are what gets fuzzed.

use bytes::Bytes;
use strata_chunkenc::SampleIterator;
use ulid::Ulid;

use crate::decode::{
    chunk_record_len, crc32, decode_chunk, decode_series, postings_refs, series_entry_len,
};
use crate::indexheader::IndexHeader;

fn uvarint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `be32 len | body | be32 crc32c(body)`: a section of the index.
fn section(body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&crc32(body).to_be_bytes());
}

/// Decodes `data` as a series entry body, a chunk record body and a postings
/// list body (each in a valid envelope), then raw, as the store gateway reads
/// them from a bucket. Errors are expected; a panic is a bug.
pub fn decode_records(data: &[u8]) {
    // Raw: whatever the bucket returned.
    let raw = Bytes::copy_from_slice(data);
    let _ = series_entry_len(data);
    let _ = chunk_record_len(data);
    let _ = decode_chunk(&raw);
    let _ = postings_refs(&raw);
    let symbol = |r: u32| -> Result<&'static str, String> {
        const SYMBOLS: [&str; 4] = ["", "__name__", "job", "up"];
        SYMBOLS
            .get(r as usize)
            .copied()
            .ok_or_else(|| format!("symbol {r} out of range"))
    };
    let _ = decode_series(data, symbol);

    // Series entry: uvarint len | body | crc.
    let mut rec = Vec::with_capacity(data.len() + 16);
    uvarint(data.len() as u64, &mut rec);
    rec.extend_from_slice(data);
    rec.extend_from_slice(&crc32(data).to_be_bytes());
    let _ = series_entry_len(&rec);
    let _ = decode_series(&rec, symbol);

    // Chunk record: uvarint len(data) - 1 | encoding + data | crc.
    if !data.is_empty() {
        let mut rec = Vec::with_capacity(data.len() + 16);
        uvarint(data.len() as u64 - 1, &mut rec);
        rec.extend_from_slice(data);
        rec.extend_from_slice(&crc32(data).to_be_bytes());
        let _ = chunk_record_len(&rec);
        if let Ok(c) = decode_chunk(&Bytes::from(rec)) {
            // Iterate what decoded, as a query would.
            if let Ok(mut it) = c.iter() {
                while let Ok(Some(_)) = it.next() {}
            }
        }
    }

    // Postings list: be32 len | body | crc.
    let mut rec = Vec::with_capacity(data.len() + 8);
    section(data, &mut rec);
    let _ = postings_refs(&Bytes::from(rec));
}

/// Builds an index-header file around `data` (the first byte splits the rest
/// into a symbol table body and a postings offset table body; the TOCs and
/// checksums are made valid), parses it, and runs every lookup on it.
pub fn parse_index_header(data: &[u8]) {
    // Raw.
    let _ = IndexHeader::parse(Ulid::nil(), data.to_vec());

    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = (split as usize * rest.len()) / 255;
    let (symbols, postings) = rest.split_at(at.min(rest.len()));
    let mut buf = Vec::new();
    buf.extend_from_slice(&crate::indexheader::MAGIC_INDEX_HEADER.to_be_bytes());
    buf.push(crate::indexheader::INDEX_HEADER_VERSION);
    buf.push(2);
    // The index's postings offset table offset: past every list.
    buf.extend_from_slice(&(1u64 << 40).to_be_bytes());
    let sym_off = buf.len() as u64;
    section(symbols, &mut buf);
    let table_off = buf.len() as u64;
    section(postings, &mut buf);
    // The index's TOC (52 bytes: six offsets and a CRC).
    let mut toc = Vec::with_capacity(52);
    for v in [5u64, 1 << 20, 0, 0, 1 << 30, 1 << 40] {
        toc.extend_from_slice(&v.to_be_bytes());
    }
    let c = crc32(&toc);
    toc.extend_from_slice(&c.to_be_bytes());
    buf.extend_from_slice(&toc);
    // The index-header's own TOC.
    let mut own = Vec::with_capacity(20);
    own.extend_from_slice(&sym_off.to_be_bytes());
    own.extend_from_slice(&table_off.to_be_bytes());
    let c = crc32(&own);
    own.extend_from_slice(&c.to_be_bytes());
    buf.extend_from_slice(&own);
    let Ok(h) = IndexHeader::parse(Ulid::nil(), buf) else {
        return;
    };
    let _ = h.memory_bytes();
    let _ = h.series_end();
    for r in 0..64 {
        let _ = h.symbol(r);
    }
    let _ = h.all_postings();
    for name in h.label_names() {
        let range = h.entries_of(&name);
        for i in range.clone() {
            let _ = h.entry_value(i);
            let _ = h.postings_range(i);
        }
        for v in h.label_values(&name) {
            let _ = h.find(&name, v);
        }
        let _ = h.find(&name, "");
    }
}
