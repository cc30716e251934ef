//! The guard over the files an apply writes: it owns what they held before, and puts that
//! back unless the apply keeps the new files.
//!
//! Every file is written atomically (see [`crate::asterisk::files`]), but an apply that
//! fails after writing them must restore what it wrote and reload Asterisk, or Asterisk runs a
//! configuration the portal never recorded. That one rule lives here: [`Written::keep`]
//! when the apply succeeded, [`Written::roll_back`] when it failed after a reload was
//! attempted, and a drop without either (a bug, a panic) still restores the old files.
//!
//! The managed files are two per rendered tenant, and the files of tenants that are no
//! longer rendered (no users left, or the tenant deleted): those are removed, since a
//! `generated_endpoints-<slug>.conf` left behind would keep a deleted company's phones
//! registered. A removed file is restored like a written one.
//!
//! A file whose bytes are already on disk is neither written nor restored: a secret
//! rotated changes one endpoints file alone, and each write costs two fsyncs (the file and
//! its directory), the largest part of a files-only apply.

use std::io;
use std::path::Path;

use crate::asterisk::files::Managed;
use crate::asterisk::reload::Link;
use crate::asterisk::render::{self, Rendered, ENDPOINTS_STEM, ROUTING_STEM};
use crate::config::AsteriskConfig;

/// What a managed file must hold after the apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// The endpoints file of `rendered.files[i]`.
    Endpoints(usize),
    /// The routing file of `rendered.files[i]`.
    Routing(usize),
    /// A file of a tenant no longer rendered: removed.
    Stale,
}

/// The managed files as they are before the apply, in the order they are written: every
/// endpoints file first (the dialplan routes to them), then every routing file, then the
/// stale routing files and the stale endpoints files are removed.
pub struct Current {
    files: Vec<(Managed, Slot)>,
}

/// What `rendered` puts in a file of `slot` (`None`: no file).
fn contents(rendered: &Rendered, slot: Slot) -> Option<&[u8]> {
    match slot {
        Slot::Endpoints(i) => rendered.files.get(i).map(|f| f.endpoints.as_bytes()),
        Slot::Routing(i) => rendered.files.get(i).map(|f| f.routing.as_bytes()),
        Slot::Stale => None,
    }
}

/// Another tenant's files of `stem` in `dir` that `rendered` has no tenant for, sorted.
fn stale(dir: &Path, stem: &str, rendered: &Rendered) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // A missing directory has nothing stale; the write says it is missing.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if let Some(tenant) = render::other_tenant_of(stem, &name) {
            if !rendered.files.iter().any(|f| f.tenant == tenant) {
                names.push(name);
            }
        }
    }
    names.sort();
    Ok(names)
}

/// How a rollback went, for the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    /// The previous files are back in place.
    pub restored: bool,
    pub note: String,
}

impl Current {
    /// Reads every file `rendered` writes and every stale one, as they are now.
    pub fn load(cfg: &AsteriskConfig, rendered: &Rendered) -> io::Result<Self> {
        let mut files = Vec::with_capacity(rendered.files.len() * 2);
        for (i, f) in rendered.files.iter().enumerate() {
            files.push((
                Managed::load(&cfg.pjsip_dir, &f.endpoints_name())?,
                Slot::Endpoints(i),
            ));
        }
        for (i, f) in rendered.files.iter().enumerate() {
            files.push((
                Managed::load(&cfg.dialplan_dir, &f.routing_name())?,
                Slot::Routing(i),
            ));
        }
        for (dir, stem) in [
            (&cfg.dialplan_dir, ROUTING_STEM),
            (&cfg.pjsip_dir, ENDPOINTS_STEM),
        ] {
            for name in stale(dir, stem, rendered)? {
                files.push((Managed::load(dir, &name)?, Slot::Stale));
            }
        }
        Ok(Self { files })
    }

    /// Reads one tenant's two files as they are now, and nothing else: a tenant-scoped
    /// apply leaves every other tenant's files alone (not even rewritten with the same
    /// bytes). When `rendered` has no files for the tenant (no users left) its files are
    /// removed.
    pub fn load_tenant(
        cfg: &AsteriskConfig,
        rendered: &Rendered,
        tenant: &str,
    ) -> io::Result<Self> {
        let at = rendered
            .files
            .iter()
            .position(|f| f.tenant.as_str() == tenant);
        let (endpoints, routing) = match at {
            Some(i) => (Slot::Endpoints(i), Slot::Routing(i)),
            None => (Slot::Stale, Slot::Stale),
        };
        Ok(Self {
            files: vec![
                (
                    Managed::load(&cfg.pjsip_dir, &render::endpoints_file(tenant))?,
                    endpoints,
                ),
                (
                    Managed::load(&cfg.dialplan_dir, &render::routing_file(tenant))?,
                    routing,
                ),
            ],
        })
    }

    /// Whether the files on disk already are `rendered`, byte for byte, and no stale
    /// file is left.
    pub fn hold(&self, rendered: &Rendered) -> bool {
        self.files
            .iter()
            .all(|(file, slot)| file.holds(contents(rendered, *slot)))
    }

    /// Writes (or removes) the files that differ from `rendered`, in order. When a write
    /// fails the ones before it are restored; the error says which file failed and
    /// whether the restore worked.
    pub fn write(self, rendered: &Rendered) -> Result<Written, WriteFailure> {
        let mut written = Written {
            touched: Vec::new(),
            settled: false,
        };
        for (file, slot) in self.files {
            let bytes = contents(rendered, slot);
            if file.holds(bytes) {
                continue;
            }
            let result = file.write(bytes);
            // Touched even when the write failed: one that fails after its rename (the
            // directory's fsync) has changed the file all the same.
            let path = file.path();
            written.touched.push(file);
            if let Err(e) = result {
                let verb = if bytes.is_some() { "write" } else { "remove" };
                let message = format!("cannot {verb} {}: {e}", path.display());
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
    use crate::asterisk::render::{TenantFiles, ENDPOINTS_FILE, ROUTING_FILE};
    use crate::domain::TenantSlug;

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

    fn tenant(slug: &str, tag: &str) -> TenantFiles {
        TenantFiles {
            tenant: TenantSlug::parse(slug).unwrap(),
            endpoints: format!("endpoints {tag}"),
            routing: format!("routing {tag}"),
            sentinel: String::new(),
            routing_proof: String::new(),
        }
    }

    fn rendered(tag: &str) -> Rendered {
        Rendered {
            files: vec![tenant("default", tag)],
            fingerprints: Default::default(),
            content_hash: String::new(),
        }
    }

    fn read(dir: &std::path::Path) -> (String, String) {
        let r = |d: &str, f: &str| std::fs::read_to_string(dir.join(d).join(f)).unwrap_or_default();
        (r("pjsip", ENDPOINTS_FILE), r("dialplan", ROUTING_FILE))
    }

    /// Every file in both directories, with its content, sorted.
    fn all(dir: &std::path::Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for d in ["pjsip", "dialplan"] {
            for e in std::fs::read_dir(dir.join(d)).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().into_string().unwrap();
                out.push((
                    format!("{d}/{name}"),
                    std::fs::read_to_string(e.path()).unwrap(),
                ));
            }
        }
        out.sort();
        out
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
        let current = Current::load(&cfg, &rendered("new")).unwrap();
        assert!(current.hold(&rendered("old")));
        assert!(!current.hold(&rendered("new")));
        current.write(&rendered("new")).unwrap().keep();
        assert_eq!(
            read(dir.path()),
            ("endpoints new".into(), "routing new".into())
        );

        let written = Current::load(&cfg, &rendered("newer"))
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
        only_endpoints.files[0].routing = "routing old".into();
        let written = Current::load(&cfg, &only_endpoints)
            .unwrap()
            .write(&only_endpoints)
            .unwrap();
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
        let current = Current::load(&cfg, &rendered("new")).unwrap();
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

    #[test]
    fn every_tenant_gets_its_files_and_a_gone_tenant_loses_them_until_rolled_back() {
        let (dir, cfg) = setup();
        let two = Rendered {
            files: vec![
                tenant("default", "old"),
                tenant("acme", "acme 1"),
                tenant("beta", "beta 1"),
            ],
            ..rendered("old")
        };
        Current::load(&cfg, &two)
            .unwrap()
            .write(&two)
            .unwrap()
            .keep();
        let with_both = all(dir.path());
        assert_eq!(
            with_both,
            [
                (
                    "dialplan/generated_routing-acme.conf".into(),
                    "routing acme 1".into()
                ),
                (
                    "dialplan/generated_routing-beta.conf".into(),
                    "routing beta 1".into()
                ),
                (
                    "dialplan/generated_routing.conf".into(),
                    "routing old".into()
                ),
                (
                    "pjsip/generated_endpoints-acme.conf".into(),
                    "endpoints acme 1".into()
                ),
                (
                    "pjsip/generated_endpoints-beta.conf".into(),
                    "endpoints beta 1".into()
                ),
                (
                    "pjsip/generated_endpoints.conf".into(),
                    "endpoints old".into()
                ),
            ]
        );
        assert!(Current::load(&cfg, &two).unwrap().hold(&two));
        // acme has no users left: its files go, beta's change, and files that are not a
        // tenant's are none of the portal's business.
        std::fs::write(
            dir.path()
                .join("pjsip")
                .join("generated_endpoints-Bad.conf"),
            "x",
        )
        .unwrap();
        std::fs::write(dir.path().join("pjsip").join("pjsip_extra.conf"), "y").unwrap();
        let one = Rendered {
            files: vec![tenant("default", "old"), tenant("beta", "beta 2")],
            ..rendered("old")
        };
        let current = Current::load(&cfg, &one).unwrap();
        assert!(!current.hold(&one), "a stale file is a difference");
        let written = current.write(&one).unwrap();
        let names: Vec<String> = all(dir.path()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "dialplan/generated_routing-beta.conf",
                "dialplan/generated_routing.conf",
                "pjsip/generated_endpoints-Bad.conf",
                "pjsip/generated_endpoints-beta.conf",
                "pjsip/generated_endpoints.conf",
                "pjsip/pjsip_extra.conf",
            ]
        );
        // A failed reload or probe puts every file back, the removed ones too.
        drop(written);
        std::fs::remove_file(
            dir.path()
                .join("pjsip")
                .join("generated_endpoints-Bad.conf"),
        )
        .unwrap();
        std::fs::remove_file(dir.path().join("pjsip").join("pjsip_extra.conf")).unwrap();
        assert_eq!(all(dir.path()), with_both);
        // With no tenant but the default one, every other tenant's file goes.
        let alone = rendered("old");
        Current::load(&cfg, &alone)
            .unwrap()
            .write(&alone)
            .unwrap()
            .keep();
        assert_eq!(all(dir.path()).len(), 2);
        assert!(Current::load(&cfg, &alone).unwrap().hold(&alone));
    }
}
