//! Operator routes under `/v1/admin`: organizations, their keys, platform keys (admin and
//! service scopes) and the audit log. Reached with the admin token or an admin-scoped key.

use super::name::Name;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::{Binary, Json},
    ApiResponse, Enum, Object, OpenApi,
};

use super::{
    auth::AdminAuth,
    blocking,
    error::{ApiError, ApiResult},
    models::DateTime,
    models::Text,
    models::{
        decode_cursor, encode_cursor, valid_email, valid_name, ApiKey, ApiKeyList,
        CreateKeyRequest, CreatedApiKey, Organization, OrganizationList, Tag,
    },
    AppState,
};
use crate::{
    clock,
    core::metering::plans,
    secrets,
    store::{page_limit, KeyScope, NewKey, NewOrg, StoreError},
};

pub struct AdminApi;

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct CreateOrganizationRequest {
    /// Display name, 1 to 200 characters.
    name: Name,
    /// Where usage alerts and invoices go.
    billing_email: Option<Text>,
    /// Plan id; `developer` when absent.
    plan: Option<Text>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[oai(rename_all = "snake_case")]
enum PlatformScope {
    /// Reaches the admin API.
    Admin,
    /// Reaches service routes such as meter-usage, for every organization.
    Service,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct CreatePlatformKeyRequest {
    name: Name,
    scope: PlatformScope,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct AuditEntry {
    at: DateTime,
    actor: String,
    action: String,
    organization_id: Option<String>,
    detail: String,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct AuditList {
    items: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

#[derive(ApiResponse)]
enum OrgCreated {
    /// The organization was created; `Location` is its address.
    #[oai(status = 201)]
    Created(Json<Organization>, #[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
pub enum KeyCreated {
    /// The key was created; its secret is in this answer only. `Location` is the key's
    /// address (without the secret).
    #[oai(status = 201)]
    Created(Json<CreatedApiKey>, #[oai(header = "Location")] String),
}

/// Makes a key, stores its hash, and answers its secret this once.
async fn create_key(
    state: &Arc<AppState>,
    org_id: Option<String>,
    scope: KeyScope,
    name: String,
    actor: String,
) -> ApiResult<KeyCreated> {
    let issued = secrets::issue_api_key();
    let new = NewKey {
        id: issued.id,
        org_id,
        scope,
        name,
        hash_hex: issued.hash_hex,
    };
    let store = state.store.clone();
    let now = clock::now_ms();
    let key = blocking(move || store.create_key(new, &actor, now)).await?;
    let location = format!("/v1/admin/keys/{}", key.id);
    Ok(KeyCreated::Created(
        Json(CreatedApiKey {
            key: key.into(),
            secret: issued.secret,
        }),
        location,
    ))
}

#[OpenApi(prefix_path = "/v1/admin", tag = "Tag::Admin")]
impl AdminApi {
    /// Create an organization.
    #[oai(path = "/orgs", method = "post", operation_id = "createOrganization")]
    async fn create_org(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        body: Json<CreateOrganizationRequest>,
    ) -> ApiResult<OrgCreated> {
        let name = valid_name("name", &body.name.0)?;
        let billing_email = body
            .billing_email
            .as_deref()
            .map(|e| valid_email("billing_email", e))
            .transpose()?;
        let plan = body
            .plan
            .clone()
            .unwrap_or_else(|| plans::DEFAULT_PLAN.into());
        if let Err(StoreError::NotFound { .. }) = state.store.get_plan(&plan) {
            return Err(ApiError::validation(
                "plan",
                format!("unknown plan {plan:?}; see GET /v1/admin/plans"),
            ));
        }
        let now = clock::now_ms();
        let new = NewOrg {
            id: secrets::new_id("org", now),
            name,
            billing_email,
            plan: plan.into(),
        };
        let store = state.store.clone();
        let actor = auth.actor.clone();
        let org = blocking(move || store.create_org(new, &actor, now)).await?;
        let location = format!("/v1/admin/orgs/{}", org.id);
        Ok(OrgCreated::Created(Json(org.into()), location))
    }

    /// List organizations, oldest first; `q` keeps those whose name, id or billing email
    /// contains it (any case).
    #[oai(path = "/orgs", method = "get", operation_id = "listOrganizations")]
    async fn list_orgs(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        /// Page size, 1 to 500 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        /// From `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Search text.
        #[oai(validator(max_length = 200))]
        q: Query<Option<String>>,
    ) -> ApiResult<Json<OrganizationList>> {
        let after = decode_cursor(cursor.0.as_deref())?;
        let q = q.0.as_deref().map(str::trim).filter(|q| !q.is_empty());
        let page = state
            .store
            .list_orgs(after.as_deref(), q, page_limit(limit.0))?;
        Ok(Json(OrganizationList {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: encode_cursor(page.next_after),
        }))
    }

    /// Get one organization.
    #[oai(
        path = "/orgs/:org_id",
        method = "get",
        operation_id = "getOrganization"
    )]
    async fn get_org(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        org_id: Path<String>,
    ) -> ApiResult<Json<Organization>> {
        Ok(Json(state.store.get_org(&org_id)?.into()))
    }

    /// Create an API key for an organization. The secret is shown once.
    #[oai(
        path = "/orgs/:org_id/keys",
        method = "post",
        operation_id = "createOrganizationKey"
    )]
    async fn create_org_key(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        org_id: Path<String>,
        body: Json<CreateKeyRequest>,
    ) -> ApiResult<KeyCreated> {
        let name = valid_name("name", &body.name.0)?;
        create_key(
            &state,
            Some(org_id.0),
            KeyScope::Org,
            name,
            auth.actor.clone(),
        )
        .await
    }

    /// List an organization's API keys (hashes and secrets are never shown).
    #[oai(
        path = "/orgs/:org_id/keys",
        method = "get",
        operation_id = "listOrganizationKeys"
    )]
    async fn list_org_keys(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        org_id: Path<String>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<ApiKeyList>> {
        state.store.get_org(&org_id)?;
        let after = decode_cursor(cursor.0.as_deref())?;
        let page = state
            .store
            .list_keys(Some(&org_id), after.as_deref(), page_limit(limit.0))?;
        Ok(Json(ApiKeyList {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: encode_cursor(page.next_after),
        }))
    }

    /// Create an admin- or service-scoped key. The secret is shown once.
    #[oai(path = "/keys", method = "post", operation_id = "createPlatformKey")]
    async fn create_platform_key(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        body: Json<CreatePlatformKeyRequest>,
    ) -> ApiResult<KeyCreated> {
        let name = valid_name("name", &body.name.0)?;
        let scope = match body.scope {
            PlatformScope::Admin => KeyScope::Admin,
            PlatformScope::Service => KeyScope::Service,
        };
        create_key(&state, None, scope, name, auth.actor.clone()).await
    }

    /// List admin and service keys.
    #[oai(path = "/keys", method = "get", operation_id = "listPlatformKeys")]
    async fn list_platform_keys(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<ApiKeyList>> {
        let after = decode_cursor(cursor.0.as_deref())?;
        let page = state
            .store
            .list_keys(None, after.as_deref(), page_limit(limit.0))?;
        Ok(Json(ApiKeyList {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: encode_cursor(page.next_after),
        }))
    }

    /// Any key (organization, admin or service), without its secret.
    #[oai(path = "/keys/:key_id", method = "get", operation_id = "getKey")]
    async fn get_key(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        key_id: Path<String>,
    ) -> ApiResult<Json<ApiKey>> {
        let store = state.store.clone();
        let key = blocking(move || store.get_key(&key_id)).await?;
        Ok(Json(key.into()))
    }

    /// Revoke any key. It stops working at once; revoking again changes nothing.
    #[oai(path = "/keys/:key_id", method = "delete", operation_id = "revokeKey")]
    async fn revoke_key(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        key_id: Path<String>,
    ) -> ApiResult<Json<ApiKey>> {
        let store = state.store.clone();
        let actor = auth.actor.clone();
        let now = clock::now_ms();
        let key = blocking(move || store.revoke_key(&key_id, &actor, now)).await?;
        Ok(Json(key.into()))
    }

    /// The most recent audit log entries, newest first.
    #[oai(path = "/audit", method = "get", operation_id = "listAuditEvents")]
    async fn audit(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        /// The `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<AuditList>> {
        let after = super::models::decode_cursor(cursor.0.as_deref())?;
        let page = state
            .store
            .recent_audit_events(after.as_deref(), page_limit(limit.0))?;
        Ok(Json(AuditList {
            next_cursor: super::models::encode_cursor(page.next_after),
            items: page
                .items
                .into_iter()
                .map(|e| AuditEntry {
                    at: DateTime::from_ms(e.at_ms),
                    actor: e.actor,
                    action: e.action,
                    organization_id: e.org_id,
                    detail: e.detail,
                })
                .collect(),
        }))
    }

    /// A consistent snapshot of the whole store, taken while the server runs (a redb file;
    /// install it with `driftlock restore`).
    #[oai(path = "/backup", method = "get", operation_id = "downloadBackup")]
    async fn backup(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
    ) -> ApiResult<Binary<poem::Body>> {
        let store = state.store.clone();
        let path = state.data_dir.join(format!(
            ".backup-{}.redb",
            secrets::new_id("bk", clock::now_ms())
        ));
        let staged = path.clone();
        blocking(move || store.backup_to(&staged)).await?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| ApiError::Internal(format!("backup file: {e}")))?;
        // The open file keeps its bytes; the name can go at once.
        let _ = tokio::fs::remove_file(&path).await;
        Ok(Binary(poem::Body::from_async_read(file)))
    }
}
