//! Retention: deletes messages, uploads (rows and files) and audit entries
//! older than their configured windows. Deletions go in small batches, each
//! its own short transaction, with a pause between, so the writer thread
//! and readers never wait long behind a sweep.
//!
//! A file and its message go together: an expired upload takes the message
//! that carries it, and an expired message takes the upload it carries.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Retention;
use crate::db::{self, audit, messages, now_ms, uploads, DbError, Pool};

/// Rows deleted per transaction.
const BATCH: u32 = 500;
/// Uploads per transaction: each one looks up its message first.
const UPLOAD_BATCH: u32 = 50;
/// Time given back to the writer between two batches.
const PAUSE: Duration = Duration::from_millis(20);

/// What one sweep deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub messages: usize,
    pub uploads: usize,
    pub audit: usize,
}

impl Swept {
    pub fn is_empty(&self) -> bool {
        *self == Swept::default()
    }
}

/// One batch's deletions, and whether it was full (more may be waiting).
struct Batch {
    swept: Swept,
    full: bool,
}

/// Deletes everything past its window. Uploads go first, so each takes its
/// message while the message is still there to find.
pub async fn sweep(pool: &Pool, retention: Retention, uploads_dir: &Path) -> Result<Swept, DbError> {
    let mut swept = Swept::default();
    if let Some(window) = retention.uploads {
        let before = cutoff(window);
        add(
            &mut swept,
            in_batches(|| expire_uploads(pool, before, uploads_dir.to_owned())).await?,
        );
    }
    if let Some(window) = retention.messages {
        let before = cutoff(window);
        add(
            &mut swept,
            in_batches(|| expire_messages(pool, before, uploads_dir.to_owned())).await?,
        );
    }
    if let Some(window) = retention.audit {
        let before = cutoff(window);
        add(&mut swept, in_batches(|| expire_audit(pool, before)).await?);
    }
    Ok(swept)
}

fn cutoff(window: Duration) -> i64 {
    now_ms().saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX))
}

fn add(total: &mut Swept, more: Swept) {
    total.messages += more.messages;
    total.uploads += more.uploads;
    total.audit += more.audit;
}

/// Runs `batch` until one is not full, pausing between batches.
async fn in_batches<F, Fut>(mut batch: F) -> Result<Swept, DbError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Batch, DbError>>,
{
    let mut swept = Swept::default();
    loop {
        let done = batch().await?;
        add(&mut swept, done.swept);
        if !done.full {
            return Ok(swept);
        }
        actix_web::rt::time::sleep(PAUSE).await;
    }
}

async fn expire_uploads(pool: &Pool, before: i64, dir: PathBuf) -> Result<Batch, DbError> {
    db::run(pool, move |conn| {
        let expired = uploads::expired(conn, before, UPLOAD_BATCH)?;
        // Found outside the write transaction: the lookup reads, the delete is short.
        let mut carriers = Vec::new();
        for upload in &expired {
            carriers.extend(messages::carrying_upload(conn, upload.id, upload.created_at)?);
        }
        let ids: Vec<i64> = expired.iter().map(|u| u.id).collect();
        let (files, deleted) = db::immediate(conn, |tx| {
            Ok::<_, DbError>((uploads::delete(tx, &ids)?, messages::delete_ids(tx, &carriers)?))
        })?;
        Ok(files_and_messages_gone(
            &dir,
            &files,
            deleted,
            expired.len() == UPLOAD_BATCH as usize,
        ))
    })
    .await
}

async fn expire_messages(pool: &Pool, before: i64, dir: PathBuf) -> Result<Batch, DbError> {
    db::run(pool, move |conn| {
        let (deleted, files) = db::immediate(conn, |tx| {
            let (deleted, carried) = messages::delete_expired(tx, before, BATCH)?;
            Ok::<_, DbError>((deleted, uploads::delete(tx, &carried)?))
        })?;
        Ok(files_and_messages_gone(
            &dir,
            &files,
            deleted,
            deleted == BATCH as usize,
        ))
    })
    .await
}

async fn expire_audit(pool: &Pool, before: i64) -> Result<Batch, DbError> {
    db::run(pool, move |conn| {
        let deleted = audit::delete_expired(conn, before, BATCH)?;
        Ok(Batch {
            swept: Swept {
                audit: deleted,
                ..Swept::default()
            },
            full: deleted == BATCH as usize,
        })
    })
    .await
}

/// After the commit of a batch that deleted `messages` and the uploads whose
/// files are `files`: removes the files and counts the batch.
fn files_and_messages_gone(dir: &Path, files: &[String], messages: usize, full: bool) -> Batch {
    remove_files(dir, files);
    Batch {
        swept: Swept {
            messages,
            uploads: files.len(),
            audit: 0,
        },
        full,
    }
}

/// Removes the files of deleted uploads (after the commit: a crash between
/// the two leaves a stray file, never a row without its file).
fn remove_files(dir: &Path, names: &[String]) {
    for name in names {
        // Stored names are random tokens; anything else is not ours to remove.
        if Path::new(name).file_name().and_then(|n| n.to_str()) != Some(name.as_str()) {
            tracing::warn!(
                name,
                "an upload's stored name is not a plain file name: file left alone"
            );
            continue;
        }
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(%error, name, "cannot remove an expired upload's file"),
        }
    }
}
