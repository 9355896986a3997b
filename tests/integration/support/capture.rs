//! A capturing HTTP/1.1 server for receiver tests: records every request
//! (method, path, headers, body) with the status it answered, answers from a
//! script (then a default), can hang instead of answering, and can stop
//! listening (connections refused) and start again on the same port.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code; 0 means hang without answering.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

impl Reply {
    /// A status with an empty body.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    /// A JSON body with status 200.
    pub fn json(body: &str) -> Reply {
        Reply {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
        }
    }

    /// Never answer (the request is recorded).
    pub fn hang() -> Reply {
        Reply::status(0)
    }

    /// Adds a header.
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
}

/// A recorded request.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
    /// Status answered (0: none).
    pub answered: u16,
    /// When it arrived (tokio clock).
    pub at: tokio::time::Instant,
}

impl Captured {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether it was accepted (2xx).
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.answered)
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Captured>,
    script: VecDeque<Reply>,
    default: Option<Reply>,
}

/// The server.
#[derive(Clone)]
pub struct Capture {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Capture {
    /// Starts on a free port, answering 200 `{}` by default.
    pub async fn start() -> Capture {
        Capture::start_on("127.0.0.1").await
    }

    /// Starts on a free port of another loopback address (`127.0.0.2` is
    /// "another host"), answering 200 `{}` by default.
    pub async fn start_on(ip: &str) -> Capture {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let c = Capture {
            addr: listener.local_addr().unwrap(),
            state: Arc::default(),
            task: Arc::default(),
        };
        c.state.lock().unwrap().default = Some(Reply::json("{}"));
        c.serve(listener);
        c
    }

    fn serve(&self, listener: TcpListener) {
        let me = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let me = me.clone();
                tokio::spawn(async move { me.handle(stream).await });
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Stops listening: new connections are refused.
    pub fn stop(&self) {
        if let Some(t) = self.task.lock().unwrap().take() {
            t.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot rebind {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    /// Queues answers for the next requests.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    /// Sets the answer once the script is used up.
    pub fn default_reply(&self, reply: Reply) {
        self.state.lock().unwrap().default = Some(reply);
    }

    /// `http://127.0.0.1:port{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Captured> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The accepted requests so far.
    pub fn accepted(&self) -> Vec<Captured> {
        self.requests()
            .into_iter()
            .filter(|r| r.accepted())
            .collect()
    }

    /// Waits (up to `limit`) until `n` requests were accepted.
    pub async fn wait_accepted(&self, n: usize, limit: Duration) -> Vec<Captured> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let got = self.accepted();
            if got.len() >= n {
                return got;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {n} accepted requests; got {}: {:#?}",
                    got.len(),
                    self.requests()
                        .iter()
                        .map(|r| (r.method.clone(), r.path.clone(), r.answered))
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn handle(&self, mut stream: TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("");
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
        let reply = {
            let mut s = self.state.lock().unwrap();
            let reply = s
                .script
                .pop_front()
                .or_else(|| s.default.clone())
                .unwrap_or_else(|| Reply::status(200));
            s.requests.push(Captured {
                method,
                path,
                headers,
                body,
                answered: reply.status,
                at: tokio::time::Instant::now(),
            });
            reply
        };
        if reply.status == 0 {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        let mut response = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
            reply.status,
            reply.body.len()
        );
        for (k, v) in &reply.headers {
            response.push_str(&format!("{k}: {v}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(&reply.body);
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}
