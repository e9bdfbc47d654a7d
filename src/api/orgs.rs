//! Routes an organization calls with its own key: its profile and its API keys. Handlers
//! receive an `OrgScope` from the auth layer, so they cannot name another org's data.

use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    OpenApi,
};

use super::{
    admin::KeyCreated,
    auth::OrgAuth,
    blocking,
    error::ApiResult,
    models::{
        decode_cursor, encode_cursor, valid_name, ApiKey, ApiKeyList, CreateKeyRequest,
        CreatedApiKey, Organization, Tag,
    },
};
use crate::{clock, secrets, store::page_limit};

pub struct OrgApi;

#[OpenApi(prefix_path = "/v1", tag = "Tag::Organization")]
impl OrgApi {
    /// The calling key's organization.
    #[oai(path = "/org", method = "get", operation_id = "getOwnOrganization")]
    async fn own_org(&self, auth: OrgAuth) -> ApiResult<Json<Organization>> {
        Ok(Json(auth.0.scope.get_org()?.into()))
    }

    /// An organization by id: only the caller's own; any other id answers 404.
    #[oai(
        path = "/orgs/:org_id",
        method = "get",
        operation_id = "getOrganizationById"
    )]
    async fn org_by_id(
        &self,
        auth: OrgAuth,
        org_id: Path<String>,
    ) -> ApiResult<Json<Organization>> {
        Ok(Json(auth.0.scope.get_org_by_id(&org_id)?.into()))
    }

    /// The organization's API keys.
    #[oai(path = "/keys", method = "get", operation_id = "listOwnKeys")]
    async fn list_keys(
        &self,
        auth: OrgAuth,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<ApiKeyList>> {
        let after = decode_cursor(cursor.0.as_deref())?;
        let page = auth
            .0
            .scope
            .list_keys(after.as_deref(), page_limit(limit.0))?;
        Ok(Json(ApiKeyList {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: encode_cursor(page.next_after),
        }))
    }

    /// Create another key for the organization (e.g. to rotate). The secret is shown once.
    #[oai(path = "/keys", method = "post", operation_id = "createOwnKey")]
    async fn create_key(
        &self,
        auth: OrgAuth,
        body: Json<CreateKeyRequest>,
    ) -> ApiResult<KeyCreated> {
        let name = valid_name("name", &body.name.0)?;
        let issued = secrets::issue_api_key();
        let caller = auth.0;
        let now = clock::now_ms();
        let (id, hash) = (issued.id, issued.hash_hex);
        let key =
            blocking(move || caller.scope.create_key(id, name, hash, &caller.actor, now)).await?;
        let location = format!("/v1/keys/{}", key.id);
        Ok(KeyCreated::Created(
            Json(CreatedApiKey {
                key: key.into(),
                secret: issued.secret,
            }),
            location,
        ))
    }

    /// One of the organization's keys; another organization's key id answers 404.
    #[oai(path = "/keys/:key_id", method = "get", operation_id = "getOwnKey")]
    async fn get_key(&self, auth: OrgAuth, key_id: Path<String>) -> ApiResult<Json<ApiKey>> {
        Ok(Json(auth.0.scope.get_key(&key_id)?.into()))
    }

    /// Revoke one of the organization's keys (it may be the calling key).
    #[oai(
        path = "/keys/:key_id",
        method = "delete",
        operation_id = "revokeOwnKey"
    )]
    async fn revoke_key(&self, auth: OrgAuth, key_id: Path<String>) -> ApiResult<Json<ApiKey>> {
        let caller = auth.0;
        let now = clock::now_ms();
        let key = blocking(move || caller.scope.revoke_key(&key_id, &caller.actor, now)).await?;
        Ok(Json(key.into()))
    }
}
