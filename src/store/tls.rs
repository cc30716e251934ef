//! TLS to PostgreSQL: the connector tokio-postgres uses, built from what config read out of
//! `DATABASE_URL` ([`Tls`]), and the words for a handshake that failed.
//!
//! rustls (with the `ring` provider: no system OpenSSL to install or keep patched) does the
//! TLS; tokio-postgres-rustls plugs it into tokio-postgres, including SCRAM channel
//! binding. One certificate verifier covers every `sslmode`, because libpq's modes differ
//! only in what they check: nothing (`prefer`/`require` without `sslrootcert`), the chain
//! up to a CA of `sslrootcert` (`verify-ca`, and `require` with `sslrootcert`), or the
//! chain and the host name (`verify-full`). Both checks are rustls's own public functions;
//! nothing about certificates is written here.
//!
//! The handshake signature is always checked against the presented certificate's key, so
//! even an unverified session is bound to the key of the certificate it showed (which is
//! what makes SCRAM's channel binding, computed over that certificate, mean something).
//! When nothing is verified, the key is taken from the certificate with a parser that
//! accepts X.509 version 1 too: libpq's `prefer`/`require` accept such certificates (the
//! PostgreSQL manual's own `openssl x509 -req` recipe makes one), and webpki, which rustls
//! checks certificates with, refuses them. The signature itself is still checked by webpki
//! and the provider's algorithms, as rustls does.
//!
//! Whether clear text is allowed is not decided here: `sslmode` reaches tokio-postgres as
//! its `SslMode` (`require` for every verifying mode), which refuses a server that
//! answers it has no TLS and never retries in clear text after a failed handshake.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, verify_tls13_signature_with_raw_key,
    WebPkiSupportedAlgorithms,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, PeerMisbehaved, RootCertStore,
    SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{RootCert, Tls, Verify};

/// The connector could not be built: `sslrootcert` is unusable.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("sslrootcert {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("sslrootcert {}: holds no PEM certificate", path.display())]
    Empty { path: PathBuf },
    #[error("sslrootcert {}: {source}", path.display())]
    BadCertificate {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("sslrootcert=system: the system store has no usable certificate ({detail})")]
    NoSystemRoots { detail: String },
    #[error("TLS cannot be set up: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The tokio-postgres connector for these settings.
pub fn connector(tls: &Tls) -> Result<MakeRustlsConnect, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match &tls.root_cert {
        Some(rc) if tls.verify != Verify::Nothing => Some(Arc::new(roots(rc)?)),
        _ => None,
    };
    let verifier = Verifier {
        roots,
        check_name: tls.verify == Verify::ChainAndName,
        algs: provider.signature_verification_algorithms,
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn roots(rc: &RootCert) -> Result<RootCertStore, TlsSetupError> {
    let mut store = RootCertStore::empty();
    match rc {
        RootCert::File(path) => {
            let unreadable = |source| TlsSetupError::Unreadable {
                path: path.clone(),
                source,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(unreadable)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(unreadable)?;
            if certs.is_empty() {
                return Err(TlsSetupError::Empty { path: path.clone() });
            }
            for cert in certs {
                store
                    .add(cert)
                    .map_err(|source| TlsSetupError::BadCertificate {
                        path: path.clone(),
                        source,
                    })?;
            }
        }
        RootCert::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _unparsable) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let detail = found
                    .errors
                    .first()
                    .map_or_else(|| "none found".to_owned(), ToString::to_string);
                return Err(TlsSetupError::NoSystemRoots { detail });
            }
        }
    }
    Ok(store)
}

/// Checks what the `sslmode` asks for: nothing, the chain, or the chain and the name.
#[derive(Debug)]
struct Verifier {
    /// `None`: the certificate is not verified.
    roots: Option<Arc<RootCertStore>>,
    check_name: bool,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(&cert, roots, intermediates, now, self.algs.all)?;
        if self.check_name {
            verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if self.roots.is_some() {
            return verify_tls12_signature(message, cert, dss, &self.algs);
        }
        // As rustls's verify_tls12_signature: TLS 1.2 names a scheme that several
        // algorithms may implement; the first that fits the key decides.
        let spki = public_key_of(cert)?;
        let key = webpki::RawPublicKeyEntity::try_from(&spki).map_err(other)?;
        let candidates = self
            .algs
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algs)| *algs)
            .ok_or(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?;
        let mut unfit = None;
        for alg in candidates {
            match key.verify_signature(*alg, message, dss.signature()) {
                Ok(()) => return Ok(HandshakeSignatureValid::assertion()),
                Err(e @ webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_)) => {
                    unfit = Some(e);
                }
                Err(e) => return Err(other(e)),
            }
        }
        Err(unfit.map_or_else(
            || PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into(),
            other,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if self.roots.is_some() {
            return verify_tls13_signature(message, cert, dss, &self.algs);
        }
        let spki = public_key_of(cert)?;
        verify_tls13_signature_with_raw_key(message, &spki, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The public key of a certificate of any X.509 version, for an unverified session.
fn public_key_of(
    cert: &CertificateDer<'_>,
) -> Result<SubjectPublicKeyInfoDer<'static>, rustls::Error> {
    use x509_cert::der::{Decode, Encode};
    let bad = |_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding);
    let parsed = x509_cert::Certificate::from_der(cert).map_err(bad)?;
    let spki = parsed
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(bad)?;
    Ok(SubjectPublicKeyInfoDer::from(spki))
}

/// A webpki error as rustls reports one it has no variant for.
fn other(e: webpki::Error) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(e))))
}

/// The rustls error inside a tokio-postgres error (tokio-rustls wraps it in an
/// `io::Error`), if the failure was the TLS handshake.
pub fn rustls_error(e: &tokio_postgres::Error) -> Option<&rustls::Error> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(inner) = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(inner);
        }
        source = s.source();
    }
    None
}

/// What a failed handshake means, in an admin's words for the usual cases.
pub fn handshake_reason(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the server's certificate is not signed by a CA in sslrootcert".into()
        }
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "the server's certificate has expired".into(),
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => {
            "the server's certificate does not name this host".into()
        }
        rustls::Error::InvalidCertificate(CertificateError::Other(o))
            if matches!(
                o.0.downcast_ref::<webpki::Error>(),
                Some(webpki::Error::UnsupportedCertVersion)
            ) =>
        {
            "the server's certificate is X.509 version 1: verify-ca and verify-full need \
             version 3, with the host name in subjectAltName"
                .into()
        }
        // rustls says which name was expected and which the certificate holds.
        other => other.to_string(),
    }
}

/// Why a connection failed, when TLS was the reason (`mode` is the `sslmode` in force).
pub fn failure(e: &tokio_postgres::Error, tls: &Tls) -> Option<String> {
    let mode = tls.mode.as_str();
    if let Some(r) = rustls_error(e) {
        return Some(format!(
            "TLS handshake failed (sslmode={mode}): {}",
            handshake_reason(r)
        ));
    }
    // tokio-postgres's words when the server answers the SSLRequest with 'N'.
    let cause = std::error::Error::source(e).map(ToString::to_string);
    if cause.as_deref() == Some("server does not support TLS") {
        return Some(format!(
            "the server does not offer TLS, and sslmode={mode} allows no clear text"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(raw: &str) -> Tls {
        let url: crate::config::DatabaseUrl =
            serde_json::from_value(serde_json::Value::String(raw.into())).unwrap();
        url.tls().clone()
    }

    #[test]
    fn a_missing_or_empty_root_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = connector(&settings(&format!(
            "host=h sslmode=verify-full sslrootcert={}",
            missing.display()
        )))
        .err()
        .unwrap();
        assert!(
            matches!(e, TlsSetupError::Unreadable { .. }) && e.to_string().contains("nope.pem"),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = connector(&settings(&format!(
            "host=h sslmode=verify-ca sslrootcert={}",
            empty.display()
        )))
        .err()
        .unwrap();
        assert!(matches!(e, TlsSetupError::Empty { .. }), "{e}");
    }

    #[test]
    fn unverified_modes_need_no_root_file() {
        for raw in ["host=h", "host=h sslmode=require", "host=h sslmode=disable"] {
            assert!(connector(&settings(raw)).is_ok(), "{raw}");
        }
    }

    #[test]
    fn handshake_reasons_read_as_sentences() {
        let r = handshake_reason(&rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        assert_eq!(
            r,
            "the server's certificate is not signed by a CA in sslrootcert"
        );
        let r = handshake_reason(&rustls::Error::InvalidCertificate(
            CertificateError::NotValidForNameContext {
                expected: ServerName::try_from("127.0.0.1").unwrap(),
                presented: vec!["DnsName(\"localhost\")".into()],
            },
        ));
        assert!(r.contains("127.0.0.1") && r.contains("localhost"), "{r}");
    }
}
