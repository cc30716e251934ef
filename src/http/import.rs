//! `POST /users/import` and `GET /users/export`: the HTTP side of [`crate::bulk`] —
//! content types, the answer's format, and an export streamed from the database to the
//! client a chunk at a time (the client's reading paces the database reads).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use hyper::{HeaderMap, Request, Response, StatusCode};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use super::body::{full, streamed};
use super::caller::Ctx;
use super::error::{json_response, ApiError};
use super::request::{body_within, content_type, query, Flag};
use super::users::{idempotency_key, registration};
use super::{App, Resp};
use crate::asterisk::contacts::Registration;
use crate::bulk::sheet::{self, ExportWriter};
use crate::bulk::{self, file, Format, Mode, Outcome};
use crate::domain::TenantSlug;
use crate::events::Audience;
use crate::store::{CreatedUser, ExportRows, PlannedUser};

/// Rows read from the database per chunk of an export.
const EXPORT_BATCH: i32 = 1000;
/// How long an export waits for a client that reads nothing before it gives up (and frees
/// its database connection).
const EXPORT_STALL: Duration = Duration::from_secs(30);

const CSV: &str = "text/csv; charset=utf-8";

/// `POST /users/import`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    dry_run: Option<Flag>,
}

/// `GET /users/export`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    format: Option<FormatParam>,
}

/// `format`: `csv` or `json`.
#[derive(Debug, Clone, Copy)]
struct FormatParam(Format);

impl<'de> Deserialize<'de> for FormatParam {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "csv" => Ok(Self(Format::Csv)),
            "json" => Ok(Self(Format::Json)),
            _ => Err(D::Error::custom("must be csv or json")),
        }
    }
}

/// Whether the client prefers CSV: `Accept` names `text/csv` with a higher quality than
/// `application/json` (or without it). JSON otherwise, as on every route.
fn wants_csv(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let (mut csv, mut json) = (None::<f32>, None::<f32>);
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "text/csv" => csv = Some(q),
            "application/json" => json = Some(q),
            _ => {}
        }
    }
    match (csv, json) {
        (Some(c), Some(j)) => c > 0.0 && c > j,
        (Some(c), None) => c > 0.0,
        _ => false,
    }
}

/// The format of an import body: `text/csv` (UTF-8) or `application/json`.
fn body_format(req: &Request<Incoming>) -> Result<Format, ApiError> {
    let refuse = ApiError::UnsupportedMediaType("text/csv (UTF-8) or application/json");
    let (media, params) = content_type(req).ok_or(refuse)?;
    match media.as_str() {
        "application/json" => Ok(Format::Json),
        "text/csv" => {
            let charset = params.split(';').find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("charset")
                    .then(|| v.trim().trim_matches('"').to_ascii_lowercase())
            });
            match charset.as_deref() {
                None | Some("utf-8" | "utf8") => Ok(Format::Csv),
                Some(_) => Err(ApiError::UnsupportedMediaType(
                    "text/csv (UTF-8) or application/json",
                )),
            }
        }
        _ => Err(ApiError::UnsupportedMediaType(
            "text/csv (UTF-8) or application/json",
        )),
    }
}

fn csv_response(status: StatusCode, bytes: Vec<u8>) -> Resp {
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CSV));
    resp
}

fn sheet_failed(e: sheet::SheetError) -> ApiError {
    ApiError::Internal(Box::new(e))
}

/// A created user as the JSON answer shows it: as `POST /users` shows one, with its
/// phones' live registration (not part of what an Idempotency-Key stores: a replay shows
/// the registration of its own moment).
#[derive(Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    user: &'a CreatedUser,
    registration: Registration,
}

#[derive(Serialize)]
struct CreatedAnswer<'a> {
    created: usize,
    users: Vec<Shown<'a>>,
}

/// A created user as the event stream tells it: never a secret.
#[derive(Serialize)]
struct Published<'a> {
    id: i64,
    name: &'a str,
    email: &'a str,
    extension: u32,
    devices: u8,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// Whose user it is, and what its phones register as (a tenant-bound stream receives
    /// its tenant's only).
    tenant: &'a TenantSlug,
    sip_username: String,
    registration: Registration,
}

/// Tells the event stream about each user an import created, as `POST /users` does for
/// one (`user` events, action `created`).
fn publish_created(app: &App, users: &[CreatedUser]) {
    for u in users {
        let user = Published {
            id: u.id,
            name: &u.name,
            email: &u.email,
            extension: u.extension,
            devices: u.devices,
            created_at: u.created_at,
            tenant: &u.tenant,
            sip_username: crate::domain::sip_name_of(u.tenant.as_str(), u.extension),
            registration: registration(app, &u.tenant, u.extension),
        };
        app.hub.publish(
            Audience::Tenant(u.tenant.as_str().to_owned()),
            "user",
            &serde_json::json!({"action": "created", "user": user}),
        );
    }
}

pub async fn import(app: &App, ctx: &Ctx, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let ImportQuery { dry_run } = query(&req)?;
    let key = idempotency_key(&req)?;
    let as_csv = wants_csv(req.headers());
    let format = body_format(&req)?;
    let bytes = body_within(req, file::MAX_BYTES, "8 MiB").await?;
    let mode = if dry_run.is_some_and(|f| f.0) {
        Mode::DryRun
    } else {
        Mode::Create {
            idempotency_key: key.as_deref(),
            actor: &ctx.actor,
        }
    };
    let outcome = bulk::import(
        &app.store,
        format,
        &bytes,
        app.config.user_rules(),
        mode,
        ctx.tenant.as_ref(),
    )
    .await?;
    drop(bytes);
    let mut resp = match outcome {
        Outcome::Created(imported) => {
            if !imported.replayed {
                publish_created(app, &imported.users);
            }
            let mut resp = if as_csv {
                csv_response(
                    StatusCode::CREATED,
                    sheet::created_csv(&imported.users).map_err(sheet_failed)?,
                )
            } else {
                json_response(
                    StatusCode::CREATED,
                    &CreatedAnswer {
                        created: imported.users.len(),
                        users: imported
                            .users
                            .iter()
                            .map(|user| Shown {
                                user,
                                registration: registration(app, &user.tenant, user.extension),
                            })
                            .collect(),
                    },
                )
            };
            if imported.replayed {
                resp.headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
            }
            resp
        }
        Outcome::Planned(users) => {
            #[derive(Serialize)]
            struct Planned<'a> {
                valid: bool,
                created: usize,
                users: &'a [PlannedUser],
            }
            if as_csv {
                csv_response(
                    StatusCode::OK,
                    sheet::planned_csv(&users).map_err(sheet_failed)?,
                )
            } else {
                json_response(
                    StatusCode::OK,
                    &Planned {
                        valid: true,
                        created: users.len(),
                        users: &users,
                    },
                )
            }
        }
    };
    // The answer holds SIP secrets: no cache anywhere may keep it.
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// A caller bound to a tenant exports that tenant's users only.
pub async fn export(app: &App, ctx: &Ctx, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let ExportQuery { format } = query(req)?;
    let format = match format {
        Some(f) => f.0,
        None if wants_csv(req.headers()) => Format::Csv,
        None => Format::Json,
    };
    let rows = app
        .store
        .export_users(EXPORT_BATCH, EXPORT_STALL, ctx.tenant.clone())
        .await?;
    let mut resp = Response::new(streamed(Export {
        rows,
        writer: ExportWriter::new(format),
        finished: false,
        span: tracing::Span::current(),
    }));
    let headers = resp.headers_mut();
    match format {
        Format::Csv => {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(CSV));
            headers.insert(
                CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"users.csv\""),
            );
        }
        Format::Json => {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
    }
    Ok(resp)
}

/// An export as a body: each chunk of rows is written when the client is ready for it.
struct Export {
    rows: ExportRows,
    writer: ExportWriter,
    finished: bool,
    /// The request's span, for a failure logged after the answer's head has gone.
    span: tracing::Span,
}

impl futures_util::Stream for Export {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Export is Unpin: every field is.
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        let chunk = match this.rows.poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(rows))) => this.writer.rows(&rows),
            Poll::Ready(None) => {
                this.finished = true;
                this.writer.finish()
            }
            Poll::Ready(Some(Err(e))) => {
                this.finished = true;
                this.span.in_scope(|| {
                    tracing::error!(error = %e, "export stopped; the client gets a cut-off body")
                });
                return Poll::Ready(Some(Err(io::Error::other(e))));
            }
        };
        Poll::Ready(Some(chunk.map(Bytes::from).map_err(|e| {
            this.finished = true;
            io::Error::other(e)
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_for(accept: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_str(accept).unwrap());
        wants_csv(&headers)
    }

    #[test]
    fn csv_only_when_the_client_prefers_it() {
        assert!(!wants_csv(&HeaderMap::new()));
        for yes in [
            "text/csv",
            "Text/CSV; charset=utf-8",
            "application/json;q=0.5, text/csv",
            "text/csv;q=0.9, application/json;q=0.1",
        ] {
            assert!(csv_for(yes), "{yes}");
        }
        for no in [
            "*/*",
            "application/json",
            "text/csv;q=0",
            "text/csv, application/json",
            "text/csv;q=0.5, application/json",
            "text/plain",
        ] {
            assert!(!csv_for(no), "{no}");
        }
    }
}
