//! TLS for the Postgres sink, as libpq does it, so a URL that works with `psql` works here.
//!
//! `sslmode`:
//! - `disable`: plain TCP.
//! - `allow`: plain TCP; TLS (unverified) if the server refuses a plain connection.
//! - `prefer` (the default): TLS if the server offers it, without verifying the certificate
//!   (a self-signed one is fine); plain TCP if the server has no TLS.
//! - `require`: TLS or nothing, without verifying the certificate; with a root certificate
//!   (`sslrootcert`, or `~/.postgresql/root.crt`) it verifies like `verify-ca`, as libpq does.
//! - `verify-ca`: TLS, the certificate must chain to a root certificate; the host name is
//!   not checked.
//! - `verify-full`: as `verify-ca`, and the certificate must name the host connected to.
//!
//! `sslrootcert` is a PEM file of CA certificates, or `system` for the operating system's
//! trust store (which, as in libpq, means `verify-full` and refuses weaker modes).
//! `sslcert`/`sslkey` are a client certificate and its key (PEM); without them
//! `~/.postgresql/postgresql.crt`/`.key` are used when both exist.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_core::error::{ConfigError, SinkError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(v: &str) -> Option<Self> {
        Some(match v {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Roots {
    /// No verification of the chain.
    None,
    /// A PEM file.
    File(PathBuf),
    /// The operating system's trust store.
    System,
}

/// The TLS settings of a connection string.
#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    pub mode: SslMode,
    pub roots: Roots,
    pub client: Option<(PathBuf, PathBuf)>,
}

const TLS_KEYS: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey"];

fn config_error(message: String) -> SinkError {
    SinkError::Config(ConfigError::Other(message))
}

/// Splits the TLS parameters off a connection string (a `postgres://` URL or libpq's
/// `key=value` form), returning the rest for the driver and the settings libpq would use.
pub(crate) fn split(conn: &str) -> Result<(String, TlsSettings), SinkError> {
    let mut found: Vec<(String, String)> = Vec::new();
    let rest = if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        match conn.split_once('?') {
            None => conn.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if TLS_KEYS.contains(&k) {
                        let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned();
                        found.push((k.to_owned(), v));
                    } else {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }
            }
        }
    } else {
        let mut kept = Vec::new();
        for token in conn.split_whitespace() {
            match token.split_once('=') {
                Some((k, v)) if TLS_KEYS.contains(&k) => found.push((k.to_owned(), v.trim_matches('\'').to_owned())),
                _ => kept.push(token),
            }
        }
        kept.join(" ")
    };
    let get = |key: &str| found.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let given = match get("sslmode") {
        None => None,
        Some(v) => Some(SslMode::parse(&v).ok_or_else(|| {
            config_error(format!(
                "[sink] url: `sslmode={v}` is not a mode; use disable, allow, prefer, require, verify-ca or verify-full"
            ))
        })?),
    };
    let home_file = |name: &str| std::env::home_dir().map(|h| h.join(".postgresql").join(name)).filter(|p| p.is_file());
    let roots = match get("sslrootcert").as_deref() {
        Some("system") => Roots::System,
        Some(path) => Roots::File(PathBuf::from(path)),
        None => home_file("root.crt").map_or(Roots::None, Roots::File),
    };
    let mode = match (given, &roots) {
        (None, Roots::System) => SslMode::VerifyFull,
        (Some(m), Roots::System) if m != SslMode::VerifyFull => {
            return Err(config_error(format!(
                "[sink] url: sslmode={} may not be used with sslrootcert=system (the system's CAs vouch for host names, so use sslmode=verify-full)",
                m.name()
            )));
        }
        (None, _) => SslMode::Prefer,
        (Some(m), _) => m,
    };
    let client = match (get("sslcert"), get("sslkey")) {
        (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
        (Some(_), None) | (None, Some(_)) => {
            return Err(config_error(
                "[sink] url: sslcert and sslkey go together (the client certificate and its private key)".into(),
            ));
        }
        (None, None) => home_file("postgresql.crt").zip(home_file("postgresql.key")),
    };
    Ok((rest, TlsSettings { mode, roots, client }))
}

impl TlsSettings {
    /// Whether the certificate chain is verified (libpq: `verify-*`, and `require` with a
    /// root certificate).
    fn verifies_chain(&self) -> bool {
        self.mode >= SslMode::VerifyCa || (self.mode == SslMode::Require && self.roots != Roots::None)
    }

    /// The rustls configuration for these settings.
    pub(crate) fn client_config(&self) -> Result<ClientConfig, SinkError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| SinkError::Open(format!("cannot set up TLS: {e}")))?;
        let algorithms = provider.signature_verification_algorithms;
        let verifier: Arc<dyn ServerCertVerifier> = if self.verifies_chain() {
            let roots = self.root_store()?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| SinkError::Open(format!("cannot use the root certificates: {e}")))?;
            if self.mode == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(Lenient { chain: Some(webpki), algorithms })
            }
        } else {
            Arc::new(Lenient { chain: None, algorithms })
        };
        let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
        match &self.client {
            None => Ok(builder.with_no_client_auth()),
            Some((cert, key)) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                    .and_then(|i| i.collect::<Result<_, _>>())
                    .map_err(|e| file_error("sslcert", cert, &e))?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error("sslkey", key, &e))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| config_error(format!("[sink] url: sslcert and sslkey cannot be used together: {e}")))
            }
        }
    }

    fn root_store(&self) -> Result<RootCertStore, SinkError> {
        let mut store = RootCertStore::empty();
        match &self.roots {
            Roots::None => {
                return Err(config_error(format!(
                    "[sink] url: sslmode={} verifies the server's certificate, and there is no root certificate to verify it with: set sslrootcert to your provider's CA file (PEM), or sslrootcert=system for the system's trusted CAs",
                    self.mode.name()
                )));
            }
            Roots::File(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| file_error("sslrootcert", path, &e))?;
                let (added, _) = store.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(config_error(format!(
                        "[sink] url: sslrootcert {} holds no usable certificate (a PEM file of CA certificates is expected)",
                        path.display()
                    )));
                }
            }
            Roots::System => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(config_error(
                        "[sink] url: sslrootcert=system, and the system has no trusted CA certificates (install the ca-certificates package)"
                            .into(),
                    ));
                }
            }
        }
        Ok(store)
    }

    /// What a TLS failure means, in words a user can act on (never "turn TLS off").
    pub(crate) fn explain(&self, detail: &str, host: &str) -> Option<String> {
        let roots = match &self.roots {
            Roots::File(p) => format!("the CA certificates in sslrootcert ({})", p.display()),
            Roots::System => "the system's trusted CAs (sslrootcert=system)".into(),
            Roots::None => "no root certificate".into(),
        };
        if detail.contains("UnknownIssuer") || detail.contains("BadSignature") {
            Some(format!(
                "the server's certificate is not signed by {roots}: set sslrootcert to the CA file your provider publishes"
            ))
        } else if detail.contains("NotValidForName") || detail.contains("not valid for name") {
            Some(format!(
                "the server's certificate is not valid for host `{host}` (sslmode=verify-full checks the name): connect with a host name the certificate names, or use sslmode=verify-ca to check only the CA"
            ))
        } else if detail.contains("Expired") || detail.contains("certificate expired") {
            Some(
                "the server's certificate has expired (or this machine's clock is wrong): the server must renew it"
                    .into(),
            )
        } else if detail.contains("NotValidYet") || detail.contains("not valid yet") {
            Some("the server's certificate is not valid yet (or this machine's clock is wrong)".into())
        } else if detail.contains("no pg_hba.conf entry") && detail.contains("no encryption") {
            Some(format!(
                "the server admits this user only over TLS and sslmode={} does not use it: use sslmode=prefer (the default) or stronger",
                self.mode.name()
            ))
        } else if detail.contains("server does not support TLS") {
            Some(format!(
                "sslmode={} needs TLS and the server does not offer it: enable ssl on the server, or use sslmode=prefer",
                self.mode.name()
            ))
        } else {
            None
        }
    }
}

fn file_error(key: &str, path: &Path, e: &dyn std::fmt::Display) -> SinkError {
    config_error(format!("[sink] url: cannot read {key} {}: {e}", path.display()))
}

/// The server-certificate check of the modes that do not check everything: no check of the
/// chain (`require`, `prefer` and `allow` without a root certificate: encryption without
/// authentication, as libpq does), or the chain and dates without the host name
/// (`verify-ca`). The handshake signatures are always checked.
#[derive(Debug)]
struct Lenient {
    /// The chain's verifier, for `verify-ca`.
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_split_off_and_read_as_libpq_does() {
        let (rest, t) = split(
            "postgres://u:p@db.example.com:5432/app?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@db.example.com:5432/app?application_name=x");
        assert_eq!((t.mode, t.roots), (SslMode::VerifyFull, Roots::File("/tmp/ca.pem".into())));
        let (rest, t) = split("postgres://localhost/db").unwrap();
        assert_eq!(rest, "postgres://localhost/db");
        assert!(t.mode == SslMode::Prefer || t.roots != Roots::None);
        let (_, t) = split("postgres://h/db?sslrootcert=system").unwrap();
        assert_eq!(t.mode, SslMode::VerifyFull);
        assert!(split("postgres://h/db?sslrootcert=system&sslmode=require").is_err());
        assert!(split("postgres://h/db?sslmode=maybe").unwrap_err().to_string().contains("sslmode=maybe"));
        assert!(split("postgres://h/db?sslcert=/a.crt").unwrap_err().to_string().contains("sslkey"));
        let (rest, t) = split("host=h dbname=d sslmode=require").unwrap();
        assert_eq!((rest.as_str(), t.mode), ("host=h dbname=d", SslMode::Require));
    }
}
