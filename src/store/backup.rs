//! Consistent backups. A backup is a complete redb file made from one read transaction of the
//! live store (redb's snapshot isolation), so it can be taken while the server writes, and it
//! is restored by putting the file in place of the store; migrations run at the next start.

use std::path::Path;

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableError,
    WriteTransaction,
};

use super::{schema, tables, Store, StoreError, DB_FILE};

fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<u64, StoreError> {
    let source = match from.open_table(def) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut target = to.open_table(def)?;
    let mut rows = 0;
    for entry in source.iter()? {
        let (k, v) = entry?;
        target.insert(k.value(), v.value())?;
        rows += 1;
    }
    Ok(rows)
}

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub schema_version: u64,
    pub rows: u64,
}

fn copy_all(from: &ReadTransaction, to: &Database) -> Result<u64, StoreError> {
    let tx = to.begin_write()?;
    let mut rows = 0;
    macro_rules! copy {
        ($t:path) => {
            rows += copy_table(from, &tx, $t)?;
        };
    }
    tables::for_each_table!(copy);
    tx.commit()?;
    Ok(rows)
}

impl Store {
    /// Writes a consistent snapshot of the whole store to `output` (a new file).
    pub fn backup_to(&self, output: &Path) -> Result<BackupSummary, StoreError> {
        let snapshot = self.db()?.begin_read()?;
        let version = {
            let meta = snapshot.open_table(tables::META)?;
            meta.get(tables::META_SCHEMA_VERSION)?
                .map(|v| v.value())
                .unwrap_or(0)
        };
        if output.exists() {
            return Err(StoreError::Conflict(format!(
                "{} already exists",
                output.display()
            )));
        }
        super::create_private(output).map_err(|e| StoreError::Backend(redb::Error::Io(e)))?;
        super::create_private(output).map_err(|e| StoreError::Backend(redb::Error::Io(e)))?;
        let copy = Database::create(output)?;
        let rows = copy_all(&snapshot, &copy)?;
        drop(copy);
        Ok(BackupSummary {
            schema_version: version,
            rows,
        })
    }
}

/// Whether the store of `data_dir` is held by a running server.
pub fn in_use(err: &StoreError) -> bool {
    matches!(err, StoreError::Backend(redb::Error::DatabaseAlreadyOpen))
}

/// Backs up the store of `data_dir` when no server holds it (no migration is run).
pub fn backup_offline(data_dir: &Path, output: &Path) -> Result<BackupSummary, StoreError> {
    let path = data_dir.join(DB_FILE);
    if !path.exists() {
        return Err(StoreError::not_found("store", path.display().to_string()));
    }
    let db = Database::open(&path)?;
    let version = schema::stored_version(&db)?;
    if output.exists() {
        return Err(StoreError::Conflict(format!(
            "{} already exists",
            output.display()
        )));
    }
    let copy = Database::create(output)?;
    let rows = copy_all(&db.begin_read()?, &copy)?;
    Ok(BackupSummary {
        schema_version: version,
        rows,
    })
}

/// Checks a backup file and installs it as the store of `data_dir`, which must not have one.
pub fn restore(backup: &Path, data_dir: &Path) -> Result<BackupSummary, StoreError> {
    let target = data_dir.join(DB_FILE);
    if target.exists() {
        return Err(StoreError::Conflict(format!(
            "{} already holds a store; restore into an empty data directory",
            data_dir.display()
        )));
    }
    let source = Database::open(backup)?;
    let version = schema::stored_version(&source)?;
    if version > schema::CURRENT_SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found: version,
            supported: schema::CURRENT_SCHEMA_VERSION,
        });
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", data_dir.display())))?;
    let staged = data_dir.join(format!("{DB_FILE}.restoring"));
    let _ = std::fs::remove_file(&staged);
    super::create_private(&staged).map_err(|e| StoreError::Backend(redb::Error::Io(e)))?;
    let copy = Database::create(&staged)?;
    let rows = copy_all(&source.begin_read()?, &copy)?;
    drop(copy);
    std::fs::rename(&staged, &target)
        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", target.display())))?;
    Ok(BackupSummary {
        schema_version: version,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::TableHandle;

    #[test]
    fn a_backup_holds_every_table_and_restores() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("live")).unwrap();
        let store = Store::open(&dir.path().join("live")).unwrap();
        store
            .create_org(
                crate::store::NewOrg {
                    id: "org_1".into(),
                    name: "A".into(),
                    billing_email: None,
                    plan: "developer".into(),
                },
                "test",
                1,
            )
            .unwrap();
        let out = dir.path().join("backup.redb");
        let summary = store.backup_to(&out).unwrap();
        assert_eq!(summary.schema_version, schema::CURRENT_SCHEMA_VERSION);
        assert!(summary.rows > 3);
        assert!(store.backup_to(&out).is_err(), "never overwrites");

        let live_tables: Vec<String> = store
            .db()
            .unwrap()
            .begin_read()
            .unwrap()
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect();
        let copy = Database::open(&out).unwrap();
        let mut copied: Vec<String> = copy
            .begin_read()
            .unwrap()
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect();
        copied.sort();
        let mut live_sorted = live_tables.clone();
        live_sorted.sort();
        assert_eq!(
            copied, live_sorted,
            "every table of the live store is in the backup"
        );
        drop(copy);

        let restored_dir = dir.path().join("restored");
        restore(&out, &restored_dir).unwrap();
        assert!(
            restore(&out, &restored_dir).is_err(),
            "never over an existing store"
        );
        let restored = Store::open(&restored_dir).unwrap();
        assert_eq!(restored.get_org("org_1").unwrap().name, "A");
    }
}
