//! Helpers for tables keyed by organization: paging through an org's named records, and
//! appending numbered records (anomalies) under one parent with bounded retention.

use redb::{ReadableTable, Table};

use super::{
    codec::{self, Versioned},
    Page, StoreError,
};

/// One page of the records keyed `(org, name)` in `table`, in name order, after `after`.
pub(super) fn page_in_org<T: Versioned>(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    org: &str,
    after: Option<&str>,
    limit: usize,
    name_of: impl Fn(&T) -> String,
) -> Result<Page<T>, StoreError> {
    let mut items = Vec::new();
    let mut more = false;
    for entry in table.range((org, after.unwrap_or(""))..)? {
        let (key, value) = entry?;
        let (entry_org, name) = key.value();
        if entry_org != org {
            break;
        }
        if after == Some(name) {
            continue;
        }
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(codec::decode::<T>(value.value())?);
    }
    let next_after = if more {
        items.last().map(&name_of)
    } else {
        None
    };
    Ok(Page { items, next_after })
}

/// One page of the numbered records under `(org, parent)`, in number order after `after`,
/// keeping those `wanted` accepts.
pub(super) fn page_numbered<T: Versioned>(
    table: &impl ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
    org: &str,
    parent: &str,
    after: Option<u64>,
    limit: usize,
    wanted: impl Fn(&T) -> bool,
    number_of: impl Fn(&T) -> u64,
) -> Result<Page<T>, StoreError> {
    let start = after.map_or(0, |a| a.saturating_add(1));
    let mut items = Vec::new();
    let mut more = false;
    for entry in table.range((org, parent, start)..=(org, parent, u64::MAX))? {
        let item: T = codec::decode(entry?.1.value())?;
        if !wanted(&item) {
            continue;
        }
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(item);
    }
    let next_after = if more {
        items.last().map(|i| number_of(i).to_string())
    } else {
        None
    };
    Ok(Page { items, next_after })
}

/// Appends `items` under `(org, parent)` with the next sequence numbers (given to each item
/// by `numbered`), then drops the oldest beyond `keep`; answers the first item's number.
pub(super) fn append_numbered<T: Versioned>(
    table: &mut Table<(&'static str, &'static str, u64), &'static [u8]>,
    org: &str,
    parent: &str,
    items: impl IntoIterator<Item = T>,
    numbered: impl Fn(T, u64) -> T,
    keep: u64,
) -> Result<u64, StoreError> {
    let mut next = match table
        .range((org, parent, 0)..=(org, parent, u64::MAX))?
        .next_back()
    {
        Some(last) => last?.0.value().2 + 1,
        None => 1,
    };
    let first = next;
    for item in items {
        let item = numbered(item, next);
        table.insert((org, parent, next), codec::encode(&item).as_slice())?;
        next += 1;
    }
    let keep_from = next.saturating_sub(keep);
    if keep_from > 1 {
        table.retain_in((org, parent, 0)..(org, parent, keep_from), |_, _| false)?;
    }
    Ok(first)
}

/// The numbered record `(org, parent, number)` of `table`, changed by `change` and written
/// back in the same transaction (nothing is written when `change` leaves it as it was).
/// `kind` and `id` name the record in a not-found error.
pub(super) fn update_numbered<T: Versioned>(
    tx: &redb::WriteTransaction,
    table: redb::TableDefinition<(&'static str, &'static str, u64), &'static [u8]>,
    key: (&str, &str, u64),
    (kind, id): (&'static str, &str),
    change: impl FnOnce(&T) -> Option<T>,
) -> Result<T, StoreError> {
    let mut table = tx.open_table(table)?;
    let current: T = get_numbered(&table, key, (kind, id))?;
    let Some(changed) = change(&current) else {
        return Ok(current);
    };
    table.insert(key, codec::encode(&changed).as_slice())?;
    Ok(changed)
}

/// The numbered record `(org, parent, number)` of `table`; `kind` and `id` name it in a
/// not-found error.
pub(super) fn get_numbered<T: Versioned>(
    table: &impl ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
    key: (&str, &str, u64),
    (kind, id): (&'static str, &str),
) -> Result<T, StoreError> {
    match table.get(key)? {
        Some(bytes) => codec::decode(bytes.value()),
        None => Err(StoreError::not_found(kind, id)),
    }
}
