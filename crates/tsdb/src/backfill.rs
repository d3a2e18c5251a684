//! Backfill (pending).
