//! A bounded loopback load generator for `settee serve`: requests per second
//! and latency percentiles for a single-document GET, a 100-row page
//! (`_all_docs?limit=100`, and a view page when views are served) and a
//! 1,000-document `_bulk_docs`. Each scenario stops at its request count or
//! time budget, whichever comes first.
//!
//! `cargo bench --bench http_load` (builds with the bench profile).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use settee::http::HttpConfig;
use settee::server::Settee;

const AUTH: (&str, &str) = ("admin", "password");

/// A keep-alive HTTP/1.1 connection.
struct Conn {
    reader: BufReader<TcpStream>,
    auth: String,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", AUTH.0, AUTH.1));
        Conn {
            reader: BufReader::new(stream),
            auth: format!("Basic {token}"),
        }
    }

    fn request(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, Vec<u8>) {
        let body = body.unwrap_or(b"");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.auth,
            body.len()
        );
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap();
                }
            }
        }
        let mut out = vec![0; length];
        self.reader.read_exact(&mut out).unwrap();
        (status, out)
    }
}

/// Builds the i-th request: method, path and optional body.
type RequestMaker = Arc<dyn Fn(usize) -> (String, String, Option<Vec<u8>>) + Send + Sync>;

struct Scenario<'a> {
    name: &'a str,
    clients: usize,
    max_requests: usize,
    budget: Duration,
}

/// Runs `make_request(client, i)` from several clients and prints the figures.
fn run(port: u16, s: Scenario<'_>, make: RequestMaker) {
    let started = Instant::now();
    let per_client = s.max_requests.div_ceil(s.clients);
    let handles: Vec<_> = (0..s.clients)
        .map(|c| {
            let make = make.clone();
            let budget = s.budget;
            std::thread::spawn(move || {
                let mut conn = Conn::open(port);
                let mut latencies = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    if started.elapsed() > budget {
                        break;
                    }
                    let (method, path, body) = make(c * per_client + i);
                    let t = Instant::now();
                    let (status, _) = conn.request(&method, &path, body.as_deref());
                    latencies.push(t.elapsed());
                    assert!(status < 300, "{method} {path}: {status}");
                }
                latencies
            })
        })
        .collect();
    let mut all: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "{:<34} {:>6} req in {:>5.2}s  {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} clients)",
        s.name,
        all.len(),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        s.clients
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let settee = Arc::new(Settee::open(dir.path()).unwrap());
    settee.admins().set(AUTH.0, AUTH.1).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            settee::http::serve(listener, settee, HttpConfig::default())
                .await
                .unwrap();
        });
    });
    let port = rx.recv().unwrap();
    let mut setup = Conn::open(port);
    setup.request("PUT", "/bench", None);
    let docs: Vec<Value> = (0..10_000)
        .map(|i| {
            let kind = ["a", "b", "c"][i % 3];
            json!({"_id": format!("doc{i:05}"), "n": i, "type": kind, "text": "lorem ipsum dolor"})
        })
        .collect();
    for chunk in docs.chunks(2_000) {
        let body = serde_json::to_vec(&json!({ "docs": chunk })).unwrap();
        setup.request("POST", "/bench/_bulk_docs", Some(&body));
    }
    let ddoc = json!({"views": {"by_n": {"map": "function(doc) { emit(doc.n, doc.type); }"}}});
    setup.request(
        "PUT",
        "/bench/_design/b",
        Some(&serde_json::to_vec(&ddoc).unwrap()),
    );

    run(
        port,
        Scenario {
            name: "GET /bench/{docid}",
            clients: 4,
            max_requests: 20_000,
            budget: Duration::from_secs(10),
        },
        Arc::new(|i| {
            (
                "GET".into(),
                format!("/bench/doc{:05}", (i * 7919) % 10_000),
                None,
            )
        }),
    );
    run(
        port,
        Scenario {
            name: "GET _all_docs?limit=100 (100 rows)",
            clients: 4,
            max_requests: 4_000,
            budget: Duration::from_secs(10),
        },
        Arc::new(|i| {
            (
                "GET".into(),
                format!(
                    "/bench/_all_docs?limit=100&startkey=%22doc{:05}%22",
                    (i * 97) % 9_900
                ),
                None,
            )
        }),
    );
    let (view_status, _) = setup.request("GET", "/bench/_design/b/_view/by_n?limit=1", None);
    if view_status == 200 {
        run(
            port,
            Scenario {
                name: "GET _view?limit=100 (100 rows)",
                clients: 4,
                max_requests: 4_000,
                budget: Duration::from_secs(10),
            },
            Arc::new(|i| {
                (
                    "GET".into(),
                    format!(
                        "/bench/_design/b/_view/by_n?limit=100&startkey={}",
                        (i * 97) % 9_900
                    ),
                    None,
                )
            }),
        );
    } else {
        println!("GET _view?limit=100: skipped, views answer {view_status} in this build");
    }
    run(
        port,
        Scenario {
            name: "POST _bulk_docs (1,000 new docs)",
            clients: 1,
            max_requests: 30,
            budget: Duration::from_secs(15),
        },
        Arc::new(|i| {
            let docs: Vec<Value> = (0..1_000)
                .map(|j| json!({"_id": format!("bulk{i:03}-{j:04}"), "n": j}))
                .collect();
            (
                "POST".into(),
                "/bench/_bulk_docs".into(),
                Some(serde_json::to_vec(&json!({ "docs": docs })).unwrap()),
            )
        }),
    );
}
