//! Who is calling and what they may do: scopes, actors, and the named-token format.
//!
//! A leaf (no I/O, nothing from the rest of the crate) so that `store` can record an
//! [`Actor`] in the audit, `http` can enforce a [`Scope`] and `main` can mint a token, all
//! from the same rules.
//!
//! A named token is `pbxp_` followed by 64 hex digits: 256 bits from the operating
//! system's CSPRNG. Only its SHA-256 is stored. A slow password KDF (argon2, bcrypt) exists
//! to make guessing a *low-entropy* secret from its hash expensive; guessing one of 2^256
//! tokens is out of reach however fast the hash is, so a single SHA-256 is as strong here
//! and keeps authentication on every request cheap. The prefix lets secret scanners and
//! people recognise a leaked token, and lets the server refuse anything else without a
//! database round trip.

use std::fmt;

use rand::RngCore;
use sha2::{Digest, Sha256};

/// What a token may do. Each route's method needs exactly one (see `http::Route::methods`).
/// Its name, lower-case, is written once here: `as_str`, `Display`, `FromStr` and
/// `Scope::iter()` (in this order, the canonical one) are derived.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
    strum::Display,
)]
#[strum(serialize_all = "lowercase")]
pub enum Scope {
    /// Every GET but /metrics; /events.
    Read,
    /// Create, edit, delete, rotate, import.
    Write,
    /// POST /apply.
    Apply,
    /// GET /metrics.
    Metrics,
    /// The token routes.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    pub fn all() -> Self {
        Self::ALL_SCOPES
    }

    const ALL_SCOPES: Self = Self(0b1_1111);

    pub fn contains(self, s: Scope) -> bool {
        self.0 & s.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// In the canonical order (read, write, apply, metrics, admin).
    pub fn names(self) -> Vec<&'static str> {
        <Scope as strum::IntoEnumIterator>::iter()
            .filter(|s| self.contains(*s))
            .map(Scope::as_str)
            .collect()
    }

    /// A list of scope names; an unknown one is named in the error, an empty list refused.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, TokenRuleError> {
        let mut set = Self::default();
        for n in names {
            let s = Scope::parse(n.trim()).ok_or_else(|| TokenRuleError::UnknownScope(n.into()))?;
            set.0 |= s.bit();
        }
        if set.is_empty() {
            return Err(TokenRuleError::NoScope);
        }
        Ok(set)
    }

    /// Scopes read back from the database; unknown names (a newer version's) are dropped,
    /// never widened.
    pub fn from_stored(names: &[String]) -> Self {
        let mut set = Self::default();
        for s in names.iter().filter_map(|n| Scope::parse(n)) {
            set.0 |= s.bit();
        }
        set
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

/// Who made a change: what the audit and the apply record name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// `PORTAL_API_TOKEN`.
    Bootstrap,
    /// The command line (`pbx-portal apply`, `pbx-portal token …`).
    Cli,
    /// A named token.
    Token(TokenName),
}

impl Actor {
    /// An actor a client names (`GET /audit?actor=`): `bootstrap`, `cli` or a token's
    /// name by its rule.
    pub fn parse(s: &str) -> Result<Self, TokenRuleError> {
        match s {
            "bootstrap" => Ok(Self::Bootstrap),
            "cli" => Ok(Self::Cli),
            name => TokenName::parse(name).map(Self::Token),
        }
    }

    /// The actor an apply request row names (written by [`Actor::as_str`]).
    pub fn from_stored(s: &str) -> Self {
        match s {
            "bootstrap" => Self::Bootstrap,
            "cli" => Self::Cli,
            name => Self::Token(TokenName::from_stored(name.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Bootstrap => "bootstrap",
            Self::Cli => "cli",
            Self::Token(n) => n.as_str(),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a token's name, scopes or expiry were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRuleError {
    #[error("must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'")]
    BadName,
    #[error("'{0}' is reserved for the audit")]
    ReservedName(String),
    #[error("unknown scope '{0}'; scopes are read, write, apply, metrics, admin")]
    UnknownScope(String),
    #[error("at least one scope is needed")]
    NoScope,
    #[error("must be a positive number of days (at most 36500), like 90d")]
    BadExpiry,
}

impl TokenRuleError {
    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::BadName | Self::ReservedName(_) => "name",
            Self::UnknownScope(_) | Self::NoScope => "scopes",
            Self::BadExpiry => "expires_in_days",
        }
    }
}

/// A token's name: 1–64 of `[A-Za-z0-9._-]`, never `bootstrap` or `cli` (the audit's own
/// actors, which a token must not impersonate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenName(String);

impl TokenName {
    pub const MAX: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, TokenRuleError> {
        let ok = (1..=Self::MAX).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(TokenRuleError::BadName);
        }
        if raw == "bootstrap" || raw == "cli" {
            return Err(TokenRuleError::ReservedName(raw.into()));
        }
        Ok(Self(raw.into()))
    }

    /// A name read back from the database (its CHECK holds the same rule).
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Days until a token expires: 1–36500.
pub fn expiry_days(days: i64) -> Result<i32, TokenRuleError> {
    if (1..=36_500).contains(&days) {
        Ok(days as i32)
    } else {
        Err(TokenRuleError::BadExpiry)
    }
}

/// `--expires-in 90d` (or a bare number of days).
pub fn parse_expires_in(s: &str) -> Result<i32, TokenRuleError> {
    let digits = s.strip_suffix('d').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TokenRuleError::BadExpiry);
    }
    expiry_days(digits.parse().map_err(|_| TokenRuleError::BadExpiry)?)
}

/// The prefix of every named token.
pub const PREFIX: &str = "pbxp_";

/// Longest `Authorization` header value read; anything longer is refused unread.
pub const MAX_HEADER: usize = 1024;

/// A freshly minted token. Its text is shown once and never stored.
pub struct NewToken {
    secret: String,
}

impl NewToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let mut secret = String::with_capacity(PREFIX.len() + 64);
        secret.push_str(PREFIX);
        for b in bytes {
            secret.push_str(&format!("{b:02x}"));
        }
        Self { secret }
    }

    pub fn expose(&self) -> &str {
        &self.secret
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.secret)
    }
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewToken(<redacted>)")
    }
}

/// The SHA-256 of a token: what the database keeps and is searched by.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Whether `presented` looks like a named token at all (prefix and 64 lower-case hex
    /// digits). Anything else is refused without asking the database.
    pub fn well_formed(presented: &str) -> bool {
        presented.strip_prefix(PREFIX).is_some_and(|rest| {
            rest.len() == 64 && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actor_named_by_a_client_reads_as_the_audit_writes_it() {
        for name in ["bootstrap", "cli", "ops.bot-1"] {
            assert_eq!(Actor::parse(name).unwrap().as_str(), name);
        }
        for bad in ["", "a b", "ops'", &"x".repeat(65)] {
            assert!(Actor::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tokens_are_prefixed_256_bit_hex_and_differ() {
        let a = NewToken::generate();
        let b = NewToken::generate();
        assert!(TokenHash::well_formed(a.expose()), "{}", a.expose());
        assert_eq!(a.expose().len(), 5 + 64);
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash(), TokenHash::of(a.expose()));
        assert!(!format!("{a:?}{:?}", a.hash()).contains(&a.expose()[5..]));
        assert!(!TokenHash::well_formed("pbxp_"));
        assert!(!TokenHash::well_formed(&a.expose().to_uppercase()));
        assert!(!TokenHash::well_formed(&format!("{}0", a.expose())));
    }

    #[test]
    fn names_follow_the_rule_and_reserve_the_audit_actors() {
        assert!(TokenName::parse("prom.scraper-1_x").is_ok());
        assert!(TokenName::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "a b", "é", "a/b", &"a".repeat(65)] {
            assert_eq!(TokenName::parse(bad), Err(TokenRuleError::BadName), "{bad}");
        }
        for reserved in ["bootstrap", "cli"] {
            assert!(matches!(
                TokenName::parse(reserved),
                Err(TokenRuleError::ReservedName(_))
            ));
        }
    }

    #[test]
    fn scopes_parse_and_name_the_unknown_one() {
        let s = Scopes::parse(["write", "read"]).unwrap();
        assert_eq!(s.names(), ["read", "write"]);
        assert!(s.contains(Scope::Read) && !s.contains(Scope::Admin));
        assert_eq!(
            Scopes::parse(["read", "root"]),
            Err(TokenRuleError::UnknownScope("root".into()))
        );
        assert_eq!(Scopes::parse([]), Err(TokenRuleError::NoScope));
        assert_eq!(Scopes::all().names().len(), 5);
        assert_eq!(
            Scopes::from_stored(&["admin".into(), "future".into()]).names(),
            ["admin"]
        );
    }

    #[test]
    fn expiry_is_positive_days() {
        assert_eq!(parse_expires_in("90d"), Ok(90));
        assert_eq!(parse_expires_in("7"), Ok(7));
        for bad in [
            "0d",
            "-1d",
            "d",
            "90h",
            "",
            "99999999999999999999d",
            "36501d",
        ] {
            assert_eq!(
                parse_expires_in(bad),
                Err(TokenRuleError::BadExpiry),
                "{bad}"
            );
        }
    }
}
