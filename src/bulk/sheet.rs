//! What an import answers and an export sends, as CSV (written by the `csv` crate, so
//! that a name with a comma or a quote comes back exactly as it went in) or JSON.
//!
//! The CSV of created users is the sheet an admin hands out: who, which number, and the
//! SIP credentials, first. The export's columns are the ones an import reads, so an export
//! imported into an empty database gives the same users the same numbers.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::file::Format;
use crate::store::{CreatedUser, PlannedUser, UserRow};

// `transport`, then `tenant`, come last in each sheet: they came after the others, and
// scripts that read columns by position keep working.
pub const CREATED_COLUMNS: [&str; 10] = [
    "name",
    "email",
    "extension",
    "devices",
    "sip_username",
    "sip_password",
    "id",
    "created_at",
    "transport",
    "tenant",
];
pub const PLANNED_COLUMNS: [&str; 6] = [
    "name",
    "email",
    "extension",
    "devices",
    "transport",
    "tenant",
];
pub const EXPORT_COLUMNS: [&str; 8] = [
    "id",
    "name",
    "email",
    "extension",
    "devices",
    "created_at",
    "transport",
    "tenant",
];

/// A sheet could not be written. Writing into memory does not fail; the type is here so
/// that it is never an unwrap either.
#[derive(Debug, thiserror::Error)]
#[error("cannot write CSV: {0}")]
pub struct SheetError(#[from] csv::Error);

fn rfc3339(t: OffsetDateTime) -> String {
    // The same text as the JSON answers (time's serde uses this format).
    t.format(&Rfc3339).unwrap_or_default()
}

fn sheet<T>(
    columns: &[&str],
    rows: &[T],
    mut record: impl FnMut(&T) -> Vec<String>,
) -> Result<Vec<u8>, SheetError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(columns)?;
    for r in rows {
        w.write_record(record(r))?;
    }
    w.into_inner()
        .map_err(|e| SheetError(csv::Error::from(e.into_error())))
}

/// The users an import created, with their secrets.
pub fn created_csv(users: &[CreatedUser]) -> Result<Vec<u8>, SheetError> {
    sheet(&CREATED_COLUMNS, users, |u| {
        vec![
            u.name.clone(),
            u.email.clone(),
            u.extension.to_string(),
            u.devices.to_string(),
            u.sip_username.clone(),
            u.sip_password.expose().to_owned(),
            u.id.to_string(),
            rfc3339(u.created_at),
            u.transport.clone().unwrap_or_default(),
            u.tenant.to_string(),
        ]
    })
}

/// The users a dry run would create, with their numbers.
pub fn planned_csv(users: &[PlannedUser]) -> Result<Vec<u8>, SheetError> {
    sheet(&PLANNED_COLUMNS, users, |u| {
        vec![
            u.name.clone(),
            u.email.clone(),
            u.extension.to_string(),
            u.devices.to_string(),
            u.transport.clone(),
            u.tenant.to_string(),
        ]
    })
}

/// Writes an export chunk by chunk: `{"users": [` … `]}` or a header and rows.
pub struct ExportWriter {
    format: Format,
    started: bool,
    any: bool,
}

impl ExportWriter {
    pub fn new(format: Format) -> Self {
        Self {
            format,
            started: false,
            any: false,
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) -> Result<(), SheetError> {
        if !self.started {
            self.started = true;
            match self.format {
                Format::Json => out.extend_from_slice(b"{\"users\":["),
                Format::Csv => {
                    let mut w = csv::Writer::from_writer(&mut *out);
                    w.write_record(EXPORT_COLUMNS)?;
                    w.flush().map_err(csv::Error::from)?;
                }
            }
        }
        Ok(())
    }

    /// The next chunk of rows (with the opening, the first time).
    pub fn rows(&mut self, rows: &[UserRow]) -> Result<Vec<u8>, SheetError> {
        let mut out = Vec::with_capacity(rows.len() * 128 + 64);
        self.start(&mut out)?;
        match self.format {
            Format::Json => {
                for r in rows {
                    if self.any {
                        out.push(b',');
                    }
                    self.any = true;
                    serde_json::to_writer(&mut out, r)
                        .map_err(|e| SheetError(csv::Error::from(std::io::Error::other(e))))?;
                }
            }
            Format::Csv => {
                let mut w = csv::Writer::from_writer(&mut out);
                for r in rows {
                    w.write_record([
                        r.id.to_string(),
                        r.name.clone(),
                        r.email.clone(),
                        r.extension.to_string(),
                        r.devices.get().to_string(),
                        rfc3339(r.created_at),
                        r.transport.clone().unwrap_or_default(),
                        r.tenant.to_string(),
                    ])?;
                }
                w.flush().map_err(csv::Error::from)?;
            }
        }
        Ok(out)
    }

    /// The closing (with the opening, when there were no rows at all).
    pub fn finish(&mut self) -> Result<Vec<u8>, SheetError> {
        let mut out = Vec::new();
        self.start(&mut out)?;
        if self.format == Format::Json {
            out.extend_from_slice(b"]}");
        }
        Ok(out)
    }
}
