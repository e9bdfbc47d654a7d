//! Authentication and authorization by construction. A bearer credential is resolved once to
//! a principal; each security scheme then hands its handlers exactly what the scope allows:
//! admin routes get an `Admin` actor, organization routes get an `OrgScope` store view that
//! cannot reach another organization's data.

use std::sync::Arc;

use poem::Request;
use poem::RequestBody;
use poem_openapi::{
    auth::Bearer, registry::Registry, ApiExtractor, ApiExtractorType, ExtractParamOptions,
    SecurityScheme,
};

use super::{error::ApiError, AppState};
use crate::{
    clock, secrets,
    store::{KeyRecord, KeyScope, OrgScope, StoreError},
};

/// Who is calling, once the credential checked out.
#[derive(Clone)]
enum Principal {
    AdminToken,
    Key(KeyRecord),
}

fn state(req: &Request) -> Result<&Arc<AppState>, ApiError> {
    req.data::<Arc<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))
}

fn unauthorized() -> ApiError {
    ApiError::Unauthorized("the API key or admin token is not valid".into())
}

fn authenticate(state: &AppState, presented: &str) -> Result<Principal, ApiError> {
    if let Some(key_id) = secrets::key_id_of(presented) {
        let key = match state.store.get_key(&key_id) {
            Ok(key) => key,
            Err(StoreError::NotFound { .. }) => return Err(unauthorized()),
            Err(e) => return Err(e.into()),
        };
        if !secrets::matches_hash(presented, &key.hash_hex) {
            return Err(unauthorized());
        }
        if !key.is_active() {
            return Err(ApiError::Unauthorized(
                "this API key has been revoked".into(),
            ));
        }
        return Ok(Principal::Key(key));
    }
    if secrets::secrets_equal(presented, &state.admin_token) {
        return Ok(Principal::AdminToken);
    }
    Err(unauthorized())
}

/// Whether the request carries a credential that checks out (a bearer key or the admin
/// token, or an admin session cookie): only then is a large body read (see the middleware).
/// A bearer credential that checks out is kept on the request, so the route's security
/// scheme does not resolve it a second time.
pub(crate) fn presents_valid_credential(state: &AppState, req: &mut Request) -> bool {
    let bearer = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    if let Some(token) = bearer.map(|t| t.trim().to_string()) {
        return match authenticate(state, &token) {
            Ok(principal) => {
                req.extensions_mut().insert(Resolved { token, principal });
                true
            }
            Err(_) => false,
        };
    }
    super::session::cookie_of(req)
        .is_some_and(|c| state.sessions.has_live(&c, crate::clock::now_ms()))
}

/// A bearer credential the middleware already resolved for this request.
#[derive(Clone)]
struct Resolved {
    token: String,
    principal: Principal,
}

/// The principal `presented` stands for: the one the middleware resolved for this request,
/// or resolved now.
fn authenticate_request(
    req: &Request,
    state: &AppState,
    presented: &str,
) -> Result<Principal, ApiError> {
    match req.extensions().get::<Resolved>() {
        Some(resolved) if resolved.token == presented => Ok(resolved.principal.clone()),
        _ => authenticate(state, presented),
    }
}

/// The caller of an admin route, named in the audit log.
pub struct Admin {
    pub actor: String,
}

/// The admin a presented credential stands for: the admin token, or an admin-scoped key.
pub fn admin_from_token(state: &AppState, presented: &str) -> Result<Admin, ApiError> {
    admin_of(authenticate(state, presented)?)
}

fn admin_of(principal: Principal) -> Result<Admin, ApiError> {
    match principal {
        Principal::AdminToken => Ok(Admin {
            actor: "admin".into(),
        }),
        Principal::Key(key) if key.scope == KeyScope::Admin => Ok(Admin {
            actor: format!("key:{}", key.id),
        }),
        Principal::Key(_) => Err(ApiError::Forbidden(
            "this route needs the admin token or an admin-scoped key".into(),
        )),
    }
}

/// Admin token, or an API key with the `admin` scope.
#[derive(SecurityScheme)]
#[oai(rename = "AdminAuth", ty = "bearer", checker = "check_admin")]
pub struct AdminBearer(Admin);

async fn check_admin(req: &Request, bearer: Bearer) -> poem::Result<Admin> {
    Ok(admin_of(authenticate_request(
        req,
        state(req)?,
        &bearer.token,
    )?)?)
}

/// An admin route's caller: the admin web UI's session (the `driftlock_session` cookie set by
/// `POST /v1/admin/session`, with its CSRF token in `X-CSRF-Token`), or a bearer credential.
/// Only the bearer scheme is in the spec: the session belongs to the UI, and listing it as an
/// alternative scheme would make client generators and spec checkers treat a request with one
/// good credential and one junk one as ambiguous.
pub struct AdminAuth(Admin);

impl std::ops::Deref for AdminAuth {
    type Target = Admin;

    fn deref(&self) -> &Admin {
        &self.0
    }
}

/// The admin of a UI session, when the request carries a CSRF token; an error when that
/// token and the cookie do not make a live session.
fn session_admin(req: &Request) -> Result<Option<Admin>, ApiError> {
    let Some(csrf) = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let state = state(req)?;
    super::session::cookie_of(req)
        .and_then(|cookie| state.sessions.verify(&cookie, csrf, clock::now_ms()))
        .map(|actor| Some(Admin { actor }))
        .ok_or_else(|| {
            ApiError::Unauthorized("the admin session or its CSRF token is not valid".into())
        })
}

impl<'a> ApiExtractor<'a> for AdminAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <AdminBearer as ApiExtractor>::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        <AdminBearer as ApiExtractor>::security_schemes()
    }

    async fn from_request(
        req: &'a Request,
        body: &mut RequestBody,
        param_opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        // A bearer credential, when present, decides; the session is for browsers.
        if !req
            .headers()
            .contains_key(poem::http::header::AUTHORIZATION)
        {
            if let Some(admin) = session_admin(req)? {
                return Ok(AdminAuth(admin));
            }
        }
        let bearer = <AdminBearer as ApiExtractor>::from_request(req, body, param_opts).await?;
        Ok(AdminAuth(bearer.0))
    }
}

/// An organization's caller: the org-limited store view and who is acting.
pub struct OrgCaller {
    pub scope: OrgScope,
    pub actor: String,
}

/// An API key with the `org` scope; it reaches only its own organization.
#[derive(SecurityScheme)]
#[oai(rename = "OrgKey", ty = "bearer", checker = "check_org")]
pub struct OrgAuth(pub OrgCaller);

async fn check_org(req: &Request, bearer: Bearer) -> poem::Result<OrgCaller> {
    let state = state(req)?;
    match authenticate_request(req, state, &bearer.token)? {
        Principal::Key(KeyRecord {
            id,
            scope: KeyScope::Org,
            org_id: Some(org_id),
            ..
        }) => Ok(OrgCaller {
            scope: state.store.org(&org_id),
            actor: format!("key:{id}"),
        }),
        _ => Err(ApiError::Forbidden("this route needs an organization API key".into()).into()),
    }
}

/// The caller of a service route (e.g. meter-usage).
pub struct ServiceCaller {
    pub actor: String,
}

/// An API key with the `service` scope (or the admin token / an admin key, which can do
/// everything a service can).
#[derive(SecurityScheme)]
#[oai(rename = "ServiceKey", ty = "bearer", checker = "check_service")]
pub struct ServiceAuth(pub ServiceCaller);

async fn check_service(req: &Request, bearer: Bearer) -> poem::Result<ServiceCaller> {
    let state = state(req)?;
    match authenticate_request(req, state, &bearer.token)? {
        Principal::AdminToken => Ok(ServiceCaller {
            actor: "admin".into(),
        }),
        Principal::Key(key) if matches!(key.scope, KeyScope::Service | KeyScope::Admin) => {
            Ok(ServiceCaller {
                actor: format!("key:{}", key.id),
            })
        }
        Principal::Key(_) => {
            Err(ApiError::Forbidden("this route needs a service-scoped key".into()).into())
        }
    }
}
