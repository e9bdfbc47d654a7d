//! Request ids: taken from a well-formed incoming `X-Request-Id` or made fresh, kept in a
//! task-local for the request's lifetime so error bodies and logs can name it.

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served on this task, or "" outside a request.
pub fn current() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// Runs `fut` with `id` as the current request id.
pub async fn scope<F: std::future::Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// The caller's id when it is short and plain, else a new one.
pub fn choose(incoming: Option<&str>) -> String {
    match incoming {
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            id.to_string()
        }
        _ => format!("req_{:016x}", rand::random::<u64>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_plain_ids_and_replaces_odd_ones() {
        assert_eq!(choose(Some("abc-123_X")), "abc-123_X");
        assert!(choose(Some("bad id\n")).starts_with("req_"));
        assert!(choose(Some(&"a".repeat(65))).starts_with("req_"));
        assert!(choose(None).starts_with("req_"));
    }
}
