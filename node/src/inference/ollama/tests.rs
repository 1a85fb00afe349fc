use super::*;
use std::net::TcpListener;
use std::sync::mpsc;

/// A one-shot HTTP server on 127.0.0.1: hands the raw request to the test and answers `reply`.
fn serve_once(reply: Vec<u8>) -> (String, mpsc::Receiver<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        // Read head and a Content-Length body.
        loop {
            let n = s.read(&mut buf).unwrap();
            req.extend_from_slice(&buf[..n]);
            if let Some(end) = header_end(&req) {
                let (len, _) = headers(&req, end);
                if req.len() >= end + len.unwrap_or(0) {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        s.write_all(&reply).unwrap();
        tx.send(req).unwrap();
    });
    (url, rx)
}

#[test]
fn posts_generate_and_trims_the_reply() {
    let body = r#"{"model":"m","response":"  4\n","done":true}"#;
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (url, rx) = serve_once(reply.into_bytes());
    let out = Ollama::new(url)
        .generate("llama3.2:1b", "What is 2+2?")
        .unwrap();
    assert_eq!(out, "4");
    let req = String::from_utf8(rx.recv().unwrap()).unwrap();
    assert!(req.starts_with("POST /api/generate HTTP/1.1\r\n"), "{req}");
    let json_start = req.find("\r\n\r\n").unwrap() + 4;
    let sent: serde_json::Value = serde_json::from_str(&req[json_start..]).unwrap();
    assert_eq!(
        sent,
        serde_json::json!({"model": "llama3.2:1b", "prompt": "What is 2+2?", "stream": false})
    );
}

#[test]
fn chunked_body_is_decoded() {
    let reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"res\r\n10\r\nponse\":\"chunky\"}\r\n0\r\n\r\n".to_vec();
    let (url, _rx) = serve_once(reply);
    assert_eq!(Ollama::new(url).generate("m", "p").unwrap(), "chunky");
}

#[test]
fn errors_match_the_poc_wording() {
    let (url, _rx) = serve_once(
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 26\r\n\r\n{\"error\":\"model missing\"}\n"
            .to_vec(),
    );
    let e = Ollama::new(url).generate("m", "p").unwrap_err();
    assert_eq!(e.to_string(), "HTTP 404: {\"error\":\"model missing\"}\n");
    let (url, _rx) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_vec());
    assert_eq!(
        Ollama::new(url).generate("m", "p").unwrap_err().to_string(),
        "Ollama returned no response"
    );
    assert!(
        Ollama::new("https://x")
            .generate("m", "p")
            .unwrap_err()
            .to_string()
            .contains("https")
    );
}

#[test]
fn silent_server_times_out() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let e = Ollama::new(url)
        .with_timeout(Duration::from_millis(300))
        .generate("m", "p")
        .unwrap_err();
    assert!(matches!(e, OllamaError::Timeout), "{e}");
    drop(l);
}

#[test]
fn closed_port_is_an_io_error() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let e = Ollama::new(url).generate("m", "p").unwrap_err();
    assert!(matches!(e, OllamaError::Io { .. }), "{e}");
}
