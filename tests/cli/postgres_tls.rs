//! TLS to Postgres as libpq does it: against the machine's server (TLS on, self-signed
//! certificate) and against a throwaway cluster (initdb + pg_ctl on a free port) whose
//! certificates are made here, by a CA of the test's own.

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use crate::common::*;

/// A certificate authority of the test.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { issuer: Issuer::new(params, key), pem }
    }

    /// A certificate for `names` (host names, or the common name of a client), signed here;
    /// returns (certificate, key) as PEM.
    fn issue(&self, names: &[&str], common_name: &str, expired: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, common_name);
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        (params.signed_by(&key, &self.issuer).unwrap().pem(), key.serialize_pem())
    }
}

/// Runs a server program as the `postgres` user when this process is root (initdb and
/// the server refuse to run as root).
fn as_postgres(program: &Path) -> Command {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn postgres_ids() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let o = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// A throwaway cluster on 127.0.0.1 with TLS on, stopped and removed on drop.
pub(crate) struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its port.
    pub port: u16,
}

impl Cluster {
    /// A cluster with these extra `postgresql.conf` lines (and a certificate of its own).
    pub(crate) fn with_settings(extra_conf: &str) -> Self {
        let ca = Ca::new("ferry test CA");
        Self::start_with(&ca.issue(&["localhost"], "localhost", false), &ca.pem, extra_conf)
    }

    fn start(server_cert: &(String, String), ca_pem: &str) -> Self {
        Self::start_with(server_cert, ca_pem, "")
    }

    fn start_with(server_cert: &(String, String), ca_pem: &str, extra_conf: &str) -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("the Postgres server is installed (/usr/lib/postgresql)")
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").is_file())
            .max()
            .expect("initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().unwrap();
        let owner = postgres_ids();
        let chown = |p: &Path| {
            if let Some((u, g)) = owner {
                let _ = std::os::unix::fs::chown(p, Some(u), Some(g));
            }
        };
        chown(dir.path());
        let data = dir.path().join("data");
        let o = as_postgres(&bin.join("initdb"))
            .args(["-D", data.to_str().unwrap(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap();
        assert!(o.status.success(), "initdb: {}", String::from_utf8_lossy(&o.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let c = Cluster { dir, bin, port };
        c.write_certs(server_cert, ca_pem);
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{dir}'\nssl = on\nssl_cert_file = '{dir}/server.crt'\nssl_key_file = '{dir}/server.key'\nssl_ca_file = '{dir}/ca.crt'\nfsync = off\n",
            dir = c.dir.path().display()
        );
        let mut pg_conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        pg_conf.push_str(&conf);
        pg_conf.push_str(extra_conf);
        std::fs::write(data.join("postgresql.conf"), pg_conf).unwrap();
        // Client certificates for `certuser`; TLS required of `tlsonly`; anything else for
        // `postgres`.
        let hba = "local all all trust\nhostssl all certuser 127.0.0.1/32 cert\nhostssl all tlsonly 127.0.0.1/32 trust\nhost all postgres 127.0.0.1/32 trust\n";
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        chown(&data.join("postgresql.conf"));
        chown(&data.join("pg_hba.conf"));
        let o = as_postgres(&c.bin.join("pg_ctl"))
            .args(["-D", data.to_str().unwrap(), "-w", "-l"])
            .arg(c.dir.path().join("log"))
            .arg("start")
            .output()
            .unwrap();
        let log = std::fs::read_to_string(c.dir.path().join("log")).unwrap_or_default();
        assert!(o.status.success(), "pg_ctl start: {}\n{log}", String::from_utf8_lossy(&o.stderr));
        let o = as_postgres(&c.bin.join("psql"))
            .args(["-h", c.dir.path().to_str().unwrap(), "-p", &port.to_string(), "-U", "postgres", "-d", "postgres"])
            .args(["-c", "CREATE ROLE certuser LOGIN SUPERUSER; CREATE ROLE tlsonly LOGIN SUPERUSER"])
            .output()
            .unwrap();
        assert!(o.status.success(), "psql: {}", String::from_utf8_lossy(&o.stderr));
        c
    }

    fn write_certs(&self, (cert, key): &(String, String), ca_pem: &str) {
        let owner = postgres_ids();
        for (name, text, mode) in
            [("server.crt", cert, 0o644), ("server.key", key, 0o600), ("ca.crt", &ca_pem.to_owned(), 0o644)]
        {
            let p = self.dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
            if let Some((u, g)) = owner {
                let _ = std::os::unix::fs::chown(&p, Some(u), Some(g));
            }
        }
    }

    /// New server certificate, taken by the running server.
    fn replace_certs(&self, server_cert: &(String, String), ca_pem: &str) {
        self.write_certs(server_cert, ca_pem);
        let o = as_postgres(&self.bin.join("pg_ctl"))
            .args(["-D", self.dir.path().join("data").to_str().unwrap(), "reload"])
            .output()
            .unwrap();
        assert!(o.status.success());
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .args(["-D", self.dir.path().join("data").to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}

/// `ferry init` of a synthetic pipeline into Postgres at `url`: (exit code, stderr).
fn init(s: &Scratch, url: &str) -> (Option<i32>, String) {
    let toml = synthetic_pipeline("tls", "x", "records = 1")
        .replace("type = \"sqlite\"\npath = \"x\"", &format!("type = \"postgres\"\nurl = \"{url}\""));
    s.write("p.toml", &toml);
    let o = s.run(&["init", "p.toml"]);
    assert!(!text_of(&o).contains("panicked"), "{}", text_of(&o));
    (o.status.code(), text(&o).1)
}

fn text_of(o: &std::process::Output) -> String {
    let (a, b) = text(o);
    format!("{a}{b}")
}

#[test]
fn the_machines_server_with_a_self_signed_certificate_connects_as_with_psql() {
    if !postgres_or_skip() {
        return;
    }
    let s = Scratch::new();
    for url in [
        "postgres://postgres@127.0.0.1:5432/test",
        "postgres://postgres@127.0.0.1:5432/test?sslmode=prefer",
        "postgres://postgres@127.0.0.1:5432/test?sslmode=require",
        "postgres://postgres@127.0.0.1:5432/test?sslmode=allow",
    ] {
        let (code, err) = init(&s, url);
        assert_eq!(code, Some(0), "{url}: {err}");
    }
    // Verification needs a root certificate, and the message says how to give one, never
    // to turn TLS off.
    let (code, err) = init(&s, "postgres://postgres@127.0.0.1:5432/test?sslmode=verify-full");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("sslrootcert") && !err.contains("sslmode=disable"), "{err}");
}

#[test]
fn tls_modes_root_certificates_and_client_certificates_as_libpq_does() {
    if !postgres_server_or_skip() {
        return;
    }
    let ca = Ca::new("ferry test CA");
    let other = Ca::new("somebody else's CA");
    let cluster = Cluster::start(&ca.issue(&["localhost"], "localhost", false), &ca.pem);
    let s = Scratch::new();
    let ca_file = s.write("ca.pem", &ca.pem);
    let other_file = s.write("other.pem", &other.pem);
    let (port, ca_path, other_path) = (cluster.port, ca_file.display(), other_file.display());
    let url = |host: &str, user: &str, query: &str| format!("postgres://{user}@{host}:{port}/postgres?{query}");
    let ok = |u: String| {
        let (code, err) = init(&s, &u);
        assert_eq!(code, Some(0), "{u}: {err}");
    };
    let fails = |u: String, expect: &str| {
        let (code, err) = init(&s, &u);
        assert!(code == Some(1) || code == Some(2), "{u} connected: {err}");
        assert!(err.contains(expect), "{u}: expected {expect:?} in:\n{err}");
        if !u.contains("sslmode=disable") {
            assert!(!err.contains("sslmode=disable"), "{err}");
        }
    };

    ok(url("127.0.0.1", "postgres", "sslmode=require"));
    ok(url("localhost", "postgres", &format!("sslmode=verify-full&sslrootcert={ca_path}")));
    ok(url("127.0.0.1", "postgres", &format!("sslmode=verify-ca&sslrootcert={ca_path}")));
    fails(url("localhost", "postgres", &format!("sslmode=verify-full&sslrootcert={other_path}")), "not signed by");
    // `require` with a root certificate verifies the chain, as libpq does.
    fails(url("localhost", "postgres", &format!("sslmode=require&sslrootcert={other_path}")), "not signed by");
    fails(url("127.0.0.1", "postgres", &format!("sslmode=verify-full&sslrootcert={ca_path}")), "not valid for host");
    // A user the server admits over TLS only: `allow` retries with TLS, `disable` cannot.
    ok(url("127.0.0.1", "tlsonly", "sslmode=allow"));
    fails(url("127.0.0.1", "tlsonly", "sslmode=disable"), "only over TLS");
    // A client certificate, for a user the server admits by certificate only.
    let (cert, key) = ca.issue(&[], "certuser", false);
    let cert_file = s.write("client.crt", &cert);
    let key_file = s.write("client.key", &key);
    ok(url(
        "localhost",
        "certuser",
        &format!(
            "sslmode=verify-full&sslrootcert={ca_path}&sslcert={}&sslkey={}",
            cert_file.display(),
            key_file.display()
        ),
    ));
    fails(url("localhost", "certuser", &format!("sslmode=verify-full&sslrootcert={ca_path}")), "certificate");

    // The server's certificate expires.
    cluster.replace_certs(&ca.issue(&["localhost"], "localhost", true), &ca.pem);
    fails(url("localhost", "postgres", &format!("sslmode=verify-full&sslrootcert={ca_path}")), "expired");
    ok(url("localhost", "postgres", "sslmode=require"));
}
