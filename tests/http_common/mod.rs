//! A settee server on an ephemeral loopback port and a minimal HTTP/1.1
//! client (one connection per request), shared by the `http_*` tests.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use base64::Engine;
use serde_json::Value;
use settee::http::HttpConfig;
use settee::server::Settee;

/// A running server; the runtime thread ends with the test process.
pub struct Server {
    client: Client,
    _dir: tempfile::TempDir,
}

/// Sends requests to a server's port; cheap to copy into other threads.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub port: u16,
}

impl std::ops::Deref for Server {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

/// Admin credentials of every test server.
pub const ADMIN: (&str, &str) = ("admin", "password");

impl Server {
    pub fn start() -> Server {
        Server::start_with(HttpConfig::default())
    }

    /// A server with `config` (and the test admin).
    pub fn start_with(config: HttpConfig) -> Server {
        Server::start_configured(config, |_| {})
    }

    /// A server with `config`, and `configure` run on it before it serves.
    pub fn start_configured(config: HttpConfig, configure: impl FnOnce(&mut Settee)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut settee = Settee::open(dir.path()).unwrap();
        configure(&mut settee);
        let settee = Arc::new(settee);
        settee.admins().set(ADMIN.0, ADMIN.1).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap().port()).unwrap();
                settee::http::serve(listener, settee, config).await.unwrap();
            });
        });
        Server {
            client: Client {
                port: rx.recv().unwrap(),
            },
            _dir: dir,
        }
    }
}

impl Client {
    /// Sends a request; `auth` is Basic credentials, `headers` extra headers.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        auth: Option<(&str, &str)>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        if let Some((u, p)) = auth {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            head.push_str(&format!("Authorization: Basic {token}\r\n"));
        }
        let has_ctype = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        if body.is_some() && !has_ctype {
            head.push_str("Content-Type: application/json\r\n");
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = body.unwrap_or(b"");
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        Response::parse(&raw)
    }

    /// A JSON request as the admin.
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Response {
        let bytes = body.map(|b| serde_json::to_vec(&b).unwrap());
        self.send(method, path, bytes.as_deref(), Some(ADMIN), &[])
    }

    /// A JSON request as `user` (`None`: anonymous).
    pub fn as_user(
        &self,
        user: Option<(&str, &str)>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let bytes = body.map(|b| serde_json::to_vec(&b).unwrap());
        self.send(method, path, bytes.as_deref(), user, &[])
    }
}

/// A response: status, headers (lowercase names) and body text.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
}

impl Response {
    fn parse(raw: &[u8]) -> Response {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("response head");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let mut body = raw[split + 4..].to_vec();
        if headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v == "chunked")
        {
            body = dechunk(&body);
        }
        Response {
            status,
            headers,
            text: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `name=value` part of the session cookie this response sets.
    pub fn session_cookie(&self) -> String {
        let set_cookie = self.header("set-cookie").expect("a Set-Cookie header");
        set_cookie.split(';').next().unwrap_or_default().to_owned()
    }

    /// Asserts a CouchDB error answer.
    pub fn assert_error(&self, status: u16, error: &str, reason: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        let body = self.json();
        assert_eq!(body["error"], error, "{}", self.text);
        assert_eq!(body["reason"], reason, "{}", self.text);
    }
}

/// The complete chunks of a chunked body (an incomplete last chunk is left out).
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 || data.len() < eol + 2 + size + 2 {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
    out
}

/// An open streaming response (a continuous or longpoll feed) read as it
/// arrives.
pub struct Stream {
    stream: TcpStream,
    raw: Vec<u8>,
}

impl Client {
    /// Sends a GET as the admin and returns the connection unread.
    pub fn open_stream(&self, path: &str) -> Stream {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", ADMIN.0, ADMIN.1));
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Basic {token}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        Stream {
            stream,
            raw: Vec::new(),
        }
    }
}

impl Stream {
    /// Reads for `wait` (or until the server closes) and returns the
    /// status and the body received so far (complete chunks only).
    pub fn read_for(&mut self, wait: std::time::Duration) -> (u16, String) {
        let deadline = std::time::Instant::now() + wait;
        let mut buf = [0u8; 4096];
        loop {
            let now = std::time::Instant::now();
            if now >= deadline {
                break;
            }
            self.stream.set_read_timeout(Some(deadline - now)).unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.raw.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) => panic!("read: {e}"),
            }
        }
        self.body()
    }

    /// Reads until the body contains `needle` or `wait` has passed.
    pub fn read_until(&mut self, needle: &str, wait: std::time::Duration) -> (u16, String) {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let (status, body) = self.read_for(std::time::Duration::from_millis(50));
            if body.contains(needle) || std::time::Instant::now() >= deadline {
                return (status, body);
            }
        }
    }

    fn body(&self) -> (u16, String) {
        let Some(split) = self.raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            return (0, String::new());
        };
        let head = String::from_utf8_lossy(&self.raw[..split]);
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = dechunk(&self.raw[split + 4..]);
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}
