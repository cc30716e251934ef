//! The health probe: proof that Asterisk runs what the apply wrote.
//!
//! An apply registers what it expects under a one-time token, then originates a call into
//! the probe context, whose dialplan runs `AGI(agi://<PORTAL_AGI_LISTEN>/health,<token>)`.
//! The FastAGI session holding a valid token asks Asterisk, through `GET FULL VARIABLE`,
//! whether every applied extension exists as a PJSIP endpoint with its aor, and that every
//! removed one is gone from PJSIP and the dialplan. A session
//! without a valid token gets no command and changes nothing. Many checks share one
//! command (section 6 of the lab notes: 1000 extensions cost 415 ms one function per
//! command and 109 ms batched), kept under Asterisk's 8192-byte command limit.
//!
//! Each generated file is proven read whole by its last object. The dialplan's is the
//! probe context: it passes the routing marker (a hash of the `synergy-internal` context
//! as rendered) as its second AGI argument. Asterisk drops everything after a parse error
//! in an include (F-CFG-3), so a call that arrives with the right marker proves every
//! extension of the file is live; one with another marker means Asterisk kept an older
//! dialplan (a parse error in extensions.conf itself). A `DIALPLAN_EXISTS` per extension
//! would prove no more and cost 43 µs each. The endpoints file's is the sentinel aor
//! ([`super::render::Rendered::sentinel`]), read back first.
//!
//! With tenants, every tenant's files are proven too: each endpoints file by its own
//! sentinel aor, each other tenant's routing file by its last context, which the probe
//! asks about with `DIALPLAN_EXISTS(portal_proof_<hash>,s,1)` (the probe context lives in
//! the default tenant's routing file alone). Extensions are checked by object name
//! (`acme-100`) against their tenant's context (`synergy-t-acme`).
//!
//! PJSIP objects are rejected one by one (F-CFG-4), so an endpoint and aor the apply
//! added or changed is checked individually, and so is every one when the apply cannot
//! trust the previous proof (the [`Expectation`] says which: `apply` decides).
//!
//! An endpoint the apply added or changed is also read back option by option: the NAT
//! options, the codecs, the transport and the media encryption it was rendered with
//! (`PJSIP_ENDPOINT(<ext>,<option>)`, `../asterisk/tls/FACTS.md` F-TLS-6/7). Asterisk
//! takes an endpoint whose option it cannot use with the option at its default, or keeps
//! the old object; either way the phone would register and then fail where it matters
//! (one-way audio behind a NAT, a call refused with 488), so the apply is rolled back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use super::agi::{self, AgiError, Reply, Session, MAX_COMMAND};
use super::reload::Link;
use super::render::{
    EndpointOptions, PROBE_CONTEXT, PROBE_EXTEN_PREFIX, ROUTING_FILE, SENTINEL_OPTION,
};
use crate::shutdown::Shutdown;

/// What the probe found: how many extensions it proved, how many of them it asked about
/// one by one, and what is wrong (nothing, when Asterisk holds exactly what was applied).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub checked: u32,
    pub visited: u32,
    /// Generated files found read whole (2 per tenant when healthy).
    pub whole_files: u32,
    pub missing: Vec<String>,
}

impl Verdict {
    pub fn is_ok(&self) -> bool {
        self.missing.is_empty()
    }

    fn failed(expect: &Expectation, why: String) -> Self {
        Self {
            checked: expect.checked(),
            visited: expect.visited(),
            whole_files: 0,
            missing: vec![why],
        }
    }
}

/// One extension the probe visits: its PJSIP object name (the endpoint, auth and aor),
/// its tenant's context, and its number in that context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub name: String,
    pub context: String,
    pub number: u32,
}

impl Object {
    /// A default-tenant extension, named after its number in `synergy-internal`.
    pub fn default_tenant(number: u32) -> Self {
        Self {
            name: number.to_string(),
            context: super::render::INTERNAL_CONTEXT.to_owned(),
            number,
        }
    }
}

/// What the live Asterisk must hold after an apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectation {
    /// Extensions visited whose endpoint (in its context) and aor must exist, with the
    /// aor's `max_contacts`, and for those the apply added or changed, the endpoint
    /// options to read back.
    pub present: Vec<(Object, u8, Option<EndpointOptions>)>,
    /// Extensions that must be gone: endpoint, aor and dialplan entry in their context.
    pub absent: Vec<Object>,
    /// Extensions proven without a visit: unchanged since the previous proof, in files
    /// proven read whole.
    pub unvisited: u32,
    /// The routing marker the probe call must carry (see the module doc).
    pub marker: String,
    /// Every endpoints file's last object, an aor, with the file's name (see the module
    /// doc).
    pub sentinels: Vec<(String, String)>,
    /// Every other tenant's routing file's last context, with the file's name.
    pub dialplan_proofs: Vec<(String, String)>,
}

impl Expectation {
    fn visited(&self) -> u32 {
        (self.present.len() + self.absent.len()) as u32
    }

    fn checked(&self) -> u32 {
        self.visited() + self.unvisited
    }
}

/// What one object is checked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// An endpoints file's sentinel aor, with [`SENTINEL_OPTION`].
    Sentinel { file: String, name: String },
    /// A tenant's routing file's last context, with its `s,1`.
    DialplanProof { file: String, context: String },
    /// Endpoint with the expected context, and aor with this `max_contacts`.
    Present { object: Object, max_contacts: u8 },
    /// As `Present`, and the endpoint holds these options.
    Changed {
        object: Object,
        max_contacts: u8,
        options: EndpointOptions,
    },
    /// No endpoint, no aor, no dialplan entry.
    Absent { object: Object },
}

/// The endpoint options read back from a changed endpoint, in the order of the reply.
const OPTIONS: [&str; 7] = [
    "transport",
    "allow",
    "rtp_symmetric",
    "force_rport",
    "rewrite_contact",
    "media_encryption",
    "media_encryption_optimistic",
];

/// What Asterisk 22.7 reads back for each of [`OPTIONS`] on an endpoint rendered with
/// `options` (F-TLS-6/7): booleans as `true`/`false`, `force_rport` true by default, the
/// codecs as `(g722|ulaw|alaw)`. Our sections use no templates, so an option we do not
/// write reads its default.
fn expected_values(options: &EndpointOptions) -> [String; 7] {
    let flag = |b: bool| if b { "true" } else { "false" }.to_owned();
    [
        options.transport.clone(),
        format!("({})", options.codecs.join("|")),
        flag(options.nat),
        flag(true),
        flag(options.nat),
        if options.srtp { "sdes" } else { "no" }.to_owned(),
        flag(false),
    ]
}

/// At most this many entries are listed in `missing`; the rest are counted.
const MAX_LISTED: usize = 50;
const COMMAND_PREFIX: &str = "GET FULL VARIABLE ";
/// Room for the prefix and the newline below Asterisk's limit, with margin.
const BATCH_BYTES: usize = MAX_COMMAND - 200;

fn fragment(check: &Check) -> String {
    let pjsip = |name: &str| {
        format!("${{PJSIP_ENDPOINT({name},context)}},${{PJSIP_AOR({name},max_contacts)}}")
    };
    match check {
        Check::Sentinel { name, .. } => format!("${{PJSIP_AOR({name},{})}}", SENTINEL_OPTION.0),
        Check::DialplanProof { context, .. } => format!("${{DIALPLAN_EXISTS({context},s,1)}}"),
        Check::Present { object, .. } => pjsip(&object.name),
        Check::Changed { object, .. } => {
            let mut f = pjsip(&object.name);
            for option in OPTIONS {
                f.push_str(&format!(",${{PJSIP_ENDPOINT({},{option})}}", object.name));
            }
            f
        }
        Check::Absent { object } => {
            format!(
                "{},${{DIALPLAN_EXISTS({},{},1)}}",
                pjsip(&object.name),
                object.context,
                object.number
            )
        }
    }
}

/// One probe command and the objects it asks about, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub command: String,
    pub checks: Vec<Check>,
}

/// Splits the checks, the files' proofs first, into as few commands as fit under the line
/// limit. Values are separated by `,` within an extension and `;` between extensions:
/// neither can occur in a context name, a number, an option we read or a 0/1 flag.
pub fn batches(exp: &Expectation) -> Vec<Batch> {
    let present = exp.present.iter().map(|(object, max_contacts, options)| {
        let (object, max_contacts) = (object.clone(), *max_contacts);
        match options {
            None => Check::Present {
                object,
                max_contacts,
            },
            Some(options) => Check::Changed {
                object,
                max_contacts,
                options: options.clone(),
            },
        }
    });
    let sentinels = exp.sentinels.iter().map(|(file, name)| Check::Sentinel {
        file: file.clone(),
        name: name.clone(),
    });
    let proofs = exp
        .dialplan_proofs
        .iter()
        .map(|(file, context)| Check::DialplanProof {
            file: file.clone(),
            context: context.clone(),
        });
    let all = sentinels
        .chain(proofs)
        .chain(present)
        .chain(exp.absent.iter().map(|object| Check::Absent {
            object: object.clone(),
        }));
    let mut out: Vec<Batch> = Vec::new();
    for check in all {
        let frag = fragment(&check);
        match out.last_mut() {
            Some(b) if b.command.len() + 1 + frag.len() <= BATCH_BYTES => {
                b.command.push(';');
                b.command.push_str(&frag);
                b.checks.push(check);
            }
            _ => out.push(Batch {
                command: format!("{COMMAND_PREFIX}{frag}"),
                checks: vec![check],
            }),
        }
    }
    out
}

/// What one reply says: what is wrong, and how many generated files it proved whole.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Findings {
    pub wrong: Vec<String>,
    pub whole_files: u32,
}

/// Compares one reply value with its batch.
pub fn evaluate(batch: &Batch, value: &str) -> Result<Findings, String> {
    let groups: Vec<&str> = value.split(';').collect();
    if groups.len() != batch.checks.len() {
        return Err(format!(
            "unexpected probe reply: {} values for {} extensions",
            groups.len(),
            batch.checks.len()
        ));
    }
    let (mut wrong, mut whole_files) = (Vec::new(), 0);
    for (check, group) in batch.checks.iter().zip(groups) {
        let parts: Vec<&str> = group.split(',').collect();
        let present = |wrong: &mut Vec<String>,
                       object: &Object,
                       context: &str,
                       max_contacts: &str,
                       want: u8| {
            let name = &object.name;
            match context {
                c if c == object.context => {}
                "" => wrong.push(format!("endpoint {name} is missing")),
                other => wrong.push(format!("endpoint {name} has context {other:?}")),
            }
            match max_contacts {
                "" => wrong.push(format!("aor {name} is missing")),
                m if m == want.to_string() => {}
                m => wrong.push(format!("aor {name} has max_contacts {m}, expected {want}")),
            }
            !context.is_empty()
        };
        match (check, parts.as_slice()) {
            (Check::Sentinel { file, name }, &[value]) => {
                let (option, want) = SENTINEL_OPTION;
                if value == want {
                    whole_files += 1;
                } else {
                    let got = if value.is_empty() {
                        "is missing".to_owned()
                    } else {
                        format!("has {option} {value}, rendered {want}")
                    };
                    wrong.push(format!(
                        "Asterisk did not read {file} whole: its last object, aor \
                         {name}, {got} (a parse error, a file cut short or an older file: \
                         what comes after the break is not live)"
                    ));
                }
            }
            (Check::DialplanProof { file, context }, &[value]) => {
                if value == "1" {
                    whole_files += 1;
                } else {
                    wrong.push(format!(
                        "Asterisk did not read {file} whole: its last context, {context}, \
                         is missing (a parse error, a file cut short or an older file: what \
                         comes after the break is not live)"
                    ));
                }
            }
            (
                Check::Present {
                    object,
                    max_contacts: want,
                },
                &[context, max_contacts],
            ) => {
                present(&mut wrong, object, context, max_contacts, *want);
            }
            (
                Check::Changed {
                    object,
                    max_contacts: want,
                    options,
                },
                [context, max_contacts, values @ ..],
            ) if values.len() == OPTIONS.len() => {
                // A missing endpoint is said once, not once per option.
                if present(&mut wrong, object, context, max_contacts, *want) {
                    for ((option, got), expected) in
                        OPTIONS.iter().zip(values).zip(expected_values(options))
                    {
                        if *got != expected {
                            wrong.push(format!(
                                "endpoint {} has {option}={got:?}, rendered {expected:?}",
                                object.name
                            ));
                        }
                    }
                }
            }
            (Check::Absent { object }, &[context, max_contacts, in_dialplan]) => {
                let name = &object.name;
                if !context.is_empty() {
                    wrong.push(format!("endpoint {name} was removed but is still live"));
                }
                if !max_contacts.is_empty() {
                    wrong.push(format!("aor {name} was removed but is still live"));
                }
                if in_dialplan == "1" {
                    wrong.push(format!(
                        "dialplan extension {} of {} was removed but is still live",
                        object.number, object.context
                    ));
                }
            }
            _ => return Err(format!("unexpected probe reply for {check:?}: {group:?}")),
        }
    }
    Ok(Findings { wrong, whole_files })
}

struct Pending {
    expect: Expectation,
    done: oneshot::Sender<Verdict>,
}

/// Probes waiting for their call, by token.
#[derive(Default)]
pub struct Probes {
    pending: Mutex<HashMap<String, Pending>>,
}

/// A 32-character token from the CSPRNG (190 bits): letters and digits, so it is a valid
/// extension and passes AMI's Originate data filter.
fn token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..32)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

impl Probes {
    /// Registers a probe; the receiver gets the result when the call has been checked.
    pub fn register(&self, expect: Expectation) -> (String, oneshot::Receiver<Verdict>) {
        let (done, rx) = oneshot::channel();
        let t = token();
        self.lock().insert(t.clone(), Pending { expect, done });
        (t, rx)
    }

    /// Forgets a probe whose apply stopped waiting: its token is dead from now on.
    pub fn cancel(&self, token: &str) {
        self.lock().remove(token);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        // The map stays consistent even if a holder panicked: every operation is one call.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Originates the probe call over `link` and waits up to `limit` for its verdict.
    /// `dialplan_dir` and `agi_addr` only serve to say where to look when no call comes.
    pub async fn run(
        &self,
        link: &mut Link,
        expect: Expectation,
        limit: Duration,
        dialplan_dir: &std::path::Path,
        agi_addr: SocketAddr,
    ) -> Verdict {
        let (token, verdict) = self.register(expect.clone());
        let channel = format!("Local/{PROBE_EXTEN_PREFIX}{token}@{PROBE_CONTEXT}");
        if let Err(e) = link.originate_probe(&channel, limit.as_secs() + 2).await {
            self.cancel(&token);
            return Verdict::failed(&expect, format!("could not start the probe call: {e}"));
        }
        match tokio::time::timeout(limit, verdict).await {
            Ok(Ok(v)) => v,
            Ok(Err(_)) | Err(_) => {
                self.cancel(&token);
                Verdict::failed(
                    &expect,
                    format!(
                        "no health probe call arrived within {} ms: check that extensions.conf \
                         has `#tryinclude {}/*.conf` and that Asterisk reaches the FastAGI \
                         server at {agi_addr} (PORTAL_AGI_LISTEN)",
                        limit.as_millis(),
                        dialplan_dir.display(),
                    ),
                )
            }
        }
    }

    /// Runs the checks for a session with a valid token; others get nothing.
    pub async fn handle(&self, mut session: Session) {
        self.answer(&mut session).await;
        session.close().await;
    }

    async fn answer(&self, session: &mut Session) {
        let script = session.env("agi_network_script").unwrap_or("");
        let path = script.split('?').next().unwrap_or("");
        if path != "health" {
            return;
        }
        let Some(token) = session.env("agi_arg_1") else {
            return;
        };
        // Single use: taken out of the map before anything is sent.
        let Some(pending) = self.lock().remove(token) else {
            tracing::warn!("FastAGI health call with an unknown or used token");
            return;
        };
        let marker = session.env("agi_arg_2").unwrap_or("");
        let verdict = if marker == pending.expect.marker {
            run_checks(session, &pending.expect).await
        } else {
            Verdict::failed(
                &pending.expect,
                format!(
                    "the probe ran in an older dialplan (marker {marker:?}, expected {:?}): \
                     `dialplan reload` did not load the new {ROUTING_FILE}",
                    pending.expect.marker,
                ),
            )
        };
        let _ = pending.done.send(verdict);
    }
}

/// Runs the checks in a session whose call carried the right marker: the routing file is
/// proven whole already.
async fn run_checks(session: &mut Session, expect: &Expectation) -> Verdict {
    let (mut missing, mut whole_files) = (Vec::new(), 1);
    let mut failure = None;
    for batch in batches(expect) {
        let value = match session.command(&batch.command).await {
            Ok(Reply::Ok { result: 1, value }) => value.unwrap_or_default(),
            Ok(other) => {
                failure = Some(format!("Asterisk answered the probe with {other:?}"));
                break;
            }
            Err(AgiError::Hangup) => {
                failure = Some("the probe call hung up before all checks ran".to_owned());
                break;
            }
            Err(e) => {
                failure = Some(format!("probe session failed: {e}"));
                break;
            }
        };
        match evaluate(&batch, &value) {
            Ok(found) => {
                missing.extend(found.wrong);
                whole_files += found.whole_files;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let extra = missing.len().saturating_sub(MAX_LISTED);
    missing.truncate(MAX_LISTED);
    if extra > 0 {
        missing.push(format!("... and {extra} more"));
    }
    missing.extend(failure);
    Verdict {
        checked: expect.checked(),
        visited: expect.visited(),
        whole_files,
        missing,
    }
}

/// The FastAGI server answering health probes: bound by `serve` for its lifetime and by
/// the `apply` command for one apply.
pub struct ProbeServer {
    probes: Arc<Probes>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    /// Turns true when the accept loop has ended.
    stopped: watch::Receiver<bool>,
}

impl ProbeServer {
    /// Binds `addr` (port 0 picks one) and starts answering.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let probes = Arc::new(Probes::default());
        let (stop, shutdown) = Shutdown::new();
        let handler = {
            let probes = probes.clone();
            move |session| {
                let probes = probes.clone();
                async move { probes.handle(session).await }
            }
        };
        let (ended, stopped) = watch::channel(false);
        tokio::spawn(async move {
            agi::serve(listener, handler, shutdown).await;
            let _ = ended.send(true);
        });
        Ok(Self {
            probes,
            addr,
            stop,
            stopped,
        })
    }

    /// The probes this server answers.
    pub fn probes(&self) -> Arc<Probes> {
        self.probes.clone()
    }

    /// The address bound (the one the dialplan must call).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn is_running(&self) -> bool {
        !*self.stopped.borrow()
    }

    /// Stops accepting; sessions already running finish on their own bounds.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let _ = self.stopped.clone().wait_for(|ended| *ended).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u32) -> Object {
        Object::default_tenant(n)
    }

    fn acme(n: u32) -> Object {
        Object {
            name: format!("acme-{n}"),
            context: "synergy-t-acme".into(),
            number: n,
        }
    }

    fn sentinel(name: &str) -> Check {
        Check::Sentinel {
            file: "generated_endpoints.conf".into(),
            name: name.into(),
        }
    }

    fn one_file(name: &str) -> Vec<(String, String)> {
        vec![("generated_endpoints.conf".into(), name.into())]
    }

    #[test]
    fn batches_stay_under_the_command_limit_and_cover_everything() {
        let exp = Expectation {
            present: (1000..2000).map(|e| (d(e), 1, None)).collect(),
            absent: vec![d(5000), d(5001)],
            sentinels: one_file("portal_proof_0123456789abcdef"),
            ..Expectation::default()
        };
        let b = batches(&exp);
        assert!(b.iter().all(|b| b.command.len() + 1 < MAX_COMMAND));
        assert!(b.len() <= 10, "{} commands", b.len());
        let all: Vec<_> = b.iter().flat_map(|b| b.checks.clone()).collect();
        assert_eq!(all.len(), 1003);
        assert_eq!(
            [&all[0], &all[1], &all[1000], &all[1002]],
            [
                &sentinel("portal_proof_0123456789abcdef"),
                &Check::Present {
                    object: d(1000),
                    max_contacts: 1
                },
                &Check::Present {
                    object: d(1999),
                    max_contacts: 1
                },
                &Check::Absent { object: d(5001) }
            ]
        );
        assert!(b[0].command.starts_with(
            "GET FULL VARIABLE ${PJSIP_AOR(portal_proof_0123456789abcdef,max_contacts)};\
             ${PJSIP_ENDPOINT(1000,context)},${PJSIP_AOR(1000,max_contacts)};${PJSIP_ENDPOINT(1001,"
        ));
        assert!(b.last().unwrap().command.ends_with(
            ";${PJSIP_ENDPOINT(5001,context)},${PJSIP_AOR(5001,max_contacts)},${DIALPLAN_EXISTS(synergy-internal,5001,1)}"
        ));
        let nothing_changed = batches(&Expectation {
            sentinels: one_file("portal_proof_0"),
            unvisited: 1000,
            ..Expectation::default()
        });
        assert_eq!(
            nothing_changed,
            [Batch {
                command: "GET FULL VARIABLE ${PJSIP_AOR(portal_proof_0,max_contacts)}".into(),
                checks: vec![sentinel("portal_proof_0")]
            }],
            "the whole-file proof is always asked"
        );
    }

    #[test]
    fn another_tenant_is_checked_by_name_in_its_context_and_each_file_proven() {
        let exp = Expectation {
            present: vec![(acme(100), 1, None), (d(100), 2, None)],
            absent: vec![acme(101)],
            sentinels: vec![
                ("generated_endpoints.conf".into(), "portal_proof_d".into()),
                (
                    "generated_endpoints-acme.conf".into(),
                    "portal_proof_a".into(),
                ),
            ],
            dialplan_proofs: vec![(
                "generated_routing-acme.conf".into(),
                "portal_proof_r".into(),
            )],
            unvisited: 5,
            ..Expectation::default()
        };
        let b = batches(&exp);
        assert_eq!(b.len(), 1);
        assert_eq!(
            b[0].command,
            "GET FULL VARIABLE ${PJSIP_AOR(portal_proof_d,max_contacts)};\
             ${PJSIP_AOR(portal_proof_a,max_contacts)};${DIALPLAN_EXISTS(portal_proof_r,s,1)};\
             ${PJSIP_ENDPOINT(acme-100,context)},${PJSIP_AOR(acme-100,max_contacts)};\
             ${PJSIP_ENDPOINT(100,context)},${PJSIP_AOR(100,max_contacts)};\
             ${PJSIP_ENDPOINT(acme-101,context)},${PJSIP_AOR(acme-101,max_contacts)},\
             ${DIALPLAN_EXISTS(synergy-t-acme,101,1)}"
        );
        let ok = evaluate(&b[0], "1;1;1;synergy-t-acme,1;synergy-internal,2;,,0").unwrap();
        assert_eq!(
            ok,
            Findings {
                wrong: vec![],
                whole_files: 3
            }
        );
        // acme-100 in the default tenant's context would reach its numbers: refused. The
        // tenant's routing file not read whole, its removed extension still dialled.
        let bad = evaluate(&b[0], "1;1;0;synergy-internal,1;synergy-internal,2;,,1").unwrap();
        assert_eq!(
            bad.wrong,
            [
                "Asterisk did not read generated_routing-acme.conf whole: its last context, \
                 portal_proof_r, is missing (a parse error, a file cut short or an older file: \
                 what comes after the break is not live)",
                "endpoint acme-100 has context \"synergy-internal\"",
                "dialplan extension 101 of synergy-t-acme was removed but is still live",
            ]
        );
        assert_eq!(bad.whole_files, 2);
        assert_eq!((exp.visited(), exp.checked()), (3, 8));
    }

    #[test]
    fn evaluation_names_what_is_missing_or_still_live() {
        let present = |ext| Check::Present {
            object: d(ext),
            max_contacts: 1,
        };
        let b = Batch {
            command: String::new(),
            checks: vec![
                present(1000),
                present(1001),
                present(1002),
                Check::Absent { object: d(1003) },
                Check::Absent { object: d(1004) },
            ],
        };
        let reply = "synergy-internal,1;,;default,1;,,0;synergy-internal,1,1";
        assert_eq!(
            evaluate(&b, reply).unwrap().wrong,
            [
                "endpoint 1001 is missing",
                "aor 1001 is missing",
                "endpoint 1002 has context \"default\"",
                "endpoint 1004 was removed but is still live",
                "aor 1004 was removed but is still live",
                "dialplan extension 1004 of synergy-internal was removed but is still live",
            ]
        );
        assert!(
            evaluate(&b, "synergy-internal,1").is_err(),
            "too few extensions"
        );
        assert!(evaluate(&b, "a;b;c;d;e").is_err(), "too few values");
        let b = Batch {
            command: String::new(),
            checks: vec![present(1000)],
        };
        assert!(
            evaluate(&b, "synergy-internal,1,1").is_err(),
            "a value more than asked for"
        );
        assert_eq!(
            evaluate(&b, "synergy-internal,1").unwrap(),
            Findings::default()
        );
    }

    #[test]
    fn the_sentinel_proves_the_endpoints_file_whole_or_says_how_it_was_not() {
        let b = Batch {
            command: String::new(),
            checks: vec![sentinel("portal_proof_ab")],
        };
        assert_eq!(
            evaluate(&b, "1").unwrap(),
            Findings {
                wrong: vec![],
                whole_files: 1
            }
        );
        // Cut off or not parsed to the end: the aor of this content is not there.
        let missing = evaluate(&b, "").unwrap();
        assert_eq!(
            missing.wrong,
            [
                "Asterisk did not read generated_endpoints.conf whole: its last object, aor \
              portal_proof_ab, is missing (a parse error, a file cut short or an older file: \
              what comes after the break is not live)"
            ]
        );
        assert_eq!(missing.whole_files, 0);
        // Cut inside the section: Asterisk's default.
        let cut = evaluate(&b, "0").unwrap();
        assert_eq!(
            cut.wrong,
            [
                "Asterisk did not read generated_endpoints.conf whole: its last object, aor \
              portal_proof_ab, has max_contacts 0, rendered 1 (a parse error, a file cut short \
              or an older file: what comes after the break is not live)"
            ]
        );
        assert!(evaluate(&b, "1,1").is_err());
    }

    #[test]
    fn changed_endpoints_are_read_back_option_by_option() {
        let tls = EndpointOptions {
            transport: "transport-tls".into(),
            nat: true,
            srtp: true,
            codecs: vec!["g722", "ulaw", "alaw"],
        };
        let exp = Expectation {
            present: vec![(d(4001), 1, Some(tls.clone())), (d(4002), 2, None)],
            sentinels: one_file("s"),
            ..Expectation::default()
        };
        let b = batches(&exp);
        assert_eq!(b.len(), 1);
        assert_eq!(
            b[0].command,
            "GET FULL VARIABLE ${PJSIP_AOR(s,max_contacts)};${PJSIP_ENDPOINT(4001,context)},${PJSIP_AOR(4001,max_contacts)},\
             ${PJSIP_ENDPOINT(4001,transport)},${PJSIP_ENDPOINT(4001,allow)},\
             ${PJSIP_ENDPOINT(4001,rtp_symmetric)},${PJSIP_ENDPOINT(4001,force_rport)},\
             ${PJSIP_ENDPOINT(4001,rewrite_contact)},${PJSIP_ENDPOINT(4001,media_encryption)},\
             ${PJSIP_ENDPOINT(4001,media_encryption_optimistic)};\
             ${PJSIP_ENDPOINT(4002,context)},${PJSIP_AOR(4002,max_contacts)}"
        );
        // As Asterisk 22.7 reads them back (agi_endpoint_options, F-TLS-6/7).
        let live = "synergy-internal,1,transport-tls,(g722|ulaw|alaw),true,true,true,sdes,false";
        let ok = format!("1;{live};synergy-internal,2");
        assert!(evaluate(&b[0], &ok).unwrap().wrong.is_empty());
        // An old template or a typo: Asterisk keeps the option at its default.
        let plain = "synergy-internal,1,transport-tls,(ulaw|alaw),false,true,false,no,false";
        assert_eq!(
            evaluate(&b[0], &format!("1;{plain};synergy-internal,2"))
                .unwrap()
                .wrong,
            [
                "endpoint 4001 has allow=\"(ulaw|alaw)\", rendered \"(g722|ulaw|alaw)\"",
                "endpoint 4001 has rtp_symmetric=\"false\", rendered \"true\"",
                "endpoint 4001 has rewrite_contact=\"false\", rendered \"true\"",
                "endpoint 4001 has media_encryption=\"no\", rendered \"sdes\"",
            ]
        );
        // A missing endpoint is said once; its empty options are not listed.
        assert_eq!(
            evaluate(&b[0], "1;,,,,,,,,;synergy-internal,2")
                .unwrap()
                .wrong,
            ["endpoint 4001 is missing", "aor 4001 is missing"]
        );
        assert!(evaluate(&b[0], "1;synergy-internal,1;synergy-internal,2").is_err());
        // PORTAL_NAT=off on plain UDP: the defaults read back.
        let off = EndpointOptions {
            transport: "transport-udp".into(),
            nat: false,
            srtp: false,
            codecs: vec!["ulaw", "alaw"],
        };
        assert_eq!(
            expected_values(&off),
            [
                "transport-udp",
                "(ulaw|alaw)",
                "false",
                "true",
                "false",
                "no",
                "false"
            ]
        );
    }

    #[test]
    fn tokens_are_single_use_and_unguessable() {
        let p = Probes::default();
        let (t1, _rx1) = p.register(Expectation::default());
        let (t2, _rx2) = p.register(Expectation::default());
        assert_ne!(t1, t2);
        assert_eq!(t1.len(), 32);
        assert!(t1.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(p.lock().remove(&t1).is_some());
        assert!(p.lock().remove(&t1).is_none());
        p.cancel(&t2);
        assert!(p.lock().is_empty());
    }
}
