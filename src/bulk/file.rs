//! The files an admin imports, parsed into rows of checked values: CSV as spreadsheets
//! write it, or JSON `{"users": [...]}`. Pure: no database, no I/O.
//!
//! Every value goes through the same parser as on `POST /users` ([`crate::domain`]), so
//! an import accepts exactly what a single create accepts. Nothing stops at the first
//! mistake: every bad value of every row is reported, with the row as the admin sees it
//! (CSV: the line the record starts on, header = 1, counting the line breaks inside quoted
//! fields as an editor shows them; JSON: the index in `users`, from 0), so that one round
//! of corrections fixes the whole file.
//!
//! CSV: UTF-8 with or without a byte-order mark, CRLF or LF, fields quoted or not, header
//! names in any case and order. `name` and `email` are required, `extension`, `devices`,
//! `transport` and `tenant` optional (empty = the lowest free number of the row's tenant /
//! 1 / the first of `PORTAL_PJSIP_TRANSPORTS` / `default`), `id` and `created_at` (the
//! columns of
//! an export) accepted and ignored whatever they hold (the import gives new ids and
//! times), so that an export can be imported as it is; any other column is an error, since
//! a misspelt `extention` column silently ignored would give everyone a number they did
//! not ask for.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use crate::domain::{
    tenant_named, Devices, Email, Extension, ExtensionRange, Name, NewUser, NewUserParts,
    TenantSlug, UserRules, ValidationError,
};
use csv::ByteRecord;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Fields of a JSON row besides a user's: an export's, ignored.
const IGNORED: [&str; 2] = ["id", "created_at"];

/// The most rows one file may hold.
pub const MAX_ROWS: usize = 10_000;
/// The largest file, in bytes (8 MiB).
pub const MAX_BYTES: usize = 8 * 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    /// The format of a file by its name (`.csv`, `.json`), else by its first character
    /// after a byte-order mark and white space: `{` or `[` is JSON, anything else CSV
    /// (whose header must start with a column name).
    pub fn sniff(path: &str, bytes: &[u8]) -> Self {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".json") {
            return Self::Json;
        }
        if lower.ends_with(".csv") {
            return Self::Csv;
        }
        let body = bytes.strip_prefix(BOM).unwrap_or(bytes);
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{' | b'[') => Self::Json,
            _ => Self::Csv,
        }
    }
}

/// What is wrong with a row (or with the file as a whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::EnumIter)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RowCode {
    /// A value breaks a rule of `POST /users`, or the file's shape is wrong.
    ValidationFailed,
    /// The email of an earlier row of the file.
    DuplicateEmail,
    /// The extension of an earlier row of the file.
    DuplicateExtension,
    /// The email of an existing user.
    EmailTaken,
    /// The extension of an existing user.
    ExtensionTaken,
}

impl RowCode {
    /// As serialised.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One error of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// CSV: the line the row starts on (the header is line 1); JSON: the index in `users`
    /// from 0. `None` for the file as a whole (empty, no rows, too many rows, not an
    /// object).
    pub row: Option<u64>,
    /// The column or field; `None` for the row or file as a whole.
    pub field: Option<String>,
    pub code: RowCode,
    pub message: String,
}

impl RowError {
    fn new(row: Option<u64>, field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            row,
            field: field.map(str::to_owned),
            code: RowCode::ValidationFailed,
            message: message.into(),
        }
    }

    fn invalid(row: u64, e: ValidationError) -> Self {
        Self {
            row: Some(row),
            field: Some(e.field),
            code: RowCode::ValidationFailed,
            message: e.message,
        }
    }
}

impl std::fmt::Display for RowError {
    /// One line: `row 3, email: email_taken: a user with this email already exists`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.row, &self.field) {
            (Some(r), Some(field)) => write!(f, "row {r}, {field}: ")?,
            (Some(r), None) => write!(f, "row {r}: ")?,
            (None, Some(field)) => write!(f, "file, {field}: ")?,
            (None, None) => write!(f, "file: ")?,
        }
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

/// A row's values; `None` where a value was refused (its error is in [`Parsed::errors`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// As in [`RowError::row`].
    pub row: u64,
    pub user: NewUserParts,
}

impl Row {
    fn new(row: u64, rules: UserRules<'_>) -> Self {
        Self {
            row,
            user: NewUserParts::new(rules),
        }
    }
}

/// A parsed file: its rows and every error found in them, sorted by row.
#[derive(Debug, Default)]
pub struct Parsed {
    pub rows: Vec<Row>,
    pub errors: Vec<RowError>,
    /// What an `Idempotency-Key` compares: a CSV file's bytes (after a byte-order mark);
    /// a JSON body's canonical form (keys sorted, no white space), as `POST /users`
    /// compares its body, so that another JSON encoder's spelling of the same users is the
    /// same request. SHA-256.
    pub fingerprint: [u8; 32],
}

/// A JSON body that is not JSON at all: 400 `invalid_json`, as on every route.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotJson(pub String);

/// The range of every tenant a file may name: a row's explicit extension is checked
/// against its own tenant's, and a row naming a tenant not in here is refused (field
/// `tenant`).
#[derive(Debug, Clone, Default)]
pub struct TenantRanges {
    pub ranges: HashMap<TenantSlug, ExtensionRange>,
    /// The tenant of the caller bound to one: a row naming none is its, a row naming
    /// another is refused (field `tenant`), and `ranges` holds only it.
    pub bound: Option<TenantSlug>,
}

impl TenantRanges {
    /// Only the default tenant, with `range`.
    pub fn only_default(range: ExtensionRange) -> Self {
        Self {
            ranges: HashMap::from([(TenantSlug::default_tenant(), range)]),
            bound: None,
        }
    }

    /// The tenant of a row that names none: the bound caller's, else `default`.
    fn absent(&self) -> TenantSlug {
        self.bound
            .clone()
            .unwrap_or_else(TenantSlug::default_tenant)
    }
}

/// What a row's values are checked against once its tenant is known: `rules` with the
/// tenant's range, or `None` with an error for a tenant that does not exist. A slug that
/// breaks the rule is reported by the row's own parsing; meanwhile its extension is
/// checked against the widest range (so that only the tenant is reported).
fn row_rules<'a>(
    tenant: Result<TenantSlug, ValidationError>,
    tenants: &'a TenantRanges,
    rules: UserRules<'a>,
    wide: &'a ExtensionRange,
) -> (UserRules<'a>, Option<ValidationError>) {
    match tenant {
        Ok(slug) => match tenants.ranges.get(&slug) {
            Some(range) => (UserRules { range, ..rules }, None),
            None => (
                UserRules {
                    range: wide,
                    ..rules
                },
                Some(ValidationError::new(
                    "tenant",
                    match &tenants.bound {
                        Some(own) => format!(
                            "this token is bound to tenant '{own}' and cannot import into '{slug}'"
                        ),
                        None => format!("no tenant '{slug}'"),
                    },
                )),
            ),
        },
        Err(_) => (
            UserRules {
                range: wide,
                ..rules
            },
            None,
        ),
    }
}

fn wide_range() -> ExtensionRange {
    ExtensionRange::WIDEST
}

/// Parses a whole file of the default tenant's users only (`rules.range` its range).
pub fn parse(format: Format, bytes: &[u8], rules: UserRules<'_>) -> Result<Parsed, NotJson> {
    parse_for(
        format,
        bytes,
        rules,
        &TenantRanges::only_default(*rules.range),
    )
}

/// Parses a whole file whose rows may name any tenant of `tenants`. Only malformed JSON
/// is an `Err`; everything else wrong with the file is in [`Parsed::errors`].
pub fn parse_for(
    format: Format,
    bytes: &[u8],
    rules: UserRules<'_>,
    tenants: &TenantRanges,
) -> Result<Parsed, NotJson> {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    let mut parsed = match format {
        Format::Csv => {
            let mut p = parse_csv(bytes, rules, tenants);
            p.fingerprint = Sha256::digest(bytes).into();
            p
        }
        Format::Json => parse_json(bytes, rules, tenants)?,
    };
    parsed.check_duplicates();
    // Stable: within a row the errors stay in column order; the file's own come first.
    parsed.errors.sort_by_key(|e| e.row);
    Ok(parsed)
}

impl Parsed {
    /// The row numbers and the users, in file order, when the file has no error.
    pub fn into_users(self) -> Result<(Vec<u64>, Vec<NewUser>), Self> {
        if !self.errors.is_empty() || self.rows.is_empty() {
            return Err(self);
        }
        let mut numbers = Vec::with_capacity(self.rows.len());
        let mut users = Vec::with_capacity(self.rows.len());
        for r in &self.rows {
            // A refused value always comes with its error: `None` is unreachable.
            let Some(user) = r.user.complete() else {
                return Err(self);
            };
            numbers.push(r.row);
            users.push(user);
        }
        Ok((numbers, users))
    }

    fn file_error(&mut self, row: Option<u64>, field: Option<&str>, message: &str) {
        self.errors.push(RowError::new(row, field, message));
    }

    /// The same email (compared lower-cased, as stored) or the same explicit extension
    /// as an earlier row of the same tenant: an error on each later row, naming the first.
    fn check_duplicates(&mut self) {
        let Self { rows, errors, .. } = self;
        let mut emails: HashMap<(Option<&TenantSlug>, &str), u64> = HashMap::new();
        let mut numbers: HashMap<(Option<&TenantSlug>, Extension), u64> = HashMap::new();
        for r in rows.iter() {
            let tenant = r.user.tenant.as_ref();
            if let Some(email) = &r.user.email {
                match emails.entry((tenant, email.as_str())) {
                    Entry::Occupied(first) => errors.push(RowError {
                        row: Some(r.row),
                        field: Some("email".into()),
                        code: RowCode::DuplicateEmail,
                        message: format!("the same email as row {}", first.get()),
                    }),
                    Entry::Vacant(v) => {
                        v.insert(r.row);
                    }
                }
            }
            if let Some(Some(ext)) = r.user.extension {
                match numbers.entry((tenant, ext)) {
                    Entry::Occupied(first) => errors.push(RowError {
                        row: Some(r.row),
                        field: Some("extension".into()),
                        code: RowCode::DuplicateExtension,
                        message: format!("the same extension as row {}", first.get()),
                    }),
                    Entry::Vacant(v) => {
                        v.insert(r.row);
                    }
                }
            }
        }
    }
}

fn too_many(field: Option<&str>) -> RowError {
    RowError::new(
        None,
        field,
        format!("more than {MAX_ROWS} rows: split the file"),
    )
}

// ---------------------------------------------------------------------------------------
// CSV

/// A CSV column; its name, in snake case, is the header (in any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case", ascii_case_insensitive)]
enum Column {
    Name,
    Email,
    Extension,
    Devices,
    Transport,
    Tenant,
    /// Of an export: accepted and ignored (the import gives new ids).
    Id,
    /// Of an export: accepted and ignored.
    CreatedAt,
}

impl Column {
    fn as_str(self) -> &'static str {
        self.into()
    }

    fn parse(header: &str) -> Option<Self> {
        header.trim().parse().ok()
    }
}

const KNOWN_COLUMNS: &str = "name, email (required), extension, devices, transport, tenant (optional); id and created_at of an export are ignored";

/// Line numbers of records, as an editor shows them. The `csv` crate's own line count
/// is one behind after a CRLF (it takes a record's position before it has read the `\n`
/// of the previous line's `\r\n`) and never counts a lone CR, so the line is counted here
/// from the crate's byte offset of the record: every CRLF, LF or CR before the record's
/// first byte is one line break, inside quoted fields too.
struct Lines<'a> {
    bytes: &'a [u8],
    /// Bytes up to here are counted.
    at: usize,
    line: u64,
    after_cr: bool,
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            at: 0,
            line: 1,
            after_cr: false,
        }
    }

    /// The line `record` starts on. Records come in order, so each byte is counted once.
    fn of(&mut self, record: &ByteRecord) -> u64 {
        let from = record.position().map_or(self.at, |p| p.byte() as usize);
        // The offset can point at the terminator before the record (or at blank lines,
        // which the crate skips): the record starts at its first other byte.
        let start = self.bytes[from.min(self.bytes.len())..]
            .iter()
            .position(|b| *b != b'\r' && *b != b'\n')
            .map_or(self.bytes.len(), |i| from + i);
        for &b in &self.bytes[self.at.min(start)..start] {
            match b {
                b'\r' => self.line += 1,
                b'\n' if !self.after_cr => self.line += 1,
                _ => {}
            }
            self.after_cr = b == b'\r';
        }
        self.at = self.at.max(start);
        self.line
    }
}

fn header_columns(header: &ByteRecord, line: u64) -> Result<Vec<Column>, Vec<RowError>> {
    let row = Some(line);
    let mut errors = Vec::new();
    let mut columns = Vec::with_capacity(header.len());
    for raw in header {
        let text = String::from_utf8_lossy(raw);
        match Column::parse(&text) {
            Some(c) if columns.contains(&c) => {
                errors.push(RowError::new(row, Some(c.as_str()), "column given twice"))
            }
            Some(c) => columns.push(c),
            None => errors.push(RowError::new(
                row,
                Some(text.trim()),
                if text.trim().is_empty() {
                    format!("a column without a name; the columns are {KNOWN_COLUMNS}")
                } else {
                    format!("unknown column; the columns are {KNOWN_COLUMNS}")
                },
            )),
        }
    }
    for required in [Column::Name, Column::Email] {
        if !columns.contains(&required) {
            errors.push(RowError::new(
                row,
                Some(required.as_str()),
                format!(
                    "missing column: the first line must be a header naming at least name and email ({KNOWN_COLUMNS})"
                ),
            ));
        }
    }
    if errors.is_empty() {
        Ok(columns)
    } else {
        Err(errors)
    }
}

fn parse_csv(bytes: &[u8], rules: UserRules<'_>, tenants: &TenantRanges) -> Parsed {
    let mut parsed = Parsed::default();
    let mut lines = Lines::new(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut records = reader.byte_records();
    let header = match records.next() {
        None => {
            parsed.file_error(
                Some(1),
                Some("header"),
                "the file is empty: its first line must be a header naming at least name and email",
            );
            return parsed;
        }
        Some(Err(e)) => {
            parsed.file_error(Some(1), Some("header"), &e.to_string());
            return parsed;
        }
        Some(Ok(h)) => h,
    };
    let columns = match header_columns(&header, lines.of(&header)) {
        Ok(c) => c,
        Err(errors) => {
            parsed.errors = errors;
            return parsed;
        }
    };
    for record in records {
        // Reading from memory, the only error is a broken record: report it, stop.
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                parsed.errors.push(RowError::new(None, None, e.to_string()));
                break;
            }
        };
        if parsed.rows.len() == MAX_ROWS {
            return Parsed {
                errors: vec![too_many(None)],
                ..Parsed::default()
            };
        }
        let at = lines.of(&record);
        let row = csv_row(at, &record, &columns, rules, tenants, &mut parsed.errors);
        parsed.rows.push(row);
    }
    if parsed.rows.is_empty() && parsed.errors.is_empty() {
        parsed.file_error(None, None, "the file has a header but no rows");
    }
    parsed
}

fn csv_row(
    at: u64,
    record: &ByteRecord,
    columns: &[Column],
    rules: UserRules<'_>,
    tenants: &TenantRanges,
    errors: &mut Vec<RowError>,
) -> Row {
    // The tenant first, wherever its column is: the extension is checked against its
    // range. Its cell's own errors are reported in column order below.
    let tenant = columns
        .iter()
        .position(|c| *c == Column::Tenant)
        .and_then(|i| record.get(i))
        .map_or(Ok(tenants.absent()), |raw| {
            match std::str::from_utf8(raw).map(str::trim) {
                Ok("") => Ok(tenants.absent()),
                Ok(t) => TenantSlug::parse(t).map_err(|m| ValidationError::new("tenant", m)),
                Err(_) => Err(ValidationError::new("tenant", "is not valid UTF-8")),
            }
        });
    let wide = wide_range();
    let (rules, unknown) = row_rules(tenant.clone(), tenants, rules, &wide);
    let mut r = Row::new(at, rules);
    // Without a tenant column every row is the caller's tenant (the column, when there
    // is one, sets it below).
    r.user.tenant = Some(tenants.absent());
    let u = &mut r.user;
    if record.len() > columns.len() {
        errors.push(RowError::new(
            Some(at),
            None,
            format!(
                "{} values, but the header names {} columns (a comma inside a value needs the value in double quotes)",
                record.len(),
                columns.len()
            ),
        ));
    }
    for (i, &column) in columns.iter().enumerate() {
        // A short record (a spreadsheet that drops trailing empty cells) reads as empty.
        let raw = record.get(i).unwrap_or_default();
        let Ok(text) = std::str::from_utf8(raw) else {
            errors.push(RowError::new(
                Some(at),
                Some(column.as_str()),
                "is not valid UTF-8 (save the file as UTF-8)",
            ));
            match column {
                Column::Extension => u.extension = None,
                Column::Devices => u.devices = None,
                Column::Transport => u.transport = None,
                Column::Tenant => u.tenant = None,
                _ => {}
            }
            continue;
        };
        let mut refuse = |e: ValidationError| errors.push(RowError::invalid(at, e));
        match column {
            Column::Name => u.name = Name::parse(text).map_err(&mut refuse).ok(),
            Column::Email => u.email = Email::parse(text).map_err(&mut refuse).ok(),
            Column::Extension => {
                u.extension = match text.trim() {
                    "" => Some(None),
                    t => rules.range.parse(&number(t)).map(Some).map_err(refuse).ok(),
                }
            }
            Column::Devices => {
                u.devices = match text.trim() {
                    "" => Some(Devices::ONE),
                    t => Devices::parse(&number(t)).map_err(refuse).ok(),
                }
            }
            Column::Transport => {
                u.transport = match text.trim() {
                    "" => Some(rules.transports.default_id().clone()),
                    t => rules.transports.parse(&Value::from(t)).map_err(refuse).ok(),
                }
            }
            Column::Tenant => {
                u.tenant = match (&tenant, &unknown) {
                    (Ok(_), Some(e)) => {
                        refuse(e.clone());
                        None
                    }
                    (Ok(slug), None) => Some(slug.clone()),
                    (Err(e), _) => {
                        refuse(e.clone());
                        None
                    }
                }
            }
            Column::Id | Column::CreatedAt => {}
        }
    }
    r
}

/// A CSV cell as the JSON value the domain parsers read: a number when it is one, else
/// the text (which they refuse with their own message).
fn number(text: &str) -> Value {
    match text.parse::<u64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::String(text.to_owned()),
    }
}

// ---------------------------------------------------------------------------------------
// JSON

fn parse_json(
    bytes: &[u8],
    rules: UserRules<'_>,
    tenants: &TenantRanges,
) -> Result<Parsed, NotJson> {
    // Syntax first, over the whole body, without building a tree: a 8 MiB body as a
    // `Value` would take several times its size. Each row is read on its own below.
    let whole: &RawValue = serde_json::from_slice(bytes).map_err(|e| NotJson(e.to_string()))?;
    let mut parsed = Parsed::default();
    let Ok(top) = serde_json::from_str::<BTreeMap<String, &RawValue>>(whole.get()) else {
        parsed.file_error(
            None,
            None,
            "the body must be a JSON object {\"users\": [...]}",
        );
        return Ok(parsed);
    };
    for key in top.keys().filter(|k| *k != "users") {
        parsed.file_error(
            None,
            Some(key),
            "unknown field; the body is {\"users\": [...]}",
        );
    }
    let Some(users) = top.get("users") else {
        parsed.file_error(None, Some("users"), "is required");
        return Ok(parsed);
    };
    let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(users.get()) else {
        parsed.file_error(None, Some("users"), "must be an array of users");
        return Ok(parsed);
    };
    if items.len() > MAX_ROWS {
        return Ok(Parsed {
            errors: vec![too_many(Some("users"))],
            ..Parsed::default()
        });
    }
    if items.is_empty() {
        parsed.file_error(None, Some("users"), "has no rows");
    }
    // The canonical form of a valid body, `{"users":[row,row…]}` with each row's keys
    // sorted (serde_json's maps are sorted), hashed a row at a time.
    let mut canonical = Sha256::new();
    canonical.update(b"{\"users\":[");
    for (i, item) in items.iter().enumerate() {
        let row = i as u64;
        match serde_json::from_str::<Value>(item.get()) {
            Ok(v) => {
                if i > 0 {
                    canonical.update(b",");
                }
                canonical.update(v.to_string().as_bytes());
                let r = json_row(row, &v, rules, tenants, &mut parsed.errors);
                parsed.rows.push(r);
            }
            // Already checked as JSON: unreachable, but never a panic.
            Err(e) => parsed
                .errors
                .push(RowError::new(Some(row), None, e.to_string())),
        }
    }
    canonical.update(b"]}");
    parsed.fingerprint = canonical.finalize().into();
    Ok(parsed)
}

/// A JSON row: an object read by the parser of `POST /users`, every error of it kept.
fn json_row(
    at: u64,
    value: &Value,
    rules: UserRules<'_>,
    tenants: &TenantRanges,
    errors: &mut Vec<RowError>,
) -> Row {
    let Some(obj) = value.as_object() else {
        errors.push(RowError::new(
            Some(at),
            None,
            "must be a JSON object {\"name\", \"email\", \"extension\"?, \"devices\"?, \"transport\"?, \"tenant\"?}",
        ));
        let mut r = Row::new(at, rules);
        r.user.extension = None;
        r.user.devices = None;
        r.user.transport = None;
        return r;
    };
    // The tenant first: the extension is checked against its range.
    let wide = wide_range();
    let named = tenant_named(obj);
    let absent = matches!(named, Ok(None));
    let tenant = named.map(|t| t.unwrap_or_else(|| tenants.absent()));
    let (rules, unknown) = row_rules(tenant, tenants, rules, &wide);
    // `id` and `created_at` (of an export) are ignored, whatever they hold.
    let mut user = NewUser::parse_fields(obj, &IGNORED, rules, &mut |e| {
        errors.push(RowError::invalid(at, e))
    });
    if absent {
        user.tenant = Some(tenants.absent());
    }
    if let Some(e) = unknown {
        errors.push(RowError::invalid(at, e));
        user.tenant = None;
    }
    Row { row: at, user }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::LazyLock;

    fn rules() -> UserRules<'static> {
        use crate::domain::{ExtensionRange, TransportId, Transports};
        static RANGE: LazyLock<ExtensionRange> =
            LazyLock::new(|| ExtensionRange::new(1000, 1999).unwrap());
        static TRANSPORTS: LazyLock<Transports> = LazyLock::new(|| {
            let ids = ["transport-udp", "transport-tls"].map(|t| TransportId::parse(t).unwrap());
            Transports::new(ids.to_vec()).unwrap()
        });
        UserRules {
            range: &RANGE,
            transports: &TRANSPORTS,
        }
    }

    fn csv(text: &str) -> Parsed {
        parse(Format::Csv, text.as_bytes(), rules()).unwrap()
    }

    fn json(text: &str) -> Parsed {
        parse(Format::Json, text.as_bytes(), rules()).unwrap()
    }

    /// (row, field, code) of each error.
    fn errs(p: &Parsed) -> Vec<(Option<u64>, Option<&str>, &str)> {
        p.errors
            .iter()
            .map(|e| (e.row, e.field.as_deref(), e.code.as_str()))
            .collect()
    }

    #[test]
    fn row_codes_read_as_serialised() {
        for c in <RowCode as strum::IntoEnumIterator>::iter() {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        assert_eq!(Column::parse(" Created_AT "), Some(Column::CreatedAt));
        assert_eq!(Column::parse("extention"), None);
    }

    #[test]
    fn csv_reads_any_header_order_and_case_with_defaults() {
        let p = csv("EMAIL,Devices,Name,extension\r\nA@X.org,,Alice,\r\nb@x.org,3,Bob,1005\r\n");
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let (rows, users) = p.into_users().unwrap();
        assert_eq!(rows, [2, 3]);
        assert_eq!(users[0].email.as_str(), "a@x.org");
        assert_eq!(users[0].extension, None);
        assert_eq!(users[0].devices, Devices::ONE);
        assert_eq!(users[1].name.as_str(), "Bob");
        assert_eq!(users[1].extension.map(Extension::get), Some(1005));
        assert_eq!(users[1].devices.get(), 3);
    }

    #[test]
    fn csv_rows_are_numbered_by_the_line_they_start_on() {
        // A quoted name holding a comma, and a quoted one with a line break (refused by the
        // name rule): the row after it starts two lines later.
        let p =
            csv("name,email\n\"Smith, Pat\",p@x.org\n\"Two\nLines\",t@x.org\nbad;name,b@x.org\n");
        assert_eq!(
            errs(&p),
            [
                (Some(3), Some("name"), "validation_failed"),
                (Some(5), Some("name"), "validation_failed")
            ]
        );
        assert_eq!(p.rows[0].user.name.as_ref().unwrap().as_str(), "Smith, Pat");
    }

    #[test]
    fn lines_count_crlf_lf_and_cr_and_breaks_inside_quotes() {
        let rows = |text: &str| -> Vec<u64> { csv(text).rows.iter().map(|r| r.row).collect() };
        for (text, want) in [
            ("name,email\r\nA,a@x\r\nB,b@x\r\n", vec![2, 3]),
            ("name,email\nA,a@x\nB,b@x", vec![2, 3]),
            ("name,email\rA,a@x\rB,b@x\r", vec![2, 3]),
            ("\r\nname,email\r\n\r\nA,a@x\r\n", vec![4]),
            ("name,email\r\n\"A\r\nB\",a@x\r\nC,c@x\r\n", vec![2, 4]),
            ("name,email\n\"A\n\n\nB\",a@x\nC,\"c@x\"\n", vec![2, 6]),
        ] {
            assert_eq!(rows(text), want, "{text:?}");
        }
        // The header's own line when blank lines come first.
        assert_eq!(
            errs(&csv("\n\nname\nA\n")),
            [(Some(3), Some("email"), "validation_failed")]
        );
    }

    #[test]
    fn csv_strips_a_bom_and_refuses_bad_headers() {
        let p = csv("\u{feff}name,email\nA,a@x.org\n");
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(
            errs(&csv("name,mail,nickname\nA,a@x.org,z\n")),
            [
                (Some(1), Some("mail"), "validation_failed"),
                (Some(1), Some("nickname"), "validation_failed"),
                (Some(1), Some("email"), "validation_failed")
            ]
        );
        assert_eq!(
            errs(&csv("name,email,Name\n")),
            [(Some(1), Some("name"), "validation_failed")]
        );
        assert_eq!(
            errs(&csv("")),
            [(Some(1), Some("header"), "validation_failed")]
        );
        assert_eq!(
            errs(&csv("name,email\r\n")),
            [(None, None, "validation_failed")]
        );
    }

    #[test]
    fn every_bad_value_of_every_row_is_reported() {
        let p = csv("name,email,extension,devices\n\
             ,a@x.org,999,0\n\
             Bob,bob,1000,x\n\
             Eve,E@X.org,1000,\n\
             Eve2,e@x.org,,11\n\
             Extra,extra@x.org,,,surplus\n");
        assert_eq!(
            errs(&p),
            [
                (Some(2), Some("name"), "validation_failed"),
                (Some(2), Some("extension"), "validation_failed"),
                (Some(2), Some("devices"), "validation_failed"),
                (Some(3), Some("email"), "validation_failed"),
                (Some(3), Some("devices"), "validation_failed"),
                (Some(4), Some("extension"), "duplicate_extension"),
                (Some(5), Some("devices"), "validation_failed"),
                (Some(5), Some("email"), "duplicate_email"),
                (Some(6), None, "validation_failed"),
            ]
        );
        let dup = p
            .errors
            .iter()
            .find(|e| e.code == RowCode::DuplicateEmail)
            .unwrap();
        assert_eq!(dup.message, "the same email as row 4");
    }

    #[test]
    fn csv_refuses_invalid_utf8_naming_the_field() {
        let p = parse(Format::Csv, b"name,email\nAl\xffce,a@x.org\n", rules()).unwrap();
        assert_eq!(errs(&p), [(Some(2), Some("name"), "validation_failed")]);
    }

    #[test]
    fn csv_refuses_more_than_the_row_limit() {
        let mut text = String::from("name,email\n");
        for i in 0..MAX_ROWS {
            text.push_str(&format!("U,u{i}@x.org\n"));
        }
        assert!(csv(&text).errors.is_empty());
        text.push_str("Last,last@x.org\n");
        let p = csv(&text);
        assert_eq!(errs(&p), [(None, None, "validation_failed")]);
        assert!(p.rows.is_empty());
    }

    #[test]
    fn json_rows_are_indexed_from_zero_with_every_error() {
        let p = json(
            r#"{"users": [
                {"name": "A", "email": "a@x.org"},
                {"name": 5, "email": "A@x.org", "nick": "z", "extension": "1000"},
                7,
                {"name": "C", "email": "c@x.org", "extension": null, "devices": 10,
                 "id": 3, "created_at": "2026-11-30T08:00:00Z"},
                {"name": "D", "email": "d@x.org", "id": "x", "created_at": 0, "devices": null}
            ], "extra": 1}"#,
        );
        assert_eq!(
            errs(&p),
            [
                (None, Some("extra"), "validation_failed"),
                (Some(1), Some("nick"), "validation_failed"),
                (Some(1), Some("name"), "validation_failed"),
                (Some(1), Some("extension"), "validation_failed"),
                (Some(1), Some("email"), "duplicate_email"),
                (Some(2), None, "validation_failed"),
                (Some(4), Some("devices"), "validation_failed"),
            ]
        );
    }

    #[test]
    fn json_shape_errors_are_the_files_and_bad_syntax_is_not_json() {
        assert_eq!(errs(&json("[]")), [(None, None, "validation_failed")]);
        assert_eq!(
            errs(&json("{}")),
            [(None, Some("users"), "validation_failed")]
        );
        assert_eq!(
            errs(&json(r#"{"users": {}}"#)),
            [(None, Some("users"), "validation_failed")]
        );
        assert_eq!(
            errs(&json(r#"{"users": []}"#)),
            [(None, Some("users"), "validation_failed")]
        );
        for bad in ["", "{", "{\"users\": [}", "[1, }"] {
            assert!(
                parse(Format::Json, bad.as_bytes(), rules()).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn json_fingerprints_ignore_spelling_and_csv_ones_do_not() {
        let a =
            json(r#"{"users": [{"name": "A", "email": "a@x"}, {"email": "b@x", "name": "B"}]}"#);
        let b = json(r#"{"users":[{"email":"a@x","name":"A"},{"name":"B","email":"b@x"}]}"#);
        let c = json(r#"{"users":[{"email":"a@x","name":"A"}]}"#);
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
        let canonical = r#"{"users":[{"email":"a@x","name":"A"},{"email":"b@x","name":"B"}]}"#;
        assert_eq!(a.fingerprint, <[u8; 32]>::from(Sha256::digest(canonical)));
        assert_ne!(
            csv("name,email\nA,a@x\n").fingerprint,
            csv("email,name\na@x,A\n").fingerprint
        );
        assert_eq!(
            csv("\u{feff}name,email\nA,a@x\n").fingerprint,
            csv("name,email\nA,a@x\n").fingerprint
        );
    }

    #[test]
    fn formats_are_sniffed_by_name_then_content() {
        assert_eq!(Format::sniff("a.JSON", b"name"), Format::Json);
        assert_eq!(Format::sniff("a.csv", b"{"), Format::Csv);
        assert_eq!(
            Format::sniff("-", b"\xEF\xBB\xBF \n{\"users\""),
            Format::Json
        );
        assert_eq!(Format::sniff("-", b"name,email"), Format::Csv);
    }

    #[test]
    fn errors_print_on_one_line() {
        let e = RowError {
            row: Some(3),
            field: Some("email".into()),
            code: RowCode::EmailTaken,
            message: "a user with this email already exists".into(),
        };
        assert_eq!(
            e.to_string(),
            "row 3, email: email_taken: a user with this email already exists"
        );
        assert_eq!(
            RowError::new(None, None, "the file has a header but no rows").to_string(),
            "file: validation_failed: the file has a header but no rows"
        );
    }
}
