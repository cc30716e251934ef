//! HTTPS for the API server: the certificate and key of `PORTAL_TLS_CERT` and
//! `PORTAL_TLS_KEY`, the rustls server configuration that serves them, and their re-read
//! on SIGHUP.
//!
//! Why it exists: the console is used from other machines, and every request carries a
//! bearer token; on a LAN in clear text anyone on the path can read it. rustls (with the
//! `ring` provider, as the database side already uses: no system OpenSSL) does the TLS.
//!
//! Why a resolver rather than a fixed certificate: certificates are renewed (certbot every
//! 60–90 days) and a restart would cut every open connection, the console's `/events`
//! streams among them. The [`ServerConfig`] is built once around [`Resolver`], which hands
//! each new handshake the certificate it currently holds; [`Server::reload`] reads both
//! files again and swaps that one `Arc` under a lock. A handshake already done keeps the
//! keys it negotiated, so open connections carry on untouched; a re-read that fails (a
//! half-written file, a key that does not match the certificate) changes nothing and says
//! why, so a botched renewal never takes HTTPS down.
//!
//! Nothing here ever prints key material: errors name the variable and the file, and
//! describe what is wrong in fixed words (never a PEM parser's message, which may quote
//! a line of the file); what is logged about a certificate is its public fingerprint and
//! expiry.
//!
//! A leaf: `http` serves with it, `app` builds it and re-reads it on SIGHUP, `check`
//! loads the files to say whether they would work.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::config::TlsFiles;

/// The one application protocol served: HTTP/1.1 (hyper's `http1` server).
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The `Strict-Transport-Security` value sent on every answer over TLS: one year.
pub const HSTS: &str = "max-age=31536000";

/// What the log and `pbx-portal check` say about a `PORTAL_LISTEN` off loopback without
/// TLS.
pub const CLEAR_TEXT_WARNING: &str = "PORTAL_LISTEN is not a loopback address and TLS is off: bearer tokens cross the network in clear; set PORTAL_TLS_CERT and PORTAL_TLS_KEY";

/// Whether serving on `listen` without TLS deserves [`CLEAR_TEXT_WARNING`]: any address
/// but loopback (a wildcard such as `0.0.0.0` listens on every interface).
pub fn clear_text_exposed(listen: SocketAddr, tls: bool) -> bool {
    !tls && !listen.ip().is_loopback()
}

/// The variable naming a file, for error lines.
const CERT_VAR: &str = "PORTAL_TLS_CERT";
const KEY_VAR: &str = "PORTAL_TLS_KEY";

/// Why the certificate or key could not be used. Each line names the variable and the
/// file; none quotes the file's content.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{var} {}: cannot be read: {source}", path.display())]
    Read {
        var: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{var} {}: not a valid PEM file ({reason})", path.display())]
    Pem {
        var: &'static str,
        path: PathBuf,
        reason: &'static str,
    },
    #[error("PORTAL_TLS_CERT {}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("PORTAL_TLS_CERT {}: the first certificate cannot be used: {source}", path.display())]
    Certificate {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("PORTAL_TLS_KEY {}: holds no PEM private key (PKCS#8, RSA or SEC1)", path.display())]
    NoKey { path: PathBuf },
    #[error("PORTAL_TLS_KEY {}: the private key cannot be used (an RSA, ECDSA or Ed25519 key is needed)", path.display())]
    Key { path: PathBuf },
    #[error("PORTAL_TLS_KEY {} is not the key of the certificate in PORTAL_TLS_CERT {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS cannot be set up: {0}")]
    Rustls(#[from] rustls::Error),
}

/// What may be said about a loaded certificate: public facts only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// SHA-256 of the end-entity certificate (DER), upper-case hex pairs joined by `:`,
    /// as `openssl x509 -noout -fingerprint -sha256` prints it.
    pub sha256: String,
    /// The end of its validity, when the certificate can be parsed for it.
    pub not_after: Option<OffsetDateTime>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256 {}", self.sha256)?;
        if let Some(t) = self.not_after {
            write!(f, ", valid until {}", t.date())?;
        }
        Ok(())
    }
}

/// A certificate chain with its key, checked to belong together.
#[derive(Clone)]
pub struct Loaded {
    key: Arc<CertifiedKey>,
    summary: Summary,
}

impl std::fmt::Debug for Loaded {
    /// The public summary only: never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("summary", &self.summary)
            .finish()
    }
}

impl Loaded {
    pub fn summary(&self) -> &Summary {
        &self.summary
    }
}

fn read(var: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        var,
        path: path.to_owned(),
        source,
    })
}

/// A PEM parser's error in fixed words: its own message may quote a line of the file.
fn pem_reason(e: &pem::Error) -> &'static str {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a section has no -----END line",
        pem::Error::IllegalSectionStart { .. } => "a -----BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a section is not valid base64",
        _ => "it cannot be parsed",
    }
}

/// Reads and checks both files: the chain (end-entity certificate first), the key in any
/// of the PEM forms rustls reads, and that the key is the certificate's.
pub fn load(files: &TlsFiles) -> Result<Loaded, TlsError> {
    let pem_error = |var, path: &Path| {
        let path = path.to_owned();
        move |e: pem::Error| TlsError::Pem {
            var,
            path,
            reason: pem_reason(&e),
        }
    };
    let cert_pem = read(CERT_VAR, &files.cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(CERT_VAR, &files.cert))?;
    let Some(end_entity) = chain.first() else {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    };
    let summary = summarize(end_entity);

    let key_pem = read(KEY_VAR, &files.key)?;
    let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(k) => k,
        Err(pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey {
                path: files.key.clone(),
            })
        }
        Err(e) => return Err(pem_error(KEY_VAR, &files.key)(e)),
    };
    drop(key_pem);
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|_| TlsError::Key {
            path: files.key.clone(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::Mismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            })
        }
        // The provider cannot tell (no public key to compare): rustls accepts that too.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(source) => {
            return Err(TlsError::Certificate {
                path: files.cert.clone(),
                source,
            })
        }
    }
    Ok(Loaded {
        key: Arc::new(certified),
        summary,
    })
}

fn summarize(cert: &CertificateDer<'_>) -> Summary {
    use x509_cert::der::Decode;

    let sha256 = Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let not_after = x509_cert::Certificate::from_der(cert.as_ref())
        .ok()
        .and_then(|c| {
            let secs = c
                .tbs_certificate
                .validity
                .not_after
                .to_unix_duration()
                .as_secs();
            OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()
        });
    Summary { sha256, not_after }
}

/// Hands every new handshake the certificate it holds now (no SNI choice: one
/// certificate, whatever name or address the client asked for).
pub struct Resolver {
    current: RwLock<Loaded>,
}

impl Resolver {
    fn get(&self) -> Loaded {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, loaded: Loaded) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = loaded;
    }
}

impl std::fmt::Debug for Resolver {
    /// The fingerprint only: never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("certificate", &self.get().summary.sha256)
            .finish()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get().key)
    }
}

/// The TLS side of the HTTP server: its configuration (built once) and the files it
/// re-reads.
pub struct Server {
    files: TlsFiles,
    resolver: Arc<Resolver>,
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("files", &self.files)
            .field("resolver", &self.resolver)
            .finish()
    }
}

impl Server {
    /// Loads both files (an error names the file) and builds the configuration: TLS 1.2
    /// and 1.3, no client certificates, ALPN `http/1.1`.
    pub fn new(files: TlsFiles) -> Result<Self, TlsError> {
        let loaded = load(&files)?;
        let resolver = Arc::new(Resolver {
            current: RwLock::new(loaded),
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        Ok(Self {
            files,
            resolver,
            config: Arc::new(config),
        })
    }

    /// The configuration every connection's handshake uses.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    /// The certificate new handshakes get.
    pub fn summary(&self) -> Summary {
        self.resolver.get().summary
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Reads both files again; on success new handshakes get the new certificate, on
    /// failure the one served so far stays.
    pub fn reload(&self) -> Result<Summary, TlsError> {
        let loaded = load(&self.files)?;
        let summary = loaded.summary.clone();
        self.resolver.set(loaded);
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> TlsFiles {
        TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    /// The certificates of `scripts/test-ca.sh`, made in `dir`.
    pub(crate) fn test_ca(dir: &Path) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-ca.sh");
        let out = std::process::Command::new(script)
            .arg(dir)
            .output()
            .expect("scripts/test-ca.sh runs");
        assert!(
            out.status.success(),
            "scripts/test-ca.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pair(dir: &Path, cert: &str, key: &str) -> TlsFiles {
        TlsFiles {
            cert: dir.join(cert),
            key: dir.join(key),
        }
    }

    #[test]
    fn each_key_form_loads_and_a_foreign_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        test_ca(d);
        // PKCS#8 and SEC1 (the script makes one of each).
        let one = load(&pair(d, "server.crt", "server.key")).unwrap();
        let two = load(&pair(d, "server2.crt", "server2.key")).unwrap();
        assert_ne!(one.summary().sha256, two.summary().sha256);
        assert_eq!(one.summary().sha256.len(), 32 * 3 - 1);
        let out = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(d.join("server.crt"))
            .output()
            .unwrap();
        let openssl = String::from_utf8_lossy(&out.stdout);
        assert!(
            openssl.trim().ends_with(&one.summary().sha256),
            "{openssl} vs {}",
            one.summary().sha256
        );
        let days = (one.summary().not_after.unwrap() - OffsetDateTime::now_utc()).whole_days();
        assert!((80..=90).contains(&days), "{days}");

        // RSA, in its own PEM form (BEGIN RSA PRIVATE KEY).
        for args in [
            &["genrsa", "-traditional", "-out", "rsa.key", "2048"][..],
            &[
                "req", "-x509", "-key", "rsa.key", "-out", "rsa.crt", "-days", "1",
            ],
        ] {
            let out = std::process::Command::new("openssl")
                .args(args)
                .args(if args[0] == "req" {
                    &["-subj", "/CN=localhost"][..]
                } else {
                    &[]
                })
                .current_dir(d)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let pem = std::fs::read_to_string(d.join("rsa.key")).unwrap();
        assert!(
            pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
            "{pem:.40}"
        );
        load(&pair(d, "rsa.crt", "rsa.key")).unwrap();

        let e = load(&pair(d, "server.crt", "server2.key"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("server2.key is not the key of the certificate in PORTAL_TLS_CERT")
                && e.contains("server.crt"),
            "{e}"
        );
        // A chain file holding the key too (a single combined PEM) is read as the chain.
        let both = d.join("both.pem");
        let mut text = std::fs::read_to_string(d.join("server.crt")).unwrap();
        text.push_str(&std::fs::read_to_string(d.join("server.key")).unwrap());
        std::fs::write(&both, text).unwrap();
        assert_eq!(
            load(&pair(d, "both.pem", "both.pem")).unwrap().summary(),
            one.summary()
        );
    }

    #[test]
    fn a_reload_swaps_the_certificate_or_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        test_ca(d);
        let f = files(d);
        std::fs::copy(d.join("server.crt"), &f.cert).unwrap();
        std::fs::copy(d.join("server.key"), &f.key).unwrap();
        let server = Server::new(f.clone()).unwrap();
        let first = server.summary();
        assert_eq!(server.config().alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(
            !format!("{server:?}").contains("PRIVATE"),
            "Debug names files and the fingerprint only"
        );

        // Half a renewal: the new certificate, the old key.
        std::fs::copy(d.join("server2.crt"), &f.cert).unwrap();
        assert!(matches!(server.reload(), Err(TlsError::Mismatch { .. })));
        assert_eq!(server.summary(), first, "the previous certificate stays");

        std::fs::copy(d.join("server2.key"), &f.key).unwrap();
        let second = server.reload().unwrap();
        assert_ne!(second, first);
        assert_eq!(server.summary(), second);
    }

    #[test]
    fn only_loopback_without_tls_is_quiet() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(!clear_text_exposed(addr("127.0.0.1:8080"), false));
        assert!(!clear_text_exposed(addr("[::1]:8080"), false));
        assert!(clear_text_exposed(addr("0.0.0.0:8080"), false));
        assert!(clear_text_exposed(addr("192.0.2.7:8080"), false));
        assert!(clear_text_exposed(addr("[::]:8080"), false));
        assert!(!clear_text_exposed(addr("0.0.0.0:8080"), true));
    }

    #[test]
    fn unusable_files_are_named_and_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        let e = load(&f).unwrap_err().to_string();
        assert!(
            e.starts_with("PORTAL_TLS_CERT ") && e.contains("cert.pem: cannot be read"),
            "{e}"
        );

        std::fs::write(&f.cert, "not a certificate\n").unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.contains("cert.pem: holds no PEM certificate"), "{e}");

        // A section cut short: the parser's message would quote the END marker it sought.
        std::fs::write(&f.cert, "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.contains("cert.pem: not a valid PEM file"), "{e}");

        // A certificate-shaped section whose body is not one: read as PEM, refused as DER.
        std::fs::write(
            &f.cert,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(&f.key, "").unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.contains("key.pem: holds no PEM private key"), "{e}");

        let secret = "c2VjcmV0LWtleS1tYXRlcmlhbC1uZXZlci1wcmludGVk";
        std::fs::write(
            &f.key,
            format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n"),
        )
        .unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.contains("key.pem: the private key cannot be used"), "{e}");
        assert!(!e.contains(secret), "{e}");

        std::fs::write(
            &f.key,
            format!("-----BEGIN PRIVATE KEY-----\n{secret}!!\n-----END PRIVATE KEY-----\n"),
        )
        .unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.contains("key.pem: not a valid PEM file"), "{e}");
        assert!(!e.contains(secret), "{e}");
    }
}
