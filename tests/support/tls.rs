//! TLS for the tests: certificates made on the spot ([`TlsFiles`], with
//! rcgen) and a real `redis-server` that speaks TLS on `--tls-port`
//! ([`TlsServer`]). The TLS cluster is [`RedisCluster::start_tls`](crate::RedisCluster::start_tls).
//!
//! Every certificate is an ECDSA P-256 one signed by a CA made here, valid
//! from 2020 to 2099: the server's for
//! `localhost` and `127.0.0.1` (for client and server use, as a cluster node
//! also dials its peers with it), a client's for mutual TLS, an expired one,
//! one for another name, and a second CA that signed none of them. See
//! `docs/testing.md` and `docs/tls.md`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::RedisServer;

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// Certificates for one test, in a temp dir removed on drop.
#[derive(Debug)]
pub struct TlsFiles {
    dir: PathBuf,
    /// The CA that signed every certificate below.
    pub ca: PathBuf,
    /// A CA that signed none of them (the wrong CA).
    pub other_ca: PathBuf,
    /// The server's: `localhost` and `127.0.0.1`.
    pub server: CertFiles,
    /// A client's, for mutual TLS.
    pub client: CertFiles,
    /// A server certificate that expired years ago.
    pub expired: CertFiles,
    /// A server certificate for `other.example` only.
    pub wrong_name: CertFiles,
}

impl TlsFiles {
    /// Makes every certificate, in a fresh temp dir.
    pub fn generate() -> TlsFiles {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "greenhub-tls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the certificates' temp dir");
        let (ca_cert, ca_key) = make_ca("greenhub test CA");
        let (other_cert, _) = make_ca("another CA");
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write a PEM file");
            path
        };
        let leaf = |name: &str, sans: &[&str], expired: bool| {
            let key = KeyPair::generate().expect("an ECDSA key");
            let mut params =
                CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                    .expect("certificate names");
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            match expired {
                true => valid(&mut params, 2001, 2002),
                false => valid(&mut params, 2020, 2099),
            }
            let cert = params
                .signed_by(&key, &ca_cert, &ca_key)
                .expect("sign a certificate");
            CertFiles {
                cert: write(&format!("{name}.crt"), cert.pem()),
                key: write(&format!("{name}.key"), key.serialize_pem()),
            }
        };
        TlsFiles {
            ca: write("ca.crt", ca_cert.pem()),
            other_ca: write("other-ca.crt", other_cert.pem()),
            server: leaf("server", &["localhost", "127.0.0.1"], false),
            client: leaf("client", &["greenhub-client"], false),
            expired: leaf("expired", &["localhost", "127.0.0.1"], true),
            wrong_name: leaf("wrong-name", &["other.example"], false),
            dir,
        }
    }

    /// The temp dir the files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `redis-server` arguments that serve TLS on `port` with `cert`,
    /// trusting this CA for client certificates, which it requires only if
    /// `auth_clients`.
    pub fn server_args(&self, port: u16, cert: &CertFiles, auth_clients: bool) -> Vec<String> {
        let path = |p: &Path| p.display().to_string();
        vec![
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            path(&cert.cert),
            "--tls-key-file".into(),
            path(&cert.key),
            "--tls-ca-cert-file".into(),
            path(&self.ca),
            "--tls-auth-clients".into(),
            if auth_clients { "yes" } else { "no" }.into(),
        ]
    }

    /// The URL options that trust this CA and, if `client`, present the
    /// client certificate: `tls_ca=...[&tls_cert=...&tls_key=...]`.
    pub fn url_options(&self, client: bool) -> String {
        let mut options = format!("tls_ca={}", self.ca.display());
        if client {
            options.push_str(&format!(
                "&tls_cert={}&tls_key={}",
                self.client.cert.display(),
                self.client.key.display()
            ));
        }
        options
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sets a certificate valid from January 1st of `from` to that of `to`.
/// The good ones run from 2020 to 2099: valid whatever the machine's clock
/// says today, with no date arithmetic in the harness.
fn valid(params: &mut CertificateParams, from: i32, to: i32) {
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(to, 1, 1);
}

fn make_ca(name: &str) -> (Certificate, KeyPair) {
    let key = KeyPair::generate().expect("an ECDSA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    valid(&mut params, 2020, 2099);
    let cert = params.self_signed(&key).expect("self-sign the CA");
    (cert, key)
}

/// A private `redis-server` with a TLS port beside its plaintext one (the
/// plaintext port and Unix socket are the harness's own way in), killed
/// when dropped.
#[derive(Debug)]
pub struct TlsServer {
    // Declared first, so it is dropped (killed) before its files go.
    server: RedisServer,
    tls_port: u16,
    files: TlsFiles,
}

impl TlsServer {
    /// A server with a valid certificate; it requires a client certificate
    /// only if `auth_clients`.
    pub fn start(auth_clients: bool) -> TlsServer {
        TlsServer::start_with(
            TlsFiles::generate(),
            |files| files.server.clone(),
            auth_clients,
        )
    }

    /// A server that shows the certificate `pick` chooses from the files.
    pub fn start_with(
        files: TlsFiles,
        pick: impl FnOnce(&TlsFiles) -> CertFiles,
        auth_clients: bool,
    ) -> TlsServer {
        let tls_port = super::free_port();
        let cert = pick(&files);
        let args = files.server_args(tls_port, &cert, auth_clients);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        TlsServer {
            server: RedisServer::start_with(&args),
            tls_port,
            files,
        }
    }

    /// `rediss://127.0.0.1:PORT?tls_ca=...`, presenting the client
    /// certificate if `client`.
    pub fn url(&self, client: bool) -> String {
        format!(
            "rediss://127.0.0.1:{}?{}",
            self.tls_port,
            self.files.url_options(client)
        )
    }

    /// The TLS port.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// The certificates.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The same server's plaintext side.
    pub fn plain(&self) -> &RedisServer {
        &self.server
    }
}
