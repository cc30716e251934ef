//! Domain types that can only hold valid values.
//!
//! Everything a user types passes through one of these parsers before it reaches the
//! database or an Asterisk config file, so the rest of the code never re-checks it. The
//! rules matter for Asterisk: a name ends up in `callerid="<name>" <<ext>>`, and a
//! character such as `;`, `[` or a newline would cut the line or open a new section, while
//! a `\` is silently eaten (Asterisk 22.7 loads `callerid="Bob\" <1960>` as `"Bob" <1960>`).
//! They matter for PostgreSQL too: a `text` value cannot hold a NUL, so every text a client
//! sends is refused with its field named before it could reach a query as a 500.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a value was refused, naming the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The name of a node (one `serve` next to one Asterisk host): `[A-Za-z0-9._-]`, 1–63
/// characters, so that it reads the same in a URL, a log line and a metric label.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeName(String);

impl NodeName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = (1..=63).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "'{raw}' is not a node name (1 to 63 of A-Z a-z 0-9 . _ -)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeName {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl From<NodeName> for String {
    fn from(n: NodeName) -> Self {
        n.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A display name: 1–100 characters (Unicode scalar values), no control characters (NUL
/// included), none of `" \ ; [ ] < >`, no leading or trailing whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    pub const MAX_CHARS: usize = 100;
    /// Characters a name may not hold besides control characters.
    pub const FORBIDDEN: [char; 7] = ['"', '\\', ';', '[', ']', '<', '>'];

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let err = |m: &str| Err(ValidationError::new("name", m));
        let chars = raw.chars().count();
        if chars == 0 {
            return err("must not be empty");
        }
        if chars > Self::MAX_CHARS {
            return err("must be at most 100 characters");
        }
        if raw.chars().any(char::is_control) {
            return err("must not contain control characters");
        }
        if let Some(c) = raw.chars().find(|c| Self::FORBIDDEN.contains(c)) {
            return Err(ValidationError::new(
                "name",
                format!("must not contain '{c}' (forbidden: \" \\ ; [ ] < >)"),
            ));
        }
        if raw.trim() != raw {
            return err("must not start or end with whitespace");
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, stored and compared lower-cased: exactly one `@` with text on both
/// sides, no whitespace or control characters, at most 254 characters once lower-cased (the
/// column's limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub const MAX_CHARS: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let err = |m: &str| Err(ValidationError::new("email", m));
        // Counted as stored: lower-casing U+0130 'İ' gives two characters.
        let lower = raw.to_lowercase();
        if lower.chars().count() > Self::MAX_CHARS {
            return err("must be at most 254 characters (counted lower-cased)");
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return err("must not contain whitespace or control characters");
        }
        let mut parts = raw.split('@');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(local), Some(domain), None) if !local.is_empty() && !domain.is_empty() => {
                Ok(Self(lower))
            }
            _ => err("must contain exactly one '@' with text on both sides"),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `q` of `GET /users`: at most 254 characters, no control characters (a NUL could
/// not even reach PostgreSQL, and no name or email holds one). Surrounding whitespace is
/// ignored; an empty or blank search is no search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search(String);

impl Search {
    pub const MAX_CHARS: usize = 254;

    pub fn parse(raw: &str) -> Result<Option<Self>, ValidationError> {
        let err = |m: &str| Err(ValidationError::new("q", m));
        if raw.chars().count() > Self::MAX_CHARS {
            return err("must be at most 254 characters");
        }
        if raw.chars().any(char::is_control) {
            return err("must not contain control characters");
        }
        let text = raw.trim();
        Ok((!text.is_empty()).then(|| Self(text.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The configured allocation range, `min <= max`, both positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionRange {
    min: u32,
    max: u32,
}

impl ExtensionRange {
    /// Extensions are dialled digits and live in an `integer` column.
    pub const LIMIT: u32 = i32::MAX as u32;

    /// Every number a tenant's range may hold (1..=99999999).
    pub const WIDEST: Self = Self {
        min: 1,
        max: TENANT_EXTENSION_LIMIT,
    };

    pub fn new(min: u32, max: u32) -> Result<Self, String> {
        if min == 0 || max > Self::LIMIT {
            return Err(format!("must be between 1 and {}", Self::LIMIT));
        }
        if min > max {
            return Err(format!("minimum {min} is greater than maximum {max}"));
        }
        Ok(Self { min, max })
    }

    pub fn min(&self) -> u32 {
        self.min
    }

    pub fn max(&self) -> u32 {
        self.max
    }

    /// Parses a number a client chose; it must lie in the range.
    pub fn parse(&self, value: &Value) -> Result<Extension, ValidationError> {
        let field = "extension";
        let n = value
            .as_u64()
            .ok_or_else(|| ValidationError::new(field, "must be a positive integer"))?;
        match u32::try_from(n) {
            Ok(n) if (self.min..=self.max).contains(&n) => Ok(Extension(n)),
            _ => Err(ValidationError::new(
                field,
                format!("must be within the range {}-{}", self.min, self.max),
            )),
        }
    }
}

/// An extension number. Outside of [`ExtensionRange::parse`] it is only built from
/// numbers the database already holds, which were range-checked when they were chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Extension(u32);

impl Extension {
    pub fn from_stored(n: i32) -> Self {
        // The column has CHECK (number > 0).
        Self(n.unsigned_abs())
    }

    pub fn get(self) -> u32 {
        self.0
    }

    pub fn as_db(self) -> i32 {
        // Range limit is i32::MAX, see ExtensionRange::LIMIT.
        self.0 as i32
    }
}

impl fmt::Display for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A SIP password: 24 characters of the URL-safe alphabet (144 bits) from the thread
/// CSPRNG, which the OS seeds. The alphabet holds nothing Asterisk's config parser treats
/// specially. `Debug` is redacted so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SipSecret(String);

impl SipSecret {
    pub const LEN: usize = 24;
    const ALPHABET: &'static [u8; 64] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let s = (0..Self::LEN)
            .map(|_| char::from(Self::ALPHABET[rng.random_range(0..64)]))
            .collect();
        Self(s)
    }

    /// A secret read back from the database (the column checks the alphabet).
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SipSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SipSecret(***)")
    }
}

/// How many phones may register as one user at once: 1–10, rendered as the aor's
/// `max_contacts` (with `remove_existing=yes`, one more phone replaces the oldest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Devices(u8);

impl Devices {
    pub const MAX: u8 = 10;
    pub const ONE: Self = Self(1);

    pub fn parse(value: &Value) -> Result<Self, ValidationError> {
        value
            .as_u64()
            .filter(|n| (1..=u64::from(Self::MAX)).contains(n))
            .map(|n| Self(n as u8))
            .ok_or_else(|| ValidationError::new("devices", "must be an integer from 1 to 10"))
    }

    /// A count the database holds (its column checks 1–10).
    pub fn from_stored(n: i16) -> Self {
        Self(n.clamp(1, i16::from(Self::MAX)) as u8)
    }

    pub fn get(self) -> u8 {
        self.0
    }

    pub fn as_db(self) -> i16 {
        i16::from(self.0)
    }
}

impl Default for Devices {
    fn default() -> Self {
        Self::ONE
    }
}

/// A PJSIP transport id (a section of the admin's pjsip.conf, e.g. `transport-tls`). It is
/// written into endpoints, so only letters, digits, `-`, `_` and `.` (1–64).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TransportId(String);

impl TransportId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "'{raw}' is not a transport id (1-64 of letters, digits, '-', '_', '.')"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `transport-udp`, the default of `PORTAL_PJSIP_TRANSPORT`.
    pub fn udp() -> Self {
        Self("transport-udp".into())
    }
}

impl TryFrom<String> for TransportId {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<TransportId> for String {
    fn from(t: TransportId) -> Self {
        t.0
    }
}

impl fmt::Display for TransportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The transports a user may be given (`PORTAL_PJSIP_TRANSPORTS`): at least one, none
/// twice; the first is the default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<TransportId>", into = "Vec<TransportId>")]
pub struct Transports(Vec<TransportId>);

impl Transports {
    pub fn new(ids: Vec<TransportId>) -> Result<Self, String> {
        if ids.is_empty() {
            return Err("must name at least one transport".into());
        }
        if let Some(t) = ids
            .iter()
            .enumerate()
            .find_map(|(i, t)| ids[..i].contains(t).then_some(t))
        {
            return Err(format!("names '{t}' twice"));
        }
        Ok(Self(ids))
    }

    /// What a user is given when a request names none.
    pub fn default_id(&self) -> &TransportId {
        &self.0[0]
    }

    pub fn iter(&self) -> impl Iterator<Item = &TransportId> {
        self.0.iter()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.0.iter().any(|t| t.0 == id)
    }

    /// Parses a transport a client chose: one of the list, else 422 naming `transport`.
    pub fn parse(&self, value: &Value) -> Result<TransportId, ValidationError> {
        let field = "transport";
        let raw = value
            .as_str()
            .ok_or_else(|| ValidationError::new(field, "must be a string"))?;
        self.0.iter().find(|t| t.0 == raw).cloned().ok_or_else(|| {
            let listed: Vec<&str> = self.0.iter().map(|t| t.as_str()).collect();
            ValidationError::new(
                field,
                format!(
                    "must be one of the transports this PBX offers ({}: PORTAL_PJSIP_TRANSPORTS)",
                    listed.join(", ")
                ),
            )
        })
    }
}

impl TryFrom<Vec<TransportId>> for Transports {
    type Error = String;

    fn try_from(ids: Vec<TransportId>) -> Result<Self, Self::Error> {
        Self::new(ids)
    }
}

impl From<Transports> for Vec<TransportId> {
    fn from(t: Transports) -> Self {
        t.0
    }
}

/// A tenant's slug: `[a-z0-9-]{1,32}`, fixed once the tenant is created, used in paths and
/// in the Asterisk names of its users' objects ([`sip_name`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantSlug(String);

impl TenantSlug {
    /// The tenant every deployment has, and every user from before tenants belongs to.
    pub const DEFAULT: &'static str = "default";

    pub fn parse(raw: &str) -> Result<Self, String> {
        if (1..=32).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "'{raw}' is not a tenant slug (1-32 of lowercase letters, digits and '-')"
            ))
        }
    }

    pub fn default_tenant() -> Self {
        Self(Self::DEFAULT.to_owned())
    }

    /// A slug the database holds (its column checks the same rule).
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    pub fn is_default(&self) -> bool {
        self.0 == Self::DEFAULT
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantSlug {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<TenantSlug> for String {
    fn from(t: TenantSlug) -> Self {
        t.0
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of a user's PJSIP endpoint, auth and aor, which is also the SIP username its
/// phones register with: the extension for the default tenant (as before tenants, so its
/// phones keep working untouched), `<slug>-<extension>` for any other. Unique on the host
/// whatever the tenants' numbering: a default name is digits only, another one has a `-`
/// followed by digits only, so the slug is everything before its last `-`.
pub fn sip_name(tenant: &TenantSlug, extension: Extension) -> String {
    sip_name_of(tenant.as_str(), extension.get())
}

/// [`sip_name`] of a tenant slug and number as stored (the registration view keys its
/// phones by this name, the aor Asterisk reports them under).
pub fn sip_name_of(tenant: &str, extension: u32) -> String {
    match tenant == TenantSlug::DEFAULT {
        true => extension.to_string(),
        false => format!("{tenant}-{extension}"),
    }
}

/// A user's extension as it goes into the Asterisk files. The name is re-parsed when it
/// is rendered: rows can reach the database by other ways than this API.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub extension: Extension,
    pub name: String,
    pub secret: SipSecret,
    pub devices: Devices,
    /// As stored; `None` only for a user from before transports were per user that no
    /// node has adopted yet (it renders with the default).
    pub transport: Option<String>,
    /// The tenant the user belongs to: its names, context and files.
    pub tenant: TenantSlug,
}

/// A JSON object's fields, refusing any not in `allowed`.
fn fields<'a>(
    body: &'a Value,
    allowed: &[&str],
) -> Result<&'a serde_json::Map<String, Value>, ValidationError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ValidationError::new("body", "must be a JSON object"))?;
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ValidationError::new(k.as_str(), "unknown field"));
    }
    Ok(obj)
}

/// A string field, `None` when absent.
fn text<'a>(
    obj: &'a serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, ValidationError> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ValidationError::new(field, "must be a string")),
        None => Ok(None),
    }
}

fn required<T>(field: &str, v: Option<T>) -> Result<T, ValidationError> {
    v.ok_or_else(|| ValidationError::new(field, "is required"))
}

/// A new user's values, each parsed on its own: `None` where a value was refused (its
/// error went to the caller's `refuse`). What an import keeps of a row with errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUserParts {
    pub name: Option<Name>,
    pub email: Option<Email>,
    /// `Some(None)`: the lowest free number.
    pub extension: Option<Option<Extension>>,
    pub devices: Option<Devices>,
    pub transport: Option<TransportId>,
    pub tenant: Option<TenantSlug>,
}

impl NewUserParts {
    /// The defaults of the optional values, the required ones not given yet.
    pub fn new(rules: UserRules<'_>) -> Self {
        Self {
            name: None,
            email: None,
            extension: Some(None),
            devices: Some(Devices::ONE),
            transport: Some(rules.transports.default_id().clone()),
            tenant: Some(TenantSlug::default_tenant()),
        }
    }

    /// The user, when every value was parsed.
    pub fn complete(&self) -> Option<NewUser> {
        Some(NewUser {
            name: self.name.clone()?,
            email: self.email.clone()?,
            extension: self.extension?,
            devices: self.devices?,
            transport: self.transport.clone()?,
            tenant: self.tenant.clone()?,
        })
    }
}

/// A validated `POST /users` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub name: Name,
    pub email: Email,
    pub extension: Option<Extension>,
    pub devices: Devices,
    /// The chosen transport, or the default (the first of the list).
    pub transport: TransportId,
    /// The tenant it belongs to (`default` when the request names none).
    pub tenant: TenantSlug,
}

/// What a new user's fields are checked against: its tenant's range (the configured one
/// for the default tenant) and the configured transports.
#[derive(Debug, Clone, Copy)]
pub struct UserRules<'a> {
    pub range: &'a ExtensionRange,
    pub transports: &'a Transports,
}

impl NewUser {
    const FIELDS: [&'static str; 6] = [
        "name",
        "email",
        "extension",
        "devices",
        "transport",
        "tenant",
    ];

    /// Parses a JSON body; unknown fields and wrong types are refused with the field named:
    /// the first error that [`NewUser::parse_fields`] finds.
    pub fn parse(body: &Value, rules: UserRules<'_>) -> Result<Self, ValidationError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ValidationError::new("body", "must be a JSON object"))?;
        let mut first = None;
        let parts = Self::parse_fields(obj, &[], rules, &mut |e| {
            first.get_or_insert(e);
        });
        match (first, parts.complete()) {
            (Some(e), _) => Err(e),
            (None, Some(user)) => Ok(user),
            // Every refused value is reported: unreachable, but never a panic.
            (None, None) => Err(ValidationError::new("body", "is not a valid user")),
        }
    }

    /// Parses the fields of one JSON object, reporting every refused value to `refuse`, in
    /// this order: each field that is neither one of a user's nor in `ignored` (by name),
    /// then name, email, extension, devices, transport and tenant. `POST /users` stops at
    /// the first; an import reports them all. An absent or `null` extension is the lowest
    /// free number, an absent devices 1, an absent or `null` transport the default, an
    /// absent or `null` tenant `default`. The extension is checked against `rules.range`,
    /// which the caller chose for the tenant [`tenant_of`] read from the same object.
    pub fn parse_fields(
        obj: &serde_json::Map<String, Value>,
        ignored: &[&str],
        rules: UserRules<'_>,
        refuse: &mut dyn FnMut(ValidationError),
    ) -> NewUserParts {
        for key in obj.keys() {
            if !Self::FIELDS.contains(&key.as_str()) && !ignored.contains(&key.as_str()) {
                refuse(ValidationError::new(key.as_str(), "unknown field"));
            }
        }
        fn ok<T>(
            r: Result<T, ValidationError>,
            refuse: &mut dyn FnMut(ValidationError),
        ) -> Option<T> {
            r.map_err(refuse).ok()
        }
        let given = |field: &str| obj.get(field).filter(|v| !v.is_null());
        let name = text(obj, "name").and_then(|t| Name::parse(required("name", t)?));
        let name = ok(name, refuse);
        let email = text(obj, "email").and_then(|t| Email::parse(required("email", t)?));
        let email = ok(email, refuse);
        let extension = given("extension").map(|v| rules.range.parse(v)).transpose();
        let extension = ok(extension, refuse);
        let devices = ok(obj.get("devices").map(Devices::parse).transpose(), refuse);
        let transport = given("transport").map_or_else(
            || Ok(rules.transports.default_id().clone()),
            |v| rules.transports.parse(v),
        );
        let transport = ok(transport, refuse);
        let tenant = ok(tenant_of(obj), refuse);
        NewUserParts {
            name,
            email,
            extension,
            devices: devices.map(Option::unwrap_or_default),
            transport,
            tenant,
        }
    }
}

/// A validated `PATCH /users/{id}` body: the fields to change, each checked as on create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    pub name: Option<Name>,
    pub email: Option<Email>,
    /// A move to this free number of the range; the secret stays.
    pub extension: Option<Extension>,
    pub devices: Option<Devices>,
    /// Another of the configured transports (an edit like any other: pending until apply).
    pub transport: Option<TransportId>,
    /// The tenant the client says the user is in: only its own is accepted (a user never
    /// moves between tenants), which the handler checks against the stored one.
    pub tenant: Option<TenantSlug>,
}

impl UserPatch {
    /// Parses a JSON body; unknown fields, wrong types and `null` are refused with the
    /// field named (a patch names what changes; there is nothing to set to null).
    pub fn parse(body: &Value, rules: UserRules<'_>) -> Result<Self, ValidationError> {
        let obj = fields(body, &NewUser::FIELDS)?;
        Ok(Self {
            name: text(obj, "name")?.map(Name::parse).transpose()?,
            email: text(obj, "email")?.map(Email::parse).transpose()?,
            extension: obj
                .get("extension")
                .map(|v| rules.range.parse(v))
                .transpose()?,
            devices: obj.get("devices").map(Devices::parse).transpose()?,
            transport: obj
                .get("transport")
                .map(|v| rules.transports.parse(v))
                .transpose()?,
            tenant: obj.get("tenant").map(tenant_slug).transpose()?,
        })
    }
}

/// A `tenant` value: a slug, refused with the field named.
fn tenant_slug(value: &Value) -> Result<TenantSlug, ValidationError> {
    let raw = value
        .as_str()
        .ok_or_else(|| ValidationError::new("tenant", "must be a string (a tenant's slug)"))?;
    TenantSlug::parse(raw).map_err(|m| ValidationError::new("tenant", m))
}

/// The tenant a user object names: its `tenant`, `default` when absent or `null`. Read
/// before the rest of the object, whose extension is checked against that tenant's range.
pub fn tenant_of(obj: &serde_json::Map<String, Value>) -> Result<TenantSlug, ValidationError> {
    Ok(tenant_named(obj)?.unwrap_or_else(TenantSlug::default_tenant))
}

/// The tenant an object names, `None` when its `tenant` is absent or `null`: what a caller
/// bound to a tenant fills in with its own.
pub fn tenant_named(
    obj: &serde_json::Map<String, Value>,
) -> Result<Option<TenantSlug>, ValidationError> {
    match obj.get("tenant") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => tenant_slug(v).map(Some),
    }
}

/// The bounds of a tenant's range: dialled digits, at most eight of them.
pub const TENANT_EXTENSION_LIMIT: u32 = 99_999_999;

/// A tenant's display name: the rules of a user's [`Name`] (it may end up in a comment of
/// a generated file).
fn tenant_name(obj: &serde_json::Map<String, Value>) -> Result<Option<Name>, ValidationError> {
    text(obj, "name")?.map(Name::parse).transpose()
}

/// One bound of a tenant's range: an integer in `1..=99999999`.
fn tenant_bound(
    obj: &serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<u32>, ValidationError> {
    let Some(v) = obj.get(field) else {
        return Ok(None);
    };
    v.as_u64()
        .filter(|n| (1..=u64::from(TENANT_EXTENSION_LIMIT)).contains(n))
        .map(|n| Some(n as u32))
        .ok_or_else(|| {
            ValidationError::new(
                field,
                format!("must be an integer from 1 to {TENANT_EXTENSION_LIMIT}"),
            )
        })
}

/// `max_users`: `null` (no limit) or an integer from 0.
fn tenant_cap(value: &Value) -> Result<Option<u32>, ValidationError> {
    match value {
        Value::Null => Ok(None),
        v => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n <= i32::MAX as u32)
            .map(Some)
            .ok_or_else(|| ValidationError::new("max_users", "must be null or an integer from 0")),
    }
}

/// Refuses an inverted range, naming its maximum.
fn tenant_range(min: u32, max: u32) -> Result<(u32, u32), ValidationError> {
    if min > max {
        return Err(ValidationError::new(
            "extension_max",
            format!("must not be below extension_min ({min})"),
        ));
    }
    Ok((min, max))
}

/// A validated `POST /tenants` body. The range is required: only the default tenant's
/// comes from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTenant {
    pub slug: TenantSlug,
    pub name: Name,
    pub extension_min: u32,
    pub extension_max: u32,
    pub max_users: Option<u32>,
}

impl NewTenant {
    const FIELDS: [&'static str; 5] = [
        "slug",
        "name",
        "extension_min",
        "extension_max",
        "max_users",
    ];

    /// Parses a JSON body; the first refused value names its field.
    pub fn parse(body: &Value) -> Result<Self, ValidationError> {
        let obj = fields(body, &Self::FIELDS)?;
        let slug = match obj.get("slug") {
            Some(Value::String(s)) => {
                TenantSlug::parse(s).map_err(|m| ValidationError::new("slug", m))?
            }
            Some(_) => return Err(ValidationError::new("slug", "must be a string")),
            None => return Err(ValidationError::new("slug", "is required")),
        };
        let name = required("name", tenant_name(obj)?)?;
        let min = required("extension_min", tenant_bound(obj, "extension_min")?)?;
        let max = required("extension_max", tenant_bound(obj, "extension_max")?)?;
        let (extension_min, extension_max) = tenant_range(min, max)?;
        let max_users = obj.get("max_users").map(tenant_cap).transpose()?.flatten();
        Ok(Self {
            slug,
            name,
            extension_min,
            extension_max,
            max_users,
        })
    }
}

/// A validated `PATCH /tenants/{slug}` body: what changes. The slug is fixed (it is in
/// paths and Asterisk names); `max_users: null` lifts the limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantPatch {
    pub name: Option<Name>,
    pub extension_min: Option<u32>,
    pub extension_max: Option<u32>,
    /// `Some(None)`: no limit any more.
    pub max_users: Option<Option<u32>>,
}

impl TenantPatch {
    pub fn parse(body: &Value) -> Result<Self, ValidationError> {
        let obj = fields(body, &NewTenant::FIELDS)?;
        if obj.contains_key("slug") {
            return Err(ValidationError::new(
                "slug",
                "a tenant's slug is fixed once created (it names the tenant's Asterisk objects)",
            ));
        }
        Ok(Self {
            name: tenant_name(obj)?,
            extension_min: tenant_bound(obj, "extension_min")?,
            extension_max: tenant_bound(obj, "extension_max")?,
            max_users: obj.get("max_users").map(tenant_cap).transpose()?,
        })
    }

    /// The range after this patch, from the stored one; an inverted result is refused.
    pub fn range_from(&self, min: u32, max: u32) -> Result<(u32, u32), ValidationError> {
        tenant_range(
            self.extension_min.unwrap_or(min),
            self.extension_max.unwrap_or(max),
        )
    }

    pub fn changes_range(&self) -> bool {
        self.extension_min.is_some() || self.extension_max.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_slugs_and_the_names_of_their_users_objects() {
        for ok in ["default", "acme", "a", "0", "acme-2", "-", &"a".repeat(32)] {
            assert_eq!(TenantSlug::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "Acme",
            "acme_2",
            "acme.org",
            "ac me",
            "é",
            &"a".repeat(33),
        ] {
            assert!(TenantSlug::parse(bad).is_err(), "{bad:?}");
        }
        let ext = Extension::from_stored(100);
        assert_eq!(sip_name(&TenantSlug::default_tenant(), ext), "100");
        let acme = TenantSlug::parse("acme").unwrap();
        assert_eq!(sip_name(&acme, ext), "acme-100");
        // Whatever the numbering, names differ across tenants: a-1's 2 is not a's 12.
        let (a, a1) = (
            TenantSlug::parse("a").unwrap(),
            TenantSlug::parse("a-1").unwrap(),
        );
        assert_ne!(
            sip_name(&a1, Extension::from_stored(2)),
            sip_name(&a, Extension::from_stored(12))
        );
        assert_eq!(sip_name(&a1, Extension::from_stored(2)), "a-1-2");
        assert!(serde_json::from_value::<TenantSlug>(serde_json::json!("Bad")).is_err());
    }
    use serde_json::json;

    #[test]
    fn new_tenants_and_their_patches_name_the_refused_field() {
        let ok = json!({"slug": "acme", "name": "Acme", "extension_min": 100,
                        "extension_max": 199, "max_users": 5});
        let t = NewTenant::parse(&ok).unwrap();
        assert_eq!(
            (
                t.slug.as_str(),
                t.extension_min,
                t.extension_max,
                t.max_users
            ),
            ("acme", 100, 199, Some(5))
        );
        let field = |body: Value| NewTenant::parse(&body).unwrap_err().field;
        let with = |k: &str, v: Value| {
            let mut b = ok.clone();
            b[k] = v;
            b
        };
        assert_eq!(field(with("slug", json!("Acme"))), "slug");
        assert_eq!(field(with("name", json!(""))), "name");
        assert_eq!(field(with("extension_min", json!(0))), "extension_min");
        assert_eq!(
            field(with("extension_max", json!(100_000_000))),
            "extension_max"
        );
        assert_eq!(field(with("extension_min", json!(200))), "extension_max");
        assert_eq!(field(with("max_users", json!(-1))), "max_users");
        assert_eq!(field(with("other", json!(1))), "other");
        assert_eq!(
            NewTenant::parse(&with("max_users", Value::Null))
                .unwrap()
                .max_users,
            None
        );

        let p = TenantPatch::parse(&json!({"extension_max": 150, "max_users": null})).unwrap();
        assert_eq!((p.extension_max, p.max_users), (Some(150), Some(None)));
        assert_eq!(p.range_from(100, 199).unwrap(), (100, 150));
        assert_eq!(p.range_from(160, 199).unwrap_err().field, "extension_max");
        assert_eq!(
            TenantPatch::parse(&json!({"slug": "x"})).unwrap_err().field,
            "slug"
        );
        assert!(!TenantPatch::parse(&json!({"name": "N"}))
            .unwrap()
            .changes_range());
    }

    #[test]
    fn a_users_tenant_is_default_unless_named() {
        let obj = |v: Value| v.as_object().unwrap().clone();
        assert!(tenant_of(&obj(json!({}))).unwrap().is_default());
        assert!(tenant_of(&obj(json!({"tenant": null})))
            .unwrap()
            .is_default());
        assert_eq!(
            tenant_of(&obj(json!({"tenant": "acme"}))).unwrap().as_str(),
            "acme"
        );
        for bad in [json!("Acme"), json!(1), json!("")] {
            assert_eq!(
                tenant_of(&obj(json!({"tenant": bad}))).unwrap_err().field,
                "tenant"
            );
        }
    }

    fn range() -> ExtensionRange {
        ExtensionRange::new(1000, 1999).unwrap()
    }

    fn transports() -> Transports {
        Transports::new(vec![
            TransportId::parse("transport-udp").unwrap(),
            TransportId::parse("transport-tls").unwrap(),
        ])
        .unwrap()
    }

    #[test]
    fn names_accept_ordinary_text() {
        for ok in [
            "Alice",
            "José Müller-Lüdenscheidt",
            "O'Brien, Pat",
            "a",
            &"x".repeat(100),
        ] {
            assert_eq!(Name::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn names_refuse_what_could_break_a_config_line() {
        for bad in [
            "",
            " Alice",
            "Alice ",
            "A\nB",
            "A\rB",
            "A\tB",
            "A\u{85}B",
            "a\"b",
            "a;b",
            "[x",
            "x]",
            "<x",
            "x>",
            "a\\b",
            "Bob\\",
            "A\0B",
            "\0",
            &"x".repeat(101),
        ] {
            let e = Name::parse(bad).unwrap_err();
            assert_eq!(e.field, "name", "{bad:?}");
        }
    }

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(
            Email::parse("Bob@Example.ORG").unwrap().as_str(),
            "bob@example.org"
        );
        let long = format!("{}@x.org", "a".repeat(248));
        assert_eq!(long.len(), 254);
        assert!(Email::parse(&long).is_ok());
        // 'İ' lower-cases to two characters: 124 of them make 254 once stored.
        let dotted = format!("{}@x.org", "\u{130}".repeat(124));
        assert_eq!(Email::parse(&dotted).unwrap().as_str().chars().count(), 254);
        for bad in [
            "",
            "bob",
            "@x",
            "bob@",
            "a@b@c",
            "a b@c",
            "a@b\n",
            "a\0@b",
            "a@b\0",
            &format!("{long}x"),
            &format!("{}@x.org", "\u{130}".repeat(125)),
        ] {
            assert_eq!(Email::parse(bad).unwrap_err().field, "email", "{bad:?}");
        }
    }

    #[test]
    fn names_count_characters_not_bytes() {
        let wide = "é".repeat(100);
        assert_eq!(wide.len(), 200);
        assert!(Name::parse(&wide).is_ok());
        assert!(Name::parse(&format!("{wide}é")).is_err());
    }

    #[test]
    fn forbidden_characters_are_named_in_the_message() {
        for c in Name::FORBIDDEN {
            let e = Name::parse(&format!("a{c}b")).unwrap_err();
            assert!(e.message.contains(&format!("'{c}'")), "{c}: {}", e.message);
            assert!(e.message.contains("\" \\ ; [ ] < >"), "{}", e.message);
        }
    }

    #[test]
    fn searches_refuse_control_characters_and_ignore_blanks() {
        assert_eq!(Search::parse("").unwrap(), None);
        assert_eq!(Search::parse("   ").unwrap(), None);
        assert_eq!(Search::parse(" ali ").unwrap().unwrap().as_str(), "ali");
        assert!(Search::parse(&"é".repeat(254)).unwrap().is_some());
        for bad in ["\0", "a\0", "a\nb", "\u{7f}", &"x".repeat(255)] {
            assert_eq!(Search::parse(bad).unwrap_err().field, "q", "{bad:?}");
        }
    }

    #[test]
    fn extension_must_be_in_range() {
        let r = range();
        assert_eq!(r.parse(&json!(1000)).unwrap().get(), 1000);
        assert_eq!(r.parse(&json!(1999)).unwrap().get(), 1999);
        for bad in [
            json!(999),
            json!(2000),
            json!(-1),
            json!(1000.5),
            json!("1000"),
            json!(u64::MAX),
        ] {
            assert_eq!(r.parse(&bad).unwrap_err().field, "extension", "{bad}");
        }
    }

    #[test]
    fn ranges_refuse_inverted_or_zero_bounds() {
        assert!(ExtensionRange::new(2000, 1000).is_err());
        assert!(ExtensionRange::new(0, 10).is_err());
        let wide = ExtensionRange::new(10000, 999_999).unwrap();
        assert_eq!((wide.min(), wide.max()), (10000, 999_999));
    }

    #[test]
    fn new_user_refuses_unknown_fields_and_wrong_types() {
        let (range, transports) = (range(), transports());
        let r = UserRules {
            range: &range,
            transports: &transports,
        };
        let ok = NewUser::parse(&json!({"name":"A","email":"a@b"}), r).unwrap();
        assert_eq!(ok.extension, None);
        assert_eq!(ok.transport.as_str(), "transport-udp", "the first listed");
        let tls = json!({"name":"A","email":"a@b","transport":"transport-tls"});
        assert_eq!(
            NewUser::parse(&tls, r).unwrap().transport.as_str(),
            "transport-tls"
        );
        let cases = [
            (json!({"name":"A","email":"a@b","admin":true}), "admin"),
            (json!({"name":1,"email":"a@b"}), "name"),
            (json!({"email":"a@b"}), "name"),
            (json!({"name":"A"}), "email"),
            (
                json!({"name":"A","email":"a@b","extension":"1000"}),
                "extension",
            ),
            (json!([1, 2]), "body"),
            (
                json!({"name":"A","email":"a@b","transport":"transport-tcp"}),
                "transport",
            ),
            (json!({"name":"A","email":"a@b","transport":1}), "transport"),
        ];
        for (body, field) in cases {
            assert_eq!(NewUser::parse(&body, r).unwrap_err().field, field, "{body}");
        }
    }

    #[test]
    fn every_field_error_of_a_new_user_is_reported_in_order() {
        let (range, transports) = (range(), transports());
        let r = UserRules {
            range: &range,
            transports: &transports,
        };
        let body = json!({"zz":1,"id":7,"name":"","devices":0,"transport":"x"});
        let mut seen = Vec::new();
        let parts = NewUser::parse_fields(body.as_object().unwrap(), &["id"], r, &mut |e| {
            seen.push(e.field)
        });
        assert_eq!(seen, ["zz", "name", "email", "devices", "transport"]);
        assert_eq!(
            parts.extension,
            Some(None),
            "absent: the lowest free number"
        );
        assert!(parts.complete().is_none());
        assert_eq!(
            NewUser::parse(&body, r).unwrap_err().field,
            "id",
            "POST: the first"
        );
    }

    #[test]
    fn transports_are_ids_listed_once_the_first_the_default() {
        let t = transports();
        assert_eq!(t.default_id().as_str(), "transport-udp");
        assert!(t.contains("transport-tls") && !t.contains("transport-tcp"));
        for bad in ["", "a b", "x\nallow=all", "a;b", "é", &"x".repeat(65)] {
            assert!(TransportId::parse(bad).is_err(), "{bad:?}");
        }
        let udp = TransportId::parse("transport-udp").unwrap();
        assert!(Transports::new(vec![]).is_err());
        assert_eq!(
            Transports::new(vec![udp.clone(), udp]).unwrap_err(),
            "names 'transport-udp' twice"
        );
        let patch = UserPatch::parse(
            &json!({"transport": "transport-tls"}),
            UserRules {
                range: &range(),
                transports: &t,
            },
        )
        .unwrap();
        assert_eq!(patch.transport.unwrap().as_str(), "transport-tls");
    }

    #[test]
    fn secrets_are_long_url_safe_and_redacted() {
        let a = SipSecret::generate();
        let b = SipSecret::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), SipSecret::LEN);
        assert!(a
            .expose()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(format!("{a:?}"), "SipSecret(***)");
    }
}
