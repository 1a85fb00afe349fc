//! Answering one wire `inference_request` through the queue: the POC's single
//! `inference_response`, or with `"stream": true` our `inference_chunk` lines first. A node's
//! connections (and `opengateway stdio`) use this, so every way in streams alike.

use std::ops::ControlFlow;

use super::backend::InferError;
use super::queue::{Job, RequestQueue};
use super::request::{GenRequest, Input, Sampling};
use crate::jsonfile::js_string;
use crate::protocol::{InferenceRequest, error_response, inference_chunk, inference_response};

/// Where answer lines go; returns false once the peer is gone (a streamed generation then stops).
pub type Send = Box<dyn FnMut(String) -> bool + std::marker::Send>;

/// Queues `req`; every line of the answer (chunks, then the response) goes to `send`. A request
/// refused by a full queue is answered at once, on this thread, with an `[error] busy: ...`
/// response.
pub fn answer(queue: &RequestQueue, req: InferenceRequest, mut send: Send) {
    let job: Job = if req.stream {
        Box::new(move |backend| {
            let g = GenRequest {
                input: Input::user(req.prompt),
                model: req.model,
                sampling: Sampling::default(),
            };
            let mut index = 0u64;
            let mut text = String::new();
            let r = backend.complete(&g, &mut |delta| {
                text.push_str(delta);
                let ok = send(inference_chunk(&req.request_id, delta, index));
                index += 1;
                if ok {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                }
            });
            finish(
                &req.request_id,
                r.map(|c| (text, c.model, c.backend)),
                &mut send,
            );
        })
    } else {
        Box::new(move |backend| {
            let r = backend.infer(&req.prompt, req.model.as_deref());
            finish(
                &req.request_id,
                r.map(|r| (r.text, r.model, r.backend)),
                &mut send,
            );
        })
    };
    queue.submit_job(job);
}

fn finish(
    id: &serde_json::Value,
    r: Result<(String, String, &'static str), InferError>,
    send: &mut Send,
) {
    match r {
        Ok((text, model, backend)) => {
            eprintln!("[request] {} -> {backend}", js_string(id));
            send(inference_response(id, &text, &model));
        }
        Err(e) => {
            eprintln!("[request] {} -> error {e}", js_string(id));
            send(error_response(id, &e.to_string()));
        }
    }
}

#[cfg(test)]
mod tests;
