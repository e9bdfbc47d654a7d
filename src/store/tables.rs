//! The only file that names redb tables. Every table of the store is defined here, with the
//! shape of its key and value; values are versioned byte strings decoded by `codec`.

use redb::TableDefinition;

/// Store-wide facts: the schema version and similar single values.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Key in `META` that holds the schema version the store was last migrated to.
pub const META_SCHEMA_VERSION: &str = "schema_version";

/// Organizations by id.
pub const ORGS: TableDefinition<&str, &[u8]> = TableDefinition::new("orgs");

/// API keys by key id (`key_` + the key's public prefix). Values hold the key's hash, never the key.
pub const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");

/// Index of an organization's keys: (org id, key id) -> ().
pub const ORG_KEYS: TableDefinition<(&str, &str), ()> = TableDefinition::new("org_keys");

/// Audit log of key and organization changes, by a sequence number that only grows.
pub const AUDIT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_log");
