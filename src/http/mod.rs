//! The HTTP API: accept loop, routing, authentication and authorization. Handlers live in
//! the submodules.
//!
//! Authorization happens here and only here: [`Route::scope`] maps every route and method
//! to the one scope it needs in a match without a wildcard, so a new route does not
//! compile until someone decides its scope.

mod apply;
mod audit;
pub mod body;
mod caller;
pub mod error;
mod events;
mod import;
mod request;
mod state;
mod system;
mod tokens;
mod users;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::Scope;
use crate::shutdown::Shutdown;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::Instrument;

use error::ApiError;
pub use events::Streams;
pub use state::App;
pub use system::openapi_document;

/// Every response: a whole buffer or, for an export, a stream (see [`body`]).
pub type Resp = Response<body::Body>;

/// How long shutdown waits for in-flight requests.
const DRAIN: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Healthz,
    OpenApi,
    Users,
    UsersImport,
    UsersExport,
    User(i64),
    UserSecret(i64),
    Available,
    Apply,
    ApplyPending,
    Applies,
    Nodes,
    Status,
    Events,
    Metrics,
    Tokens,
    /// `/tokens/{name}`: the handler reads the name from the path.
    Token,
    Audit,
}

impl Route {
    /// `None` for unknown paths. A user id that is not a number names no user.
    fn parse(path: &str) -> Option<Self> {
        let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        let id = |s: &str| s.parse::<i64>().ok().filter(|n| *n > 0);
        Some(match segs.as_slice() {
            ["healthz"] => Self::Healthz,
            ["openapi.json"] => Self::OpenApi,
            ["users"] => Self::Users,
            ["users", "import"] => Self::UsersImport,
            ["users", "export"] => Self::UsersExport,
            ["users", i] => Self::User(id(i)?),
            ["users", i, "secret"] => Self::UserSecret(id(i)?),
            ["extensions", "available"] => Self::Available,
            ["apply"] => Self::Apply,
            ["apply", "pending"] => Self::ApplyPending,
            ["applies"] => Self::Applies,
            ["nodes"] => Self::Nodes,
            ["status"] => Self::Status,
            ["events"] => Self::Events,
            ["metrics"] => Self::Metrics,
            ["tokens"] => Self::Tokens,
            ["tokens", _] => Self::Token,
            ["audit"] => Self::Audit,
            _ => return None,
        })
    }

    fn allow(self) -> &'static str {
        match self {
            Self::Users | Self::Tokens => "GET, POST",
            Self::User(_) => "GET, PATCH, DELETE",
            Self::Token => "DELETE",
            Self::UserSecret(_) | Self::Apply | Self::UsersImport => "POST",
            _ => "GET",
        }
    }

    /// The scope `method` on this route needs; `None` for the public routes. A method the
    /// route does not serve is answered 405 before any scope is asked for.
    fn scope(self, method: &Method) -> Option<Scope> {
        let read_else = |other| {
            if method == Method::GET {
                Scope::Read
            } else {
                other
            }
        };
        Some(match self {
            Self::Healthz | Self::OpenApi => return None,
            Self::Users | Self::User(_) => read_else(Scope::Write),
            Self::UserSecret(_) | Self::UsersImport => Scope::Write,
            Self::UsersExport
            | Self::Available
            | Self::ApplyPending
            | Self::Applies
            | Self::Nodes
            | Self::Status
            | Self::Events
            | Self::Audit => Scope::Read,
            Self::Metrics => Scope::Metrics,
            Self::Apply => Scope::Apply,
            Self::Tokens | Self::Token => Scope::Admin,
        })
    }

    fn allows(self, method: &Method) -> bool {
        self.allow().split(", ").any(|m| m == method.as_str())
    }

    /// The route as the OpenAPI document names it: what the request log shows, so that
    /// a log line never carries an id or anything else a client typed.
    fn template(self) -> &'static str {
        match self {
            Self::Healthz => "/healthz",
            Self::OpenApi => "/openapi.json",
            Self::Users => "/users",
            Self::UsersImport => "/users/import",
            Self::UsersExport => "/users/export",
            Self::User(_) => "/users/{id}",
            Self::UserSecret(_) => "/users/{id}/secret",
            Self::Available => "/extensions/available",
            Self::Apply => "/apply",
            Self::ApplyPending => "/apply/pending",
            Self::Applies => "/applies",
            Self::Nodes => "/nodes",
            Self::Status => "/status",
            Self::Events => "/events",
            Self::Metrics => "/metrics",
            Self::Tokens => "/tokens",
            Self::Token => "/tokens/{name}",
            Self::Audit => "/audit",
        }
    }
}

/// Authenticates (401), refuses a method the route does not serve (405), checks the
/// route's scope (403), then calls the handler with the caller in a [`caller::Ctx`].
async fn route(app: &App, route: Option<Route>, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let route = route.ok_or(ApiError::NotFound)?;
    let method = req.method().clone();
    let ctx = match route.scope(&method) {
        None => None,
        Some(scope) => {
            let caller = caller::authenticate(app, &req).await?;
            if !route.allows(&method) {
                return Err(ApiError::MethodNotAllowed(route.allow()));
            }
            Some(caller.require(scope)?)
        }
    };
    let Some(ctx) = ctx else {
        return match (route, &method) {
            (Route::Healthz, &Method::GET) => Ok(system::healthz(app).await),
            (Route::OpenApi, &Method::GET) => Ok(system::openapi(&app.openapi)),
            (r, _) => Err(ApiError::MethodNotAllowed(r.allow())),
        };
    };
    match (route, &method) {
        (Route::Status, &Method::GET) => system::status(app).await,
        (Route::Events, &Method::GET) => events::open(app),
        (Route::Metrics, &Method::GET) => system::metrics(app),
        (Route::Users, &Method::POST) => users::create(app, &ctx, req).await,
        (Route::Users, &Method::GET) => users::list(app, &req).await,
        (Route::UsersImport, &Method::POST) => import::import(app, &ctx, req).await,
        (Route::UsersExport, &Method::GET) => import::export(app, &req).await,
        (Route::User(id), &Method::GET) => users::get(app, id).await,
        (Route::User(id), &Method::PATCH) => users::update(app, &ctx, id, req).await,
        (Route::User(id), &Method::DELETE) => users::delete(app, &ctx, id).await,
        (Route::UserSecret(id), &Method::POST) => users::rotate_secret(app, &ctx, id).await,
        (Route::Available, &Method::GET) => users::available(app).await,
        (Route::Apply, &Method::POST) => apply::apply(app, &ctx, &req).await,
        (Route::ApplyPending, &Method::GET) => apply::pending(app).await,
        (Route::Applies, &Method::GET) => apply::list(app, &req).await,
        (Route::Nodes, &Method::GET) => apply::nodes(app).await,
        (Route::Tokens, &Method::POST) => tokens::create(app, &ctx, req).await,
        (Route::Tokens, &Method::GET) => tokens::list(app).await,
        (Route::Token, &Method::DELETE) => tokens::revoke(app, &ctx, &req).await,
        (Route::Audit, &Method::GET) => audit::list(app, &req).await,
        (r, _) => Err(ApiError::MethodNotAllowed(r.allow())),
    }
}

/// Answers one request inside a span naming its method and route template (every log
/// line of the request inherits it), then logs one line with its status and duration and
/// counts it in the metrics. Never a body, a query value, a header or an id.
async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let started = Instant::now();
    let parsed = Route::parse(req.uri().path());
    let template = parsed.map_or("(unknown)", Route::template);
    let method = req.method().clone();
    let span = tracing::info_span!("request", method = %method, route = %template);
    let resp = route(&app, parsed, req)
        .instrument(span.clone())
        .await
        .unwrap_or_else(|e| span.in_scope(|| e.into_response()));
    let took = started.elapsed();
    let status = resp.status().as_u16();
    app.metrics
        .http_request(template, method.as_str(), status, took);
    span.in_scope(|| {
        tracing::info!(
            status,
            ms = %format_args!("{:.2}", took.as_secs_f64() * 1000.0),
            "answered"
        )
    });
    Ok(resp)
}

/// Serves HTTP/1.1 until `shutdown` turns true, then lets in-flight requests finish.
pub async fn serve(listener: TcpListener, app: Arc<App>, mut shutdown: Shutdown) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    // Bounds a client that opens a connection and sends its headers slowly.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    loop {
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let conn = builder.serve_connection(
            TokioIo::new(stream),
            service_fn(move |req| handle(app.clone(), req)),
        );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "HTTP connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP connections did not finish within {DRAIN:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::Route;

    #[test]
    fn routes_parse_and_refuse_garbage_ids() {
        assert_eq!(Route::parse("/users"), Some(Route::Users));
        assert_eq!(Route::parse("/users/"), Some(Route::Users));
        assert_eq!(Route::parse("/users/42"), Some(Route::User(42)));
        assert_eq!(
            Route::parse("/users/42/secret"),
            Some(Route::UserSecret(42))
        );
        assert_eq!(Route::parse("/users/abc"), None);
        assert_eq!(Route::parse("/users/-1"), None);
        assert_eq!(Route::parse("/users/99999999999999999999"), None);
        assert_eq!(Route::parse("/nope"), None);
        assert_eq!(Route::parse("/apply/pending"), Some(Route::ApplyPending));
        assert_eq!(Route::parse("/users/import"), Some(Route::UsersImport));
        assert_eq!(Route::parse("/users/export/"), Some(Route::UsersExport));
        assert_eq!(Route::parse("/users/import/1"), None);
        assert_eq!(Route::parse("/metrics"), Some(Route::Metrics));
        assert_eq!(Route::parse("/tokens/ci.bot"), Some(Route::Token));
        assert_eq!(Route::parse("/tokens/a/b"), None);
    }

    #[test]
    fn every_route_needs_its_scope() {
        use super::{Method, Scope};
        let get = Method::GET;
        assert_eq!(Route::Healthz.scope(&get), None);
        assert_eq!(Route::OpenApi.scope(&get), None);
        assert_eq!(Route::User(1).scope(&get), Some(Scope::Read));
        assert_eq!(Route::User(1).scope(&Method::PATCH), Some(Scope::Write));
        assert_eq!(Route::Users.scope(&Method::POST), Some(Scope::Write));
        assert_eq!(Route::Apply.scope(&Method::POST), Some(Scope::Apply));
        assert_eq!(Route::Tokens.scope(&get), Some(Scope::Admin));
        assert_eq!(Route::Audit.scope(&get), Some(Scope::Read));
    }
}
