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

/// Work for the backend: runs on the worker thread with the backend borrowed.
pub type Job = Box<dyn FnOnce(&mut dyn Infer) + Send>;

/// The queue and its worker.
pub struct RequestQueue {
    tx: Option<SyncSender<Job>>,
    worker: Option<JoinHandle<()>>,
    waiting: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
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
        let running = Arc::new(AtomicUsize::new(0));
        let (w, r) = (Arc::clone(&waiting), Arc::clone(&running));
        let worker = std::thread::Builder::new()
            .name("inference".to_owned())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    r.store(1, Ordering::SeqCst);
                    w.fetch_sub(1, Ordering::SeqCst);
                    job(backend.as_mut());
                    r.store(0, Ordering::SeqCst);
                }
            })
            .ok();
        RequestQueue {
            tx: Some(tx),
            worker,
            waiting,
            running,
            limit,
        }
    }

    /// Queues a request; `done` is called on the worker thread with the answer. When the queue
    /// is full (or the worker is gone) `done` is called at once, here, with the reason.
    pub fn submit(&self, prompt: String, model: Option<String>, done: Done) {
        let job: Job = Box::new(move |b: &mut dyn Infer| done(b.infer(&prompt, model.as_deref())));
        self.submit_job(job);
    }

    /// Queues `job`; when it is refused (full queue, worker gone) it runs at once, on this
    /// thread, against a stand-in backend whose every call fails with the reason, so the job
    /// answers its caller the same way in both cases.
    pub fn submit_job(&self, job: Job) {
        if let Err((e, job)) = self.try_submit(job) {
            job(&mut RefuseWith(Some(e)));
        }
    }

    /// Queues `job`; when the queue is full or the worker is gone, hands it back with the
    /// reason (the job has not run).
    pub fn try_submit(&self, job: Job) -> Result<(), (InferError, Job)> {
        let Some(tx) = &self.tx else {
            return Err((InferError::WorkerGone, job));
        };
        self.waiting.fetch_add(1, Ordering::SeqCst);
        match tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job)) => {
                let waiting = self.waiting.fetch_sub(1, Ordering::SeqCst) - 1;
                Err((
                    InferError::QueueFull {
                        waiting,
                        limit: self.limit,
                    },
                    job,
                ))
            }
            Err(TrySendError::Disconnected(job)) => {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                Err((InferError::WorkerGone, job))
            }
        }
    }

    /// Requests waiting behind the one being answered.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Requests being answered now (0 or 1).
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// The most requests that may wait.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Stops taking requests and waits until every queued one is answered.
    pub fn finish(mut self) {
        self.tx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// A stand-in backend that fails every call with one reason: how a refused `submit` delivers
/// its refusal through the same callback as an answer.
struct RefuseWith(Option<InferError>);

impl Infer for RefuseWith {
    fn infer(&mut self, _prompt: &str, _model: Option<&str>) -> Result<Reply, InferError> {
        Err(self.0.take().unwrap_or(InferError::WorkerGone))
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
