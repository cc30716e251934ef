//! Handlers for users and extensions: each reads its input through the typed parsers of
//! [`crate::domain`] and [`super::request`], so nothing unchecked reaches the store.

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::caller::Ctx;
use super::error::{json_response, ApiError};
use super::request::{json_body, query, UsersQuery};
use super::tenants;
use super::App;
use super::Resp;
use crate::asterisk::contacts::Registration;
use crate::domain::{
    tenant_named, Devices, Extension, NewUser, Search, SipSecret, TenantSlug, UserPatch, UserRules,
    ValidationError,
};
use crate::events::Audience;
use crate::store::{ListQuery, Order, TenantRow, UserRow, DEFAULT_TENANT_ID};

/// A user as every answer shows it: what is stored (its tenant and transport among it),
/// what its phones register as, and whether they are online.
#[derive(Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    user: &'a UserRow,
    sip_username: String,
    registration: Registration,
}

fn shown<'a>(app: &App, user: &'a UserRow) -> Shown<'a> {
    Shown {
        user,
        sip_username: user.sip_username(),
        registration: registration(app, &user.tenant, user.extension.get()),
    }
}

/// The user's live registration: its tenant's line, by the aor its phones register
/// under (two tenants' extension 100 are two lines, never one registration).
pub(super) fn registration(app: &App, tenant: &TenantSlug, extension: u32) -> Registration {
    app.registrations.registration(tenant.as_str(), extension)
}

/// What `POST /users` answers (and replays for a repeated Idempotency-Key): the user as
/// shown, with its SIP credentials, the only answer that holds the secret. Its members
/// are in the order this answer has always had, alphabetical (it was once built as a JSON
/// map), `registration`'s too.
#[derive(Serialize)]
struct Created<'a> {
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    devices: Devices,
    email: &'a str,
    extension: Extension,
    id: i64,
    name: &'a str,
    registration: Value,
    sip_password: &'a str,
    sip_username: String,
    tenant: &'a TenantSlug,
    transport: Option<&'a str>,
}

impl<'a> Created<'a> {
    fn new(user: &'a UserRow, secret: &'a SipSecret, registration: &Registration) -> Self {
        Self {
            created_at: user.created_at,
            devices: user.devices,
            email: &user.email,
            extension: user.extension,
            id: user.id,
            name: &user.name,
            registration: serde_json::to_value(registration).unwrap_or(Value::Null),
            sip_password: secret.expose(),
            sip_username: user.sip_username(),
            tenant: &user.tenant,
            transport: user.transport.as_deref(),
        }
    }
}

/// Tells the event stream what happened to a user (never a secret: the user as shown),
/// to the streams of its tenant's tokens and of unbound ones.
fn publish(app: &App, action: &str, tenant: &TenantSlug, user: &impl Serialize) {
    app.hub.publish(
        Audience::Tenant(tenant.as_str().to_owned()),
        "user",
        &json!({"action": action, "user": user}),
    );
}

pub(super) fn idempotency_key(req: &Request<Incoming>) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let bad = || ValidationError::new("Idempotency-Key", "must be 1-200 visible ASCII characters");
    let s = v.to_str().map_err(|_| bad())?;
    if s.is_empty() || s.len() > 200 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad().into());
    }
    Ok(Some(s.to_owned()))
}

pub async fn create(app: &App, ctx: &Ctx, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let key = idempotency_key(&req)?;
    let body = json_body(req).await?;
    // The tenant first: the extension is checked against its range. A bound caller's
    // request that names none is its tenant's; one naming no tenant at all, `default`.
    let named = match body.as_object() {
        Some(obj) => tenant_named(obj)?,
        None => return Err(ValidationError::new("body", "must be a JSON object").into()),
    };
    let names_none = named.is_none();
    let slug = tenants::within(ctx, named)?.unwrap_or_else(TenantSlug::default_tenant);
    let tenant = tenants::named(app, &slug).await?;
    let range = tenant.range()?;
    let rules = UserRules {
        range: &range,
        ..app.config.user_rules()
    };
    let new = NewUser::parse(&body, rules).map_err(|e| in_tenant(e, &tenant))?;
    // The Idempotency-Key compares the body. A bound caller's body naming no tenant
    // creates in its tenant, so it is compared with its tenant filled in: the same key and
    // body from another tenant's caller (or an unbound one, meaning `default`) is another
    // request, never a replay of this user and its secret.
    let mut compared = body;
    if let (Some(own), true, Some(obj)) = (&ctx.tenant, names_none, compared.as_object_mut()) {
        obj.insert("tenant".into(), Value::String(own.as_str().into()));
    }
    let outcome = app
        .store
        .create_user(
            &new,
            &tenant,
            key.as_deref().map(|k| (k, &compared)),
            &ctx.actor,
        )
        .await?;
    let user = shown(app, &outcome.user);
    if !outcome.replayed {
        publish(app, "created", &outcome.user.tenant, &user);
    }
    let answer = Created::new(&outcome.user, &outcome.secret, &user.registration);
    let mut resp = json_response(StatusCode::CREATED, &answer);
    if outcome.replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

pub async fn list(app: &App, ctx: &Ctx, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let params: UsersQuery = query(req)?;
    let limit = params.limit.map_or(1000, |l| l.0);
    let offset = params.offset.map_or(0, |o| o.0);
    let q = params
        .q
        .as_deref()
        .map(Search::parse)
        .transpose()?
        .flatten();
    let tenant = tenants::within(ctx, params.tenant.clone())?;
    let query = ListQuery {
        limit,
        offset,
        q: q.map(Search::into_string),
        order: params.order.map_or(Order::Extension, |k| k.0),
        descending: params.direction.is_some_and(|d| d.0),
        extensions: None,
        tenant: tenant.clone(),
    };
    // `registered` filters on the live view; while it is not live every registration is
    // `unknown`, which matches neither `true` nor `false`.
    let query = match params.registered.map(|f| f.0) {
        None => Some(query),
        Some(registered) => app.registrations.online().map(|online| {
            let (slugs, numbers) = online
                .into_iter()
                .map(|l| (l.tenant, l.extension as i32))
                .unzip();
            ListQuery {
                extensions: Some((registered, slugs, numbers)),
                ..query
            }
        }),
    };
    let (users, total) = match &query {
        Some(query) => app.store.list_users(query).await?,
        None => (Vec::new(), 0),
    };
    // The page's statement resolved the slug: a user on the page proves the tenant exists,
    // so only an empty page asks whether it does (422 field `tenant` when not).
    if let (Some(slug), true) = (&tenant, users.is_empty()) {
        tenants::named(app, slug).await?;
    }
    // Serialized straight from the rows: no intermediate JSON tree for 1000 users.
    #[derive(Serialize)]
    struct Page<'a> {
        users: Vec<Shown<'a>>,
        total: i64,
        limit: i64,
        offset: i64,
    }
    Ok(json_response(
        StatusCode::OK,
        &Page {
            users: users.iter().map(|u| shown(app, u)).collect(),
            total,
            limit,
            offset,
        },
    ))
}

/// The user of `/users/{id}` when the caller may see it: 404 when there is none or it is
/// another tenant's. A user never moves between tenants, so what this finds still holds
/// when the change that follows runs.
async fn found(app: &App, ctx: &Ctx, id: i64) -> Result<UserRow, ApiError> {
    let user = app.store.get_user(id).await?.ok_or(ApiError::NotFound)?;
    tenants::visible(ctx, &user.tenant)?;
    Ok(user)
}

pub async fn get(app: &App, ctx: &Ctx, id: i64) -> Result<Resp, ApiError> {
    let user = found(app, ctx, id).await?;
    Ok(json_response(StatusCode::OK, &shown(app, &user)))
}

/// An extension outside the range of a tenant other than `default` says whose range it
/// is: the served document states the default tenant's only.
fn in_tenant(mut e: ValidationError, tenant: &TenantRow) -> ValidationError {
    if e.field == "extension" && !tenant.is_default() && e.message.starts_with("must be within") {
        e.message = format!("{} of tenant '{}'", e.message, tenant.slug);
    }
    e
}

pub async fn update(
    app: &App,
    ctx: &Ctx,
    id: i64,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let body = json_body(req).await?;
    // A moved extension is checked against the range of the user's own tenant.
    let current = found(app, ctx, id).await?;
    let tenant = tenants::named(app, &current.tenant).await?;
    let range = tenant.range()?;
    let rules = UserRules {
        range: &range,
        ..app.config.user_rules()
    };
    let patch = UserPatch::parse(&body, rules).map_err(|e| in_tenant(e, &tenant))?;
    if patch.tenant.as_ref().is_some_and(|t| *t != current.tenant) {
        return Err(ValidationError::new(
            "tenant",
            "a user cannot move between tenants: delete and create",
        )
        .into());
    }
    let user = app
        .store
        .update_user(id, &patch, &ctx.actor)
        .await?
        .ok_or(ApiError::NotFound)?;
    let user = shown(app, &user);
    publish(app, "updated", &user.user.tenant, &user);
    Ok(json_response(StatusCode::OK, &user))
}

pub async fn delete(app: &App, ctx: &Ctx, id: i64) -> Result<Resp, ApiError> {
    if ctx.tenant.is_some() {
        found(app, ctx, id).await?;
    }
    let user = app
        .store
        .delete_user(id, &ctx.actor)
        .await?
        .ok_or(ApiError::NotFound)?;
    publish(app, "deleted", &user.tenant, &user);
    let mut resp = Resp::default();
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

pub async fn rotate_secret(app: &App, ctx: &Ctx, id: i64) -> Result<Resp, ApiError> {
    if ctx.tenant.is_some() {
        found(app, ctx, id).await?;
    }
    let (ext, secret) = app
        .store
        .rotate_secret(id, &ctx.actor)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"sip_username": ext, "sip_password": secret.expose()}),
    ))
}

/// Free numbers of the range as `[first, last]` runs.
pub fn free_ranges(min: u32, max: u32, taken: &[u32]) -> (Vec<[u32; 2]>, u64) {
    let mut ranges = Vec::new();
    let mut next = u64::from(min);
    for &t in taken {
        let t = u64::from(t);
        if t > next {
            ranges.push([next as u32, (t - 1) as u32]);
        }
        next = next.max(t + 1);
    }
    if next <= u64::from(max) {
        ranges.push([next as u32, max]);
    }
    let free = ranges.iter().map(|[a, b]| u64::from(b - a) + 1).sum();
    (ranges, free)
}

/// The default tenant's free numbers; a caller bound to a tenant gets its tenant's (the
/// default tenant's numbering is not its to see).
pub async fn available(app: &App, ctx: &Ctx) -> Result<Resp, ApiError> {
    let (r, tenant) = match &ctx.tenant {
        Some(own) => {
            let t = tenants::named(app, own).await?;
            (t.range()?, t.id)
        }
        None => (app.config.range, DEFAULT_TENANT_ID),
    };
    let taken = app.store.taken_in_range(&r, tenant).await?;
    let (ranges, free) = free_ranges(r.min(), r.max(), &taken);
    Ok(json_response(
        StatusCode::OK,
        &json!({"ranges": ranges, "free": free, "min": r.min(), "max": r.max()}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer to `POST /users`, byte for byte as it was when it was built as a JSON
    /// map from the stored user.
    #[test]
    fn the_created_answer_keeps_its_bytes() {
        let user = UserRow {
            id: 7,
            name: "Alice \u{e9}".into(),
            email: "alice@x.org".into(),
            extension: Extension::from_stored(1000),
            devices: Devices::from_stored(2),
            created_at: time::macros::datetime!(2026-01-02 03:04:05.678 UTC),
            transport: Some("transport-udp".into()),
            tenant: TenantSlug::default_tenant(),
        };
        let secret = SipSecret::from_stored("abcdefghijklmnopqrstuvwx".into());
        let registration = Registration {
            state: crate::asterisk::contacts::RegistrationState::Offline,
            contacts: Vec::new(),
        };
        let mut before = serde_json::to_value(&user).unwrap();
        before["sip_username"] = Value::String(user.extension.to_string());
        before["sip_password"] = Value::String(secret.expose().to_owned());
        before["registration"] = json!(Some(&registration));
        let answer = serde_json::to_vec(&Created::new(&user, &secret, &registration)).unwrap();
        assert_eq!(
            String::from_utf8(answer).unwrap(),
            serde_json::to_string(&before).unwrap()
        );
    }

    #[test]
    fn free_ranges_are_the_gaps() {
        assert_eq!(free_ranges(1000, 1999, &[]), (vec![[1000, 1999]], 1000));
        assert_eq!(
            free_ranges(1000, 1005, &[1000, 1002, 1003]),
            (vec![[1001, 1001], [1004, 1005]], 3)
        );
        assert_eq!(free_ranges(1000, 1001, &[1000, 1001]), (vec![], 0));
        assert_eq!(free_ranges(1, 3, &[3]), (vec![[1, 2]], 2));
    }
}
