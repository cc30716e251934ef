//! The HTTP API: accept loop, routing, authentication and authorization. Handlers live in
//! the submodules.
//!
//! Authorization happens here and only here: [`Route::methods`] lists, for every route in
//! a match without a wildcard, each method it serves with its handler and the one scope
//! it needs, so a new route does not compile until someone decides its scopes. The
//! dispatch, the scope check and a 405's `Allow` header all read that one list.

mod apply;
mod audit;
pub mod body;
mod caller;
mod console;
pub mod error;
mod events;
mod import;
mod request;
mod state;
mod system;
mod tenants;
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
    Tenants,
    /// `/tenants/{slug}`: the handler reads the slug from the path.
    Tenant,
    /// `/whoami`: the caller's token, for the console.
    WhoAmI,
    /// `/`: the console's page.
    Console,
    /// `/assets/{file}`: the handler reads the file name from the path.
    Asset,
}

/// What a method of a route runs, and who may call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handler {
    /// Anyone, without a token.
    Public(Anyone),
    /// A caller whose token holds the scope.
    Scoped(Scope, Op),
    /// Any caller with a valid token, whatever its scopes.
    Signed(Own),
}

/// The handlers any valid token may call: what a caller may know about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Own {
    WhoAmI,
}

/// The public handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anyone {
    Healthz,
    OpenApi,
    Console,
    Asset,
}

/// The handlers that need a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Status,
    Events,
    Metrics,
    ListUsers,
    CreateUser,
    Import,
    Export,
    GetUser,
    UpdateUser,
    DeleteUser,
    RotateSecret,
    Available,
    Apply,
    Pending,
    Applies,
    Nodes,
    ListTokens,
    CreateToken,
    RevokeToken,
    Audit,
    ListTenants,
    CreateTenant,
    GetTenant,
    UpdateTenant,
    DeleteTenant,
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
            ["tenants"] => Self::Tenants,
            ["tenants", _] => Self::Tenant,
            ["whoami"] => Self::WhoAmI,
            [] => Self::Console,
            ["assets", _] => Self::Asset,
            _ => return None,
        })
    }

    /// Every method this route serves, in the order `Allow` lists them, each with what
    /// it runs and who may call it: the one list that the dispatch, the scope check and
    /// a 405's `Allow` header all read. A match without a wildcard, so a new route does
    /// not compile until someone decides its methods and their scopes.
    fn methods(self) -> &'static [(Method, Handler)] {
        use Handler::{Public, Scoped, Signed};
        use Scope::{Admin, Apply, Metrics, Read, Write};
        match self {
            Self::Healthz => const { &[(Method::GET, Public(Anyone::Healthz))] },
            Self::OpenApi => const { &[(Method::GET, Public(Anyone::OpenApi))] },
            Self::Console => const { &[(Method::GET, Public(Anyone::Console))] },
            Self::Asset => const { &[(Method::GET, Public(Anyone::Asset))] },
            Self::WhoAmI => const { &[(Method::GET, Signed(Own::WhoAmI))] },
            Self::Users => {
                const {
                    &[
                        (Method::GET, Scoped(Read, Op::ListUsers)),
                        (Method::POST, Scoped(Write, Op::CreateUser)),
                    ]
                }
            }
            Self::UsersImport => const { &[(Method::POST, Scoped(Write, Op::Import))] },
            Self::UsersExport => const { &[(Method::GET, Scoped(Read, Op::Export))] },
            Self::User(_) => {
                const {
                    &[
                        (Method::GET, Scoped(Read, Op::GetUser)),
                        (Method::PATCH, Scoped(Write, Op::UpdateUser)),
                        (Method::DELETE, Scoped(Write, Op::DeleteUser)),
                    ]
                }
            }
            Self::UserSecret(_) => const { &[(Method::POST, Scoped(Write, Op::RotateSecret))] },
            Self::Available => const { &[(Method::GET, Scoped(Read, Op::Available))] },
            Self::Apply => const { &[(Method::POST, Scoped(Apply, Op::Apply))] },
            Self::ApplyPending => const { &[(Method::GET, Scoped(Read, Op::Pending))] },
            Self::Applies => const { &[(Method::GET, Scoped(Read, Op::Applies))] },
            Self::Nodes => const { &[(Method::GET, Scoped(Read, Op::Nodes))] },
            Self::Status => const { &[(Method::GET, Scoped(Read, Op::Status))] },
            Self::Events => const { &[(Method::GET, Scoped(Read, Op::Events))] },
            Self::Metrics => const { &[(Method::GET, Scoped(Metrics, Op::Metrics))] },
            Self::Tokens => {
                const {
                    &[
                        (Method::GET, Scoped(Admin, Op::ListTokens)),
                        (Method::POST, Scoped(Admin, Op::CreateToken)),
                    ]
                }
            }
            Self::Token => const { &[(Method::DELETE, Scoped(Admin, Op::RevokeToken))] },
            Self::Audit => const { &[(Method::GET, Scoped(Read, Op::Audit))] },
            Self::Tenants => {
                const {
                    &[
                        (Method::GET, Scoped(Admin, Op::ListTenants)),
                        (Method::POST, Scoped(Admin, Op::CreateTenant)),
                    ]
                }
            }
            Self::Tenant => {
                const {
                    &[
                        (Method::GET, Scoped(Admin, Op::GetTenant)),
                        (Method::PATCH, Scoped(Admin, Op::UpdateTenant)),
                        (Method::DELETE, Scoped(Admin, Op::DeleteTenant)),
                    ]
                }
            }
        }
    }

    /// The `Allow` header of a 405: the route's methods, as [`Route::methods`] lists them.
    fn allow(self) -> String {
        let names: Vec<&str> = self.methods().iter().map(|(m, _)| m.as_str()).collect();
        names.join(", ")
    }

    /// Whether every method of the route is public: a request with another method is then
    /// answered 405 without asking who calls (the other routes authenticate first).
    fn is_public(self) -> bool {
        self.methods()
            .iter()
            .all(|(_, h)| matches!(h, Handler::Public(_)))
    }

    /// The user id of `/users/{id}` and `/users/{id}/secret`.
    fn user_id(self) -> Result<i64, ApiError> {
        match self {
            Self::User(id) | Self::UserSecret(id) => Ok(id),
            _ => Err(ApiError::NotFound),
        }
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
            Self::Tenants => "/tenants",
            Self::Tenant => "/tenants/{slug}",
            Self::WhoAmI => "/whoami",
            Self::Console => "/",
            Self::Asset => "/assets/{file}",
        }
    }
}

/// Authenticates (401; not on a public route), refuses a method the route does not serve
/// (405), checks the method's scope (403), then calls the handler with the caller in a
/// [`caller::Ctx`].
async fn route(app: &App, route: Option<Route>, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let route = route.ok_or(ApiError::NotFound)?;
    let handler = route
        .methods()
        .iter()
        .find(|(m, _)| m == req.method())
        .map(|(_, h)| *h);
    let (scope, op) = match handler {
        Some(Handler::Public(open)) => {
            return match open {
                Anyone::Healthz => Ok(system::healthz(app).await),
                Anyone::OpenApi => Ok(system::openapi(&app.openapi)),
                Anyone::Console => console::index(),
                Anyone::Asset => console::asset(req.uri().path()),
            }
        }
        Some(Handler::Signed(own)) => {
            let caller = caller::authenticate(app, &req).await?;
            return Ok(match own {
                Own::WhoAmI => caller::whoami(&caller),
            });
        }
        Some(Handler::Scoped(scope, op)) => (scope, op),
        None => {
            if !route.is_public() {
                caller::authenticate(app, &req).await?;
            }
            return Err(ApiError::MethodNotAllowed(route.allow()));
        }
    };
    let ctx = caller::authenticate(app, &req).await?.require(scope)?;
    match op {
        Op::Status => system::status(app, &ctx).await,
        Op::Events => events::open(app, &ctx),
        Op::Metrics => system::metrics(app),
        Op::CreateUser => users::create(app, &ctx, req).await,
        Op::ListUsers => users::list(app, &ctx, &req).await,
        Op::Import => import::import(app, &ctx, req).await,
        Op::Export => import::export(app, &ctx, &req).await,
        Op::GetUser => users::get(app, &ctx, route.user_id()?).await,
        Op::UpdateUser => users::update(app, &ctx, route.user_id()?, req).await,
        Op::DeleteUser => users::delete(app, &ctx, route.user_id()?).await,
        Op::RotateSecret => users::rotate_secret(app, &ctx, route.user_id()?).await,
        Op::Available => users::available(app, &ctx).await,
        Op::Apply => apply::apply(app, &ctx, &req).await,
        Op::Pending => apply::pending(app, &ctx).await,
        Op::Applies => apply::list(app, &ctx, &req).await,
        Op::Nodes => apply::nodes(app, &ctx).await,
        Op::CreateToken => tokens::create(app, &ctx, req).await,
        Op::ListTokens => tokens::list(app, &ctx).await,
        Op::RevokeToken => tokens::revoke(app, &ctx, &req).await,
        Op::Audit => audit::list(app, &ctx, &req).await,
        Op::ListTenants => tenants::list(app, &ctx).await,
        Op::CreateTenant => tenants::create(app, &ctx, req).await,
        Op::GetTenant => tenants::get(app, &ctx, &req).await,
        Op::UpdateTenant => tenants::update(app, &ctx, req).await,
        Op::DeleteTenant => tenants::delete(app, &ctx, &req).await,
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
    let mut resp = route(&app, parsed, req)
        .instrument(span.clone())
        .await
        .unwrap_or_else(|e| span.in_scope(|| e.into_response()));
    console::secure(resp.headers_mut());
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
///
/// With `tls` every connection is TLS (rustls, ALPN `http/1.1`) and every answer carries
/// `Strict-Transport-Security`. The handshake runs in the connection's own task, bounded
/// (10 s), so a peer that connects and never speaks holds neither the accept loop
/// nor the shutdown. The configuration's certificate resolver is what a
/// SIGHUP swaps (`crate::https`): open connections keep theirs.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: Shutdown,
) {
    /// How long a TLS client may take to finish its handshake.
    const HANDSHAKE: Duration = Duration::from_secs(10);
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    // Bounds a client that opens a connection and sends its headers slowly.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let hsts = acceptor.is_some();
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
        let service = service_fn(move |req| {
            let app = app.clone();
            async move {
                let mut resp = handle(app, req).await?;
                if hsts {
                    resp.headers_mut().insert(
                        hyper::header::STRICT_TRANSPORT_SECURITY,
                        hyper::header::HeaderValue::from_static(crate::https::HSTS),
                    );
                }
                Ok::<_, Infallible>(resp)
            }
        });
        // Taken now, before the loop can end: shutdown then also waits for a connection
        // still in its handshake.
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let acceptor = acceptor.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let ended = match acceptor {
                None => {
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(stream), service))
                        .await
                }
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(HANDSHAKE, acceptor.accept(stream));
                    let tls = tokio::select! {
                        h = handshake => h,
                        // Shutting down: a connection without a request yet has nothing
                        // to finish.
                        _ = stop.wait() => return,
                    };
                    match tls {
                        Ok(Ok(tls)) => {
                            watcher
                                .watch(builder.serve_connection(TokioIo::new(tls), service))
                                .await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = ended {
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
    use super::{Handler, Method, Route, Scope};

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
        assert_eq!(Route::parse("/tenants"), Some(Route::Tenants));
        assert_eq!(Route::parse("/tenants/acme"), Some(Route::Tenant));
        assert_eq!(Route::parse("/tenants/acme/x"), None);
        assert_eq!(Route::parse("/"), Some(Route::Console));
        assert_eq!(Route::parse(""), Some(Route::Console));
        assert_eq!(
            Route::parse("/assets/app.0123456789abcdef.js"),
            Some(Route::Asset)
        );
        assert_eq!(Route::parse("/assets/a/b"), None);
        assert_eq!(Route::parse("/whoami"), Some(Route::WhoAmI));
    }

    /// The scope `method` on `route` needs; `None` for a public or unserved method.
    fn scope(route: Route, method: &Method) -> Option<Scope> {
        route
            .methods()
            .iter()
            .find(|(m, _)| m == method)
            .and_then(|(_, h)| match h {
                Handler::Scoped(s, _) => Some(*s),
                Handler::Public(_) | Handler::Signed(_) => None,
            })
    }

    #[test]
    fn every_route_needs_its_scope() {
        let get = Method::GET;
        assert_eq!(scope(Route::Healthz, &get), None);
        assert_eq!(scope(Route::OpenApi, &get), None);
        assert_eq!(scope(Route::User(1), &get), Some(Scope::Read));
        assert_eq!(scope(Route::User(1), &Method::PATCH), Some(Scope::Write));
        assert_eq!(scope(Route::Users, &Method::POST), Some(Scope::Write));
        assert_eq!(scope(Route::Apply, &Method::POST), Some(Scope::Apply));
        assert_eq!(scope(Route::Tokens, &get), Some(Scope::Admin));
        assert_eq!(scope(Route::Audit, &get), Some(Scope::Read));
        assert_eq!(scope(Route::Tenants, &Method::POST), Some(Scope::Admin));
        assert_eq!(scope(Route::Tenant, &Method::PATCH), Some(Scope::Admin));
        assert_eq!(scope(Route::Users, &Method::PUT), None);
    }

    #[test]
    fn allow_lists_the_methods_in_order() {
        assert_eq!(Route::Users.allow(), "GET, POST");
        assert_eq!(Route::Tokens.allow(), "GET, POST");
        assert_eq!(Route::User(1).allow(), "GET, PATCH, DELETE");
        assert_eq!(Route::Token.allow(), "DELETE");
        assert_eq!(Route::Tenant.allow(), "GET, PATCH, DELETE");
        for r in [Route::UserSecret(1), Route::Apply, Route::UsersImport] {
            assert_eq!(r.allow(), "POST");
        }
        assert_eq!(Route::Status.allow(), "GET");
        assert!(Route::Healthz.is_public() && Route::OpenApi.is_public());
        assert!(!Route::Metrics.is_public());
        assert!(Route::Console.is_public() && Route::Asset.is_public());
        assert!(!Route::WhoAmI.is_public());
        assert_eq!(scope(Route::WhoAmI, &Method::GET), None);
    }
}
