//! The argon2 workers: every password hash and verification of the HTTP side runs on a fixed
//! number of dedicated threads fed by a bounded queue. Memory is bounded by it: argon2id at
//! m=19456 KiB needs 19 MiB per running hash; each thread allocates that once and reuses it for
//! every verification (`Scratch`), so `THREADS` threads hold 2 × 19 MiB after the first login and
//! a flood adds nothing. (Allocating per hash on many threads left freed 19 MiB chunks in up to
//! 8 × cores glibc malloc arenas: that is how a flood reached 1.1 GiB and kept it.) A full queue is answered at
//! once (the caller returns 429), never with more threads.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

/// Hashing threads (this box has 2 cores; more would only add memory).
pub const THREADS: usize = 2;
/// Waiting jobs beyond the running ones; at ~30 ms per hash the last waits ~0.25 s.
pub const QUEUE: usize = 16;

/// Memory a hashing thread keeps for argon2 (see `password::verify_password_in`).
pub type Scratch = Vec<argon2::Block>;

type Job = Box<dyn FnOnce(&mut Scratch) + Send>;

/// The queue was full: try again shortly.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("too many password checks at once")]
pub struct Busy;

/// Handle to the workers; they end when the last handle is dropped.
#[derive(Clone)]
pub struct Hasher {
    tx: SyncSender<Job>,
}

impl Hasher {
    pub fn start(threads: usize, queue: usize) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || work(&rx))?;
        }
        Ok(Self { tx })
    }

    /// Runs `f` on a hashing thread; `Err(Busy)` at once if the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Scratch) -> T + Send + 'static,
    ) -> Result<T, Busy> {
        self.submit(f)?.await.map_err(|_| Busy)
    }

    /// Queues `f` without waiting; the receiver yields its result.
    fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Scratch) -> T + Send + 'static,
    ) -> Result<tokio::sync::oneshot::Receiver<T>, Busy> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |scratch| {
            let _ = done.send(f(scratch));
        });
        match self.tx.try_send(job) {
            Ok(()) => Ok(result),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
        }
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    let mut scratch = Scratch::new();
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            rx.recv()
        };
        match job {
            Ok(job) => job(&mut scratch),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Jobs run on the named workers; beyond threads + queue, callers get `Busy` at once.
    #[tokio::test]
    async fn bounded_and_on_the_workers() {
        let h = Hasher::start(1, 1).unwrap();
        let name = h
            .run(|_| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("argon2-0"));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel();
        let blocker = h
            .submit(move |_| {
                started_tx.send(()).unwrap();
                wait.recv().unwrap();
            })
            .unwrap();
        started.recv().unwrap();
        let queued = h.submit(|_| 1).unwrap();
        assert!(
            h.submit(|_| 2).is_err(),
            "one running, one queued: the third is refused"
        );
        release.send(()).unwrap();
        blocker.await.unwrap();
        assert_eq!(queued.await.unwrap(), 1);
    }
}
