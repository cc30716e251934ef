//! pbx-portal: users and SIP extensions in PostgreSQL, applied to Asterisk 22 as generated
//! PJSIP and dialplan include files, reloaded over AMI (or the CLI) and proven live by a
//! FastAGI health probe.
//!
//! The layers, top to bottom, and the only directions of imports between them (a module
//! imports only modules below it; the test below holds every module to this):
//!
//! ```text
//! (binary: main.rs, cli/)  the commands; build everything through app
//! app       the composition root: wires the layers below for `serve` and `apply`
//! http      ──▶ apply, bulk, store, asterisk (/status, registrations), and the leaves
//! check     ──▶ store, asterisk (the doctor), and the leaves
//! bulk      ──▶ store (import and export of many users at once), and the leaves
//! apply     ──▶ store, asterisk (database → files → Asterisk), and the leaves
//! store     ──▶ the leaves only (PostgreSQL: users, nodes, their locks, requests,
//!               audit logs: the only thing several nodes share)
//! asterisk  ──▶ the leaves only (render, files, AMI, CLI, FastAGI, the probe)
//! leaves    record, metrics (──▶ record), config (──▶ domain), domain, auth, events,
//!           shutdown, backoff, https (──▶ config)
//! ```
//!
//! `store` and `asterisk` never import each other nor `apply`: `asterisk` returns its own
//! results (a reload's [`asterisk::reload::Via`], a probe's [`asterisk::probe::Verdict`])
//! and [`apply`] maps them into the apply record; `store` hands `apply` typed values and
//! a handle on the node's lock ([`store::ApplyLock`]), never a raw transaction, and hands
//! `http` typed values, never an answer's JSON. The leaves every layer may use are
//! [`domain`] (parsed user input), [`auth`] (scopes, actors, the token format), [`config`],
//! [`record`] (what an apply did, which `store` persists and `http` answers), [`metrics`]
//! (the Prometheus registry `http` and `apply` update), [`events`] (the hub of `GET
//! /events`), [`shutdown`], [`backoff`] (the pauses of the retry loops) and [`https`]
//! (the certificate HTTP serves, re-read on SIGHUP). [`check`] is the doctor; [`bulk`] is shared by the HTTP
//! routes and the `import` / `export` commands.

pub mod app;
pub mod apply;
pub mod asterisk;
pub mod auth;
pub mod backoff;
pub mod bulk;
pub mod check;
pub mod config;
pub mod domain;
pub mod events;
pub mod http;
pub mod https;
pub mod metrics;
pub mod record;
pub mod shutdown;
pub mod store;

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The leaves: any layer may import them; among themselves, see [`LAYERS`].
    const LEAVES: &[&str] = &[
        "record", "metrics", "config", "domain", "auth", "events", "shutdown", "backoff", "https",
    ];

    /// What each module may import of the crate (`crate::<module>`) besides the leaves
    /// (`true`) or instead of them (`false`): the layers of the crate documentation.
    const LAYERS: &[(&str, bool, &[&str])] = &[
        (
            "app",
            true,
            &["http", "check", "bulk", "apply", "store", "asterisk"],
        ),
        ("http", true, &["apply", "bulk", "store", "asterisk"]),
        ("check", true, &["store", "asterisk"]),
        ("bulk", true, &["store"]),
        ("apply", true, &["store", "asterisk"]),
        ("store", true, &[]),
        ("asterisk", true, &[]),
        ("metrics", false, &["record"]),
        ("config", false, &["domain"]),
        ("record", false, &[]),
        ("domain", false, &[]),
        ("auth", false, &[]),
        ("events", false, &[]),
        ("shutdown", false, &[]),
        ("backoff", false, &[]),
        ("https", false, &["config"]),
    ];

    fn sources(path: &Path, out: &mut Vec<std::path::PathBuf>) {
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            entries.sort();
            for p in entries {
                sources(&p, out);
            }
        } else if path.is_file() && path.extension().is_some_and(|e| e == "rs") {
            out.push(path.to_owned());
        }
    }

    /// Every `crate::<module>` a module's code (not its comments) names is one it may
    /// import; every module of the crate is in the table.
    #[test]
    fn imports_go_down_the_layers() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
        let declared: Vec<&str> = lib
            .lines()
            .filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';'))
            .collect();
        let known: Vec<&str> = LAYERS.iter().map(|(m, _, _)| *m).collect();
        assert_eq!(
            {
                let mut d = declared.clone();
                d.sort_unstable();
                d
            },
            {
                let mut k = known.clone();
                k.sort_unstable();
                k
            },
            "every module has its row"
        );
        let mut wrong = Vec::new();
        for (module, leaves, layers) in LAYERS {
            let leaves: &[&str] = if *leaves { LEAVES } else { &[] };
            let allowed: Vec<&str> = layers.iter().chain(leaves).copied().collect();
            let mut files = Vec::new();
            sources(&src.join(format!("{module}.rs")), &mut files);
            sources(&src.join(module), &mut files);
            assert!(!files.is_empty(), "{module} has no source");
            for file in files {
                let text = std::fs::read_to_string(&file).unwrap();
                let code = text.lines().filter(|l| !l.trim_start().starts_with("//"));
                for line in code {
                    for (at, _) in line.match_indices("crate::") {
                        let rest = &line[at + "crate::".len()..];
                        let name: String = rest
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        let by_name = line[..at].ends_with("pbx_portal::");
                        if name != *module
                            && !by_name
                            && known.contains(&name.as_str())
                            && !allowed.contains(&name.as_str())
                        {
                            wrong.push(format!("{}: crate::{name}", file.display()));
                        }
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "imports against the layers: {wrong:#?}");
    }
}
