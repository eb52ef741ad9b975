//! Temporary directories for databases, sockets, data directories and browser profiles.

use std::path::{Path, PathBuf};

/// A new, empty directory under the system's temp dir, removed with everything in it when
/// dropped (a failed removal is ignored: it must not hide the test's own failure).
///
/// Its name starts with `powchain-` and the name the test gives, then a random suffix, so tests
/// running at once never share one and a leftover directory says which test made it.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    /// Creates the directory `powchain-{name}-…`.
    pub fn new(name: &str) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("powchain-{name}-"))
            .tempdir()
            .expect("a temporary directory can be created");
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// The path of `name` inside the directory (nothing is created).
    pub fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// The directory as text, for a command line.
    pub fn arg(&self) -> &str {
        self.path()
            .to_str()
            .expect("the temp dir's path is UTF-8 (set TMPDIR to one that is)")
    }

    /// The path of `name` inside the directory as text, for a command line.
    pub fn file_arg(&self, name: &str) -> String {
        self.file(name)
            .to_str()
            .expect("the temp dir's path is UTF-8 (set TMPDIR to one that is)")
            .to_owned()
    }
}
