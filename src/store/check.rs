//! Refusing a damaged database before anything writes to it: a file that is not SQLite, fails
//! `PRAGMA quick_check`, or has a schema newer than this binary is reported with a sentence
//! that names the file and what to do, and is left exactly as it was. Also tells which errors
//! mean "the file is damaged" while running.

use super::schema;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The first 16 bytes of every SQLite 3 database file.
const HEADER: &[u8; 16] = b"SQLite format 3\0";

/// What is wrong with a database file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    #[error(
        "{} is not an SQLite database (its first bytes are wrong). rzmon did not start and has not changed the file. Restore a backup of it (rzmon restore FILE, with rzmon stopped), or move it away to start with an empty database.",
        .path.display()
    )]
    NotSqlite { path: PathBuf },
    #[error(
        "{} is damaged ({what}). rzmon did not start and has not changed the file. Restore a backup of it (rzmon restore FILE, with rzmon stopped), or move it away to start with an empty database.",
        .path.display()
    )]
    Corrupt { path: PathBuf, what: String },
    #[error(
        "{} was written by a newer rzmon (schema version {found}, this rzmon knows up to {known}). rzmon did not start and has not changed the file. Run the newer rzmon again, or restore a backup made by this version (rzmon restore FILE).",
        .path.display()
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "{} is missing or empty, but this data directory was used before ({evidence} exists). rzmon did not start and has not changed anything. Restore a backup of the database (rzmon restore FILE), or to really start over delete {} and {evidence}.",
        .path.display(), .path.display()
    )]
    EmptyButUsed { path: PathBuf, evidence: String },
}

/// Checks an existing, non-empty database file read-only. A missing or empty file is fine
/// here (the caller decides whether empty is suspicious).
pub fn check_file(path: &Path) -> Result<(), Damage> {
    let mut head = Vec::with_capacity(HEADER.len());
    let len = match std::fs::File::open(path) {
        Ok(f) => f.take(HEADER.len() as u64).read_to_end(&mut head),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    match len {
        Ok(0) => return Ok(()),
        Ok(_) if head[..] == HEADER[..] => {}
        Ok(_) => {
            return Err(Damage::NotSqlite {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(corrupt(path, e.to_string())),
    }
    let sql = |e: rusqlite::Error| corrupt(path, e.to_string());
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql)?;
    let verdict: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(sql)?;
    if verdict != "ok" {
        return Err(corrupt(path, verdict));
    }
    let has_versions: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'schema_migrations')",
            [],
            |r| r.get(0),
        )
        .map_err(sql)?;
    if has_versions {
        let found = schema::current_version(&conn).map_err(sql)?;
        let known = schema::latest_version();
        if found > known {
            return Err(Damage::TooNew {
                path: path.to_owned(),
                found,
                known,
            });
        }
    }
    Ok(())
}

fn corrupt(path: &Path, what: String) -> Damage {
    Damage::Corrupt {
        path: path.to_owned(),
        what,
    }
}

/// True for the errors SQLite gives when the file's content is damaged.
pub fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_with_rows(path: &Path) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (x TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
             INSERT INTO t SELECT hex(randomblob(100)) FROM n;",
        )
        .unwrap();
    }

    /// Good, missing and empty files pass; garbage, a torn page and a newer schema do not.
    #[test]
    fn damaged_files_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        assert_eq!(check_file(&path), Ok(()));
        std::fs::write(&path, b"").unwrap();
        assert_eq!(check_file(&path), Ok(()));
        std::fs::remove_file(&path).unwrap();
        db_with_rows(&path);
        assert_eq!(check_file(&path), Ok(()));

        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid..mid + 4096].fill(0xA5);
        let torn = dir.path().join("torn.db");
        std::fs::write(&torn, &bytes).unwrap();
        assert!(matches!(check_file(&torn), Err(Damage::Corrupt { .. })));

        let text = dir.path().join("text.db");
        std::fs::write(&text, "hello, I am a text file with some length").unwrap();
        let e = check_file(&text).unwrap_err();
        assert!(matches!(e, Damage::NotSqlite { .. }));
        assert!(e.to_string().contains("text.db"), "{e}");

        let newer = dir.path().join("newer.db");
        let conn = Connection::open(&newer).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL);
             INSERT INTO schema_migrations VALUES (999, 0);",
        )
        .unwrap();
        drop(conn);
        assert!(matches!(
            check_file(&newer),
            Err(Damage::TooNew { found: 999, .. })
        ));
    }
}
