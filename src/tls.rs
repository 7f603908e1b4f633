//! Whom the TLS clients trust: the mail relay, the MQTT broker, the HTTP gateways, the
//! InfluxDB sink and the heartbeat all check a server's certificate against the same
//! roots, built here.
//!
//! The roots are the system trust store (what `update-ca-certificates` maintains in
//! `/etc/ssl/certs`, or the file and directory named by `SSL_CERT_FILE` /
//! `SSL_CERT_DIR`), the bundled web PKI roots when the system store has none, plus the
//! certificates of an optional per-peer `ca_file` (PEM, one or more certificates): a
//! hospital's own CA, or a server's self-signed certificate. The crypto provider is
//! ring.
//!
//! A certificate the server presents that these roots do not vouch for is a problem a
//! person fixes (set `ca_file`, install the CA, renew the certificate), after which the
//! next attempt succeeds: callers keep retrying, and [`certificate_problem`] says what
//! is wrong and what to do.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::{ClientConfig, RootCertStore};
use x509_cert::der::Decode;

/// A `ca_file` that cannot be used, with what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct CaFileError {
    pub path: PathBuf,
    pub problem: String,
}

/// The ring crypto provider, also installed as the process default (reqwest built
/// without a provider panics without one).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the certificates of a `ca_file`: PEM with one or more `CERTIFICATE` sections,
/// each a well-formed X.509 certificate valid at `now`.
pub fn read_ca_file(path: &Path, now: SystemTime) -> Result<Vec<CertificateDer<'static>>, CaFileError> {
    let fail = |problem: String| CaFileError {
        path: path.to_path_buf(),
        problem,
    };
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => fail("does not exist".into()),
        _ => fail(format!("cannot be read: {e}")),
    })?;
    let mut certs = Vec::new();
    let mut others = 0;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes) {
        match section {
            Ok((SectionKind::Certificate, der)) => certs.push(CertificateDer::from(der)),
            Ok(_) => others += 1,
            Err(e) => return Err(fail(format!("is not valid PEM: {e}"))),
        }
    }
    if certs.is_empty() {
        return Err(fail(if others > 0 {
            format!(
                "has no certificate in it (found {others} other PEM section(s), such as a key); \
                 expected -----BEGIN CERTIFICATE-----"
            )
        } else {
            "is not a PEM file: no -----BEGIN CERTIFICATE----- section \
             (convert a DER file with `openssl x509 -inform der -in CA.der -out CA.pem`)"
                .into()
        }));
    }
    for (i, der) in certs.iter().enumerate() {
        let n = i + 1;
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| fail(format!("certificate {n} is not a valid X.509 certificate: {e}")))?;
        let tbs = cert.tbs_certificate();
        let validity = tbs.validity();
        let not_after = validity.not_after.to_system_time();
        let not_before = validity.not_before.to_system_time();
        if not_after < now {
            return Err(fail(format!(
                "certificate {n} ({}) expired on {}",
                tbs.subject(),
                validity.not_after
            )));
        }
        if not_before > now {
            return Err(fail(format!(
                "certificate {n} ({}) is not valid before {}",
                tbs.subject(),
                validity.not_before
            )));
        }
        RootCertStore::empty().add(der.clone()).map_err(|e| {
            fail(format!(
                "certificate {n} ({}) cannot be a trust anchor: {e}",
                tbs.subject()
            ))
        })?;
    }
    Ok(certs)
}

/// The trust of one peer: the system store plus its `ca_file`.
#[derive(Clone)]
pub struct Trust {
    roots: Arc<RootCertStore>,
    /// Every certificate in `roots` (the system store's and the `ca_file`'s), for
    /// clients that take roots one by one.
    certificates: Arc<Vec<CertificateDer<'static>>>,
    /// The system store had none: the bundled web PKI roots stand in for it.
    bundled: bool,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("roots", &self.roots.len())
            .field("bundled", &self.bundled)
            .finish()
    }
}

impl Trust {
    /// Loads the system trust store (honouring `SSL_CERT_FILE` and `SSL_CERT_DIR`; the
    /// bundled web PKI roots when it has none) and `ca_file` (if any), now.
    pub fn load(ca_file: Option<&Path>) -> Result<Trust, CaFileError> {
        let extra = match ca_file {
            Some(p) => read_ca_file(p, SystemTime::now())?,
            None => Vec::new(),
        };
        let mut roots = RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        // Only what rustls takes as a trust anchor: one unparsable certificate in
        // /etc/ssl/certs must not take the rest with it.
        let mut certificates: Vec<CertificateDer<'static>> = found
            .certs
            .into_iter()
            .filter(|der| roots.add(der.clone()).is_ok())
            .collect();
        let bundled = certificates.is_empty();
        if bundled {
            if !found.errors.is_empty() {
                tracing::warn!(errors = ?found.errors, "the system trust store could not be read; using the bundled web PKI roots");
            }
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        // Checked by read_ca_file: every one is accepted.
        roots.add_parsable_certificates(extra.iter().cloned());
        certificates.extend(extra);
        Ok(Trust {
            roots: Arc::new(roots),
            certificates: Arc::new(certificates),
            bundled,
        })
    }

    pub fn roots(&self) -> &RootCertStore {
        &self.roots
    }

    /// A rustls client configuration with these roots, ring, TLS 1.2 and 1.3.
    pub fn client_config(&self) -> Result<ClientConfig, String> {
        Ok(ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth())
    }

    /// An HTTP client builder whose TLS uses these roots.
    pub fn http_client(&self) -> Result<reqwest::ClientBuilder, String> {
        Ok(reqwest::Client::builder().use_preconfigured_tls(self.client_config()?))
    }

    /// lettre's TLS parameters for `host` with these roots.
    pub fn smtp_parameters(&self, host: &str) -> Result<lettre::transport::smtp::client::TlsParameters, String> {
        use lettre::transport::smtp::client::{Certificate, CertificateStore, TlsParameters};
        let mut builder = TlsParameters::builder(host.to_string()).certificate_store(if self.bundled {
            CertificateStore::WebpkiRoots
        } else {
            CertificateStore::None
        });
        for der in self.certificates.iter() {
            let c = Certificate::from_der(der.to_vec()).map_err(|e| format!("TLS setup for {host}: {e}"))?;
            builder = builder.add_root_certificate(c);
        }
        builder.build().map_err(|e| format!("TLS setup for {host}: {e}"))
    }
}

/// A peer the configuration reaches over TLS, and what it trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPeer {
    /// The key path of its section: `channel[1]`, `mqtt`, `influx`, `heartbeat.url`.
    pub key: String,
    /// What it is, for a person: `channel "sms" (twilio)`.
    pub what: String,
    /// The host name the server's certificate must name.
    pub host: String,
    /// Its `ca_file`, trusted besides the system store.
    pub ca_file: Option<PathBuf>,
}

/// Every peer of `cfg` reached over TLS: SMTP with `starttls` or `tls`, `https://`
/// gateways and webhooks, `mqtts://`, an `https://` InfluxDB and heartbeat URL.
pub fn peers(cfg: &crate::config::Config) -> Vec<TlsPeer> {
    use crate::config::notify::{ChannelKind, SmtpTls};
    let https_host = |url: &str| {
        reqwest::Url::parse(url)
            .ok()
            .filter(|u| u.scheme() == "https")
            .and_then(|u| u.host_str().map(str::to_string))
    };
    let mut out = Vec::new();
    for (i, ch) in cfg.notify.channels.iter().enumerate() {
        let (kind, host) = match &ch.kind {
            ChannelKind::Smtp { host, tls, .. } if *tls != SmtpTls::None => ("smtp", Some(host.clone())),
            ChannelKind::Twilio { base_url, .. } => ("twilio", https_host(base_url)),
            ChannelKind::Webhook { url } => ("webhook", https_host(url)),
            _ => continue,
        };
        if let Some(host) = host {
            out.push(TlsPeer {
                key: format!("channel[{i}]"),
                what: format!("channel {:?} ({kind})", ch.id),
                host,
                ca_file: ch.ca_file.clone(),
            });
        }
    }
    if let Some(m) = cfg.mqtt.as_ref().filter(|m| m.tls) {
        out.push(TlsPeer {
            key: "mqtt".into(),
            what: "the MQTT broker (mqtts://)".into(),
            host: m.host.clone(),
            ca_file: m.ca_file.clone(),
        });
    }
    if let Some(i) = &cfg.influx
        && let Some(host) = https_host(&i.url)
    {
        out.push(TlsPeer {
            key: "influx".into(),
            what: "InfluxDB".into(),
            host,
            ca_file: i.ca_file.clone(),
        });
    }
    if let Some(url) = cfg.heartbeat.as_ref().and_then(|h| h.url.as_deref())
        && let Some(host) = https_host(url)
    {
        out.push(TlsPeer {
            key: "heartbeat.url".into(),
            what: "the heartbeat URL".into(),
            host,
            ca_file: None,
        });
    }
    out
}

/// How many certificates of the system trust store rustls takes as trust anchors now
/// (honouring `SSL_CERT_FILE` and `SSL_CERT_DIR`). Zero: [`Trust`] stands in the bundled
/// web PKI roots.
pub fn system_roots() -> usize {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    found
        .certs
        .into_iter()
        .filter(|der| roots.add(der.clone()).is_ok())
        .count()
}

/// Whether the bundled web PKI roots could vouch for `host`: only for a public DNS
/// name. Public CAs issue no certificate for an IP address, `localhost`, a single-label
/// name or a private suffix.
pub fn public_name(host: &str) -> bool {
    const PRIVATE: &[&str] = &[
        ".local",
        ".localdomain",
        ".internal",
        ".lan",
        ".home.arpa",
        ".corp",
        ".intranet",
        ".test",
    ];
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host.parse::<std::net::IpAddr>().is_err()
        && !host.starts_with('[')
        && host.contains('.')
        && host != "localhost"
        && !PRIVATE.iter().any(|p| host.ends_with(p))
}

/// What `check` says of trust when the system trust store holds no certificate (a
/// minimal system without the ca-certificates package, or `SSL_CERT_FILE` /
/// `SSL_CERT_DIR` naming nothing usable): [`Trust`] then stands in the bundled web PKI
/// roots. For a peer without `ca_file` whose name those roots cannot vouch for
/// ([`public_name`]) that is an error (the first page would fail on its certificate); for
/// a public name it is a note. Returns (errors, notes) as (key path, text).
pub fn empty_store_findings(peers: &[TlsPeer], system_roots: usize) -> (Vec<(String, String)>, Vec<String>) {
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    if system_roots > 0 {
        return (errors, notes);
    }
    for p in peers.iter().filter(|p| p.ca_file.is_none()) {
        if public_name(&p.host) {
            notes.push(format!(
                "note: {}: {} ({}) will be checked against the bundled web PKI roots only: \
                 the system trust store has no CA certificates (install ca-certificates)",
                p.key, p.what, p.host
            ));
        } else {
            errors.push((
                format!("{}.ca_file", p.key),
                format!(
                    "{} ({}) cannot be trusted: no CA certificates could be loaded from the system trust store \
                     (/etc/ssl/certs, SSL_CERT_FILE, SSL_CERT_DIR; install ca-certificates) and no ca_file is set; \
                     the bundled web PKI roots do not vouch for a private name like {:?}: set ca_file to its CA",
                    p.what, p.host, p.host
                ),
            ));
        }
    }
    (errors, notes)
}

/// The certificate problem in an error's source chain (a server certificate these roots
/// do not vouch for, or a TLS handshake refused for its parameters), said for a person:
/// what is wrong with `host`'s certificate and what to do. `None`: not a certificate or
/// TLS parameter problem (network trouble, a closed connection).
pub fn certificate_problem(err: &(dyn StdError + 'static), host: &str) -> Option<String> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(r) = e.downcast_ref::<rustls::Error>()
            && let Some(text) = describe(r, host)
        {
            return Some(text);
        }
        // io::Error hides the error it wraps from `source()`; look inside.
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref())
            && let Some(found) = certificate_problem(inner, host)
        {
            return Some(found);
        }
        current = e.source();
    }
    None
}

const FIX_TRUST: &str = "set ca_file or add the CA to the system trust store";

fn describe(err: &rustls::Error, host: &str) -> Option<String> {
    use rustls::CertificateError as C;
    let text = match err {
        rustls::Error::InvalidCertificate(cert) => {
            let (what, code, todo) = match cert {
                C::UnknownIssuer => ("is signed by an unknown CA", "UnknownIssuer".to_string(), FIX_TRUST),
                C::Expired | C::ExpiredContext { .. } => {
                    ("has expired", "Expired".into(), "renew the server's certificate")
                }
                C::NotValidYet | C::NotValidYetContext { .. } => (
                    "is not valid yet",
                    "NotValidYet".into(),
                    "check this machine's clock and the server's certificate",
                ),
                C::NotValidForName | C::NotValidForNameContext { .. } => (
                    "does not name this host",
                    "NotValidForName".into(),
                    "use the host name the certificate was issued for, or reissue it",
                ),
                C::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => (
                    "is a CA certificate used as the server's own (self-signed)",
                    "CaUsedAsEndEntity".into(),
                    "give the server a certificate signed by a CA and set ca_file to the CA, \
                     or add the CA to the system trust store",
                ),
                other => ("is refused", format!("{other:?}"), FIX_TRUST),
            };
            format!("server certificate for {host} {what} ({code}): {todo}")
        }
        rustls::Error::NoCertificatesPresented => {
            format!("{host} presented no certificate (NoCertificatesPresented): check the server's TLS setup")
        }
        rustls::Error::UnsupportedNameType => {
            format!(
                "{host} cannot be checked against a certificate (UnsupportedNameType): use a DNS name or IP address"
            )
        }
        rustls::Error::PeerIncompatible(p) => {
            format!("TLS with {host} refused: no common protocol ({p:?}): check the server's TLS versions and ciphers")
        }
        rustls::Error::AlertReceived(alert) => {
            format!("{host} refused the TLS handshake (alert {alert:?}): check the server's TLS setup")
        }
        _ => return None,
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_are_found_inside_io_errors() {
        let rustls_err = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_err);
        let found = certificate_problem(&io, "mail.hospital.internal");
        assert_eq!(
            found.as_deref(),
            Some(
                "server certificate for mail.hospital.internal is signed by an unknown CA (UnknownIssuer): \
                 set ca_file or add the CA to the system trust store"
            )
        );
        let other = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(certificate_problem(&other, "h"), None);
        let corrupt = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert_eq!(certificate_problem(&corrupt, "h"), None);
    }

    #[test]
    fn ca_file_problems_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = SystemTime::now();
        let missing = dir.path().join("missing.pem");
        let e = read_ca_file(&missing, now).expect_err("missing");
        assert_eq!(e.problem, "does not exist");
        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, b"hello").expect("write");
        let e = read_ca_file(&not_pem, now).expect_err("not pem");
        assert!(e.problem.starts_with("is not a PEM file"), "{e}");
        let key = dir.path().join("key.pem");
        std::fs::write(&key, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").expect("write");
        let e = read_ca_file(&key, now).expect_err("key only");
        assert!(e.problem.starts_with("has no certificate in it"), "{e}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let e = read_ca_file(&garbage, now).expect_err("garbage");
        assert!(e.problem.starts_with("certificate 1 is not a valid X.509"), "{e}");
    }

    #[test]
    fn the_system_store_or_the_bundled_roots_are_never_empty() {
        let t = Trust::load(None).expect("trust");
        assert!(!t.roots().is_empty());
        assert!(t.client_config().is_ok());
    }
}
