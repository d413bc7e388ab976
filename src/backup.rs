//! `switchboard backup DIR`: a consistent copy of the database and of the
//! uploads it references, taken while the server runs. The database goes
//! first (one snapshot); then exactly the files that the copy's rows name,
//! which all exist because a file is in place before its row is written.
//! Files stored after the snapshot are not needed and not copied.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::db::{backup, uploads, DbError};

/// The database's name inside DIR.
pub const DATABASE_FILE: &str = "switchboard.db";
/// The generated CSRF key's name in the data directory (Config::resolve_secret_key).
const SECRET_KEY_FILE: &str = "secret_key";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} is not empty: back up into a new or empty folder")]
    NotEmpty(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("database: {0}")]
    Db(#[from] DbError),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Report {
    pub database_bytes: u64,
    pub copied: backup::Copied,
    pub files: usize,
    pub file_bytes: u64,
    /// Files the copy's rows name that were gone from the uploads folder
    /// (removed by retention while the backup ran, or lost before it).
    pub missing: Vec<String>,
    pub secret_key: bool,
}

pub fn run(config: &Config, dir: &Path) -> Result<Report, BackupError> {
    prepare(dir)?;
    let database = dir.join(DATABASE_FILE);
    let copied = backup::copy(&config.database_path, &database)?;
    let names = {
        let copy = rusqlite::Connection::open(&database).map_err(DbError::from)?;
        uploads::stored_names(&copy)?
    };
    let target = dir.join("uploads");
    DirBuilder::new()
        .mode_private()
        .create(&target)
        .map_err(io_error(&target))?;
    let mut report = Report {
        database_bytes: fs::metadata(&database).map_err(io_error(&database))?.len(),
        copied,
        files: 0,
        file_bytes: 0,
        missing: Vec::new(),
        secret_key: false,
    };
    let source = config.uploads_dir();
    for name in names {
        match copy_file(&source, &target, &name) {
            Ok(bytes) => {
                report.files += 1;
                report.file_bytes += bytes;
            }
            Err(BackupError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                report.missing.push(name);
            }
            Err(other) => return Err(other),
        }
    }
    // A generated key keeps open sessions' CSRF tokens valid after a restore.
    report.secret_key = match copy_file(&config.data_dir, dir, SECRET_KEY_FILE) {
        Ok(_) => true,
        Err(BackupError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => false,
        Err(other) => return Err(other),
    };
    sync_dir(&target)?;
    sync_dir(dir)?;
    Ok(report)
}

/// Creates DIR (owner only: it holds password hashes) or checks that it is empty.
fn prepare(dir: &Path) -> Result<(), BackupError> {
    DirBuilder::new()
        .recursive(true)
        .mode_private()
        .create(dir)
        .map_err(io_error(dir))?;
    let mut entries = fs::read_dir(dir).map_err(io_error(dir))?;
    if entries.next().is_some() {
        return Err(BackupError::NotEmpty(dir.to_owned()));
    }
    Ok(())
}

/// Copies `from/name` to `to/name` and syncs it: the bytes copied.
fn copy_file(from: &Path, to: &Path, name: &str) -> Result<u64, BackupError> {
    // Stored names are random tokens; anything else is not a file of ours.
    if Path::new(name).file_name().and_then(|n| n.to_str()) != Some(name) {
        return Err(BackupError::Io {
            path: from.join(name),
            source: io::Error::new(io::ErrorKind::InvalidData, "not a plain file name"),
        });
    }
    let (source, target) = (from.join(name), to.join(name));
    let bytes = fs::copy(&source, &target).map_err(io_error(&source))?;
    File::open(&target)
        .and_then(|file| file.sync_all())
        .map_err(io_error(&target))?;
    Ok(bytes)
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))
}

trait PrivateDir {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateDir for DirBuilder {
    fn mode_private(&mut self) -> &mut Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            self.mode(0o700);
        }
        self
    }
}

/// The report as one line for the operator.
pub fn summary(report: &Report, dir: &Path) -> String {
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let mut line = format!(
        "backup written to {}: database {:.1} MiB ({} pages in {} steps), {} uploaded files ({:.1} MiB)",
        dir.display(),
        mib(report.database_bytes),
        report.copied.pages,
        report.copied.steps,
        report.files,
        mib(report.file_bytes),
    );
    if report.secret_key {
        line.push_str(", the generated secret key");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_must_be_new_or_empty() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("a/b");
        prepare(&fresh).unwrap();
        prepare(&fresh).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&fresh).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        fs::write(fresh.join("x"), "").unwrap();
        assert!(matches!(prepare(&fresh), Err(BackupError::NotEmpty(_))));
    }

    #[test]
    fn only_plain_file_names_are_copied() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["../x", "a/b", "", ".."] {
            assert!(copy_file(dir.path(), dir.path(), name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn a_missing_database_writes_nothing_but_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = crate::config::Settings::default();
        settings
            .set("DATABASE_PATH", dir.path().join("none.db").display().to_string())
            .unwrap();
        let config = Config::from_settings(&settings).unwrap();
        let target = dir.path().join("backup");
        assert!(run(&config, &target).is_err());
        assert!(!dir.path().join("none.db").exists(), "the source is not created");
    }
}
