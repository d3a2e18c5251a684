//! Locating the shared fixtures and copying them somewhere writable.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Environment variable that overrides where [`shared_dir`] looks.
///
/// `.ci/run` exports it as an absolute path, so tests find `shared/` even when
/// the clone and the build directory live somewhere unusual.
pub const SHARED_DIR_ENV: &str = "STRATA_SHARED_DIR";

/// The project's `shared/` directory (architecture notes and fixtures).
///
/// It sits beside the repository: `<repo>/../shared`. The lookup is, in order:
///
/// 1. `$STRATA_SHARED_DIR`, if set (it must then exist);
/// 2. the nearest ancestor of this crate's source directory that has a
///    `shared/fixtures` folder, i.e. `<repo>/../shared`.
///
/// `shared/` is read-only input: copy anything a tool might write to (see
/// [`copy_dir`]) into a temporary directory first.
///
/// # Panics
///
/// If neither location exists, with a message that names both.
pub fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(SHARED_DIR_ENV) {
        let dir = PathBuf::from(dir);
        if dir.is_dir() {
            return dir;
        }
        panic!(
            "{SHARED_DIR_ENV}={} does not name a directory; point it at the project's shared/ \
             folder (the one holding fixtures/), or unset it to use <repo>/../shared",
            dir.display()
        );
    }
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    for ancestor in manifest_dir.ancestors() {
        let candidate = ancestor.join("shared");
        if candidate.join("fixtures").is_dir() {
            return candidate;
        }
    }
    panic!(
        "cannot find the shared/ directory: no ancestor of {} has shared/fixtures/. It belongs \
         beside the repository (<repo>/../shared); or set {SHARED_DIR_ENV} to its absolute path",
        manifest_dir.display()
    );
}

/// `shared/fixtures/`: data written by real Prometheus 2.42 (see its README).
///
/// # Panics
///
/// If [`shared_dir`] panics or the folder is missing.
pub fn fixtures_dir() -> PathBuf {
    let dir = shared_dir().join("fixtures");
    assert!(
        dir.is_dir(),
        "fixtures directory {} is missing",
        dir.display()
    );
    dir
}

/// Recursively copies the directory `src` to `dst` (created if missing).
///
/// Copies regular files and folders; permissions are not kept, so a copy of the
/// read-only `shared/` tree is writable. Symbolic links are followed.
///
/// # Panics
///
/// On any I/O error, naming the file.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst)
        .unwrap_or_else(|e| panic!("create directory {}: {e}", dst.display()));
    let entries =
        std::fs::read_dir(src).unwrap_or_else(|e| panic!("read directory {}: {e}", src.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("read directory {}: {e}", src.display()));
        let from = entry.path();
        let to = dst.join(entry.file_name());
        if from.is_dir() {
            copy_dir(&from, &to);
        } else {
            let data =
                std::fs::read(&from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
            std::fs::write(&to, data).unwrap_or_else(|e| panic!("write {}: {e}", to.display()));
        }
    }
}

/// Reads a gzip file (such as the fixtures' `dump.txt.gz`) into memory.
///
/// # Panics
///
/// If the file cannot be read or is not valid gzip.
pub fn read_gz(path: &Path) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::io::BufReader::new(file))
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("gunzip {}: {e}", path.display()));
    out
}

/// [`read_gz`], as UTF-8 text.
///
/// # Panics
///
/// As [`read_gz`], or if the content is not UTF-8.
pub fn read_gz_string(path: &Path) -> String {
    String::from_utf8(read_gz(path))
        .unwrap_or_else(|e| panic!("{} is not UTF-8: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_fixtures() {
        let dir = fixtures_dir();
        assert!(dir.join("README.md").is_file(), "{}", dir.display());
        assert!(dir.join("backfill-6h/list.txt").is_file());
    }

    #[test]
    fn copies_a_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let src = fixtures_dir().join("backfill-6h/blocks");
        copy_dir(&src, tmp.path());
        let blocks: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(blocks.len(), 3);
        let a = std::fs::read(src.join("01M89M4019TEQQXC7RBVCP8DEY/index")).unwrap();
        let b = std::fs::read(tmp.path().join("01M89M4019TEQQXC7RBVCP8DEY/index")).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn reads_gzip() {
        let text = read_gz_string(&fixtures_dir().join("backfill-6h/input.om.txt.gz"));
        assert!(text.ends_with("# EOF\n"));
    }
}
