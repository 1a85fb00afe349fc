use std::sync::mpsc::{Receiver, channel};

use serde_json::{Value, json};

use super::*;
use crate::cli::Env;
use crate::inference::backend::Backend;
use crate::protocol::parse_line;

fn echo_queue(limit: usize) -> RequestQueue {
    let b = Backend::from_env(
        &Env::from_pairs([
            ("POC_INFERENCE_BACKEND", "echo"),
            ("OPENGATEWAY_MODEL_DIR", "/nonexistent"),
        ]),
        None,
    )
    .unwrap();
    RequestQueue::new(Box::new(b), limit)
}

fn request(line: &str) -> InferenceRequest {
    match parse_line(line.as_bytes()) {
        Some(crate::protocol::Incoming::InferenceRequest(r)) => r,
        other => panic!("not a request: {other:?}"),
    }
}

fn sink() -> (Send, Receiver<Value>) {
    let (tx, rx) = channel();
    (
        Box::new(move |l: String| {
            assert!(l.ends_with('\n'));
            tx.send(serde_json::from_str(&l).unwrap()).is_ok()
        }),
        rx,
    )
}

#[test]
fn streamed_request_gets_ordered_chunks_then_the_whole_text() {
    let q = echo_queue(4);
    let (send, rx) = sink();
    answer(
        &q,
        request(r#"{"type":"inference_request","request_id":"r1","prompt":"a b c","stream":true}"#),
        send,
    );
    let mut deltas = String::new();
    let mut index = 0;
    let last = loop {
        let v = rx.recv().unwrap();
        if v["type"] == "inference_chunk" {
            assert_eq!(v["request_id"], "r1");
            assert_eq!(v["index"], index);
            index += 1;
            deltas.push_str(v["delta"].as_str().unwrap());
        } else {
            break v;
        }
    };
    assert_eq!(index, 4, "[echo] a b c is four words");
    assert_eq!(
        last,
        json!({"type": "inference_response", "request_id": "r1", "response": deltas, "model": "echo"})
    );
    assert_eq!(deltas, "[echo] a b c");
    q.finish();
}

#[test]
fn poc_request_gets_one_response_and_a_full_queue_an_error_response() {
    let q = echo_queue(1);
    let (send, rx) = sink();
    answer(
        &q,
        request(r#"{"type":"inference_request","request_id":7,"prompt":"hi"}"#),
        send,
    );
    assert_eq!(
        rx.recv().unwrap(),
        json!({"type": "inference_response", "request_id": 7, "response": "[echo] hi", "model": "echo"})
    );
    assert!(rx.try_recv().is_err(), "no chunk lines for a POC request");
    q.finish();

    // A queue that refuses: one request running (held), one waiting, the third is refused.
    let (started_tx, started) = channel();
    let (release, release_rx) = channel::<()>();
    let q = RequestQueue::new(
        Box::new(Held {
            started: started_tx,
            release: release_rx,
        }),
        1,
    );
    let (s1, r1) = sink();
    let (s2, r2) = sink();
    let (s3, r3) = sink();
    answer(
        &q,
        request(r#"{"type":"inference_request","request_id":1,"prompt":"a"}"#),
        s1,
    );
    started.recv().unwrap();
    answer(
        &q,
        request(r#"{"type":"inference_request","request_id":2,"prompt":"b"}"#),
        s2,
    );
    answer(
        &q,
        request(r#"{"type":"inference_request","request_id":3,"prompt":"c","stream":true}"#),
        s3,
    );
    let v = r3
        .try_recv()
        .expect("refused at once, on the caller's thread");
    assert_eq!(v["type"], "inference_response");
    assert!(
        v["response"]
            .as_str()
            .unwrap()
            .starts_with("[error] busy: "),
        "{v}"
    );
    assert!(v.get("model").is_none());
    assert!(r3.try_recv().is_err());
    release.send(()).unwrap();
    release.send(()).unwrap();
    assert_eq!(r1.recv().unwrap()["response"], "a");
    assert_eq!(r2.recv().unwrap()["response"], "b");
    q.finish();
}

struct Held {
    started: std::sync::mpsc::Sender<()>,
    release: Receiver<()>,
}

impl crate::inference::backend::Infer for Held {
    fn infer(
        &mut self,
        prompt: &str,
        _model: Option<&str>,
    ) -> Result<crate::inference::backend::Reply, InferError> {
        let _ = self.started.send(());
        self.release.recv().map_err(|_| InferError::WorkerGone)?;
        Ok(crate::inference::backend::Reply {
            text: prompt.to_owned(),
            model: "held".into(),
            backend: "echo",
        })
    }
}
