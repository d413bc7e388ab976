//! A consistent copy of a live database through SQLite's online backup API.
//! The copy holds one read transaction on the source from start to end, so
//! every page comes from the same snapshot (in WAL mode the server's writer
//! goes on meanwhile, never blocked), and copies in steps with a pause
//! between, leaving the disk to the server.

use std::path::Path;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::DbError;

/// 4 MiB of 4 KiB pages per step.
const PAGES_PER_STEP: i32 = 1024;
const PAUSE: Duration = Duration::from_millis(5);
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What a copy took.
#[derive(Debug, Clone, Copy)]
pub struct Copied {
    pub pages: i64,
    pub steps: u32,
    /// Times SQLite started the copy over because the source changed under
    /// it: none while the snapshot holds.
    pub restarts: u32,
}

/// Copies the database at `source` into a new file `target`. The source
/// must exist and be a Switchboard database; it is only read.
pub fn copy(source: &Path, target: &Path) -> Result<Copied, DbError> {
    let from = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    from.busy_timeout(BUSY_TIMEOUT)?;
    // The first read inside BEGIN fixes the snapshot until COMMIT. Without
    // it each step would take a fresh one, and every write by the server
    // would restart the copy from its first page.
    from.execute_batch("BEGIN")?;
    let version: u32 = from.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == 0 {
        return Err(DbError::Schema(format!(
            "{} is not a Switchboard database",
            source.display()
        )));
    }
    let mut to = Connection::open(target)?;
    let copied = run_steps(&Backup::new(&from, &mut to)?)?;
    from.execute_batch("COMMIT")?;
    integrity_check(&to)?;
    Ok(copied)
}

fn run_steps(backup: &Backup<'_, '_>) -> Result<Copied, DbError> {
    let (mut steps, mut restarts) = (0, 0);
    let mut remaining = i32::MAX;
    loop {
        let step = backup.step(PAGES_PER_STEP)?;
        steps += 1;
        let progress = backup.progress();
        if step == StepResult::Done {
            return Ok(Copied {
                pages: i64::from(progress.pagecount),
                steps,
                restarts,
            });
        }
        if progress.remaining > remaining {
            restarts += 1;
        }
        remaining = progress.remaining;
        // More to copy, or Busy or Locked (passing): go on after the pause.
        std::thread::sleep(PAUSE);
    }
}

/// `PRAGMA integrity_check`: Ok when SQLite answers exactly "ok".
pub fn integrity_check(conn: &Connection) -> Result<(), DbError> {
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let problems = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    if problems == ["ok"] {
        Ok(())
    } else {
        Err(DbError::Schema(format!(
            "the copy fails its integrity check: {}",
            problems.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    /// One write as the server would make it: a row, and a count that must
    /// agree with the rows in any consistent snapshot.
    fn write_one(conn: &Connection) {
        conn.execute_batch(
            "BEGIN;
             INSERT INTO audit_log (ts, action) VALUES (0, 'during');
             UPDATE rooms SET name = (SELECT count(*) FROM audit_log WHERE action = 'during') WHERE code = 'lobby';
             COMMIT;",
        )
        .unwrap();
    }

    #[test]
    fn a_copy_taken_while_another_connection_writes_is_one_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("live.db");
        let pool = db::open(&source).unwrap();
        let writer = pool.get().unwrap();
        // Several steps' worth of pages.
        writer
            .execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000)
                 INSERT INTO audit_log (ts, action, details) SELECT i, 'filler', hex(randomblob(200)) FROM n",
            )
            .unwrap();
        write_one(&writer);

        let target = dir.path().join("copy.db");
        let copying = std::thread::spawn({
            let target = target.clone();
            move || copy(&source, &target).unwrap()
        });
        // Keep writing while the copy runs (bounded, in case it never ends).
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut written = 0;
        while !copying.is_finished() && std::time::Instant::now() < deadline {
            write_one(&writer);
            written += 1;
        }
        let copied = copying.join().unwrap();
        assert!(copied.steps >= 3, "{copied:?}");
        assert!(written > 0, "the writer ran during the copy");
        assert_eq!(copied.restarts, 0, "{copied:?}");

        let copy = Connection::open(&target).unwrap();
        integrity_check(&copy).unwrap();
        let count = |sql: &str| -> i64 { copy.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT count(*) FROM audit_log WHERE action = 'filler'"), 30_000);
        let during = count("SELECT count(*) FROM audit_log WHERE action = 'during'");
        let counted: String = copy
            .query_row("SELECT name FROM rooms WHERE code = 'lobby'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(counted, during.to_string(), "rows and count from one snapshot");
        assert!(during <= written + 1);
    }

    #[test]
    fn only_a_switchboard_database_is_copied() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let err = copy(&other, &dir.path().join("copy.db")).unwrap_err();
        assert!(err.to_string().contains("not a Switchboard database"), "{err}");
        assert!(copy(&dir.path().join("missing.db"), &dir.path().join("copy2.db")).is_err());
    }
}
