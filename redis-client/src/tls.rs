//! TLS for `rediss://` URLs: rustls driven over the socket under a
//! connection through `std::io::Read` and `Write` (feature `tls`).
//!
//! `stream.rs` opens the TCP socket (cooperative in a hub, std's on a plain
//! thread) and hands it to [`TlsStream::handshake`]; from then on the
//! connection's reads and writes go through [`TlsStream`], which reads and
//! writes the socket as any blocking-style code would. On greenhub's socket a
//! read that finds nothing parks the coroutine, so rustls, which knows
//! nothing of coroutines, becomes cooperative by being handed that socket.
//!
//! One rule keeps it from waiting past bytes that came: rustls decrypts
//! whole records, so after a read it may hold plaintext the caller has not
//! taken yet while the kernel holds nothing (the record ended where the
//! reply's bytes did not). A read takes that plaintext before it touches the
//! socket, and [`TlsStream::has_plaintext`] tells `stream.rs` not to park on
//! the socket while any waits (`Reader::fill` parks first right after a
//! write; parked on the socket, it would sleep until the next bytes arrived,
//! which for a command that blocks on the server may be never).
//!
//! A connection dropped sends no `close_notify` alert: a `Drop` must never
//! park (it may run while a coroutine unwinds), and Redis needs none; the
//! server sees the TCP close.
//!
//! The handshake is bounded as a whole by the connect timeout
//! ([`DEFAULT_HANDSHAKE_TIMEOUT`] when none is set): one deadline is taken
//! when it starts, and before each of its reads and writes both socket
//! timeouts are set to what is left (`Bounded`), so a server that trickles
//! a byte at a time cannot hold it past the deadline; once it has passed,
//! the handshake fails with `TimedOut` (the caller's `Error::Timeout`).
//!
//! Errors are one sentence each, naming the likely causes: a CA that did not
//! sign the server's certificate, an expired certificate or one for another
//! name, a server that wants a client certificate, a port that answers in
//! plaintext, a close during the handshake (a server at `maxclients`, or a
//! port that does not speak TLS), or a handshake that got no answer in time
//! (a stalled or unreachable server, or a plaintext Redis port, which reads
//! a ClientHello as the start of an inline command and waits). See
//! `docs/tls.md`.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct,
    RootCertStore, SignatureScheme,
};

use crate::url::TlsOptions;

/// How long a TLS handshake may take when the URL sets no
/// `connect_timeout`: a plaintext port never answers some ClientHellos
/// (Redis waits for the newline of an inline command), and ten seconds is
/// long past any real handshake, even to a loaded server far away.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a CA bundle usually lives, for a `rediss://` URL without `tls_ca`:
/// Debian/Ubuntu, Fedora/RHEL, then Alpine/openSUSE.
const SYSTEM_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
];

/// Client configurations built so far: a pool of 10,000 connections reads
/// its files and builds its roots once, not 10,000 times. A few entries at
/// most (one per distinct set of options a process uses).
static CONFIGS: Mutex<Vec<(TlsOptions, Arc<ClientConfig>)>> = Mutex::new(Vec::new());

/// A TLS session over a socket `S` (greenhub's or std's `TcpStream`).
///
/// One reader and one writer at a time, as the socket under it.
pub(crate) struct TlsStream<S> {
    conn: ClientConnection,
    sock: S,
    /// `host:port`, for messages.
    peer: String,
}

impl<S> std::fmt::Debug for TlsStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("peer", &self.peer)
            .field("protocol", &self.conn.protocol_version())
            .finish_non_exhaustive()
    }
}

impl<S: Read + Write + SetTimeouts> TlsStream<S> {
    /// Runs the handshake on `sock` with the server name from the options
    /// or `host`, within `timeout` as a whole: one deadline is set here, and
    /// every read and write of the handshake is bounded by what is left of
    /// it (a server that trickles a byte at a time cannot stretch it). The
    /// socket's timeouts are left as the handshake's last one set them: the
    /// caller sets its own afterwards.
    pub(crate) fn handshake(
        mut sock: S,
        config: Arc<ClientConfig>,
        opts: &TlsOptions,
        host: &str,
        peer: String,
        timeout: Duration,
    ) -> io::Result<TlsStream<S>> {
        let name = opts.server_name.as_deref().unwrap_or(host);
        let server_name = ServerName::try_from(name.to_owned()).map_err(|_| {
            other(format!(
                "{name:?} is not a valid TLS server name (set tls_server_name)"
            ))
        })?;
        let mut conn = ClientConnection::new(config, server_name)
            .map_err(|err| other(format!("cannot start a TLS session: {err}")))?;
        let mut bounded = Bounded {
            sock: &mut sock,
            deadline: Instant::now().checked_add(timeout),
            received: 0,
        };
        while conn.is_handshaking() {
            if let Err(err) = conn.complete_io(&mut bounded) {
                let answered = bounded.received > 0;
                return Err(handshake_error(err, name, &peer, timeout, answered));
            }
        }
        Ok(TlsStream { conn, sock, peer })
    }
}

impl<S: Read + Write> TlsStream<S> {
    /// Reads plaintext: what rustls holds first, the socket only when it
    /// holds none. `Ok(0)` is the end of the stream.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                // No plaintext buffered: read a record.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(err) => return Err(err),
            }
            // Alerts or key updates the last records asked us to send.
            self.flush()?;
            // Parks in a hub (greenhub's socket), blocks on a plain thread,
            // or says WouldBlock on a non-blocking socket (the cache's
            // listener): in every case the caller sees the socket's answer.
            if self.conn.read_tls(&mut self.sock)? == 0 {
                return Ok(0);
            }
            if let Err(err) = self.conn.process_new_packets() {
                let _ = self.flush();
                return Err(session_error(err, &self.peer));
            }
        }
    }

    /// Encrypts and writes all of `buf`.
    pub(crate) fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.conn.writer().write(buf)?;
            buf = &buf[n..];
            if n == 0 && !self.conn.wants_write() {
                return Err(other("the TLS session accepts no more data".into()));
            }
            self.flush()?;
        }
        Ok(())
    }

    /// Writes every TLS record rustls has ready.
    fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut self.sock)? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    /// Whether decrypted bytes wait in rustls: then a read returns at once,
    /// and parking on the socket could sleep past them.
    pub(crate) fn has_plaintext(&mut self) -> bool {
        self.conn
            .process_new_packets()
            .is_ok_and(|state| state.plaintext_bytes_to_read() > 0)
    }
}

/// A socket whose read and write timeouts can be set: greenhub's
/// cooperative `TcpStream` and std's, the two a handshake runs on.
pub(crate) trait SetTimeouts {
    /// Sets both the read and the write timeout.
    fn set_timeouts(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl SetTimeouts for greenhub::net::TcpStream {
    fn set_timeouts(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(timeout)?;
        self.set_write_timeout(timeout)
    }
}

impl SetTimeouts for std::net::TcpStream {
    fn set_timeouts(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(timeout)?;
        self.set_write_timeout(timeout)
    }
}

/// The socket as the handshake sees it: before each read and write, both
/// timeouts are set to what is left until the deadline, and `TimedOut` comes
/// back once it has passed. rustls's `complete_io` loops over many reads
/// until the handshake is done, so bounding it from outside would bound each
/// read, not the whole. A deadline too far to represent means no bound.
struct Bounded<'a, S> {
    sock: &'a mut S,
    deadline: Option<Instant>,
    /// Bytes read so far: whether the server answered at all, for the
    /// message when time runs out.
    received: usize,
}

impl<S: SetTimeouts> Bounded<'_, S> {
    fn arm(&self) -> io::Result<()> {
        let Some(deadline) = self.deadline else {
            return self.sock.set_timeouts(None);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.sock.set_timeouts(Some(left))
    }
}

impl<S: Read + SetTimeouts> Read for Bounded<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm()?;
        let n = self.sock.read(buf)?;
        self.received += n;
        Ok(n)
    }
}

impl<S: Write + SetTimeouts> Write for Bounded<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm()?;
        self.sock.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

impl<S> TlsStream<S> {
    /// The socket under the session.
    pub(crate) fn get_ref(&self) -> &S {
        &self.sock
    }

    /// The same session over another socket (the same descriptor, another
    /// wrapper): for `Stream::into_nonblocking`.
    pub(crate) fn map_socket<T>(
        self,
        f: impl FnOnce(S) -> io::Result<T>,
    ) -> io::Result<TlsStream<T>> {
        Ok(TlsStream {
            conn: self.conn,
            sock: f(self.sock)?,
            peer: self.peer,
        })
    }
}

/// The configuration for `opts`, built once per distinct options: files
/// are read here, before any socket is opened, so a missing or bad file is
/// reported as such.
pub(crate) fn client_config(opts: &TlsOptions) -> io::Result<Arc<ClientConfig>> {
    let mut configs = CONFIGS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, config)) = configs.iter().find(|(o, _)| o == opts) {
        return Ok(config.clone());
    }
    let config = Arc::new(build_config(opts)?);
    configs.push((opts.clone(), config.clone()));
    Ok(config)
}

fn build_config(opts: &TlsOptions) -> io::Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| other(format!("cannot set up TLS: {err}")))?;
    let builder = if opts.insecure {
        log::warn!(
            "TLS certificate verification is off (tls_insecure): any server, or anyone between, \
             can read and change this traffic; use it only in tests"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
    } else {
        builder.with_root_certificates(roots(opts.ca_file.as_deref())?)
    };
    match (&opts.cert_file, &opts.key_file) {
        (Some(cert), Some(key)) => {
            let certs = certificates(cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|err| {
                other(format!(
                    "cannot read a private key from {} (tls_key): {err}",
                    key.display()
                ))
            })?;
            builder.with_client_auth_cert(certs, key).map_err(|err| {
                other(format!(
                    "the client certificate {} and key do not go together: {err}",
                    cert.display()
                ))
            })
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(other(
            "a client certificate needs both tls_cert and tls_key".into(),
        )),
    }
}

/// The trusted roots: the CA file given, or the system's bundle.
fn roots(ca_file: Option<&Path>) -> io::Result<RootCertStore> {
    let path = match ca_file {
        Some(path) => path.to_owned(),
        None => SYSTEM_BUNDLES
            .iter()
            .map(Path::new)
            .find(|p| p.exists())
            .ok_or_else(|| {
                other(format!(
                    "no CA given (tls_ca) and no system CA bundle found (looked in {})",
                    SYSTEM_BUNDLES.join(", ")
                ))
            })?
            .to_owned(),
    };
    let mut roots = RootCertStore::empty();
    for cert in certificates(&path)? {
        roots.add(cert).map_err(|err| {
            other(format!(
                "{} holds a CA certificate rustls cannot use: {err}",
                path.display()
            ))
        })?;
    }
    Ok(roots)
}

/// Every certificate in a PEM file; none is an error.
fn certificates(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let read_err = |err: &dyn std::fmt::Display| {
        other(format!(
            "cannot read certificates from {}: {err}",
            path.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| read_err(&err))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| read_err(&err))?;
    if certs.is_empty() {
        return Err(other(format!(
            "{} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// A handshake failure, as one sentence that names the likely cause.
/// `answered`: whether the server sent any byte before time ran out.
fn handshake_error(
    err: io::Error,
    name: &str,
    peer: &str,
    timeout: Duration,
    answered: bool,
) -> io::Error {
    match err.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut if answered => io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the TLS handshake with {peer} did not finish within {timeout:?} \
                 (connect_timeout): the server answered, too slowly"
            ),
        ),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the TLS handshake with {peer} got no answer in time ({timeout:?}, \
                 connect_timeout): the server is stalled or unreachable, or the port speaks \
                 plaintext"
            ),
        ),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!(
                "{peer} closed the connection during the TLS handshake: the server refused a \
                 new client (Redis at maxclients closes a TLS connection without a word), or \
                 the port does not speak TLS"
            ),
        ),
        _ => match err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            Some(rustls::Error::InvalidCertificate(cert)) => io::Error::new(
                io::ErrorKind::InvalidData,
                certificate_error(cert, name, peer),
            ),
            Some(tls) => session_error(tls.clone(), peer),
            None => err,
        },
    }
}

/// A TLS failure during or after the handshake, as one sentence.
fn session_error(err: rustls::Error, peer: &str) -> io::Error {
    let text = match &err {
        rustls::Error::InvalidCertificate(cert) => certificate_error(cert, "", peer),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => format!(
            "{peer} did not answer in TLS ({err}): the port speaks plaintext; use redis://"
        ),
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure,
        ) => format!(
            "{peer} refused the TLS session ({err}): it asks for a client certificate \
             (tls_cert and tls_key) that it trusts"
        ),
        rustls::Error::AlertReceived(
            AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::DecryptError,
        ) => format!(
            "{peer} refused the client certificate ({err}): it is not signed by a CA the server trusts"
        ),
        _ => format!("TLS with {peer} failed: {err}"),
    };
    io::Error::new(io::ErrorKind::InvalidData, text)
}

fn certificate_error(err: &CertificateError, name: &str, peer: &str) -> String {
    match err {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
            "the certificate of {peer} is not signed by a trusted CA ({err:?}): check tls_ca"
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("the certificate of {peer} has expired ({err})")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("the certificate of {peer} is not valid yet ({err})")
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!(
                "the certificate of {peer} is not valid for the name {name:?} ({err}): \
                 connect by a name it lists, or set tls_server_name"
            )
        }
        _ => format!("the certificate of {peer} was refused: {err}"),
    }
}

fn other(text: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, text)
}

/// The verifier of `tls_insecure`: every certificate is accepted, and the
/// handshake's signatures are still checked (so the session is at least
/// with whoever holds the key of the certificate it shows).
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
