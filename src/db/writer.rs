//! The one writer thread for the realtime path: chat messages and audit
//! events from the actors are committed in batches on a dedicated
//! connection, and each message is handed back only after its commit, so
//! nothing is delivered that a crash could lose.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::audit::Event;
use super::messages::{self, Message, NewMessage};
use super::{DbError, Pool};
use crate::metrics::Metrics;

/// Jobs waiting beyond this are refused (the sender is told the server is busy).
const QUEUE_CAPACITY: usize = 16_384;
/// At most this many jobs share one transaction.
const MAX_BATCH: usize = 512;
/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

type Done = Box<dyn FnOnce(Result<Message, DbError>) + Send>;

enum Job {
    /// Boxed: the queue's slots are allocated up front, so they stay small.
    Message {
        message: Box<NewMessage>,
        done: Done,
    },
    Audit(Box<Event>),
    Flush(tokio::sync::oneshot::Sender<()>),
}

#[derive(Debug, thiserror::Error)]
#[error("the database writer is saturated")]
pub struct Busy;

#[derive(Clone)]
pub struct Writer {
    jobs: SyncSender<Job>,
    /// Its queue depth and commit latency are reported there.
    metrics: Arc<Metrics>,
    /// Dropped with the last handle, which ends the checkpoint thread.
    _alive: Arc<SyncSender<()>>,
}

impl Writer {
    /// Starts the writer thread on its own pooled connection. The thread
    /// ends when the last handle is dropped; [`flush`](Self::flush) is how
    /// shutdown waits for it.
    pub fn start(pool: Pool, metrics: Arc<Metrics>) -> Result<Writer, DbError> {
        let conn = pool.get()?;
        let checkpoints = pool.get()?;
        let (jobs, queue) = sync_channel(QUEUE_CAPACITY);
        let (alive, stopped) = sync_channel::<()>(0);
        let reported = metrics.clone();
        spawn("db-writer", move || run(&conn, &queue, &reported))?;
        spawn("db-checkpoint", move || checkpoint_until(&checkpoints, &stopped))?;
        Ok(Writer {
            jobs,
            metrics,
            _alive: Arc::new(alive),
        })
    }

    /// Queues `job` unless the queue is full, counting it in the depth.
    fn enqueue(&self, job: Job) -> Result<(), TrySendError<Job>> {
        self.metrics.writer_queue.fetch_add(1, Ordering::Relaxed);
        self.jobs.try_send(job).inspect_err(|_| {
            self.metrics.writer_queue.fetch_sub(1, Ordering::Relaxed);
        })
    }

    /// Stores `message`; `done` runs on the writer thread after the commit.
    pub fn store_message(
        &self,
        message: NewMessage,
        done: impl FnOnce(Result<Message, DbError>) + Send + 'static,
    ) -> Result<(), Busy> {
        self.enqueue(Job::Message {
            message: Box::new(message),
            done: Box::new(done),
        })
        .map_err(|_| Busy)
    }

    /// Records an audit event without waiting for it.
    pub fn audit(&self, event: Event) {
        match self.enqueue(Job::Audit(Box::new(event))) {
            Ok(()) => {}
            Err(TrySendError::Full(Job::Audit(event))) => tracing::error!(?event, "audit queue full: event dropped"),
            Err(_) => tracing::error!("the database writer has stopped: audit event dropped"),
        }
    }

    /// Waits until everything queued before this call is committed.
    pub async fn flush(&self) {
        self.round_trip().await;
    }

    /// Like [`flush`](Self::flush), and says whether the writer thread
    /// answered: false once it is gone.
    pub async fn round_trip(&self) -> bool {
        let (ack, done) = tokio::sync::oneshot::channel();
        let (jobs, metrics) = (self.jobs.clone(), self.metrics.clone());
        // The queue may be full: wait for room off the async workers.
        let queued = actix_web::web::block(move || {
            metrics.writer_queue.fetch_add(1, Ordering::Relaxed);
            let sent = jobs.send(Job::Flush(ack)).is_ok();
            if !sent {
                metrics.writer_queue.fetch_sub(1, Ordering::Relaxed);
            }
            sent
        })
        .await;
        matches!(queued, Ok(true)) && done.await.is_ok()
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<(), DbError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .map(|_| ())
        .map_err(|e| DbError::Schema(format!("cannot start the {name} thread: {e}")))
}

/// A passive checkpoint every second (it never blocks writers), until the
/// writer is gone. The connection reads the database first: SQLite opens a
/// connection's WAL on its first read, and until then a checkpoint on it
/// silently does nothing, so the WAL would grow for as long as the server
/// runs.
fn checkpoint_until(conn: &Connection, stopped: &Receiver<()>) {
    if let Err(error) = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())) {
        tracing::error!(%error, "cannot read the database: WAL checkpoints are off");
    }
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "WAL checkpoint failed");
        }
    }
}

fn run(conn: &Connection, queue: &Receiver<Job>, metrics: &Metrics) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        metrics.writer_queue.fetch_sub(batch.len() as i64, Ordering::Relaxed);
        let started = Instant::now();
        commit(conn, batch);
        metrics.writer_commit.observe(started.elapsed());
    }
}

/// Writes a batch in one transaction, then answers every job in it.
fn commit(conn: &Connection, batch: Vec<Job>) {
    let outcome = write_all(conn, &batch);
    let mut stored = match outcome {
        Ok(stored) => stored.into_iter(),
        Err(e) => {
            tracing::error!(error = %e, jobs = batch.len(), "a write batch failed");
            Vec::new().into_iter()
        }
    };
    for job in batch {
        match job {
            Job::Message { done, .. } => done(stored.next().ok_or_else(|| DbError::Schema("write failed".into()))),
            Job::Flush(ack) => {
                let _ = ack.send(());
            }
            Job::Audit(_) => {}
        }
    }
}

fn write_all(conn: &Connection, batch: &[Job]) -> Result<Vec<Message>, DbError> {
    let tx = conn.unchecked_transaction()?;
    let mut stored = Vec::new();
    for job in batch {
        match job {
            Job::Message { message, .. } => stored.push(messages::insert(&tx, message)?),
            Job::Audit(event) => event.record(&tx)?,
            Job::Flush(_) => {}
        }
    }
    tx.commit()?;
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{self, users};
    use crate::ids::RoomCode;

    #[actix_web::test]
    async fn messages_are_answered_after_commit_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let pool = db::open(&dir.path().join("w.db")).unwrap();
        let user = users::create_guest(&pool.get().unwrap(), "ann", "Ann").unwrap();
        let writer = Writer::start(pool.clone(), Arc::default()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for i in 0..100 {
            let tx = tx.clone();
            let message = NewMessage {
                room_id: 1,
                room: RoomCode::lobby(),
                user_id: user,
                username: "ann".into(),
                display_name: "Ann".into(),
                text: format!("m{i}"),
                ip: "127.0.0.1".into(),
                nonce: None,
                attachment: None,
            };
            writer
                .store_message(message, move |stored| tx.send(stored.unwrap()).unwrap())
                .unwrap();
        }
        writer.audit(Event::new("room_join").room("lobby"));
        writer.flush().await;
        let ids: Vec<i64> = rx.try_iter().map(|m| m.id).collect();
        assert_eq!(ids.len(), 100);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "commit order is send order");
        let conn = pool.get().unwrap();
        let count: i64 = conn
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 100);
        let audits: i64 = conn
            .query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))
            .unwrap();
        assert_eq!(audits, 1);
    }

    #[test]
    fn the_checkpoint_thread_copies_the_wal_into_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let pool = db::open(&path).unwrap();
        // A fresh database's schema is still only in the WAL.
        let before = std::fs::metadata(&path).unwrap().len();
        let _writer = Writer::start(pool, Arc::default()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::fs::metadata(&path).unwrap().len() <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "nothing was checkpointed: the WAL would grow for as long as the server runs"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
