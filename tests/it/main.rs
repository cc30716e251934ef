//! The integration tests: one binary, so the Asterisk stand-in and the test support are
//! compiled once. Each module is one area of the product.

mod support;

mod apply_asterisk;
mod apply_files;
mod asterisk_standin;
mod bulk;
mod crash;
mod edits;
mod events;
mod metrics;
mod nodes;
mod openapi;
mod operations;
mod phones;
mod process;
mod registrations;
mod tls;
mod tokens;
mod users;
