//! Atomic replacement of the generated files.
//!
//! Asterisk applies a half-written include partially (F-CFG-3), so a reader must only
//! ever see the old file or the new one: write a hidden temp file in the same directory
//! (its name never matches `*.conf`), fsync it, rename it over the target, fsync the
//! directory so the rename itself survives a power cut.

use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Mode of the generated files: they hold SIP secrets, so never world-readable.
pub const MODE: u32 = 0o640;

/// Replaces `dir/name` with `contents`, or removes it when `contents` is `None`.
pub fn replace(dir: &Path, name: &str, contents: Option<&[u8]>) -> io::Result<()> {
    let target = dir.join(name);
    match contents {
        Some(bytes) => {
            let mut tmp = tempfile::Builder::new()
                .prefix(&format!(".{name}."))
                .suffix(".tmp")
                .permissions(Permissions::from_mode(MODE))
                .tempfile_in(dir)?;
            // The umask may have narrowed the mode further at creation; set it exactly.
            tmp.as_file()
                .set_permissions(Permissions::from_mode(MODE))?;
            tmp.write_all(bytes)?;
            tmp.as_file().sync_all()?;
            tmp.persist(&target).map_err(|e| e.error)?;
        }
        None => match fs::remove_file(&target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        },
    }
    File::open(dir)?.sync_all()
}

/// The current contents of `dir/name`, `None` when it does not exist.
pub fn read(dir: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    match fs::read(dir.join(name)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A file the apply manages, with what it held before the apply (for rollback).
#[derive(Debug, Clone)]
pub struct Managed {
    pub dir: PathBuf,
    pub name: String,
    pub before: Option<Vec<u8>>,
}

impl Managed {
    pub fn load(dir: &Path, name: &str) -> io::Result<Self> {
        Ok(Self {
            dir: dir.to_owned(),
            name: name.to_owned(),
            before: read(dir, name)?,
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// Whether the file already held `contents` before the apply (`None`: did not exist).
    pub fn holds(&self, contents: Option<&[u8]>) -> bool {
        self.before.as_deref() == contents
    }

    /// Writes `contents`, or removes the file for `None`.
    pub fn write(&self, contents: Option<&[u8]>) -> io::Result<()> {
        replace(&self.dir, &self.name, contents)
    }

    pub fn restore(&self) -> io::Result<()> {
        replace(&self.dir, &self.name, self.before.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn replaces_with_mode_0640_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        replace(dir.path(), "a.conf", Some(b"one")).unwrap();
        replace(dir.path(), "a.conf", Some(b"two")).unwrap();
        assert_eq!(fs::read(dir.path().join("a.conf")).unwrap(), b"two");
        assert_eq!(
            fs::metadata(dir.path().join("a.conf")).unwrap().mode() & 0o777,
            0o640
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.conf"]);
    }

    #[test]
    fn restore_brings_back_the_old_file_or_removes_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let m = Managed::load(dir.path(), "a.conf").unwrap();
        m.write(Some(b"new")).unwrap();
        m.restore().unwrap();
        assert!(!dir.path().join("a.conf").exists());
        replace(dir.path(), "a.conf", Some(b"old")).unwrap();
        let m = Managed::load(dir.path(), "a.conf").unwrap();
        m.write(Some(b"new")).unwrap();
        m.restore().unwrap();
        assert_eq!(fs::read(dir.path().join("a.conf")).unwrap(), b"old");
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_panic() {
        assert!(replace(Path::new("/nonexistent/dir"), "a.conf", Some(b"x")).is_err());
    }
}
