//! The integration tests: one binary, so the Asterisk stand-in and the test support are
//! compiled once. Each module is one area of the product; what each one proves is the
//! table in tests/README.md (keep it in step when a file comes or changes).

/// A recording of tests/fixtures/asterisk (path below it), compiled in as text.
/// Defined before the modules, so every one of them can use it.
macro_rules! fixture {
    ($path:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/asterisk/",
            $path
        ))
    };
}

/// A recording of tests/fixtures/asterisk (path below it), compiled in as bytes.
macro_rules! fixture_bytes {
    ($path:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/asterisk/",
            $path
        ))
    };
}

mod support;

mod apply_asterisk;
mod apply_files;
mod asterisk_standin;
mod bulk;
mod console;
mod console_serving;
mod crash;
mod edits;
mod events;
mod https;
mod metrics;
mod nodes;
mod openapi;
mod operations;
mod phones;
mod process;
mod proof;
mod registrations;
mod tenant_apply;
mod tenant_files;
mod tenant_live;
mod tenant_tokens;
mod tenants;
mod tls;
mod tokens;
mod users;
