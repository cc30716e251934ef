//! pbx-portal: users and SIP extensions in PostgreSQL, applied to Asterisk 22 as generated
//! PJSIP and dialplan include files, reloaded over AMI (or the CLI) and proven live by a
//! FastAGI health probe.
//!
//! The data path, and the only direction of imports between the layers:
//!
//! ```text
//! http ──▶ apply ──▶ store      (PostgreSQL: users, the nodes, their locks, requests and
//!    │           │               audit logs: the only thing several nodes share)
//!    │           └─▶ asterisk   (render, files, AMI, CLI, FastAGI, the probe)
//!    └─▶ bulk ──▶ store         (import and export of many users at once)
//! ```
//!
//! `store` and `asterisk` never import each other: `asterisk` returns its own results
//! (a reload's [`asterisk::reload::Via`], a probe's [`asterisk::probe::Verdict`]) and
//! [`apply`] maps them into the apply record. The leaves every layer may use are
//! [`domain`] (parsed user input), [`auth`] (scopes, actors, the token format), [`config`],
//! [`record`] (what an apply did, which `store` persists and `http` answers),
//! [`metrics`] (the Prometheus registry `http` and `apply` update) and [`shutdown`]. [`app`]
//! is the composition root that wires them for `serve`; [`check`] is the doctor. [`bulk`]
//! is shared by the HTTP routes and the `import` / `export` commands.

pub mod app;
pub mod apply;
pub mod asterisk;
pub mod auth;
pub mod bulk;
pub mod check;
pub mod config;
pub mod domain;
pub mod events;
pub mod http;
pub mod metrics;
pub mod record;
pub mod shutdown;
pub mod store;
