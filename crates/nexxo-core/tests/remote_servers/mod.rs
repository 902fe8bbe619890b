//! Real cache servers for the remote-tier tests, started on loopback by the tests
//! themselves (so that a test can kill one mid-run and start it again): nginx with its
//! WebDAV module, and redis-server, both from Debian's packages (scripts/setup.sh).
#![allow(dead_code)]

/// `on_both!(scenario)`: tests `scenario::nginx` and `scenario::redis`, each calling
/// `scenario(Kind)`.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[test]
            fn nginx() {
                super::$name(super::Kind::Nginx);
            }
            #[test]
            fn redis() {
                super::$name(super::Kind::Redis);
            }
        }
    };
}

/// Waits until `c`'s uploads drained (at most 20 s), or fails the test.
pub fn sync(c: &nexxo_core::Cache) {
    assert!(c.remote_sync(Duration::from_secs(20)), "uploads did not drain: {:?}", c.remote_stats());
}

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Redis,
}

pub struct Server {
    pub kind: Kind,
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    password: Option<String>,
    /// TLS: the certificate and key files the server presents.
    tls: Option<(PathBuf, PathBuf)>,
    /// nginx: the `Authorization` header value every request must carry (else 401).
    authorization: Option<String>,
}

/// Certificates for the TLS tests, made with openssl at test time: a CA the tests trust,
/// server certificates it signed (for localhost and 127.0.0.1; for another host; expired
/// in 2020), and one signed by a CA nobody trusts.
pub struct Pki {
    pub dir: PathBuf,
}

fn openssl(dir: &Path, args: &[String]) {
    let o = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl is not installed");
    assert!(o.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir.join("newcerts")).unwrap();
        let ec = strings(&["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]);
        for ca in ["ca", "rogue-ca"] {
            let mut a = strings(&["req", "-x509"]);
            a.extend(ec.iter().cloned());
            a.extend([
                "-keyout".into(), format!("{ca}.key"), "-out".into(), format!("{ca}.pem"),
                "-days".into(), "30".into(), "-subj".into(), format!("/CN=nexxo test {ca}"),
            ]);
            openssl(dir, &a);
        }
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "1000\n").unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            format!(
                "[ ca ]\ndefault_ca = d\n[ d ]\ndatabase = {d}/index.txt\nnew_certs_dir = {d}/newcerts\nserial = {d}/serial\n\
                 default_md = sha256\npolicy = p\nunique_subject = no\n[ p ]\ncommonName = supplied\n",
                d = dir.display()
            ),
        )
        .unwrap();
        // (name, signing CA, subjectAltName, validity)
        let certs: [(&str, &str, &str, Option<(&str, &str)>); 4] = [
            ("good", "ca", "DNS:localhost,IP:127.0.0.1", None),
            ("other-host", "ca", "DNS:other.example", None),
            ("expired", "ca", "DNS:localhost,IP:127.0.0.1", Some(("20200101000000Z", "20200102000000Z"))),
            ("rogue", "rogue-ca", "DNS:localhost,IP:127.0.0.1", None),
        ];
        for (name, ca, san, dates) in certs {
            let ext = format!("{name}.ext");
            std::fs::write(dir.join(&ext), format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")).unwrap();
            let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
            let mut a = strings(&["req"]);
            a.extend(ec.iter().cloned());
            a.extend(["-keyout".into(), key, "-out".into(), csr.clone(), "-subj".into(), "/CN=nexxo test server".into()]);
            openssl(dir, &a);
            let mut a = strings(&["ca", "-batch", "-notext", "-config", "ca.cnf"]);
            a.extend(["-cert".into(), format!("{ca}.pem"), "-keyfile".into(), format!("{ca}.key"), "-in".into(), csr, "-out".into(), pem, "-extfile".into(), ext]);
            match dates {
                Some((start, end)) => a.extend(strings(&["-startdate", start, "-enddate", end])),
                None => a.extend(strings(&["-days", "30"])),
            }
            openssl(dir, &a);
        }
        Pki { dir: dir.to_owned() }
    }

    /// The trusted CA's certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A server certificate and its key: `good`, `other-host`, `expired` or `rogue`.
    pub fn cert(&self, name: &str) -> (PathBuf, PathBuf) {
        (self.dir.join(format!("{name}.pem")), self.dir.join(format!("{name}.key")))
    }
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn find(binary: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(binary);
        if p.exists() {
            return p;
        }
    }
    panic!("{binary} is not installed: run scripts/setup.sh (it installs nginx and redis-server from Debian's packages)");
}

impl Server {
    pub fn start(kind: Kind, dir: &Path) -> Server {
        Self::start_with(kind, dir, None)
    }

    /// Redis only: with `requirepass`.
    pub fn start_with(kind: Kind, dir: &Path, password: Option<&str>) -> Server {
        std::fs::create_dir_all(dir).unwrap();
        let mut s = Server { kind, port: free_port(), dir: dir.to_owned(), child: None, password: password.map(str::to_owned), tls: None, authorization: None };
        s.launch();
        s
    }

    /// A server speaking TLS only, presenting `cert` (a [`Pki::cert`]); nginx can also
    /// require an `Authorization` header value.
    pub fn start_tls(kind: Kind, dir: &Path, cert: (PathBuf, PathBuf), authorization: Option<&str>) -> Server {
        std::fs::create_dir_all(dir).unwrap();
        let mut s = Server {
            kind,
            port: free_port(),
            dir: dir.to_owned(),
            child: None,
            password: None,
            tls: Some(cert),
            authorization: authorization.map(str::to_owned),
        };
        s.launch();
        s
    }

    pub fn url(&self) -> String {
        if self.tls.is_some() {
            // By name: the certificate's DNS name and SNI are checked.
            return match self.kind {
                Kind::Nginx => format!("https://localhost:{}/cache", self.port),
                Kind::Redis => format!("rediss://localhost:{}", self.port),
            };
        }
        match (self.kind, &self.password) {
            (Kind::Nginx, _) => format!("http://127.0.0.1:{}/cache", self.port),
            (Kind::Redis, None) => format!("redis://127.0.0.1:{}", self.port),
            (Kind::Redis, Some(p)) => format!("redis://:{p}@127.0.0.1:{}/1", self.port),
        }
    }

    fn launch(&mut self) {
        let d = &self.dir;
        let child = match self.kind {
            Kind::Nginx => {
                for sub in ["data", "tmp"] {
                    std::fs::create_dir_all(d.join(sub)).unwrap();
                }
                let (listen, tls) = match &self.tls {
                    Some((cert, key)) => (
                        format!("127.0.0.1:{} ssl", self.port),
                        format!("  ssl_certificate {};\n  ssl_certificate_key {};\n", cert.display(), key.display()),
                    ),
                    None => (format!("127.0.0.1:{}", self.port), String::new()),
                };
                let auth = match &self.authorization {
                    Some(a) => format!("  if ($http_authorization != \"{a}\") {{ return 401; }}\n"),
                    None => String::new(),
                };
                let conf = format!(
                    "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                     events {{ worker_connections 256; }}\n\
                     http {{\n access_log off;\n client_body_temp_path {d}/tmp;\n proxy_temp_path {d}/tmp;\n\
                     fastcgi_temp_path {d}/tmp;\n uwsgi_temp_path {d}/tmp;\n scgi_temp_path {d}/tmp;\n\
                     server {{\n  listen {listen};\n{tls}{auth}  root {d}/data;\n  client_max_body_size 300m;\n\
                     location / {{ dav_methods PUT DELETE; create_full_put_path on; dav_access user:rw; }}\n }}\n}}\n",
                    d = d.display(),
                );
                std::fs::write(d.join("nginx.conf"), conf).unwrap();
                Command::new(find("nginx"))
                    .args(["-e", &format!("{}/error.log", d.display()), "-p", &d.display().to_string(), "-c"])
                    .arg(d.join("nginx.conf"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            }
            Kind::Redis => {
                let mut cmd = Command::new(find("redis-server"));
                match &self.tls {
                    Some((cert, key)) => {
                        cmd.args(["--port", "0", "--tls-port", &self.port.to_string(), "--tls-auth-clients", "no"]);
                        cmd.arg("--tls-cert-file").arg(cert).arg("--tls-key-file").arg(key);
                    }
                    None => {
                        cmd.args(["--port", &self.port.to_string()]);
                    }
                }
                cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                    .arg("--dir")
                    .arg(d)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                if let Some(p) = &self.password {
                    cmd.args(["--requirepass", p]);
                }
                cmd.spawn().unwrap()
            }
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "{:?} did not start on port {} (see {})", self.kind, self.port, d.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL) and waits until its port is closed.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (nginx keeps its files; Redis starts empty).
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Overwrites what the server holds for a stored object, through the back door.
    /// `name` is the object's file name (HTTP) or key (Redis) as listed by `objects`.
    pub fn overwrite(&self, name: &str, data: &[u8]) {
        match self.kind {
            Kind::Nginx => std::fs::write(name, data).unwrap(),
            Kind::Redis => {
                let r = self.command(&[b"SET", name.as_bytes(), data]);
                assert_eq!(r, b"+OK\r\n");
            }
        }
    }

    /// Every object the server holds: file paths (HTTP) or keys (Redis).
    pub fn objects(&self) -> Vec<String> {
        match self.kind {
            Kind::Nginx => {
                let ac = self.dir.join("data/cache/ac");
                let mut v: Vec<String> = std::fs::read_dir(&ac)
                    .map(|rd| rd.map(|e| e.unwrap().path().display().to_string()).collect())
                    .unwrap_or_default();
                v.sort();
                v
            }
            Kind::Redis => {
                let reply = self.command(&[b"KEYS", b"*"]);
                let text = String::from_utf8_lossy(&reply).into_owned();
                let mut v: Vec<String> = text.split("\r\n").filter(|l| !l.is_empty() && !l.starts_with(['*', '$'])).map(str::to_owned).collect();
                v.sort();
                v
            }
        }
    }

    pub fn read_object(&self, name: &str) -> Vec<u8> {
        match self.kind {
            Kind::Nginx => std::fs::read(name).unwrap(),
            Kind::Redis => {
                let reply = self.command(&[b"GET", name.as_bytes()]);
                let header_end = reply.iter().position(|&b| b == b'\n').unwrap() + 1;
                reply[header_end..reply.len() - 2].to_vec()
            }
        }
    }

    /// Seconds to live of a Redis key.
    pub fn ttl(&self, name: &str) -> i64 {
        let r = self.command(&[b"TTL", name.as_bytes()]);
        String::from_utf8_lossy(&r[1..r.len() - 2]).parse().unwrap()
    }

    /// One raw Redis command (database 1 when password-protected, as in `url`).
    fn command(&self, args: &[&[u8]]) -> Vec<u8> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut pre = Vec::new();
        if let Some(p) = &self.password {
            pre.push(vec![b"AUTH".to_vec(), p.as_bytes().to_vec()]);
            pre.push(vec![b"SELECT".to_vec(), b"1".to_vec()]);
        }
        for cmd in &pre {
            s.write_all(&encode(&cmd.iter().map(Vec::as_slice).collect::<Vec<_>>())).unwrap();
            let mut b = [0u8; 64];
            let n = s.read(&mut b).unwrap();
            assert!(b[..n].starts_with(b"+OK"), "{}", String::from_utf8_lossy(&b[..n]));
        }
        s.write_all(&encode(args)).unwrap();
        s.shutdown(std::net::Shutdown::Write).ok();
        // Read the whole reply: one command, answered, then the server sees our EOF.
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        out
    }
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
