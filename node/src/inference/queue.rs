//! A bounded queue in front of the backend.
//!
//! One worker thread owns the backend and answers requests one at a time, in the order they
//! arrived (on a small CPU machine, running generations side by side only slows each down). At
//! most `limit` requests wait behind the one being answered; a request that finds the queue full
//! is refused at once with a reason instead of waiting without bound. The JS POC starts every
//! request immediately and has no bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use super::backend::{Infer, InferError, Reply};

/// Default number of waiting requests (config `inference_queue_limit`).
pub const DEFAULT_LIMIT: usize = 8;

type Done = Box<dyn FnOnce(Result<Reply, InferError>) + Send>;

struct Job {
    prompt: String,
    model: Option<String>,
    done: Done,
}

/// The queue and its worker.
pub struct RequestQueue {
    tx: Option<SyncSender<Job>>,
    worker: Option<JoinHandle<()>>,
    waiting: Arc<AtomicUsize>,
    limit: usize,
}

impl std::fmt::Debug for RequestQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestQueue")
            .field("limit", &self.limit)
            .field("waiting", &self.waiting.load(Ordering::SeqCst))
            .finish()
    }
}

impl RequestQueue {
    /// Starts a worker owning `backend`, with room for `limit` waiting requests (at least 1).
    pub fn new(mut backend: Box<dyn Infer>, limit: usize) -> Self {
        let limit = limit.max(1);
        let (tx, rx) = sync_channel::<Job>(limit);
        let waiting = Arc::new(AtomicUsize::new(0));
        let w = Arc::clone(&waiting);
        let worker = std::thread::Builder::new()
            .name("inference".to_owned())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    w.fetch_sub(1, Ordering::SeqCst);
                    let r = backend.infer(&job.prompt, job.model.as_deref());
                    (job.done)(r);
                }
            })
            .ok();
        RequestQueue {
            tx: Some(tx),
            worker,
            waiting,
            limit,
        }
    }

    /// Queues a request; `done` is called on the worker thread with the answer. When the queue
    /// is full (or the worker is gone) `done` is called at once, here, with the reason.
    pub fn submit(&self, prompt: String, model: Option<String>, done: Done) {
        let Some(tx) = &self.tx else {
            done(Err(InferError::WorkerGone));
            return;
        };
        self.waiting.fetch_add(1, Ordering::SeqCst);
        match tx.try_send(Job {
            prompt,
            model,
            done,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                let waiting = self.waiting.fetch_sub(1, Ordering::SeqCst) - 1;
                (job.done)(Err(InferError::QueueFull {
                    waiting,
                    limit: self.limit,
                }));
            }
            Err(TrySendError::Disconnected(job)) => {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                (job.done)(Err(InferError::WorkerGone));
            }
        }
    }

    /// Stops taking requests and waits until every queued one is answered.
    pub fn finish(mut self) {
        self.tx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Drop for RequestQueue {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::mpsc::{Receiver, Sender, channel};

    /// Answers `prompt` with itself, but only after the test releases it.
    struct Gated {
        started: Sender<String>,
        release: Arc<Mutex<Receiver<()>>>,
    }

    impl Infer for Gated {
        fn infer(&mut self, prompt: &str, _m: Option<&str>) -> Result<Reply, InferError> {
            self.started.send(prompt.to_owned()).unwrap();
            self.release.lock().unwrap().recv().unwrap();
            Ok(Reply {
                text: prompt.to_owned(),
                model: "gated".into(),
                backend: "echo",
            })
        }
    }

    #[test]
    fn answers_in_order_and_refuses_beyond_the_bound() {
        let (started_tx, started) = channel();
        let (release, release_rx) = channel();
        let q = RequestQueue::new(
            Box::new(Gated {
                started: started_tx,
                release: Arc::new(Mutex::new(release_rx)),
            }),
            2,
        );
        let (answers_tx, answers) = channel::<(usize, Result<Reply, InferError>)>();
        let submit = |i: usize| {
            let tx = answers_tx.clone();
            q.submit(
                format!("p{i}"),
                None,
                Box::new(move |r| tx.send((i, r)).unwrap()),
            );
        };
        submit(0);
        // p0 is being answered; two more may wait; the fourth is refused at once.
        assert_eq!(started.recv().unwrap(), "p0");
        submit(1);
        submit(2);
        submit(3);
        let (i, r) = answers.recv().unwrap();
        assert_eq!(i, 3);
        let e = r.unwrap_err().to_string();
        assert!(e.contains("queue limit 2"), "{e}");
        for _ in 0..3 {
            release.send(()).unwrap();
        }
        let order: Vec<_> = (0..3)
            .map(|_| answers.recv().unwrap())
            .map(|(i, r)| (i, r.unwrap().text))
            .collect();
        assert_eq!(
            order,
            vec![(0, "p0".into()), (1, "p1".into()), (2, "p2".into())]
        );
        q.finish();
    }
}
