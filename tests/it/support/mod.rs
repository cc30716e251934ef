//! Shared test support: the service under test and the Asterisk stand-in.
#![allow(dead_code)]

pub mod app;
pub mod asterisk;
pub mod process;
pub mod proxy;

use std::path::Path;

use asterisk::{FakeAsterisk, Options};

/// A stand-in Asterisk whose astetcdir is `etc`, with the portal's include directories.
pub async fn standin(etc: &Path, opts: Options) -> FakeAsterisk {
    process::make_etc(etc);
    let (pjsip, dialplan) = process::include_dirs(etc);
    FakeAsterisk::start(etc, &pjsip, &dialplan, opts)
        .await
        .expect("stand-in starts")
}

/// The variables that point a portal at `ast`: AMI first, its CLI script as fallback.
pub fn ami_vars(ast: &FakeAsterisk) -> Vec<(String, String)> {
    [
        ("PORTAL_RELOAD", "ami".to_owned()),
        ("PORTAL_AMI_ADDR", ast.ami_addr().to_string()),
        ("PORTAL_AMI_USERNAME", "portal".into()),
        ("PORTAL_AMI_SECRET", "portal-secret".into()),
        ("PORTAL_ASTERISK_CLI", ast.cli_path().display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// `(key, value)` pairs as the `&str` pairs the spawners take.
pub fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter()
        .map(|(k, val)| (k.as_str(), val.as_str()))
        .collect()
}
