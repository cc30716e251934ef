//! res_pjsip's sorcery view of pjsip.conf: option tables with defaults as
//! `ast_sorcery_objectset_create` prints them, per-object validation, and the reload
//! rules of res_sorcery_config (retain the previous object on error, reject a whole type
//! on a duplicate id, keep everything when the file is invalid). Also the CLI tables
//! `pjsip show endpoints`, `pjsip show transports`, `pjsip show aors` and
//! `pjsip show contacts`.

use std::collections::BTreeMap;
use std::path::Path;

use super::config::{self, Category, Loaded};
use super::registrar::{ContactInfo, Registrar};

/// How an option is parsed and printed.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Any string, printed as given.
    Str,
    /// OPT_BOOL_T: never fails (`ast_true`), printed true/false.
    Bool,
    /// OPT_YESNO_T: never fails, printed yes/no.
    YesNo,
    /// A custom boolean handler printing `AST_YESNO` (Yes/No).
    YesNoCap,
    /// OPT_UINT_T (strtoul base 0, whole string, no sign).
    Uint,
    /// OPT_UINT_T with PARSE_IN_RANGE.
    UintRange(u32, u32),
    /// OPT_DOUBLE_T.
    Double,
    /// A custom handler accepting one of these words (case-insensitive).
    Choice(&'static [&'static str]),
    /// Like Choice but a comma separated list of those words.
    ChoiceList(&'static [&'static str]),
    /// allow / disallow.
    Codec,
    /// A comma separated list of names (auth, outbound_auth).
    NameList,
    /// callerid.
    CallerId,
    /// auth_type.
    AuthType,
}

/// One registered option.
#[derive(Debug, Clone, Copy)]
pub struct OptSpec {
    pub name: &'static str,
    /// The value `ast_sorcery_objectset_create` gives when unset.
    pub default: &'static str,
    pub kind: Kind,
}

const fn o(name: &'static str, default: &'static str, kind: Kind) -> OptSpec {
    OptSpec {
        name,
        default,
        kind,
    }
}

use Kind::*;

const DTMF: &[&str] = &["rfc4733", "inband", "info", "auto", "auto_info"];
const PRACK: &[&str] = &["no", "required", "peer_supported", "yes"];
const TIMERS: &[&str] = &["forced", "no", "required", "yes", "always"];
const METHOD: &[&str] = &["invite", "reinvite", "update"];
const GLARE: &[&str] = &["none", "outgoing", "incoming"];
const REDIRECT: &[&str] = &["user", "uri_core", "uri_pjsip"];
const ENCRYPT: &[&str] = &["no", "sdes", "dtls"];
const T38EC: &[&str] = &["none", "fec", "redundancy"];
const PRIVACY: &[&str] = &[
    "allowed_not_screened",
    "allowed_passed_screened",
    "allowed_failed_screened",
    "allowed",
    "prohib_not_screened",
    "prohib_passed_screened",
    "prohib_failed_screened",
    "prohib",
    "unavailable",
];
const IDENTIFY_BY: &[&str] = &["username", "auth_username", "ip", "header", "request_uri"];
const PROTOCOLS: &[&str] = &["udp", "tcp", "tls", "ws", "wss", "flow"];
const OFFER_PREF: &[&str] = &[
    "local",
    "local_first",
    "remote",
    "remote_first",
    "local_merge",
    "remote_merge",
];

/// Endpoint options, in the order the lab's `EndpointDetail` event listed them (ami_08),
/// with the defaults it showed; the options it does not list follow.
pub const ENDPOINT: &[OptSpec] = &[
    o("rpid_immediate", "false", Bool),
    o("webrtc", "no", YesNo),
    o("ignore_183_without_sdp", "false", Bool),
    o("send_aoc", "false", Bool),
    o("device_state_busy_at", "0", Uint),
    o("t38_udptl_maxdatagram", "0", Uint),
    o(
        "codec_prefs_incoming_answer",
        "prefer:pending, operation:intersect, keep:all, transcode:allow",
        Str,
    ),
    o("security_negotiation", "no", Str),
    o("dtls_rekey", "0", Uint),
    o("named_pickup_group", "", Str),
    o("direct_media_method", "invite", Choice(METHOD)),
    o("send_rpid", "false", Bool),
    o("pickup_group", "", Str),
    o("sdp_session", "Asterisk", Str),
    o("dtls_verify", "No", Str),
    o("message_context", "", Str),
    o("tenantid", "", Str),
    o("mailboxes", "", Str),
    o("record_on_feature", "automixmon", Str),
    o("dtls_private_key", "", Str),
    o("dtls_fingerprint", "SHA-256", Str),
    o("overlap_context", "", Str),
    o(
        "outgoing_call_offer_pref",
        "remote_merge",
        Choice(OFFER_PREF),
    ),
    o("from_domain", "", Str),
    o("timers_sess_expires", "1800", Uint),
    o("named_call_group", "", Str),
    o("dtls_cipher", "", Str),
    o("media_encryption_optimistic", "false", Bool),
    o("suppress_q850_reason_headers", "false", Bool),
    o("aors", "", Str),
    o("identify_by", "username,ip", ChoiceList(IDENTIFY_BY)),
    o("callerid_privacy", "allowed_not_screened", Choice(PRIVACY)),
    o("mwi_subscribe_replaces_unsolicited", "no", YesNo),
    o("cos_audio", "0", Uint),
    o("follow_early_media_fork", "true", Bool),
    o("context", "default", Str),
    o("rtp_symmetric", "false", Bool),
    o("transport", "", Str),
    o("moh_suggest", "default", Str),
    o("t38_udptl", "false", Bool),
    o("fax_detect", "false", Bool),
    o("t38_bind_udptl_to_media_address", "false", Bool),
    o("tos_video", "0", Str),
    o("srtp_tag_32", "false", Bool),
    o("refer_blind_progress", "true", Bool),
    o("max_audio_streams", "1", Uint),
    o("bundle", "false", Bool),
    o("use_avpf", "false", Bool),
    o("call_group", "", Str),
    o("send_connected_line", "yes", YesNo),
    o("fax_detect_timeout", "0", Uint),
    o("sdp_owner", "-", Str),
    o("force_rport", "true", Bool),
    o("callerid_tag", "", Str),
    o("rtp_timeout_hold", "0", Uint),
    o("suppress_moh_on_sendonly", "false", Bool),
    o("use_ptime", "false", Bool),
    o("media_address", "", Str),
    o("voicemail_extension", "", Str),
    o("rtp_timeout", "0", Uint),
    o("stir_shaken", "no", Str),
    o("set_var", "", Str),
    o("contact_acl", "", Str),
    o("preferred_codec_only", "false", Bool),
    o("geoloc_outgoing_call_profile", "", Str),
    o("force_avp", "false", Bool),
    o("record_off_feature", "automixmon", Str),
    o("from_user", "", Str),
    o("send_diversion", "true", Bool),
    o("send_history_info", "false", Bool),
    o("t38_udptl_ipv6", "false", Bool),
    o("tone_zone", "", Str),
    o("language", "", Str),
    o("allow_subscribe", "true", Bool),
    o("rtp_ipv6", "false", Bool),
    o("callerid", "<unknown>", CallerId),
    o("moh_passthrough", "false", Bool),
    o("cos_video", "0", Uint),
    o("dtls_auto_generate_cert", "No", Str),
    o("asymmetric_rtp_codec", "false", Bool),
    o("geoloc_incoming_call_profile", "", Str),
    o("ice_support", "false", Bool),
    o("aggregate_mwi", "true", Bool),
    o("one_touch_recording", "false", Bool),
    o("mwi_from_user", "", Str),
    o("redirect_method", "user", Choice(REDIRECT)),
    o("accountcode", "", Str),
    o(
        "codec_prefs_outgoing_answer",
        "prefer:pending, operation:intersect, keep:all, transcode:allow",
        Str,
    ),
    o("allow", "(nothing)", Codec),
    o("rewrite_contact", "false", Bool),
    o("user_eq_phone", "false", Bool),
    o("rtp_engine", "asterisk", Str),
    o("subscribe_context", "", Str),
    o("notify_early_inuse_ringing", "false", Bool),
    o("incoming_mwi_mailbox", "", Str),
    o("incoming_call_offer_pref", "local", Choice(OFFER_PREF)),
    o("allow_unauthenticated_options", "false", Bool),
    o("auth", "", NameList),
    o("direct_media_glare_mitigation", "none", Choice(GLARE)),
    o("trust_id_inbound", "false", Bool),
    o("stir_shaken_profile", "", Str),
    o("bind_rtp_to_media_address", "false", Bool),
    o("disable_direct_media_on_nat", "false", Bool),
    o("media_encryption", "no", Choice(ENCRYPT)),
    o("media_use_received_transport", "false", Bool),
    o("allow_overlap", "true", Bool),
    o("dtmf_mode", "rfc4733", Choice(DTMF)),
    o("outbound_auth", "", NameList),
    o("tos_audio", "0", Str),
    o("dtls_cert_file", "", Str),
    o("dtls_ca_path", "", Str),
    o("dtls_setup", "active", Str),
    o("connected_line_method", "invite", Choice(METHOD)),
    o("g726_non_standard", "false", Bool),
    o("100rel", "yes", Choice(PRACK)),
    o("timers", "yes", Choice(TIMERS)),
    o("direct_media", "true", Bool),
    o("acl", "", Str),
    o("timers_min_se", "90", Uint),
    o("trust_id_outbound", "false", Bool),
    o("sub_min_expiry", "0", Uint),
    o("rtcp_mux", "false", Bool),
    o("max_video_streams", "1", Uint),
    o("accept_multiple_sdp_answers", "false", Bool),
    o(
        "codec_prefs_incoming_offer",
        "prefer:pending, operation:intersect, keep:all, transcode:allow",
        Str,
    ),
    o(
        "codec_prefs_outgoing_offer",
        "prefer:pending, operation:union, keep:all, transcode:allow",
        Str,
    ),
    o("trust_connected_line", "yes", YesNo),
    o("send_pai", "false", Bool),
    o("rtp_keepalive", "0", Uint),
    o("t38_udptl_ec", "none", Choice(T38EC)),
    o("t38_udptl_nat", "false", Bool),
    o("allow_transfer", "true", Bool),
    o("dtls_ca_file", "", Str),
    o("outbound_proxy", "", Str),
    o("inband_progress", "false", Bool),
    // Not part of the EndpointDetail event.
    o("contact_deny", "", Str),
    o("contact_permit", "", Str),
    o("contact_user", "", Str),
    o("deny", "", Str),
    o("permit", "", Str),
    o("disallow", "", Codec),
    o("security_mechanisms", "", Str),
    o("type", "", Str),
];

/// Auth options, in AuthDetail order (ami_08).
pub const AUTH: &[OptSpec] = &[
    o("oauth_secret", "", Str),
    o("password_digest", "", Str),
    o("supported_algorithms_uas", "MD5", Str),
    o("refresh_token", "", Str),
    o("username", "", Str),
    o("md5_cred", "", Str),
    o("realm", "", Str),
    o("auth_type", "userpass", AuthType),
    o("password", "", Str),
    o("supported_algorithms_uac", "MD5", Str),
    o("nonce_lifetime", "32", Uint),
    o("oauth_clientid", "", Str),
    o("type", "", Str),
];

/// AOR options, in AorDetail order (ami_08).
pub const AOR: &[OptSpec] = &[
    o("minimum_expiration", "60", Uint),
    o("default_expiration", "3600", Uint),
    o("qualify_timeout", "3.000000", Double),
    o("qualify_2xx_only", "false", Bool),
    o("mailboxes", "", Str),
    o("support_path", "false", Bool),
    o("remove_unavailable", "false", Bool),
    o("voicemail_extension", "", Str),
    o("max_contacts", "0", Uint),
    o("authenticate_qualify", "false", Bool),
    o("contact", "", Str),
    o("maximum_expiration", "7200", Uint),
    o("qualify_frequency", "0", UintRange(0, 86400)),
    o("remove_existing", "false", Bool),
    o("outbound_proxy", "", Str),
    o("type", "", Str),
];

pub const TRANSPORT: &[OptSpec] = &[
    o("allow_reload", "false", Bool),
    o("allow_wildcard_certs", "No", YesNoCap),
    o("async_operations", "1", Uint),
    o("bind", "", Str),
    o("ca_list_file", "", Str),
    o("ca_list_path", "", Str),
    o("cert_file", "", Str),
    o("cipher", "", Str),
    o("cos", "0", Uint),
    o("domain", "", Str),
    o("external_media_address", "", Str),
    o("external_signaling_address", "", Str),
    o("external_signaling_port", "0", Uint),
    o("local_net", "", Str),
    o("method", "unspecified", Str),
    o("password", "", Str),
    o("priv_key_file", "", Str),
    o("protocol", "udp", Choice(PROTOCOLS)),
    o("require_client_cert", "No", YesNoCap),
    o("symmetric_transport", "false", Bool),
    o("tcp_keepalive_enable", "false", Bool),
    o("tcp_keepalive_idle_time", "30", Uint),
    o("tcp_keepalive_interval_time", "1", Uint),
    o("tcp_keepalive_probe_count", "5", Uint),
    o("tos", "0", Str),
    o("verify_client", "No", YesNoCap),
    o("verify_server", "No", YesNoCap),
    o("websocket_write_timeout", "100", Uint),
    o("type", "", Str),
];

pub const GLOBAL: &[OptSpec] = &[
    o("all_codecs_on_empty_reinvite", "false", Bool),
    o("allow_sending_180_after_183", "false", Bool),
    o("contact_expiration_check_interval", "30", Uint),
    o("debug", "no", Str),
    o("default_auth_algorithms_uac", "MD5", Str),
    o("default_auth_algorithms_uas", "MD5", Str),
    o("default_from_user", "asterisk", Str),
    o(
        "default_outbound_endpoint",
        "default_outbound_endpoint",
        Str,
    ),
    o("default_realm", "asterisk", Str),
    o("default_voicemail_extension", "", Str),
    o("disable_multi_domain", "false", Bool),
    o("endpoint_identifier_order", "ip,username,anonymous", Str),
    o("ignore_uri_user_options", "false", Bool),
    o("keep_alive_interval", "90", Uint),
    o("max_forwards", "70", Uint),
    o("max_initial_qualify_time", "0", Uint),
    o("mwi_disable_initial_unsolicited", "false", Bool),
    o("mwi_tps_queue_high", "500", Uint),
    o("mwi_tps_queue_low", "-1", Str),
    o("norefersub", "true", Bool),
    o("regcontext", "", Str),
    o("send_contact_status_on_update_registration", "false", Bool),
    o("taskprocessor_overload_trigger", "global", Str),
    o("unidentified_request_count", "5", Uint),
    o("unidentified_request_period", "5", Uint),
    o("unidentified_request_prune_interval", "30", Uint),
    o("use_callerid_contact", "false", Bool),
    o("user_agent", "Asterisk PBX 22.7.0", Str),
    o("type", "", Str),
];

pub const SYSTEM: &[OptSpec] = &[
    o("accept_multiple_sdp_answers", "false", Bool),
    o("compact_headers", "false", Bool),
    o("disable_rport", "false", Bool),
    o("disable_tcp_switch", "true", Bool),
    o("follow_early_media_fork", "true", Bool),
    o("threadpool_auto_increment", "5", Uint),
    o("threadpool_idle_timeout", "60", Uint),
    o("threadpool_initial_size", "0", Uint),
    o("threadpool_max_size", "50", Uint),
    o("timer_b", "32000", Uint),
    o("timer_t1", "500", Uint),
    o("type", "", Str),
];

pub const IDENTIFY: &[OptSpec] = &[
    o("endpoint", "", Str),
    o("match", "", Str),
    o("match_header", "", Str),
    o("match_request_uri", "", Str),
    o("srv_lookups", "true", Bool),
    o("type", "", Str),
];

pub const DOMAIN_ALIAS: &[OptSpec] = &[o("domain", "", Str), o("type", "", Str)];

pub const ACL: &[OptSpec] = &[
    o("acl", "", Str),
    o("contact_acl", "", Str),
    o("contact_deny", "", Str),
    o("contact_permit", "", Str),
    o("deny", "", Str),
    o("permit", "", Str),
    o("type", "", Str),
];

pub const REGISTRATION: &[OptSpec] = &[
    o("auth_rejection_permanent", "true", Bool),
    o("client_uri", "", Str),
    o("contact_header_params", "", Str),
    o("contact_user", "", Str),
    o("endpoint", "", Str),
    o("expiration", "3600", Uint),
    o("fatal_retry_interval", "0", Uint),
    o("forbidden_retry_interval", "0", Uint),
    o("line", "false", Bool),
    o("max_random_initial_delay", "10", Uint),
    o("max_retries", "10", Uint),
    o("outbound_auth", "", NameList),
    o("outbound_proxy", "", Str),
    o("retry_interval", "60", Uint),
    o("security_mechanisms", "", Str),
    o("security_negotiation", "no", Str),
    o("server_uri", "", Str),
    o("support_outbound", "no", YesNo),
    o("support_path", "false", Bool),
    o("transport", "", Str),
    o("type", "", Str),
    o("user_agent", "", Str),
];

/// The sorcery types read from pjsip.conf, in reload order. `None`: the type exists but
/// its options are not modelled (every option is accepted).
pub const TYPES: &[(&str, Option<&[OptSpec]>)] = &[
    ("endpoint", Some(ENDPOINT)),
    ("auth", Some(AUTH)),
    ("aor", Some(AOR)),
    ("transport", Some(TRANSPORT)),
    ("global", Some(GLOBAL)),
    ("system", Some(SYSTEM)),
    ("identify", Some(IDENTIFY)),
    ("domain_alias", Some(DOMAIN_ALIAS)),
    ("acl", Some(ACL)),
    ("registration", Some(REGISTRATION)),
    ("outbound-publish", None),
    ("inbound-publication", None),
    ("asterisk-publication", None),
    ("resource_list", None),
    ("phoneprov", None),
];

pub fn specs(otype: &str) -> Option<&'static [OptSpec]> {
    TYPES
        .iter()
        .find(|(t, _)| *t == otype)
        .and_then(|(_, s)| *s)
}

/// Codec names known to the format cache of a stock build.
const CODECS: &[&str] = &[
    "ulaw", "alaw", "gsm", "g726", "g726aal2", "adpcm", "slin", "slin12", "slin16", "slin24",
    "slin32", "slin44", "slin48", "slin96", "slin192", "lpc10", "g729", "speex", "speex16",
    "speex32", "ilbc", "g722", "siren7", "siren14", "testlaw", "g719", "opus", "g723", "silk8",
    "silk12", "silk16", "silk24", "codec2", "none", "jpeg", "png", "h261", "h263", "h263p", "h264",
    "h265", "mpeg4", "vp8", "vp9", "red", "t140", "t140red",
];

/// A live sorcery object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub id: String,
    pub otype: String,
    /// The options as configured, in file order.
    pub raw: Vec<(String, String)>,
    /// Printed values of the options that were set.
    pub set: BTreeMap<String, String>,
}

impl Object {
    /// The value `ast_sorcery_objectset_create` gives for `field` (None: no such field).
    pub fn field(&self, field: &str) -> Option<String> {
        if let Some(v) = self.set.get(field) {
            return Some(v.clone());
        }
        match specs(&self.otype) {
            Some(sp) => sp
                .iter()
                .find(|s| s.name == field)
                .map(|s| s.default.to_string()),
            None => self
                .raw
                .iter()
                .rev()
                .find(|(k, _)| k == field)
                .map(|(_, v)| v.clone()),
        }
    }

    /// The options as configured (last one wins; list options accumulate).
    pub fn options(&self) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &self.raw {
            let accumulate = matches!(
                k.as_str(),
                "allow" | "disallow" | "set_var" | "contact" | "match" | "permit" | "deny"
            );
            match out.get_mut(k) {
                Some(old) if accumulate => {
                    old.push(',');
                    old.push_str(v);
                }
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        out
    }

    /// Names in `auth` / `outbound_auth` style lists.
    pub fn list(&self, field: &str) -> Vec<String> {
        self.field(field)
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// Every live object, by type then id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sorcery {
    pub types: BTreeMap<String, BTreeMap<String, Object>>,
}

impl Sorcery {
    pub fn get(&self, otype: &str, id: &str) -> Option<&Object> {
        self.types.get(otype).and_then(|m| m.get(id))
    }

    pub fn all(&self, otype: &str) -> Vec<&Object> {
        self.types
            .get(otype)
            .map(|m| m.values().collect())
            .unwrap_or_default()
    }

    /// How many objects of `otype` are live.
    pub fn count(&self, otype: &str) -> usize {
        self.types.get(otype).map(BTreeMap::len).unwrap_or(0)
    }

    pub fn options_of(&self, otype: &str) -> BTreeMap<String, BTreeMap<String, String>> {
        self.types
            .get(otype)
            .map(|m| m.iter().map(|(id, o)| (id.clone(), o.options())).collect())
            .unwrap_or_default()
    }
}

fn strtoul(s: &str) -> Option<u64> {
    let s = s.trim_start_matches([' ', '\t']);
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() {
        return if radix == 8 { Some(0) } else { None };
    }
    let v = u64::from_str_radix(digits, radix).ok()?;
    (v <= u32::MAX as u64).then_some(v)
}

/// `ast_true`.
pub fn ast_true(s: &str) -> bool {
    ["yes", "true", "y", "t", "1", "on"]
        .iter()
        .any(|t| s.eq_ignore_ascii_case(t))
}

/// `ast_callerid_merge` of what `ast_callerid_parse` makes of `s`.
fn callerid_repr(s: &str) -> String {
    let (name, num) = parse_callerid(s);
    match (name.as_deref(), num.as_deref()) {
        (Some(n), Some(l)) => format!("\"{n}\" <{l}>"),
        (Some(n), None) => n.to_string(),
        (None, Some(l)) => l.to_string(),
        (None, None) => "<unknown>".into(),
    }
}

/// `ast_callerid_parse`: `"Name" <num>`, `Name <num>`, a bare number or a bare name.
pub fn parse_callerid(s: &str) -> (Option<String>, Option<String>) {
    let s = s.trim();
    if let (Some(lt), Some(gt)) = (s.rfind('<'), s.rfind('>')) {
        if lt < gt {
            let num = s[lt + 1..gt].trim().to_string();
            let name = s[..lt].trim().trim_matches('"').trim().to_string();
            return (
                (!name.is_empty()).then_some(name),
                (!num.is_empty()).then_some(num),
            );
        }
    }
    let unquoted = s.trim_matches('"');
    if unquoted.is_empty() {
        return (None, None);
    }
    let is_number = unquoted
        .chars()
        .all(|c| c.is_ascii_digit() || "+-() ".contains(c));
    if is_number {
        (None, Some(unquoted.to_string()))
    } else {
        (Some(unquoted.to_string()), None)
    }
}

/// Applies one option; Err(()) when the handler fails (the caller logs "Error parsing").
fn apply_value(
    spec: &OptSpec,
    value: &str,
    codecs: &mut Vec<String>,
    log: &mut Vec<String>,
) -> Result<Option<String>, ()> {
    Ok(Some(match spec.kind {
        Str => value.to_string(),
        Bool => if ast_true(value) { "true" } else { "false" }.to_string(),
        YesNo => if ast_true(value) { "yes" } else { "no" }.to_string(),
        YesNoCap => if ast_true(value) { "Yes" } else { "No" }.to_string(),
        Uint => strtoul(value).ok_or(())?.to_string(),
        UintRange(lo, hi) => {
            let v = strtoul(value).ok_or(())?;
            if v < lo as u64 || v > hi as u64 {
                return Err(());
            }
            v.to_string()
        }
        Double => {
            let v: f64 = value.trim().parse().map_err(|_| ())?;
            format!("{v:.6}")
        }
        Choice(words) => words
            .iter()
            .find(|w| w.eq_ignore_ascii_case(value.trim()))
            .ok_or(())?
            .to_string(),
        ChoiceList(words) => {
            let mut out = Vec::new();
            for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let w = words
                    .iter()
                    .find(|w| w.eq_ignore_ascii_case(part))
                    .ok_or(())?;
                out.push(w.to_string());
            }
            out.join(",")
        }
        NameList => value
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(","),
        CallerId => callerid_repr(value),
        AuthType => {
            let v = value.trim().to_ascii_lowercase();
            if ["userpass", "md5", "digest", "google_oauth"].contains(&v.as_str()) {
                v
            } else {
                log.push(format!("WARNING res_pjsip/config_auth.c: Unknown authentication storage type '{value}' specified for {}", spec.name));
                return Err(());
            }
        }
        Codec => {
            let allowing = spec.name == "allow";
            let mut res = Ok(());
            for part in value.split([',', '|']).map(str::trim) {
                if part.is_empty() {
                    continue;
                }
                let (name, allow) = match part.strip_prefix('!') {
                    Some(n) => (n, !allowing),
                    None => (part, allowing),
                };
                let name = name.split(':').next().unwrap_or(name);
                if name.eq_ignore_ascii_case("all") {
                    if allow {
                        for c in CODECS {
                            if !codecs.iter().any(|x| x == c) {
                                codecs.push(c.to_string());
                            }
                        }
                    } else {
                        codecs.clear();
                    }
                    continue;
                }
                let Some(known) = CODECS.iter().find(|c| c.eq_ignore_ascii_case(name)) else {
                    log.push(format!(
                        "WARNING format_cap.c: Cannot {} unknown format '{name}'",
                        if allow { "allow" } else { "disallow" }
                    ));
                    res = Err(());
                    continue;
                };
                if allow {
                    if !codecs.iter().any(|x| x == known) {
                        codecs.push(known.to_string());
                    }
                } else {
                    codecs.retain(|x| x != known);
                }
            }
            res?;
            return Ok(None);
        }
    }))
}

fn codec_repr(codecs: &[String]) -> String {
    if codecs.is_empty() {
        "(nothing)".into()
    } else {
        format!("({})", codecs.join("|"))
    }
}

/// Builds one object from a category. Err(()) after logging why it failed.
fn build_object(otype: &str, cat: &Category, log: &mut Vec<String>) -> Result<Object, ()> {
    let mut obj = Object {
        id: cat.name.clone(),
        otype: otype.to_string(),
        raw: Vec::new(),
        set: BTreeMap::new(),
    };
    let specs = specs(otype);
    let mut codecs: Vec<String> = Vec::new();
    let mut codecs_touched = false;
    for v in &cat.vars {
        obj.raw.push((v.name.clone(), v.value.clone()));
        let Some(specs) = specs else { continue };
        // Extended fields (@name) are accepted on every object.
        if v.name.starts_with('@') {
            continue;
        }
        let Some(spec) = specs.iter().find(|s| s.name == v.name) else {
            log.push(format!(
                "ERROR config_options.c: Could not find option suitable for category '{}' named '{}' at line {} of {}",
                cat.name,
                v.name,
                v.lineno,
                v.file
            ));
            return Err(());
        };
        if spec.name == "type" {
            continue;
        }
        match apply_value(spec, &v.value, &mut codecs, log) {
            Ok(Some(repr)) => {
                let repr = match (spec.name, obj.set.get(spec.name)) {
                    ("contact" | "set_var" | "match", Some(old)) if !old.is_empty() => {
                        format!("{old},{repr}")
                    }
                    _ => repr,
                };
                obj.set.insert(spec.name.to_string(), repr);
            }
            Ok(None) => codecs_touched = true,
            Err(()) => {
                log.push(format!(
                    "ERROR config_options.c: Error parsing {}={} at line {} of {}",
                    v.name, v.value, v.lineno, v.file
                ));
                return Err(());
            }
        }
    }
    if codecs_touched {
        obj.set.insert("allow".into(), codec_repr(&codecs));
    }
    apply_hook(&obj, log)?;
    Ok(obj)
}

/// The per-type `apply` callbacks that can reject an object.
fn apply_hook(obj: &Object, log: &mut Vec<String>) -> Result<(), ()> {
    let id = &obj.id;
    match obj.otype.as_str() {
        "endpoint" => {
            let min_se: u64 = obj
                .field("timers_min_se")
                .and_then(|v| v.parse().ok())
                .unwrap_or(90);
            let sess: u64 = obj
                .field("timers_sess_expires")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1800);
            if min_se < 90 {
                log.push(format!("ERROR res_pjsip/pjsip_configuration.c: Session timer minimum expires time must be 90 or greater on endpoint '{id}'"));
                return Err(());
            }
            if sess < min_se {
                log.push(format!("ERROR res_pjsip/pjsip_configuration.c: Session timer expires must be greater than minimum session expires time on endpoint '{id}'"));
                return Err(());
            }
        }
        "auth" => {
            if obj.field("username").unwrap_or_default().is_empty() {
                log.push(format!(
                    "ERROR res_pjsip/config_auth.c: {id}: No authentication username"
                ));
                return Err(());
            }
            let kind = obj.field("auth_type").unwrap_or_default();
            if kind == "google_oauth" {
                let missing = ["refresh_token", "oauth_clientid", "oauth_secret"]
                    .iter()
                    .any(|f| obj.field(f).unwrap_or_default().is_empty());
                if missing {
                    log.push(format!("ERROR res_pjsip/config_auth.c: {id}: 'google_oauth' authentication specified but refresh_token, oauth_clientid, or oauth_secret not specified"));
                    return Err(());
                }
                return Ok(());
            }
            let has_secret = ["password", "md5_cred", "password_digest"]
                .iter()
                .any(|f| !obj.field(f).unwrap_or_default().is_empty());
            if !has_secret {
                for which in ["uas", "uac"] {
                    log.push(format!("ERROR res_pjsip/config_auth.c: {id}: No plain text or digest password found for algorithm MD5 in supported_algorithms_{which}"));
                }
                return Err(());
            }
        }
        _ => {}
    }
    Ok(())
}

/// Does `cat` belong to `otype` (criteria `type=<otype>`, or the explicit name of the
/// single-object types)?
fn matches_type(otype: &str, cat: &Category) -> bool {
    if matches!(otype, "global" | "system") && cat.name == otype {
        if let Some(sp) = specs(otype) {
            if cat.vars.iter().all(|v| sp.iter().any(|s| s.name == v.name)) {
                return true;
            }
        }
    }
    cat.vars
        .iter()
        .find(|v| v.name.eq_ignore_ascii_case("type"))
        .map(|v| v.value == otype)
        .unwrap_or(false)
}

/// Loads pjsip.conf (`boot`: the first load, `system` included) on top of `old`, reading
/// its files through `read`. `refused`: endpoint/auth/aor ids whose creation fails as if
/// `ast_sorcery_objectset_apply` had failed (the RefuseObjects fault).
pub fn load(
    etc_dir: &Path,
    old: &Sorcery,
    refused: &[String],
    boot: bool,
    read: config::Read<'_>,
    log: &mut Vec<String>,
) -> Sorcery {
    if !boot {
        log.push(
            "NOTICE sorcery.c: Type 'system' is not reloadable, maintaining previous values".into(),
        );
    }
    let cfg = match config::load_with(etc_dir, "pjsip.conf", read, log) {
        Loaded::Missing => {
            log.push("ERROR res_sorcery_config.c: Unable to load config file 'pjsip.conf'".into());
            return old.clone();
        }
        Loaded::Invalid => {
            log.push("ERROR res_sorcery_config.c: Contents of config file 'pjsip.conf' are invalid and cannot be parsed".into());
            return old.clone();
        }
        Loaded::Ok(cfg) => cfg,
    };
    let mut new = old.clone();
    for (otype, _) in TYPES {
        if *otype == "system" && !boot {
            continue;
        }
        let cats: Vec<&Category> = cfg.browse().filter(|c| matches_type(otype, c)).collect();
        if matches!(*otype, "global" | "system") && cats.len() > 1 {
            log.push(format!("ERROR res_sorcery_config.c: Config file 'pjsip.conf' could not be loaded; configuration contains more than one object of type '{otype}'"));
            continue;
        }
        let old_objs = old.types.get(*otype);
        let mut objs: BTreeMap<String, Object> = BTreeMap::new();
        let mut aborted = false;
        for cat in cats {
            let id = &cat.name;
            if objs.contains_key(id) {
                log.push(format!("ERROR res_sorcery_config.c: Config file 'pjsip.conf' could not be loaded; configuration contains a duplicate object: '{id}' of type '{otype}'"));
                aborted = true;
                break;
            }
            let refuse =
                matches!(*otype, "endpoint" | "auth" | "aor") && refused.iter().any(|r| r == id);
            let built = if refuse {
                Err(())
            } else {
                build_object(otype, cat, log)
            };
            match built {
                Ok(obj) => {
                    objs.insert(id.clone(), obj);
                }
                Err(()) => {
                    log.push(format!("ERROR res_sorcery_config.c: Could not create an object of type '{otype}' with id '{id}' from configuration file 'pjsip.conf'"));
                    if let Some(prev) = old_objs.and_then(|m| m.get(id)) {
                        log.push(format!("NOTICE res_sorcery_config.c: Retaining existing configuration for object of type '{otype}' with id '{id}'"));
                        objs.insert(id.clone(), prev.clone());
                    }
                }
            }
        }
        if aborted {
            continue;
        }
        new.types.insert(otype.to_string(), objs);
    }
    new
}

// ----------------------------------------------------------------------------------
// CLI output (res_pjsip/pjsip_cli.c and the formatters)

const HEADER_FILLER: &str =
    "..........................................................................................";
const MAX_WIDTH: usize = 90;
const LAST_TABSTOP: usize = 62;
const SEPARATOR: &str =
    "==========================================================================================";

fn indent(level: usize) -> usize {
    level * 2 + 1 + 8
}

fn fill(n: usize) -> &'static str {
    &HEADER_FILLER[..n.min(HEADER_FILLER.len())]
}

fn trunc(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

const ENDPOINT_HEADER: &str = " Endpoint:  <Endpoint/CID.....................................>  <State.....>  <Channels.>\n    I/OAuth:  <AuthId/UserName...........................................................>\n        Aor:  <Aor............................................>  <MaxContact>\n      Contact:  <Aor/ContactUri..........................> <Hash....> <Status> <RTT(ms)..>\n  Transport:  <TransportId........>  <Type>  <cos>  <tos>  <BindAddress..................>\n   Identify:  <Identify/Endpoint.........................................................>\n        Match:  <criteria.........................>\n    Channel:  <ChannelId......................................>  <State.....>  <Time.....>\n        Exten: <DialedExten...........>  CLCID: <ConnectedLineCID.......>\n";

fn transport_header(level: usize) -> String {
    let ind = indent(level);
    format!(
        "{:>ind$}:  <TransportId........>  <Type>  <cos>  <tos>  <BindAddress{}>\n",
        "Transport",
        fill(MAX_WIDTH - ind - 61)
    )
}

fn auth_body(s: &Sorcery, id: &str, title: &str, level: usize) -> String {
    match s.get("auth", id) {
        Some(a) => format!(
            "{:>w$}:  {}/{}\n",
            title,
            a.id,
            a.field("username").unwrap_or_default(),
            w = indent(level)
        ),
        None => String::new(),
    }
}

/// The registered contacts of each AOR, as `ast_sip_for_each_contact` gives them.
pub type AorContacts = BTreeMap<String, Vec<ContactInfo>>;

fn aor_header(level: usize) -> String {
    let ind = indent(level);
    format!(
        "{:>ind$}:  <Aor{}>  <MaxContact>\n",
        "Aor",
        fill(LAST_TABSTOP - ind - 7)
    )
}

fn contact_header(level: usize) -> String {
    let ind = indent(level);
    format!(
        "{:>ind$}:  <Aor/ContactUri{}> <Hash....> <Status> <RTT(ms)..>\n",
        "Contact",
        fill(LAST_TABSTOP - ind - 23)
    )
}

/// `cli_contact_print_body`: the URI column, the first 10 hex digits of the id's hash,
/// the short status and the RTT in ms (`nan` unless Reachable).
fn contact_body(i: &ContactInfo, level: usize) -> String {
    let c = &i.contact;
    let ind = indent(level);
    let flex = (LAST_TABSTOP + 1).saturating_sub(ind + 9 + c.aor.len());
    let hash = c.id.get(c.aor.len() + 2..).unwrap_or("");
    let rtt = match i.roundtrip_usec {
        Some(us) => format!("{:.3}", us as f64 / 1000.0),
        None => "nan".to_string(),
    };
    format!(
        "{:>ind$}:  {}/{:<flex$} {:<10} {:<7} {:>11}\n",
        "Contact",
        c.aor,
        trunc(&c.uri, flex),
        trunc(hash, 10),
        trunc(i.status.short(), 7),
        rtt
    )
}

fn aor_body(aor: &Object, level: usize, contacts: &AorContacts) -> String {
    let ind = indent(level);
    let flex = LAST_TABSTOP - ind - 12;
    let max: u64 = aor
        .field("max_contacts")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut out = format!(
        "{:>ind$}:  {:<flex$} {:>12}\n",
        "Aor",
        trunc(&aor.id, flex),
        max
    );
    for i in contacts.get(&aor.id).into_iter().flatten() {
        out.push_str(&contact_body(i, level + 1));
    }
    if level == 0 {
        out.push('\n');
    }
    out
}

fn transport_body(t: &Object, level: usize) -> String {
    let bind = t.field("bind").unwrap_or_default();
    format!(
        "{:>w$}:  {:<21}  {:>6}  {:>5}  {:>5}  {}\n",
        "Transport",
        t.id,
        t.field("protocol").unwrap_or_default(),
        t.field("cos").unwrap_or_default(),
        t.field("tos").unwrap_or_default(),
        bind,
        w = indent(level)
    )
}

fn endpoint_body(
    s: &Sorcery,
    r: &Registrar,
    contacts: &AorContacts,
    e: &Object,
    level: usize,
) -> String {
    let ind = indent(level);
    let flex = LAST_TABSTOP - ind - 2;
    let (_, number) = parse_callerid(&e.field("callerid").unwrap_or_default());
    let name = match number {
        Some(n) if e.set.contains_key("callerid") => format!("{}/{}", e.id, n),
        _ => e.id.clone(),
    };
    let busy_at: u64 = e
        .field("device_state_busy_at")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let busy = if busy_at == 0 {
        "inf".to_string()
    } else {
        busy_at.to_string()
    };
    let mut out = format!(
        "{:>ind$}:  {:<flex$}  {:<12}  {} of {}\n",
        "Endpoint",
        trunc(&name, flex),
        trunc(device_state(r, e), 12),
        0,
        busy
    );
    for a in e.list("outbound_auth") {
        out.push_str(&auth_body(s, &a, "OutAuth", level + 1));
    }
    for a in e.list("auth") {
        out.push_str(&auth_body(s, &a, "InAuth", level + 1));
    }
    for a in aor_names(e) {
        if let Some(aor) = s.get("aor", &a) {
            out.push_str(&aor_body(aor, level + 1, contacts));
        }
    }
    let tid = e.field("transport").unwrap_or_default();
    if let Some(t) = s.get("transport", &tid) {
        out.push_str(&transport_body(t, level + 1));
    }
    if level == 0 {
        out.push('\n');
    }
    out
}

/// The AOR names of an endpoint's `aors`.
pub(crate) fn aor_names(e: &Object) -> Vec<String> {
    e.field("aors")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `ast_sip_get_device_state` of an endpoint without channels: `Not in use` while it
/// is online (a contact available), else `Unavailable`.
pub fn device_state(r: &Registrar, e: &Object) -> &'static str {
    if r.is_online(&e.id) {
        "Not in use"
    } else {
        "Unavailable"
    }
}

/// A `pjsip show <objects>` table: the header, one body per object, the count.
fn show_table(header: &str, bodies: Vec<String>) -> String {
    if bodies.is_empty() {
        return "No objects found.\n\n".into();
    }
    format!(
        "\n{header}{SEPARATOR}\n\n{}\nObjects found: {}\n\n",
        bodies.concat(),
        bodies.len()
    )
}

/// `pjsip show endpoints`.
pub fn show_endpoints(s: &Sorcery, r: &Registrar, contacts: &AorContacts) -> String {
    let bodies = s
        .all("endpoint")
        .into_iter()
        .map(|e| endpoint_body(s, r, contacts, e, 0));
    show_table(ENDPOINT_HEADER, bodies.collect())
}

/// `pjsip show endpoint <id>`: the endpoint's table, then its options.
pub fn show_endpoint(s: &Sorcery, r: &Registrar, contacts: &AorContacts, id: &str) -> String {
    let Some(e) = s.get("endpoint", id) else {
        return format!("Unable to find object {id}.\n\n");
    };
    format!(
        "\n{ENDPOINT_HEADER}{SEPARATOR}\n\n{}\n{}\n",
        endpoint_body(s, r, contacts, e, 0),
        objectset_table(e, ENDPOINT, "contact_deny")
    )
}

/// `ast_sip_cli_print_sorcery_objectset`: the options sorted by name, in columns at
/// least 13 and 14 wide.
fn objectset_table(o: &Object, specs: &[OptSpec], stop_at: &str) -> String {
    let mut rows: Vec<(&str, String)> = specs
        .iter()
        .take_while(|sp| sp.name != stop_at)
        .filter(|sp| sp.name != "type")
        .map(|sp| (sp.name, o.field(sp.name).unwrap_or_default()))
        .collect();
    rows.sort();
    let nw = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0).max(13);
    let vw = rows.iter().map(|(_, v)| v.len()).max().unwrap_or(0).max(14);
    let mut out = format!(
        " {:<nw$} : ParameterValue\n {}\n",
        "ParameterName",
        "=".repeat(nw + vw + 3)
    );
    for (n, v) in rows {
        out.push_str(&format!(" {n:<nw$} : {v}\n"));
    }
    out
}

/// `pjsip show aors`.
pub fn show_aors(s: &Sorcery, contacts: &AorContacts) -> String {
    let bodies = s.all("aor").into_iter().map(|a| aor_body(a, 0, contacts));
    show_table(
        &format!("{}{}", aor_header(0), contact_header(1)),
        bodies.collect(),
    )
}

/// `pjsip show contacts`: every contact in astdb (orphans included), by `aor/uri`.
pub fn show_contacts(mut all: Vec<ContactInfo>) -> String {
    all.sort_by(|a, b| (&a.contact.aor, &a.contact.uri).cmp(&(&b.contact.aor, &b.contact.uri)));
    let bodies = all.iter().map(|i| contact_body(i, 0));
    show_table(&contact_header(0), bodies.collect())
}

/// `pjsip show transports`.
pub fn show_transports(s: &Sorcery) -> String {
    let bodies = s.all("transport").into_iter().map(|t| transport_body(t, 0));
    show_table(&transport_header(0), bodies.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_parsing() {
        assert_eq!(strtoul("1"), Some(1));
        assert_eq!(strtoul("0x10"), Some(16));
        assert_eq!(strtoul("010"), Some(8));
        assert_eq!(strtoul("abc"), None);
        assert_eq!(strtoul("-1"), None);
        assert_eq!(strtoul(""), None);
        assert_eq!(strtoul("1 "), None);
    }

    #[test]
    fn callerid_forms() {
        assert_eq!(
            callerid_repr("\"Alice Example\" <1000>"),
            "\"Alice Example\" <1000>"
        );
        assert_eq!(callerid_repr("Bob <1001>"), "\"Bob\" <1001>");
        assert_eq!(callerid_repr("1002"), "1002");
        assert_eq!(callerid_repr(""), "<unknown>");
    }
}
