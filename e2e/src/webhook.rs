//! A webhook endpoint the tests run on loopback, for notification-controller's providers to
//! post to: pods reach it through the cluster's gateway (`hack/cluster-up.sh --expose
//! 127.0.0.1:PORT`). It records every request (path, headers, body) and answers 200.
//! Also the other direction's helpers: HMAC signatures as Git hosts sign webhook calls, and a
//! plain HTTP POST to a Receiver.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When its body was read in full.
    pub at: std::time::Instant,
}

impl Delivery {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// The endpoint; stops when dropped.
pub struct Sink {
    pub port: u16,
    received: Arc<Mutex<Vec<Delivery>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the webhook sink");
        let port = listener.local_addr().expect("address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    if let Some(delivery) = serve(stream).await {
                        store.lock().expect("sink lock").push(delivery);
                    }
                });
            }
        });
        Self {
            port,
            received,
            task,
        }
    }

    /// `127.0.0.1:PORT`, for `hack/cluster-up.sh --expose`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What arrived at `path` so far.
    pub fn deliveries(&self, path: &str) -> Vec<Delivery> {
        self.received
            .lock()
            .expect("sink lock")
            .iter()
            .filter(|d| d.path == path)
            .cloned()
            .collect()
    }

    /// Waits for a delivery at `path` whose JSON body satisfies `matches`.
    pub async fn wait_for(
        &self,
        path: &str,
        timeout: Duration,
        what: &str,
        matches: impl Fn(&Value) -> bool,
    ) -> Delivery {
        crate::eventually(timeout, what, || async {
            self.deliveries(path)
                .into_iter()
                .find(|d| matches(&d.json()))
        })
        .await
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP/1.1 request (Content-Length bodies, as Go's client sends them) and answers
/// 200 with the connection closed.
async fn serve(stream: tokio::net::TcpStream) -> Option<Delivery> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line))
        .await
        .ok()?
        .ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).await.ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length.min(16 << 20)];
    reader.read_exact(&mut body).await.ok()?;
    let mut stream = reader.into_inner();
    let _ = stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await;
    Some(Delivery {
        path,
        headers,
        body,
        at: std::time::Instant::now(),
    })
}

/// HMAC-SHA256 (RFC 2104), as GitHub signs webhook payloads and notification-controller's
/// `generic-hmac` provider signs what it posts.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// `sha256=<hex>` of the HMAC, the form of GitHub's `X-Hub-Signature-256` and of
/// notification-controller's `X-Signature`.
pub fn signature_header(key: &[u8], message: &[u8]) -> String {
    let digest = hmac_sha256(key, message);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// `POST http://<addr><path>` with `headers` and `body`; the status code.
pub fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut request = format!(
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let digest = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
