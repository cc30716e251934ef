//! The web console: its files (`console/` at the repository root) compiled into the binary
//! and served at `/` and `/assets/…`, and the security headers every response carries.
//!
//! There is no build step and no Node toolchain: the files are plain ES modules, CSS and
//! one HTML page, included as they are. What a bundler would add is done here, once, at
//! the first request: each asset gets a name with the first 16 hex digits of the SHA-256
//! of its content (`/assets/users.0123456789abcdef.js`), and every reference to it (the
//! `<script>` and `<link>` of index.html, each JS `import` specifier) is rewritten to that
//! name. An asset's name is computed after its own imports were rewritten, so a change in
//! any module renames it and every module that imports it, up to index.html. The assets
//! can then be cached for a year (`immutable`), while index.html is revalidated on every
//! load (`no-cache`): a new binary is picked up at the next reload, never half of it.
//!
//! The headers of [`secure`] go on every response, the API's too: a strict
//! Content-Security-Policy (scripts and styles only from this origin, no inline code, no
//! other origin to talk to), `nosniff` and no referrer.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::LazyLock;

use bytes::Bytes;
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use hyper::Response;
use sha2::{Digest, Sha256};

use super::body::full;
use super::error::ApiError;
use super::Resp;

/// The policy of every response (see the module comment).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// The console's page; every other file is an asset.
const INDEX: &str = "index.html";

/// Every file of `console/`, by its name there (JS modules under `js/` by their file name:
/// the assets share one flat namespace). A unit test checks this list against the
/// directory, so a file added there and not here fails the build's tests.
const SOURCES: &[(&str, &str)] = &[
    (INDEX, include_str!("../../console/index.html")),
    ("console.css", include_str!("../../console/console.css")),
    ("api.js", include_str!("../../console/js/api.js")),
    ("dom.js", include_str!("../../console/js/dom.js")),
    ("events.js", include_str!("../../console/js/events.js")),
    ("dialogs.js", include_str!("../../console/js/dialogs.js")),
    ("app.js", include_str!("../../console/js/app.js")),
    ("boot.js", include_str!("../../console/js/boot.js")),
    ("signin.js", include_str!("../../console/js/signin.js")),
    ("users.js", include_str!("../../console/js/users.js")),
    ("apply.js", include_str!("../../console/js/apply.js")),
    ("import.js", include_str!("../../console/js/import.js")),
    ("nodes.js", include_str!("../../console/js/nodes.js")),
    ("audit.js", include_str!("../../console/js/audit.js")),
    ("tokens.js", include_str!("../../console/js/tokens.js")),
];

/// Why the compiled-in files could not be served (a unit test builds them: unreachable in
/// a tested binary).
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("the console's modules import each other in a cycle: {0}")]
    Cycle(String),
    #[error("the console has no {INDEX}")]
    NoIndex,
}

/// One asset, under its hashed name.
#[derive(Debug)]
struct Asset {
    content_type: &'static str,
    body: Bytes,
}

/// The console, ready to serve: index.html with hashed references, and the assets by
/// their hashed names.
#[derive(Debug)]
pub struct Console {
    index: Bytes,
    assets: HashMap<String, Asset>,
    /// Source name → hashed name: what the tests check the references against.
    #[cfg_attr(not(test), allow(dead_code))]
    names: HashMap<&'static str, String>,
}

/// The `Content-Type` of a file, by its extension; UTF-8 for every text.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml; charset=utf-8",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `stem.<first 16 hex digits of the SHA-256 of content>.ext`.
fn hashed_name(name: &str, content: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    let mut hash = String::with_capacity(16);
    for b in &digest[..8] {
        let _ = write!(hash, "{b:02x}");
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
        None => format!("{name}.{hash}"),
    }
}

/// The quoted forms a module uses to import `name` (`'./name'` or `"./name"`).
fn specifiers(name: &str) -> [String; 2] {
    [format!("'./{name}'"), format!("\"./{name}\"")]
}

impl Console {
    /// Names every asset after its content, dependencies first, and rewrites the
    /// references to them.
    pub fn build(sources: &[(&'static str, &'static str)]) -> Result<Self, ConsoleError> {
        let index = sources
            .iter()
            .find(|(n, _)| *n == INDEX)
            .map(|(_, text)| *text)
            .ok_or(ConsoleError::NoIndex)?;
        let pending: Vec<(&'static str, &'static str)> = sources
            .iter()
            .filter(|(n, _)| *n != INDEX)
            .copied()
            .collect();
        let mut names: HashMap<&'static str, String> = HashMap::new();
        let mut assets = HashMap::new();
        let mut left = pending;
        while !left.is_empty() {
            let before = left.len();
            let mut still = Vec::new();
            for (name, text) in left {
                let deps: Vec<&'static str> = sources
                    .iter()
                    .map(|(n, _)| *n)
                    .filter(|n| *n != name && *n != INDEX)
                    .filter(|n| specifiers(n).iter().any(|s| text.contains(s.as_str())))
                    .collect();
                if deps.iter().any(|d| !names.contains_key(d)) {
                    still.push((name, text));
                    continue;
                }
                let mut out = text.to_owned();
                for d in deps {
                    let hashed = &names[d];
                    for (from, to) in specifiers(d).iter().zip(specifiers(hashed)) {
                        out = out.replace(from.as_str(), &to);
                    }
                }
                let hashed = hashed_name(name, &out);
                assets.insert(
                    hashed.clone(),
                    Asset {
                        content_type: content_type(name),
                        body: Bytes::from(out),
                    },
                );
                names.insert(name, hashed);
            }
            if still.len() == before {
                let cycle: Vec<&str> = still.iter().map(|(n, _)| *n).collect();
                return Err(ConsoleError::Cycle(cycle.join(", ")));
            }
            left = still;
        }
        let mut page = index.to_owned();
        for (name, hashed) in &names {
            page = page.replace(&format!("/assets/{name}\""), &format!("/assets/{hashed}\""));
        }
        Ok(Self {
            index: Bytes::from(page),
            assets,
            names,
        })
    }

    /// `GET /`: the page, revalidated on every load.
    fn index(&self) -> Resp {
        let mut resp = Response::new(full(self.index.clone()));
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type(INDEX)));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        resp
    }

    /// `GET /assets/<hashed name>`: cached for a year; any other name is 404.
    fn asset(&self, path: &str) -> Result<Resp, ApiError> {
        let name = path.strip_prefix("/assets/").ok_or(ApiError::NotFound)?;
        let asset = self.assets.get(name).ok_or(ApiError::NotFound)?;
        let mut resp = Response::new(full(asset.body.clone()));
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        h.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
        Ok(resp)
    }
}

/// The console of this binary, built at its first request.
static CONSOLE: LazyLock<Result<Console, ConsoleError>> = LazyLock::new(|| Console::build(SOURCES));

fn console() -> Result<&'static Console, ApiError> {
    CONSOLE.as_ref().map_err(|e| {
        tracing::error!(error = %e, "the console cannot be served");
        ApiError::NotFound
    })
}

/// `GET /`.
pub fn index() -> Result<Resp, ApiError> {
    Ok(console()?.index())
}

/// `GET /assets/{file}`.
pub fn asset(path: &str) -> Result<Resp, ApiError> {
    console()?.asset(path)
}

/// The headers every response carries, the API's too (an answer that sets its own keeps
/// it).
pub fn secure(headers: &mut HeaderMap) {
    let set: [(HeaderName, &'static str); 3] = [
        (CONTENT_SECURITY_POLICY, CSP),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in set {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built() -> Console {
        match Console::build(SOURCES) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    /// The quoted `./x.js` specifiers of a module, and the `/assets/…` references of a page.
    fn references(text: &str, prefix: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let after = &rest[at + prefix.len()..];
            let end = after
                .find(['\'', '"', '`', ')', ' '])
                .unwrap_or(after.len());
            found.push(after[..end].to_owned());
            rest = &after[end..];
        }
        found
    }

    #[test]
    fn every_file_of_the_directory_is_compiled_in() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk = Vec::new();
        for dir in [root.clone(), root.join("js")] {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_file() {
                    on_disk.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        on_disk.sort();
        let mut listed: Vec<String> = SOURCES.iter().map(|(n, _)| (*n).to_owned()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn every_reference_resolves_to_a_served_asset() {
        let c = built();
        let page = std::str::from_utf8(&c.index).unwrap();
        let refs = references(page, "/assets/");
        assert!(refs.len() >= 2, "{refs:?}");
        for r in &refs {
            assert!(c.assets.contains_key(r), "index.html references {r}");
        }
        for (name, asset) in &c.assets {
            let text = std::str::from_utf8(&asset.body).unwrap();
            for r in references(text, "'./")
                .into_iter()
                .chain(references(text, "\"./"))
            {
                assert!(c.assets.contains_key(&r), "{name} imports {r}");
            }
        }
        // Every module is preloaded by the page: all of them load at once, not import
        // level by import level.
        for (name, hashed) in &c.names {
            if name.ends_with(".js") {
                assert!(refs.contains(hashed), "index.html does not preload {name}");
            }
        }
        // Every asset is reachable and named after its content.
        for (name, hashed) in &c.names {
            let (stem, _) = name.rsplit_once('.').unwrap();
            assert!(hashed.starts_with(&format!("{stem}.")), "{hashed}");
            assert_eq!(hashed.len(), name.len() + 17, "{hashed}");
        }
    }

    #[test]
    fn a_change_renames_the_asset_and_every_module_that_imports_it() {
        let a: &[(&'static str, &'static str)] = &[
            (
                INDEX,
                "<script type=\"module\" src=\"/assets/app.js\"></script>",
            ),
            ("app.js", "import { h } from './dom.js';"),
            ("dom.js", "export const h = 1;"),
            ("other.js", "export const x = 1;"),
        ];
        let b: &[(&'static str, &'static str)] = &[
            (
                INDEX,
                "<script type=\"module\" src=\"/assets/app.js\"></script>",
            ),
            ("app.js", "import { h } from './dom.js';"),
            ("dom.js", "export const h = 2;"),
            ("other.js", "export const x = 1;"),
        ];
        let (a, b) = (Console::build(a).unwrap(), Console::build(b).unwrap());
        assert_ne!(a.names["dom.js"], b.names["dom.js"]);
        assert_ne!(a.names["app.js"], b.names["app.js"]);
        assert_eq!(a.names["other.js"], b.names["other.js"]);
        assert_ne!(a.index, b.index);
        let app = std::str::from_utf8(&a.assets[&a.names["app.js"]].body).unwrap();
        assert_eq!(
            app,
            format!("import {{ h }} from './{}';", a.names["dom.js"])
        );
        let cycle: &[(&'static str, &'static str)] = &[
            (INDEX, ""),
            ("a.js", "import './b.js';"),
            ("b.js", "import './a.js';"),
        ];
        assert!(matches!(Console::build(cycle), Err(ConsoleError::Cycle(_))));
    }

    #[test]
    fn types_and_cache_headers() {
        let c = built();
        let r = c.index();
        assert_eq!(r.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(r.headers()[CACHE_CONTROL], "no-cache");
        let css = format!("/assets/{}", c.names["console.css"]);
        let r = c.asset(&css).unwrap();
        assert_eq!(r.headers()[CONTENT_TYPE], "text/css; charset=utf-8");
        assert_eq!(
            r.headers()[CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        let js = format!("/assets/{}", c.names["app.js"]);
        let r = c.asset(&js).unwrap();
        assert_eq!(r.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert!(c.asset("/assets/app.js").is_err());
        assert!(c.asset("/assets/app.0000000000000000.js").is_err());
    }

    /// The whole console is under 150 KB compressed; uncompressed is a stricter bound,
    /// and needs no compressor here.
    #[test]
    fn the_console_is_small() {
        let total: usize = SOURCES.iter().map(|(_, t)| t.len()).sum();
        assert!(total < 150 * 1024, "{total} bytes");
    }

    /// No inline script or style: the policy would block it, so the page would break.
    #[test]
    fn nothing_inline() {
        let page = SOURCES[0].1;
        assert!(!page.contains("style="), "a style attribute in index.html");
        assert!(!page.contains("<style"), "a style element in index.html");
        for tag in page.split("<script").skip(1) {
            let head = tag.split('>').next().unwrap_or_default();
            assert!(head.contains("src="), "an inline script in index.html");
        }
        for (name, text) in SOURCES {
            assert!(!text.contains("innerHTML"), "{name} uses innerHTML");
            assert!(
                !text.contains("setAttribute('style'"),
                "{name} sets a style"
            );
        }
    }

    #[test]
    fn secure_sets_every_header() {
        let mut h = HeaderMap::new();
        secure(&mut h);
        assert_eq!(h[CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(h[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[REFERRER_POLICY], "no-referrer");
        assert!(CSP.contains("script-src 'self';") && !CSP.contains("unsafe"));
    }
}
