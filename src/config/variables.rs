//! Every variable pbx-portal reads, defined once: its name, default, allowed values and
//! meaning. Two files are generated from [`VARIABLES`] and checked by this module's
//! tests, which fail when a committed copy differs and say how to regenerate it:
//!
//! - `systemd/pbx-portal.env.example` ([`env_example`]), which the Debian package
//!   installs as `/etc/pbx-portal/pbx-portal.env`;
//! - the table of `docs/configuration.md` ([`markdown_table`]), between its two
//!   `generated` marker lines.
//!
//! Regenerate both with `UPDATE_DOCS=1 cargo test --lib config::variables`.
//!
//! The tests also hold the table to the parser: the variables [`super::Config`] accepts
//! (the fields of its serde struct) are exactly the table's, each default written here is
//! the one the parser uses, and each range or list of values is what it accepts.

/// One variable.
#[derive(Debug)]
pub struct Variable {
    pub name: &'static str,
    pub default: IfUnset,
    pub values: Values,
    /// What it does: one paragraph of Markdown without links (it is also the comment of
    /// the env file).
    pub meaning: &'static str,
    /// The page of `docs/` that says more, if any, with an anchor in it or not
    /// (`postgres-tls.md`, `asterisk.md#encrypted-calls`).
    pub see: Option<&'static str>,
    /// Comment lines only the env file carries (examples to copy), verbatim.
    pub env_notes: &'static [&'static str],
    pub reader: Reader,
}

/// What happens when a variable is unset (or empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfUnset {
    /// This value, as written in the environment.
    Value(&'static str),
    /// No default: required in the situation named (e.g. "by `serve`"), or always when "".
    Required(&'static str),
    /// A default that is not a constant, described.
    Described(&'static str),
}

/// The values a variable takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    /// A whole number from `min` to `max`, both included.
    Range { min: u64, max: u64 },
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// Anything of this form (described).
    Form(&'static str),
}

/// Who reads the variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// [`super::Config`]: a bad value stops start-up naming the variable.
    Config,
    /// The log filter (`tracing_subscriber::EnvFilter`), set up before the configuration.
    Logging,
}

const MS: Values = Values::Range {
    min: 100,
    max: 600_000,
};

/// Every variable, in the order of the docs table and the env file.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "DATABASE_URL",
        default: IfUnset::Required(""),
        values: Values::Form("a `postgres://` URL or a `key=value` string"),
        meaning: "The PostgreSQL connection: a `postgres://…` URL or a `key=value` string; a Unix socket as `host=/var/run/postgresql`; `sslmode` (`disable`, `prefer` (the default), `require`, `verify-ca`, `verify-full`) and `sslrootcert` (a CA file, or `system`) as libpq reads them; several hosts with `target_session_attrs=read-write` to follow a failover.",
        see: Some("postgres-tls.md"),
        env_notes: &[
            "Over TCP:",
            "  DATABASE_URL=postgres://pbx_portal:PASSWORD@127.0.0.1/pbx_portal",
            "Over the local Unix socket with peer authentication as the OS user pbx-portal",
            "(CREATE ROLE \"pbx-portal\" LOGIN; CREATE DATABASE pbx_portal OWNER \"pbx-portal\";):",
            "  DATABASE_URL=\"host=/run/postgresql user=pbx-portal dbname=pbx_portal\"",
            "A PostgreSQL on another host: TLS, the server's certificate verified against",
            "your CA and its name checked (the CA file must be readable by pbx-portal,",
            "e.g. /etc/pbx-portal/db-ca.crt, 0644):",
            "  DATABASE_URL=postgres://pbx_portal:PASSWORD@db1.example.net/pbx_portal?sslmode=verify-full&sslrootcert=/etc/pbx-portal/db-ca.crt",
            "A failover pair (the node follows the read-write one):",
            "  DATABASE_URL=\"host=db1.example.net,db2.example.net dbname=pbx_portal user=pbx_portal password=PASSWORD target_session_attrs=read-write connect_timeout=5 sslmode=verify-full sslrootcert=/etc/pbx-portal/db-ca.crt\"",
        ],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_API_TOKEN",
        default: IfUnset::Required("by `serve`"),
        values: Values::Form("at least 16 characters"),
        meaning: "The bootstrap bearer token (every scope) for every HTTP route but `/healthz` and `/openapi.json`.",
        see: Some("api.md#tokens-scopes-and-the-audit"),
        env_notes: &["Generate one with: openssl rand -hex 32"],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_AMI_USERNAME",
        default: IfUnset::Required("with `PORTAL_RELOAD=ami`"),
        values: Values::Form("no line break"),
        meaning: "The AMI user: the `[portal]` section of manager.conf, so `portal` (see the snippet `asterisk-snippets/manager.conf`).",
        see: Some("asterisk.md#snippets-and-generated-files"),
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_AMI_SECRET",
        default: IfUnset::Required("with `PORTAL_RELOAD=ami`"),
        values: Values::Form("no line break"),
        meaning: "The AMI user's secret, as in manager.conf. Never logged.",
        see: None,
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_DB_POOL_SIZE",
        default: IfUnset::Value("16"),
        values: Values::Range { min: 2, max: 200 },
        meaning: "Connections in the database pool (an apply holds two at once).",
        see: None,
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_LISTEN",
        default: IfUnset::Value("127.0.0.1:8080"),
        values: Values::Form("an address like `127.0.0.1:8080` (no host name)"),
        meaning: "The HTTP address (HTTPS with `PORTAL_TLS_CERT` and `PORTAL_TLS_KEY`). An address off loopback (`0.0.0.0:8080`) without TLS works, with a warning at start and in `pbx-portal check`: bearer tokens would cross the network in clear.",
        see: Some("https.md"),
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_TLS_CERT",
        default: IfUnset::Described("unset: plain HTTP"),
        values: Values::Form("a PEM file readable by pbx-portal"),
        meaning: "HTTPS on `PORTAL_LISTEN` (TLS only, HTTP/1.1): the server's certificate chain, its own certificate first (certbot's `fullchain.pem`). Set together with `PORTAL_TLS_KEY`; both are read again on SIGHUP (`systemctl reload pbx-portal`) without dropping connections, a bad file keeping the previous certificate. Every answer over TLS carries `Strict-Transport-Security`.",
        see: Some("https.md"),
        env_notes: &[
            "e.g. PORTAL_TLS_CERT=/etc/pbx-portal/tls/fullchain.pem",
        ],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_TLS_KEY",
        default: IfUnset::Described("unset: plain HTTP"),
        values: Values::Form("a PEM file readable by pbx-portal"),
        meaning: "The private key of `PORTAL_TLS_CERT` (PEM: PKCS#8, RSA or SEC1; not encrypted). Never logged.",
        see: Some("https.md"),
        env_notes: &["e.g. PORTAL_TLS_KEY=/etc/pbx-portal/tls/privkey.pem"],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_AGI_LISTEN",
        default: IfUnset::Value("127.0.0.1:4573"),
        values: Values::Form("an address like `127.0.0.1:4573` (no host name)"),
        meaning: "The FastAGI address, also written into the probe dialplan (`agi://<this>/health…`); a wildcard address is called on loopback.",
        see: Some("asterisk.md#health-probe"),
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_PJSIP_DIR",
        default: IfUnset::Value("/etc/asterisk/pjsip.d/synergycall"),
        values: Values::Form("a directory"),
        meaning: "Where `generated_endpoints.conf` goes; must match `ReadWritePaths=` in the unit and the `#tryinclude` line in pjsip.conf.",
        see: None,
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_DIALPLAN_DIR",
        default: IfUnset::Value("/etc/asterisk/extensions.d/synergycall"),
        values: Values::Form("a directory"),
        meaning: "Where `generated_routing.conf` goes; must match `ReadWritePaths=` in the unit and the `#tryinclude` line in extensions.conf.",
        see: None,
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_RELOAD",
        default: IfUnset::Value("ami"),
        values: Values::OneOf(&["ami", "cli", "none"]),
        meaning: "How to reload Asterisk: `ami` (AMI, with `asterisk -rx` as fallback when AMI cannot be reached), `cli` (only `asterisk -rx`), `none` (write the files only: development).",
        see: None,
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_AMI_ADDR",
        default: IfUnset::Value("127.0.0.1:5038"),
        values: Values::Form("an address like `127.0.0.1:5038` (no host name)"),
        meaning: "The AMI address (manager.conf `[general]` `bindaddr`/`port`).",
        see: None,
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_AMI_TIMEOUT_MS",
        default: IfUnset::Value("5000"),
        values: MS,
        meaning: "Bound on each AMI exchange and each `asterisk -rx` run, in milliseconds. A reload waits for Asterisk to re-read every endpoint: with many thousand users it takes seconds (`time asterisk -rx 'module reload res_pjsip.so'`), so keep this above it.",
        see: None,
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_ASTERISK_CLI",
        default: IfUnset::Value("asterisk"),
        values: Values::Form("a program (found in `PATH`) or its path"),
        meaning: "The CLI of the fallback, run as `<cli> -rx \"<command>\"` (found in PATH: /usr/sbin/asterisk).",
        see: None,
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_HEALTH_CHECK",
        default: IfUnset::Value("agi"),
        values: Values::OneOf(&["agi", "off"]),
        meaning: "The health probe after a reload: `agi` (probe) or `off`; forced `off` with `PORTAL_RELOAD=none`.",
        see: Some("asterisk.md#health-probe"),
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_HEALTH_TIMEOUT_MS",
        default: IfUnset::Value("10000"),
        values: MS,
        meaning: "How long an apply waits for the FastAGI probe, in milliseconds.",
        see: None,
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_EXTENSION_MIN",
        default: IfUnset::Value("1000"),
        values: Values::Range {
            min: 1,
            max: 2_147_483_647,
        },
        meaning: "The lowest extension of the allocation range (inclusive, at most `PORTAL_EXTENSION_MAX`); narrowing the range later leaves existing numbers alone.",
        see: None,
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_EXTENSION_MAX",
        default: IfUnset::Value("1999"),
        values: Values::Range {
            min: 1,
            max: 2_147_483_647,
        },
        meaning: "The highest extension of the allocation range (inclusive).",
        see: None,
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_PJSIP_TRANSPORT",
        default: IfUnset::Value("transport-udp"),
        values: Values::Form("a transport id of pjsip.conf"),
        meaning: "The PJSIP transport id written on every endpoint; it must exist in pjsip.conf. With `PORTAL_PJSIP_TRANSPORTS` set, leave it unset (or equal to the first listed).",
        see: None,
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_PJSIP_TRANSPORTS",
        default: IfUnset::Described("`PORTAL_PJSIP_TRANSPORT` alone"),
        values: Values::Form("transport ids separated by commas, each once"),
        meaning: "The transports an admin may give a user (each a transport section of pjsip.conf); the first is the default. A transport whose section says `protocol=tls` makes its users' calls encrypted (SRTP, `media_encryption=sdes`, not optimistic). A listed transport that pjsip.conf does not define stops start-up.",
        see: Some("asterisk.md#encrypted-calls"),
        env_notes: &["e.g. PORTAL_PJSIP_TRANSPORTS=transport-udp,transport-tls"],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_NAT",
        default: IfUnset::Value("on"),
        values: Values::OneOf(&["on", "off"]),
        meaning: "`on`: every endpoint gets `rtp_symmetric`, `force_rport` and `rewrite_contact`, so that a phone behind a NAT (home office, mobile, branch) can be called; `off`: without them.",
        see: Some("asterisk.md#phones-behind-nat"),
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_CODECS",
        default: IfUnset::Value("g722,ulaw,alaw"),
        values: Values::Form("codec names separated by commas, each once"),
        meaning: "The codecs every endpoint allows, in order of preference; each must be a codec Asterisk 22 knows (g722, ulaw, alaw, opus, g729, …): a typo stops start-up naming the variable.",
        see: None,
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_ASTERISK_CONFIG_DIR",
        default: IfUnset::Value("/etc/asterisk"),
        values: Values::Form("a directory"),
        meaning: "Where `pbx-portal check` (and start-up, for the transports) looks for pjsip.conf and extensions.conf.",
        see: None,
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_QUALIFY_FREQUENCY",
        default: IfUnset::Value("60"),
        values: Values::Range { min: 0, max: 86_400 },
        meaning: "Seconds between qualify OPTIONS to each registered phone (every aor's `qualify_frequency`), so that a contact's `status`/`rtt_ms` say whether the phone answers now; 0 = off.",
        see: None,
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_NODE",
        default: IfUnset::Described("the host name"),
        values: Values::Form("1–63 of `A-Z a-z 0-9 . _ -`"),
        meaning: "This host's node name when several Asterisk hosts share the database (an invalid one stops start-up naming it); two processes with the same name (`serve` and `pbx-portal apply` on one host) are the same node.",
        see: Some("nodes.md"),
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "PORTAL_NODE_TIMEOUT_MS",
        default: IfUnset::Value("30000"),
        values: MS,
        meaning: "How long the node that received `POST /apply` waits for each other node's record, in milliseconds; past it that node is `node_timeout`.",
        see: Some("nodes.md"),
        env_notes: &[],
        reader: Reader::Config,
    },
    Variable {
        name: "RUST_LOG",
        default: IfUnset::Value("info"),
        values: Values::Form("a `tracing` filter"),
        meaning: "The log filter (stderr; the journal under systemd). tokio-postgres and hyper stay at `info` whatever it says: at `debug` tokio-postgres prints query parameters, SIP secrets included.",
        see: Some("operations.md#logs"),
        env_notes: &[],
        reader: Reader::Logging,
    },
];

/// The variable of that name.
pub fn variable(name: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|v| v.name == name)
}

impl Values {
    /// As written in the docs table.
    fn markdown(&self) -> String {
        match self {
            Self::Range { min, max } => format!("{min}–{max}"),
            Self::OneOf(words) => words
                .iter()
                .map(|w| format!("`{w}`"))
                .collect::<Vec<_>>()
                .join(", "),
            Self::Form(text) => (*text).to_owned(),
        }
    }
}

impl IfUnset {
    fn markdown(&self) -> String {
        match self {
            Self::Value(v) => format!("`{v}`"),
            Self::Required("") => "(required)".to_owned(),
            Self::Required(when) => format!("(required {when})"),
            Self::Described(text) => (*text).to_owned(),
        }
    }
}

/// The table of `docs/configuration.md`: one row per variable.
pub fn markdown_table() -> String {
    let mut out = String::from("| variable | default | values | meaning |\n|---|---|---|---|\n");
    for v in VARIABLES {
        let see = v
            .see
            .map(|target| {
                let page = target.split('#').next().unwrap_or(target);
                format!(" See [{page}]({target}).")
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "| `{}` | {} | {} | {}{} |\n",
            v.name,
            v.default.markdown(),
            v.values.markdown(),
            v.meaning,
            see
        ));
    }
    out
}

const ENV_HEADER: &str = "\
# /etc/pbx-portal/pbx-portal.env: the environment of pbx-portal.service
# (EnvironmentFile=). Every variable pbx-portal reads is listed below, commented.
# Generated from src/config/variables.rs; the same table, with links, is
# /usr/share/doc/pbx-portal/configuration.md.
#
# The Debian package installs this file as a conffile (an upgrade never overwrites
# your edits), mode 0640, owner root, group pbx-portal: it will hold secrets.
# Without the package:
#   install -d -m 0750 -g pbx-portal /etc/pbx-portal
#   install -m 0640 -g pbx-portal systemd/pbx-portal.env.example /etc/pbx-portal/pbx-portal.env
#
# Syntax: KEY=value, one per line, no \"export\"; quote values containing spaces or #.
# An empty value counts as unset. Commented lines show the built-in default where
# there is one; uncomment a line only to change it.
#
# The package enables pbx-portal.service but starts it only once DATABASE_URL and
# PORTAL_API_TOKEN are set here. After editing: systemctl restart pbx-portal
";

/// `text` as comment lines of at most `width` characters.
fn comment(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() > 1 && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    if line.len() > 1 {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The env example file (`systemd/pbx-portal.env.example`): every variable commented,
/// with its default where it has one.
pub fn env_example() -> String {
    let mut out = String::from(ENV_HEADER);
    let sections = [("Required", true), ("Optional", false)];
    for (title, required) in sections {
        out.push_str(&format!(
            "\n# ---- {title} {}\n",
            "-".repeat(73 - title.len())
        ));
        for v in VARIABLES
            .iter()
            .filter(|v| matches!(v.default, IfUnset::Required(_)) == required)
        {
            let mut text = v.meaning.to_owned();
            match v.default {
                IfUnset::Required("") => text.push_str(" Required."),
                IfUnset::Required(when) => text.push_str(&format!(" Required {when}.")),
                IfUnset::Described(d) => text.push_str(&format!(" Default: {d}.")),
                IfUnset::Value(_) => {}
            }
            match v.values {
                Values::Range { min, max } => text.push_str(&format!(" From {min} to {max}.")),
                Values::OneOf(words) => text.push_str(&format!(" One of: {}.", words.join(", "))),
                Values::Form(form) => text.push_str(&format!(" Form: {form}.")),
            }
            if let Some(target) = v.see {
                let page = target.split('#').next().unwrap_or(target);
                text.push_str(&format!(" See /usr/share/doc/pbx-portal/{page}."));
            }
            out.push('\n');
            out.push_str(&comment(&text, 84));
            for note in v.env_notes {
                out.push_str(&format!("# {note}\n"));
            }
            let value = match v.default {
                IfUnset::Value(d) => d,
                _ => "",
            };
            out.push_str(&format!("#{}={value}\n", v.name));
        }
    }
    out
}

/// The field names of a struct as serde's derive knows them (their `rename`s): asks
/// `T::deserialize` for a struct and keeps the list it offers. For the test that the
/// table and the parser name the same variables, and for refusing unknown ones.
pub(super) fn serde_fields<'de, T: serde::Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};

    struct Fields(Option<&'static [&'static str]>);

    impl<'de> de::Deserializer<'de> for &mut Fields {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("only a struct's field names are read"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = Some(fields);
            Err(de::Error::custom("only a struct's field names are read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
            enum identifier ignored_any
        }
    }

    let mut fields = Fields(None);
    let _ = T::deserialize(&mut fields);
    fields.0.unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;
    use crate::config::{Config, Vars};

    const REGENERATE: &str = "UPDATE_DOCS=1 cargo test --lib config::variables";

    /// Compares a committed file with what it should be; rewrites it under UPDATE_DOCS=1.
    fn check_file(path: &str, want: &str) {
        let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        let have = std::fs::read_to_string(&full).unwrap_or_default();
        if have == want {
            return;
        }
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&full, want).unwrap_or_else(|e| panic!("writing {path}: {e}"));
            return;
        }
        let line = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| have.lines().count().min(want.lines().count()))
            + 1;
        panic!(
            "{path} differs from what src/config/variables.rs generates (first at line {line}).\n\
             Regenerate it with `{REGENERATE}` and commit the result."
        );
    }

    const BEGIN: &str = "<!-- BEGIN generated from src/config/variables.rs (UPDATE_DOCS=1 cargo test --lib config::variables): do not edit -->\n";
    const END: &str = "<!-- END generated -->\n";

    #[test]
    fn the_env_example_is_generated() {
        check_file("systemd/pbx-portal.env.example", &env_example());
    }

    #[test]
    fn the_docs_table_is_generated() {
        let path = "docs/configuration.md";
        let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        let doc = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{path}: {e}"));
        let (before, rest) = doc
            .split_once(BEGIN)
            .unwrap_or_else(|| panic!("{path} lacks the line {BEGIN}"));
        let (_, after) = rest
            .split_once(END)
            .unwrap_or_else(|| panic!("{path} lacks the line {END}"));
        check_file(
            path,
            &format!("{before}{BEGIN}{}{END}{after}", markdown_table()),
        );
    }

    #[test]
    fn the_table_names_exactly_the_variables_the_parser_accepts() {
        let mut parsed: Vec<&str> = serde_fields::<Vars>().to_vec();
        let mut table: Vec<&str> = VARIABLES
            .iter()
            .filter(|v| v.reader == Reader::Config)
            .map(|v| v.name)
            .collect();
        assert!(!parsed.is_empty(), "serde offered no field names");
        parsed.sort_unstable();
        table.sort_unstable();
        assert_eq!(
            parsed, table,
            "the fields of config::Vars and the Config rows of VARIABLES"
        );
        let mut names: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), VARIABLES.len(), "a variable listed twice");
        // And the parser refuses any other PORTAL_ variable, naming it.
        let unknown = "is not a variable pbx-portal reads (misspelt?)";
        for v in VARIABLES.iter().filter(|v| v.reader == Reader::Config) {
            if let Err(e) = Config::from_vars(&with(&[(v.name, "x")])) {
                assert_ne!(e.reason, unknown, "{}", v.name);
            }
        }
        let e = Config::from_vars(&with(&[("PORTAL_RELAOD", "cli")])).unwrap_err();
        assert_eq!(
            (e.var.as_str(), e.reason.as_str()),
            ("PORTAL_RELAOD", unknown)
        );
    }

    /// A working configuration (reload over AMI, as by default) plus `pairs`.
    fn with(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = [
            ("DATABASE_URL", "postgres://u:pw@localhost/db"),
            ("PORTAL_AMI_USERNAME", "portal"),
            ("PORTAL_AMI_SECRET", "secret"),
            ("PORTAL_NODE", "pbx1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            m.insert(k.to_string(), v.to_string());
        }
        m
    }

    #[test]
    fn each_default_written_is_the_parsers() {
        let unset = format!("{:?}", Config::from_vars(&with(&[])).unwrap());
        for v in VARIABLES.iter().filter(|v| v.reader == Reader::Config) {
            if let IfUnset::Value(d) = v.default {
                let set = Config::from_vars(&with(&[(v.name, d)]))
                    .unwrap_or_else(|e| panic!("{}={d}: {e}", v.name));
                assert_eq!(
                    format!("{set:?}"),
                    unset,
                    "{}={d} is not the default",
                    v.name
                );
            }
        }
    }

    #[test]
    fn each_range_and_list_written_is_what_the_parser_takes() {
        // Room for either extension bound to reach its limits.
        let wide = [
            ("PORTAL_EXTENSION_MIN", "1"),
            ("PORTAL_EXTENSION_MAX", "2147483647"),
        ];
        let parse = |name: &str, value: &str| {
            let mut pairs: Vec<(&str, &str)> =
                wide.iter().copied().filter(|(k, _)| *k != name).collect();
            pairs.push((name, value));
            Config::from_vars(&with(&pairs))
        };
        for v in VARIABLES.iter().filter(|v| v.reader == Reader::Config) {
            match v.values {
                Values::Range { min, max } => {
                    for ok in [min, max] {
                        let r = parse(v.name, &ok.to_string());
                        assert!(r.is_ok(), "{}={ok}: {:?}", v.name, r.err());
                    }
                    let mut out = vec![max + 1];
                    if min > 0 {
                        out.push(min - 1);
                    }
                    for bad in out {
                        assert!(parse(v.name, &bad.to_string()).is_err(), "{}={bad}", v.name);
                    }
                }
                Values::OneOf(words) => {
                    for w in words {
                        let r = parse(v.name, w);
                        assert!(r.is_ok(), "{}={w}: {:?}", v.name, r.err());
                    }
                    let e = parse(v.name, "neither").unwrap_err();
                    assert_eq!(e.var, v.name);
                }
                Values::Form(_) => {}
            }
        }
    }

    #[test]
    fn env_comments_fit_and_set_nothing() {
        for line in env_example().lines() {
            assert!(
                line.is_empty() || line.starts_with('#'),
                "sets a value: {line}"
            );
        }
    }
}
