//! pbx-portal: users and SIP extensions in PostgreSQL, applied to Asterisk 22 as generated
//! PJSIP and dialplan include files, reloaded over AMI (or the CLI) and proven live by a
//! FastAGI health probe.
//!
//! Data path: [`http`] (routing, handlers, errors, auth) → [`store`] (PostgreSQL) →
//! [`apply`] (the pipeline) → [`asterisk`] (render, files, AMI, CLI, FastAGI).

pub mod app;
pub mod apply;
pub mod asterisk;
pub mod check;
pub mod config;
pub mod domain;
pub mod http;
pub mod shutdown;
pub mod store;
