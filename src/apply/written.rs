//! The guard over the files an apply writes: it owns what they held before, and puts that
//! back unless the apply keeps the new files.
//!
//! Both files are written atomically (see [`crate::asterisk::files`]), but an apply that
//! fails after writing them must restore what it wrote and reload Asterisk, or Asterisk runs a
//! configuration the portal never recorded. That one rule lives here: [`Written::keep`]
//! when the apply succeeded, [`Written::roll_back`] when it failed after a reload was
//! attempted, and a drop without either (a bug, a panic) still restores the old files.
//!
//! A file whose bytes are already on disk is neither written nor restored: a secret
//! rotated changes the endpoints file alone, and each write costs two fsyncs (the file and
//! its directory), the largest part of a files-only apply.

use std::io;

use crate::asterisk::files::Managed;
use crate::asterisk::reload::Link;
use crate::asterisk::render::{Rendered, ENDPOINTS_FILE, ROUTING_FILE};
use crate::config::AsteriskConfig;

/// The two managed files as they are before the apply, in the order they are written
/// (endpoints first: the dialplan routes to them).
pub struct Current {
    files: [Managed; 2],
}

/// What `rendered` puts in [`Current`]'s files, in the same order.
fn contents(rendered: &Rendered) -> [&[u8]; 2] {
    [rendered.endpoints.as_bytes(), rendered.routing.as_bytes()]
}

/// How a rollback went, for the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    /// The previous files are back in place.
    pub restored: bool,
    pub note: String,
}

impl Current {
    pub fn load(cfg: &AsteriskConfig) -> io::Result<Self> {
        Ok(Self {
            files: [
                Managed::load(&cfg.pjsip_dir, ENDPOINTS_FILE)?,
                Managed::load(&cfg.dialplan_dir, ROUTING_FILE)?,
            ],
        })
    }

    /// Whether the files on disk already are `rendered`, byte for byte.
    pub fn hold(&self, rendered: &Rendered) -> bool {
        self.files
            .iter()
            .zip(contents(rendered))
            .all(|(file, bytes)| file.holds(bytes))
    }

    /// Writes the files that differ from `rendered`, in order. When the second write
    /// fails the first is restored; the error says which file failed and whether the
    /// restore worked.
    pub fn write(self, rendered: &Rendered) -> Result<Written, WriteFailure> {
        let mut written = Written {
            touched: Vec::new(),
            settled: false,
        };
        for (file, bytes) in self.files.into_iter().zip(contents(rendered)) {
            if file.holds(bytes) {
                continue;
            }
            let result = file.write(bytes);
            // Touched even when the write failed: one that fails after its rename (the
            // directory's fsync) has changed the file all the same.
            let path = file.path();
            written.touched.push(file);
            if let Err(e) = result {
                let message = format!("cannot write {}: {e}", path.display());
                let restored = written.restore().is_ok();
                return Err(WriteFailure { message, restored });
            }
        }
        Ok(written)
    }
}

/// A write that failed, and whether the files are as before.
#[derive(Debug)]
pub struct WriteFailure {
    pub message: String,
    pub restored: bool,
}

/// Files written by an apply that has not settled yet.
pub struct Written {
    /// The files this apply wrote (or tried to), in the order it wrote them.
    touched: Vec<Managed>,
    settled: bool,
}

impl Written {
    /// The apply succeeded: the new files stay.
    pub fn keep(mut self) {
        self.settled = true;
    }

    /// Restores the previous files it wrote, in the reverse order of writing; tries each
    /// and reports the first failure.
    fn restore(&mut self) -> io::Result<()> {
        self.settled = true;
        let mut result = Ok(());
        for f in self.touched.iter().rev() {
            if let Err(e) = f.restore() {
                let e = io::Error::new(
                    e.kind(),
                    format!("cannot restore {}: {e}", f.path().display()),
                );
                result = result.and(Err(e));
            }
        }
        result
    }

    /// The apply failed after Asterisk was asked to reload: restores the previous files
    /// and reloads them, so that Asterisk runs what the last successful apply recorded.
    pub async fn roll_back(mut self, link: &mut Link) -> RolledBack {
        if let Err(e) = self.restore() {
            return RolledBack {
                restored: false,
                note: format!("ROLLBACK FAILED: {e}; the new files may still be in place"),
            };
        }
        let note = match link.reload().await {
            Ok(_) => "the previous files were restored and reloaded".to_owned(),
            Err(f) => format!("the previous files were restored but reloading them failed: {f}"),
        };
        RolledBack {
            restored: true,
            note,
        }
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        if !self.settled {
            tracing::error!(
                "an apply ended without settling its files: restoring the previous ones"
            );
            if let Err(e) = self.restore() {
                tracing::error!(error = %e, "restoring the previous files failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asterisk::files::replace;

    fn cfg(dir: &std::path::Path) -> AsteriskConfig {
        let vars = [
            ("DATABASE_URL", "postgres://u@localhost/db".to_owned()),
            ("PORTAL_RELOAD", "none".into()),
            ("PORTAL_PJSIP_DIR", dir.join("pjsip").display().to_string()),
            (
                "PORTAL_DIALPLAN_DIR",
                dir.join("dialplan").display().to_string(),
            ),
        ];
        let vars = vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        crate::config::Config::from_vars(&vars).unwrap().asterisk
    }

    fn rendered(tag: &str) -> Rendered {
        Rendered {
            endpoints: format!("endpoints {tag}"),
            routing: format!("routing {tag}"),
            fingerprints: Default::default(),
            content_hash: String::new(),
            marker: String::new(),
            sentinel: String::new(),
        }
    }

    fn read(dir: &std::path::Path) -> (String, String) {
        let r = |d: &str, f: &str| std::fs::read_to_string(dir.join(d).join(f)).unwrap_or_default();
        (r("pjsip", ENDPOINTS_FILE), r("dialplan", ROUTING_FILE))
    }

    fn setup() -> (tempfile::TempDir, AsteriskConfig) {
        let dir = tempfile::tempdir().unwrap();
        for d in ["pjsip", "dialplan"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        replace(
            &dir.path().join("pjsip"),
            ENDPOINTS_FILE,
            Some(b"endpoints old"),
        )
        .unwrap();
        replace(
            &dir.path().join("dialplan"),
            ROUTING_FILE,
            Some(b"routing old"),
        )
        .unwrap();
        let cfg = cfg(dir.path());
        (dir, cfg)
    }

    #[test]
    fn kept_files_stay_and_dropped_ones_are_restored() {
        let (dir, cfg) = setup();
        let current = Current::load(&cfg).unwrap();
        assert!(current.hold(&rendered("old")));
        assert!(!current.hold(&rendered("new")));
        current.write(&rendered("new")).unwrap().keep();
        assert_eq!(
            read(dir.path()),
            ("endpoints new".into(), "routing new".into())
        );

        let written = Current::load(&cfg)
            .unwrap()
            .write(&rendered("newer"))
            .unwrap();
        assert_eq!(read(dir.path()).0, "endpoints newer");
        drop(written);
        assert_eq!(
            read(dir.path()),
            ("endpoints new".into(), "routing new".into())
        );
    }

    #[test]
    fn a_file_already_holding_its_bytes_is_neither_written_nor_restored() {
        use std::os::unix::fs::MetadataExt;
        let (dir, cfg) = setup();
        let inode = |d: &str, f: &str| std::fs::metadata(dir.path().join(d).join(f)).unwrap().ino();
        let routing = inode("dialplan", ROUTING_FILE);
        let endpoints = inode("pjsip", ENDPOINTS_FILE);
        let mut only_endpoints = rendered("new");
        only_endpoints.routing = "routing old".into();
        let written = Current::load(&cfg).unwrap().write(&only_endpoints).unwrap();
        assert_eq!(inode("dialplan", ROUTING_FILE), routing, "not rewritten");
        assert_ne!(
            inode("pjsip", ENDPOINTS_FILE),
            endpoints,
            "replaced by a rename"
        );
        // An admin edits the routing file meanwhile: the rollback leaves it alone.
        std::fs::write(
            dir.path().join("dialplan").join(ROUTING_FILE),
            "routing admin",
        )
        .unwrap();
        drop(written);
        assert_eq!(
            read(dir.path()),
            ("endpoints old".into(), "routing admin".into())
        );
    }

    #[test]
    fn a_failed_second_write_restores_the_first() {
        let (dir, cfg) = setup();
        let current = Current::load(&cfg).unwrap();
        std::fs::remove_file(dir.path().join("dialplan").join(ROUTING_FILE)).unwrap();
        std::fs::remove_dir(dir.path().join("dialplan")).unwrap();
        let Err(failure) = current.write(&rendered("new")) else {
            panic!("the routing write must fail without its directory");
        };
        assert!(
            failure.message.contains(ROUTING_FILE),
            "{}",
            failure.message
        );
        assert_eq!(read(dir.path()).0, "endpoints old");
    }
}
