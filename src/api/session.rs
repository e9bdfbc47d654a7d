//! Admin sessions for the web UI: the admin token is exchanged once for a session cookie
//! (HttpOnly, SameSite=Strict, Secure behind TLS) and a CSRF token. Every call the UI makes
//! carries both: the cookie proves the browser signed in, the `X-CSRF-Token` header proves the
//! page that calls is ours (another site can make the browser send the cookie, never read the
//! token). Sessions live in memory only: a restart signs operators out, and nothing that could
//! open the admin API is written to disk.

use std::{collections::HashMap, sync::Arc, sync::Mutex};

use poem::{web::Data, Request};
use poem_openapi::{payload::Json, ApiResponse, Object, OpenApi};

use super::{
    auth::{admin_from_token, AdminAuth},
    error::{ApiError, ApiResult},
    models::DateTime,
    models::Tag,
    models::Text,
    AppState,
};
use crate::{clock, secrets};

/// Name of the session cookie.
pub const COOKIE: &str = "driftlock_session";
/// Sessions end this long after sign-in.
const SESSION_TTL_MS: i64 = 12 * 3_600_000;
/// Sessions kept at once; the oldest go first past this.
const MAX_SESSIONS: usize = 1_000;
/// Failed sign-ins one client address may make per window before it must wait.
const MAX_FAILED_SIGN_INS: u32 = 10;
const SIGN_IN_WINDOW_MS: i64 = 5 * 60_000;
/// Client addresses whose failures are tracked at once; past this, the ones not seen within a
/// window go, and if all are recent, new addresses share one budget.
const MAX_TRACKED_CLIENTS: usize = 10_000;

#[derive(Clone)]
struct Session {
    actor: String,
    csrf: String,
    expires_ms: i64,
}

/// Signed-in admin sessions, by the SHA-256 of the cookie's value, and failed sign-ins by
/// client address (guessing the admin token is throttled and logged).
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<[u8; 32], Session>>,
    failures: Mutex<HashMap<String, (i64, u32)>>,
}

/// The key a client's failures are counted under: its address, or one shared key when the
/// table is full of recent failures.
fn tracked_key(failures: &HashMap<String, (i64, u32)>, client: &str) -> String {
    if failures.len() >= MAX_TRACKED_CLIENTS && !failures.contains_key(client) {
        "(many clients)".to_string()
    } else {
        client.to_string()
    }
}

/// What a new session gives the browser.
pub struct Opened {
    pub cookie_value: String,
    pub csrf: String,
    pub expires_ms: i64,
}

impl Sessions {
    fn open(&self, actor: &str, now_ms: i64) -> Opened {
        let cookie_value = secrets::random_token(43);
        let session = Session {
            actor: actor.to_string(),
            csrf: secrets::random_token(43),
            expires_ms: now_ms + SESSION_TTL_MS,
        };
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|_, s| s.expires_ms > now_ms);
        if live.len() >= MAX_SESSIONS {
            if let Some(oldest) = live
                .iter()
                .min_by_key(|(_, s)| s.expires_ms)
                .map(|(k, _)| *k)
            {
                live.remove(&oldest);
            }
        }
        let opened = Opened {
            cookie_value: cookie_value.clone(),
            csrf: session.csrf.clone(),
            expires_ms: session.expires_ms,
        };
        live.insert(secrets::sha256(&cookie_value), session);
        opened
    }

    /// Seconds a client must wait before it may try to sign in again, if it must.
    fn throttled(&self, client: &str, now_ms: i64) -> Option<u64> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let key = tracked_key(&failures, client);
        match failures.get(&key) {
            Some((start, n)) if *n >= MAX_FAILED_SIGN_INS && now_ms - start < SIGN_IN_WINDOW_MS => {
                Some(
                    ((start + SIGN_IN_WINDOW_MS - now_ms) as u64)
                        .div_ceil(1000)
                        .max(1),
                )
            }
            _ => None,
        }
    }

    /// Counts a failed sign-in of `client`; returns its failures in the current window.
    fn failed(&self, client: &str, now_ms: i64) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_TRACKED_CLIENTS && !failures.contains_key(client) {
            failures.retain(|_, (start, _)| now_ms - *start < SIGN_IN_WINDOW_MS);
        }
        let key = tracked_key(&failures, client);
        let entry = failures.entry(key).or_insert((now_ms, 0));
        if now_ms - entry.0 >= SIGN_IN_WINDOW_MS {
            *entry = (now_ms, 0);
        }
        entry.1 += 1;
        entry.1
    }

    /// Whether `cookie_value` names a live session.
    pub(crate) fn has_live(&self, cookie_value: &str, now_ms: i64) -> bool {
        self.find(cookie_value, now_ms).is_some()
    }

    fn find(&self, cookie_value: &str, now_ms: i64) -> Option<Session> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.get(&secrets::sha256(cookie_value))
            .filter(|s| s.expires_ms > now_ms)
            .cloned()
    }

    fn close(&self, cookie_value: &str) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.remove(&secrets::sha256(cookie_value));
    }

    /// The actor of the session named by `cookie_value`, when `csrf` is its token.
    pub fn verify(&self, cookie_value: &str, csrf: &str, now_ms: i64) -> Option<String> {
        self.find(cookie_value, now_ms)
            .filter(|s| secrets::secrets_equal(&s.csrf, csrf))
            .map(|s| s.actor)
    }
}

/// The session cookie's value in a request, if it sent one.
pub fn cookie_of(req: &Request) -> Option<String> {
    req.headers()
        .get_all(poem::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// Whether the browser reached us over TLS (directly or through a proxy that says so).
fn over_tls(req: &Request, public_url: &str) -> bool {
    public_url.starts_with("https://")
        || req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn set_cookie(value: &str, max_age_secs: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}")
}

#[derive(Object)]
struct SignInRequest {
    /// The admin token (or an admin-scoped API key).
    token: Text,
}

/// A signed-in session. Send `csrf_token` as `X-CSRF-Token` with every call.
#[derive(Object)]
struct SessionView {
    actor: String,
    csrf_token: String,
    expires_at: DateTime,
}

#[derive(ApiResponse)]
enum SignedIn {
    /// Signed in; the session cookie is set.
    #[oai(status = 201)]
    Created(
        Json<SessionView>,
        #[oai(header = "Set-Cookie")] String,
        #[oai(header = "Location")] String,
    ),
}

#[derive(ApiResponse)]
enum SignedOut {
    /// Signed out; the session cookie is cleared.
    #[oai(status = 204)]
    Gone(#[oai(header = "Set-Cookie")] String),
}

pub struct SessionApi;

#[OpenApi(prefix_path = "/v1/admin", tag = "Tag::Admin")]
impl SessionApi {
    /// Sign in to the admin UI: exchanges the admin token for a session cookie (HttpOnly,
    /// SameSite=Strict, Secure behind TLS, 12 hours) and a CSRF token.
    #[oai(path = "/session", method = "post", operation_id = "signIn")]
    async fn sign_in(
        &self,
        req: &Request,
        state: Data<&Arc<AppState>>,
        body: Json<SignInRequest>,
    ) -> ApiResult<SignedIn> {
        let now = clock::now_ms();
        let client = req
            .remote_addr()
            .as_socket_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        if let Some(retry_after_secs) = state.sessions.throttled(&client, now) {
            tracing::warn!(%client, "admin sign-in refused: too many failed attempts");
            return Err(ApiError::RateLimited { retry_after_secs });
        }
        let admin = match admin_from_token(&state, body.0.token.trim()) {
            Ok(admin) => admin,
            Err(e) => {
                let n = state.sessions.failed(&client, now);
                tracing::warn!(%client, failures = n, "admin sign-in failed: wrong token");
                return Err(e);
            }
        };
        let opened = state.sessions.open(&admin.actor, now);
        tracing::info!(actor = %admin.actor, "admin signed in to the web UI");
        let cookie = set_cookie(
            &opened.cookie_value,
            SESSION_TTL_MS / 1000,
            over_tls(req, &state.public_url),
        );
        Ok(SignedIn::Created(
            Json(SessionView {
                actor: admin.actor,
                csrf_token: opened.csrf,
                expires_at: DateTime::from_ms(opened.expires_ms),
            }),
            cookie,
            "/v1/admin/session".to_string(),
        ))
    }

    /// The session the browser's cookie names, with its CSRF token (so a reloaded page can
    /// carry on). Answers 401 without a live session cookie.
    #[oai(path = "/session", method = "get", operation_id = "getSession")]
    async fn current(
        &self,
        req: &Request,
        state: Data<&Arc<AppState>>,
    ) -> ApiResult<Json<SessionView>> {
        let session = cookie_of(req)
            .and_then(|c| state.sessions.find(&c, clock::now_ms()))
            .ok_or_else(|| ApiError::Unauthorized("no admin session; sign in".into()))?;
        Ok(Json(SessionView {
            actor: session.actor,
            csrf_token: session.csrf,
            expires_at: DateTime::from_ms(session.expires_ms),
        }))
    }

    /// Sign out: ends the session and clears the cookie.
    #[oai(path = "/session", method = "delete", operation_id = "signOut")]
    async fn sign_out(
        &self,
        req: &Request,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
    ) -> ApiResult<SignedOut> {
        if let Some(cookie) = cookie_of(req) {
            state.sessions.close(&cookie);
        }
        Ok(SignedOut::Gone(set_cookie(
            "",
            0,
            over_tls(req, &state.public_url),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_answers_only_with_its_own_csrf_token_and_only_until_it_expires() {
        let sessions = Sessions::default();
        let opened = sessions.open("admin", 1_000);
        assert_eq!(
            sessions.verify(&opened.cookie_value, &opened.csrf, 2_000),
            Some("admin".to_string())
        );
        assert_eq!(sessions.verify(&opened.cookie_value, "wrong", 2_000), None);
        assert_eq!(sessions.verify("not-a-session", &opened.csrf, 2_000), None);
        assert_eq!(
            sessions.verify(&opened.cookie_value, &opened.csrf, opened.expires_ms),
            None
        );
        sessions.close(&opened.cookie_value);
        assert_eq!(
            sessions.verify(&opened.cookie_value, &opened.csrf, 2_000),
            None
        );
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let req = Request::builder()
            .header("cookie", "a=1; driftlock_session=abc; b=2")
            .finish();
        assert_eq!(cookie_of(&req).as_deref(), Some("abc"));
        assert_eq!(cookie_of(&Request::builder().finish()), None);
    }
}
