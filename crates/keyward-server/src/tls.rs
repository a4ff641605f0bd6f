//! HTTPS: a PEM certificate (with its chain) and private key (PKCS#8, PKCS#1 or SEC1),
//! TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 by ALPN, with rustls (no OpenSSL). The pair can be
//! reloaded while serving: new connections use the new pair, connections already open keep
//! theirs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Where the certificate and its key are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate or key that cannot be used; the message names the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", file.display())]
pub struct TlsError {
    pub file: PathBuf,
    pub reason: String,
}

impl TlsError {
    fn new(file: &Path, reason: impl std::fmt::Display) -> Self {
        Self {
            file: file.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

/// The TLS side of the listener: the current pair, swapped whole on reload.
pub struct Tls {
    files: TlsFiles,
    acceptor: ArcSwap<TlsAcceptor>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

impl Tls {
    /// Reads and checks the pair.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let acceptor = acceptor(&files)?;
        Ok(Self {
            files,
            acceptor: ArcSwap::from_pointee(acceptor),
        })
    }

    /// Reads the pair again; on success new connections use it, on failure the current pair
    /// stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let acceptor = acceptor(&self.files)?;
        self.acceptor.store(Arc::new(acceptor));
        Ok(())
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> Arc<TlsAcceptor> {
        self.acceptor.load_full()
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

/// Runs until the process ends: SIGHUP never stops the server; it reloads the pair (when
/// serving HTTPS) for new connections, or logs at `error` why it cannot and keeps the
/// current pair.
pub async fn reload_on_hangup(tls: Option<Arc<Tls>>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: the certificate cannot be reloaded");
            return;
        };
        while hangups.recv().await.is_some() {
            match &tls {
                Some(tls) => match tls.reload() {
                    Ok(()) => tracing::info!("SIGHUP: reloaded the TLS certificate and key"),
                    Err(error) => tracing::error!(
                        %error,
                        "SIGHUP: cannot reload the TLS certificate and key; serving the current pair"
                    ),
                },
                None => tracing::info!("SIGHUP: nothing to reload (no TLS)"),
            }
        }
    }
    #[cfg(not(unix))]
    drop(tls);
}

fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|error| TlsError::new(&files.cert, reason_of(error, "certificate")))?
        .collect::<Result<_, _>>()
        .map_err(|error| TlsError::new(&files.cert, reason_of(error, "certificate")))?;
    if chain.is_empty() {
        return Err(TlsError::new(
            &files.cert,
            "no PEM certificate (\"-----BEGIN CERTIFICATE-----\") in the file",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|error| TlsError::new(&files.key, reason_of(error, "private key")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| TlsError::new(&files.cert, error))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| {
            TlsError::new(
                &files.key,
                format!(
                    "does not fit the certificate in {}: {error}",
                    files.cert.display()
                ),
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn reason_of(error: rustls::pki_types::pem::Error, what: &str) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::Io(error) => format!("cannot read the {what}: {error}"),
        Error::NoItemsFound => format!("no PEM {what} in the file"),
        other => format!("not a PEM {what}: {other:?}"),
    }
}
