//! Local channel originates: the `;1`/`;2` pair, the dialplan run on `;2` (and on `;1`
//! for the Context/Exten form or after answer for the Application form), the channel
//! events AMI shows for them, and the applications the stand-in executes (Answer,
//! Hangup, Wait, Set, MSet, Goto, NoOp, Verbose, AGI; other real applications are
//! skipped, unknown ones end the call like in Asterisk).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::funcs::{self, ChanInfo, Env};
use super::{agi, perm, Inner};

/// What the originated channel is connected to once it answers.
#[derive(Debug, Clone)]
pub enum Target {
    /// `Application:` + `Data:`.
    App { app: String, data: String },
    /// `Context:` + `Exten:` + `Priority:`.
    Exten {
        context: String,
        exten: String,
        priority: i32,
    },
}

#[derive(Debug, Clone)]
pub struct OriginateRequest {
    /// `Channel:` e.g. `Local/check@synergy-health`.
    pub channel: String,
    pub target: Target,
    pub timeout_ms: u64,
    pub vars: Vec<(String, String)>,
    pub cid_name: Option<String>,
    pub cid_num: Option<String>,
    pub action_id: Option<String>,
    /// Send `Event: OriginateResponse` (AMI Async originates).
    pub manager_event: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    Failed,
}

/// How a leg's execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegEnd {
    /// The Hangup() application (cause 16, SoftHangupRequest already sent).
    Explicit,
    /// Fell off the end of the dialplan / the application returned.
    Finished,
    /// The channel was hung up from outside (or an application returned -1).
    HungUp,
}

const DOWN: i32 = 0;
const RING: i32 = 4;
const UP: i32 = 6;

fn state_desc(s: i32) -> &'static str {
    match s {
        DOWN => "Down",
        RING => "Ring",
        UP => "Up",
        _ => "Unknown",
    }
}

fn cause_txt(c: i32) -> &'static str {
    match c {
        16 => "Normal Clearing",
        17 => "User busy",
        19 => "No user responding",
        _ => "Unknown",
    }
}

#[derive(Debug, Clone)]
pub struct LegState {
    pub context: String,
    pub exten: String,
    pub priority: i32,
    pub state: i32,
    pub vars: BTreeMap<String, String>,
}

pub struct Leg {
    pub name: String,
    pub uniqueid: String,
    pub st: Mutex<LegState>,
    pub hangup: watch::Sender<bool>,
}

impl Leg {
    pub fn st(&self) -> MutexGuard<'_, LegState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_hung_up(&self) -> bool {
        *self.hangup.borrow()
    }

    pub fn request_hangup(&self) {
        self.hangup.send_replace(true);
    }
}

pub struct Call {
    pub(crate) inner: Arc<Inner>,
    pub legs: [Arc<Leg>; 2],
    /// `check@synergy-health`.
    pub local_data: String,
    pub local_exten: String,
    pub local_context: String,
    pub cid_name: Option<String>,
    pub cid_num: Option<String>,
    pub answered: watch::Sender<bool>,
}

impl Call {
    pub fn chan_info(&self, li: usize) -> ChanInfo {
        let leg = &self.legs[li];
        let st = leg.st();
        ChanInfo {
            name: leg.name.clone(),
            uniqueid: leg.uniqueid.clone(),
            context: st.context.clone(),
            exten: st.exten.clone(),
            priority: st.priority,
            cid_num: self.cid_num.clone(),
            cid_name: self.cid_name.clone(),
        }
    }

    /// Substitutes `${...}` on leg `li`; returns the text and the functions evaluated.
    pub fn substitute(&self, li: usize, text: &str) -> (String, usize) {
        let chan = self.chan_info(li);
        let vars = self.legs[li].st().vars.clone();
        let mut log = Vec::new();
        let (out, n) = {
            let st = self.inner.state();
            let mut env = Env {
                chan: &chan,
                vars: &vars,
                sorcery: &st.sorcery,
                dialplan: &st.dialplan,
                log: &mut log,
                functions: 0,
            };
            let out = funcs::substitute(&mut env, text);
            (out, env.functions)
        };
        self.inner.log_lines(log);
        (out, n)
    }

    /// `GET VARIABLE`: a function when the name ends in `)`, else a variable.
    pub fn get_variable(&self, li: usize, name: &str) -> (Option<String>, usize) {
        let chan = self.chan_info(li);
        let vars = self.legs[li].st().vars.clone();
        let mut log = Vec::new();
        let res = {
            let st = self.inner.state();
            let mut env = Env {
                chan: &chan,
                vars: &vars,
                sorcery: &st.sorcery,
                dialplan: &st.dialplan,
                log: &mut log,
                functions: 0,
            };
            let v = if name.ends_with(')') {
                env.function(name)
            } else {
                env.variable(name)
            };
            (v, env.functions)
        };
        self.inner.log_lines(log);
        res
    }

    fn party(&self) -> (String, String) {
        (
            self.cid_num.clone().unwrap_or_else(|| "<unknown>".into()),
            self.cid_name.clone().unwrap_or_else(|| "<unknown>".into()),
        )
    }

    fn fields(&self, prefix: &str, li: usize) -> String {
        let leg = &self.legs[li];
        let st = leg.st();
        let (num, name) = self.party();
        let p = prefix;
        format!(
            "{p}Channel: {}\r\n{p}ChannelState: {}\r\n{p}ChannelStateDesc: {}\r\n{p}CallerIDNum: {num}\r\n{p}CallerIDName: {name}\r\n{p}ConnectedLineNum: <unknown>\r\n{p}ConnectedLineName: <unknown>\r\n{p}Language: en\r\n{p}AccountCode: \r\n{p}Context: {}\r\n{p}Exten: {}\r\n{p}Priority: {}\r\n{p}Uniqueid: {}\r\n{p}Linkedid: {}\r\n",
            leg.name,
            st.state,
            state_desc(st.state),
            st.context,
            st.exten,
            st.priority,
            leg.uniqueid,
            self.legs[0].uniqueid
        )
    }

    fn emit(&self, event: &str, body: String) {
        self.inner.publish(
            perm::CALL,
            format!(
                "Event: {event}\r\nPrivilege: {}\r\n{body}\r\n",
                perm::privilege(perm::CALL)
            ),
        );
    }

    fn chan_event(&self, event: &str, li: usize, extra: &str) {
        let body = format!("{}{extra}", self.fields("", li));
        self.emit(event, body);
    }

    fn soft_hangup_request(&self, li: usize, cause: i32) {
        self.chan_event("SoftHangupRequest", li, &format!("Cause: {cause}\r\n"));
    }

    fn hangup_request(&self, li: usize, cause: i32) {
        self.chan_event("HangupRequest", li, &format!("Cause: {cause}\r\n"));
    }

    fn hangup_event(&self, li: usize, cause: i32) {
        self.chan_event(
            "Hangup",
            li,
            &format!("Cause: {cause}\r\nCause-txt: {}\r\n", cause_txt(cause)),
        );
    }

    fn device_state(&self, state: &str) {
        self.emit(
            "DeviceStateChange",
            format!("Device: Local/{}\r\nState: {state}\r\n", self.local_data),
        );
    }

    fn dial_event(&self, event: &str, extra: &str) {
        let body = format!("{}{extra}", self.fields("Dest", 0));
        self.emit(event, body);
    }

    fn local_bridge(&self) {
        let body = format!(
            "{}{}Context: {}\r\nExten: {}\r\nLocalOptimization: Yes\r\n",
            self.fields("LocalOne", 0),
            self.fields("LocalTwo", 1),
            self.local_context,
            self.local_exten
        );
        self.emit("LocalBridge", body);
    }

    /// Marks leg `li` Up (Newstate), answering the call when it is `;2`.
    pub fn answer_leg(&self, li: usize) -> bool {
        {
            let mut st = self.legs[li].st();
            if st.state == UP {
                return false;
            }
            st.state = UP;
        }
        self.chan_event("Newstate", li, "");
        if li == 1 {
            self.answered.send_replace(true);
        }
        true
    }
}

/// Sleeps, returning false when the leg was hung up meanwhile.
pub async fn sleep_or_hangup(leg: &Leg, d: Duration) -> bool {
    let mut rx = leg.hangup.subscribe();
    if *rx.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = rx.wait_for(|v| *v) => false,
    }
}

/// Applications that exist in a stock 22.7 build (case-insensitive).
const KNOWN_APPS: &[&str] = &[
    "ADSIProg",
    "AGI",
    "AMD",
    "AddQueueMember",
    "AgentLogin",
    "AgentRequest",
    "AlarmReceiver",
    "Answer",
    "AudioSocket",
    "Authenticate",
    "BackGround",
    "BackgroundDetect",
    "Bridge",
    "BridgeAdd",
    "Broadcast",
    "Busy",
    "CELGenUserEvent",
    "CallCompletionCancel",
    "CallCompletionRequest",
    "ChanIsAvail",
    "ChanSpy",
    "ChannelRedirect",
    "ClearHash",
    "ConfBridge",
    "ConfKick",
    "Congestion",
    "ContinueWhile",
    "ControlPlayback",
    "DBdeltree",
    "DISA",
    "DateTime",
    "DeadAGI",
    "Dial",
    "Dictate",
    "Directory",
    "DumpChan",
    "EAGI",
    "Echo",
    "Else",
    "ElseIf",
    "EndIf",
    "EndWhile",
    "Exec",
    "ExecIf",
    "ExecIfTime",
    "ExitIf",
    "ExitWhile",
    "ExtenSpy",
    "ExternalIVR",
    "Festival",
    "Flash",
    "FollowMe",
    "ForkCDR",
    "GetCPEID",
    "Gosub",
    "GosubIf",
    "Goto",
    "GotoIf",
    "GotoIfTime",
    "Hangup",
    "HangupCauseClear",
    "If",
    "ImportVar",
    "Incomplete",
    "Log",
    "MSet",
    "MessageSend",
    "Milliwatt",
    "MixMonitor",
    "Morsecode",
    "NoOp",
    "ODBCFinish",
    "Originate",
    "PJSIPHangup",
    "PJSIPNotify",
    "Page",
    "Park",
    "ParkAndAnnounce",
    "ParkedCall",
    "PauseQueueMember",
    "Pickup",
    "PickupChan",
    "PlayTones",
    "Playback",
    "PrivacyManager",
    "Proceeding",
    "Progress",
    "Queue",
    "QueueLog",
    "QueueUpdate",
    "RaiseException",
    "Read",
    "ReadExten",
    "ReceiveFAX",
    "Record",
    "Reload",
    "RemoveQueueMember",
    "ResetCDR",
    "RetryDial",
    "Return",
    "Ringing",
    "SMS",
    "SayAlpha",
    "SayAlphaCase",
    "SayCountedAdj",
    "SayCountedNoun",
    "SayDigits",
    "SayMoney",
    "SayNumber",
    "SayOrdinal",
    "SayPhonetic",
    "SayUnixTime",
    "SendDTMF",
    "SendFAX",
    "SendText",
    "Set",
    "SoftHangup",
    "SpeechActivateGrammar",
    "SpeechBackground",
    "SpeechCreate",
    "SpeechDeactivateGrammar",
    "SpeechDestroy",
    "SpeechLoadGrammar",
    "SpeechProcessingSound",
    "SpeechStart",
    "SpeechUnloadGrammar",
    "StackPop",
    "Stasis",
    "StopMixMonitor",
    "StopPlayTones",
    "StoreDTMF",
    "StreamEcho",
    "System",
    "Transfer",
    "TryExec",
    "TrySystem",
    "UnpauseQueueMember",
    "UserEvent",
    "VMAuthenticate",
    "VMSayName",
    "Verbose",
    "VoiceMail",
    "VoiceMailMain",
    "VoiceMailPlayMsg",
    "Wait",
    "WaitDigit",
    "WaitExten",
    "WaitForCondition",
    "WaitForNoise",
    "WaitForRing",
    "WaitForSilence",
    "WaitForTone",
    "WaitUntil",
    "While",
    "Zapateller",
];

/// What an application asks the pbx loop to do next.
enum Next {
    Continue,
    Goto(Option<String>, Option<String>, String),
    End(LegEnd),
}

fn set_var(call: &Call, li: usize, assignment: &str) {
    if let Some((k, v)) = assignment.split_once('=') {
        let k = k.trim().trim_start_matches('_').to_string();
        let mut st = call.legs[li].st();
        if v.is_empty() {
            st.vars.remove(&k);
        } else {
            st.vars.insert(k, v.to_string());
        }
    }
}

/// Executes one application with its substituted data.
async fn exec_app(call: &Arc<Call>, li: usize, app: &str, data: &str) -> Next {
    let leg = call.legs[li].clone();
    let lower = app.to_ascii_lowercase();
    match lower.as_str() {
        "answer" => {
            if call.answer_leg(li) && !sleep_or_hangup(&leg, Duration::from_millis(500)).await {
                return Next::End(LegEnd::HungUp);
            }
            Next::Continue
        }
        "hangup" => {
            call.soft_hangup_request(li, 16);
            leg.request_hangup();
            Next::End(LegEnd::Explicit)
        }
        "wait" => {
            let secs: f64 = data.trim().parse().unwrap_or(0.0);
            if secs > 0.0 && !sleep_or_hangup(&leg, Duration::from_secs_f64(secs)).await {
                return Next::End(LegEnd::HungUp);
            }
            Next::Continue
        }
        "set" => {
            set_var(call, li, data);
            Next::Continue
        }
        "mset" => {
            for a in funcs::separate_args(data) {
                set_var(call, li, &a);
            }
            Next::Continue
        }
        "goto" => {
            let a = funcs::separate_args(data);
            match a.len() {
                1 => Next::Goto(None, None, a[0].clone()),
                2 => Next::Goto(None, Some(a[0].clone()), a[1].clone()),
                n if n >= 3 => Next::Goto(Some(a[0].clone()), Some(a[1].clone()), a[2].clone()),
                _ => Next::End(LegEnd::Finished),
            }
        }
        "agi" | "eagi" | "deadagi" => match agi::exec(call, li, data).await {
            agi::AgiStatus::Hangup => Next::End(LegEnd::HungUp),
            _ => Next::Continue,
        },
        _ => {
            if KNOWN_APPS.iter().any(|k| k.eq_ignore_ascii_case(app)) {
                Next::Continue
            } else {
                let st = leg.st().clone();
                call.inner.log_line(format!(
                    "WARNING pbx.c: No application '{}' for extension ({}, {}, {})",
                    app, st.context, st.exten, st.priority
                ));
                Next::End(LegEnd::Finished)
            }
        }
    }
}

/// The pbx loop for one leg, from `context,exten,priority`.
pub async fn run_dialplan(
    call: &Arc<Call>,
    li: usize,
    context: String,
    exten: String,
    priority: i32,
) -> LegEnd {
    let leg = call.legs[li].clone();
    {
        let mut st = leg.st();
        st.context = context;
        st.exten = exten;
        st.priority = priority;
    }
    loop {
        if leg.is_hung_up() {
            return LegEnd::HungUp;
        }
        let (context, exten, priority) = {
            let st = leg.st();
            (st.context.clone(), st.exten.clone(), st.priority)
        };
        let found = {
            let st = call.inner.state();
            st.dialplan
                .find(&context, &exten, priority)
                .map(|(_, p)| (p.app.clone(), p.data.clone()))
        };
        let Some((app, data)) = found else {
            return LegEnd::Finished;
        };
        let (data, _) = call.substitute(li, &data);
        match exec_app(call, li, &app, &data).await {
            Next::Continue => {
                leg.st().priority += 1;
            }
            Next::End(e) => return e,
            Next::Goto(ctx, ext, pri) => {
                let (c, e) = {
                    let st = leg.st();
                    (
                        ctx.unwrap_or_else(|| st.context.clone()),
                        ext.unwrap_or_else(|| st.exten.clone()),
                    )
                };
                let p = match pri.trim().parse::<i32>() {
                    Ok(n) => Some(n),
                    Err(_) => call.inner.state().dialplan.find_label(&c, &e, pri.trim()),
                };
                let Some(p) = p else {
                    call.inner.log_line(format!(
                        "WARNING pbx.c: Priority '{}' must be a number > 0, or valid label",
                        pri
                    ));
                    return LegEnd::Finished;
                };
                let mut st = leg.st();
                st.context = c;
                st.exten = e;
                st.priority = p;
            }
        }
    }
}

/// Runs the Application form on `;1` after answer.
async fn run_app_leg(call: &Arc<Call>, app: &str, data: &str) -> LegEnd {
    match exec_app(call, 0, app, data).await {
        Next::End(e) => e,
        _ => LegEnd::Finished,
    }
}

fn originate_response(inner: &Inner, req: &OriginateRequest, call: Option<&Call>, success: bool) {
    if !req.manager_event {
        return;
    }
    let (chan, uniqueid) = match call {
        Some(c) if success => (c.legs[0].name.clone(), c.legs[0].uniqueid.clone()),
        _ => (req.channel.clone(), "<unknown>".to_string()),
    };
    let target = match &req.target {
        Target::App { app, data } => format!("Application: {app}\r\nData: {data}\r\n"),
        Target::Exten { context, exten, .. } => format!("Context: {context}\r\nExten: {exten}\r\n"),
    };
    let id = req
        .action_id
        .as_ref()
        .filter(|s| !s.is_empty())
        .map(|s| format!("ActionID: {s}\r\n"))
        .unwrap_or_default();
    inner.publish(
        perm::CALL,
        format!(
            "Event: OriginateResponse\r\nPrivilege: {}\r\n{id}Response: {}\r\nChannel: {chan}\r\n{target}Reason: {}\r\nUniqueid: {uniqueid}\r\nCallerIDNum: {}\r\nCallerIDName: {}\r\n\r\n",
            perm::privilege(perm::CALL),
            if success { "Success" } else { "Failure" },
            if success { 4 } else { 0 },
            req.cid_num.clone().unwrap_or_else(|| "<unknown>".into()),
            req.cid_name.clone().unwrap_or_else(|| "<unknown>".into()),
        ),
    );
}

/// Starts a call in the background; the receiver says whether it was answered.
pub(crate) fn start(inner: Arc<Inner>, req: OriginateRequest) -> oneshot::Receiver<Outcome> {
    let (tx, rx) = oneshot::channel();
    let me = inner.clone();
    inner.spawn(async move {
        run_call(me, req, tx).await;
    });
    rx
}

/// Fire and forget (CLI `channel originate`, AMI `Async: true`).
pub(crate) fn originate_background(inner: Arc<Inner>, req: OriginateRequest) {
    drop(start(inner, req));
}

async fn run_call(inner: Arc<Inner>, req: OriginateRequest, outcome: oneshot::Sender<Outcome>) {
    let fail = |inner: &Inner, req: &OriginateRequest, outcome: oneshot::Sender<Outcome>| {
        originate_response(inner, req, None, false);
        let _ = outcome.send(Outcome::Failed);
    };
    let Some((tech, data)) = req.channel.split_once('/') else {
        return fail(&inner, &req, outcome);
    };
    if !tech.eq_ignore_ascii_case("local") {
        // Only Local channels are simulated; a PJSIP endpoint never has a contact here.
        if tech.eq_ignore_ascii_case("pjsip") {
            inner.log_line(format!(
                "NOTICE channel.c: Unable to create channel of type '{tech}' (cause 3 - No route to destination)"
            ));
        } else {
            inner.log_line(format!(
                "WARNING channel.c: No channel type registered for '{tech}'"
            ));
        }
        return fail(&inner, &req, outcome);
    }
    let data = data.split('/').next().unwrap_or(data).to_string();
    let (exten, context) = match data.split_once('@') {
        Some((e, c)) => (e.to_string(), c.to_string()),
        None => (data.clone(), "default".to_string()),
    };
    if !inner.state().dialplan.exists(&context, &exten, 1) {
        inner.log_line(format!(
            "NOTICE core_local.c: No such extension/context {exten}@{context} while calling Local channel"
        ));
        inner.log_line(format!(
            "NOTICE channel.c: Unable to call channel Local/{data}"
        ));
        return fail(&inner, &req, outcome);
    }
    let seq = inner.local_seq.fetch_add(1, Ordering::SeqCst);
    let base = format!("Local/{exten}@{context}-{seq:08x}");
    let vars: BTreeMap<String, String> = req.vars.iter().cloned().collect();
    let mk = |suffix: &str, state: i32| {
        Arc::new(Leg {
            name: format!("{base};{suffix}"),
            uniqueid: inner.next_uniqueid(),
            st: Mutex::new(LegState {
                context: context.clone(),
                exten: exten.clone(),
                priority: 1,
                state,
                vars: vars.clone(),
            }),
            hangup: watch::channel(false).0,
        })
    };
    let leg1 = mk("1", DOWN);
    let leg2 = mk("2", RING);
    let call = Arc::new(Call {
        inner: inner.clone(),
        legs: [leg1.clone(), leg2.clone()],
        local_data: format!("{exten}@{context}"),
        local_exten: exten.clone(),
        local_context: context.clone(),
        cid_name: req.cid_name.clone(),
        cid_num: req.cid_num.clone(),
        answered: watch::channel(false).0,
    });
    call.chan_event("Newchannel", 0, "");
    call.chan_event("Newchannel", 1, "");
    call.local_bridge();
    call.dial_event("DialBegin", &format!("DialString: {}\r\n", call.local_data));

    // ;2 runs the dialplan.
    let (done2_tx, mut done2_rx) = watch::channel::<Option<LegEnd>>(None);
    {
        let c2 = call.clone();
        let (ctx, ext) = (context.clone(), exten.clone());
        inner.spawn(async move {
            let end = run_dialplan(&c2, 1, ctx, ext, 1).await;
            c2.legs[1].request_hangup();
            done2_tx.send_replace(Some(end));
        });
    }
    let mut answered_rx = call.answered.subscribe();
    let timeout = tokio::time::sleep(Duration::from_millis(req.timeout_ms.max(1)));
    tokio::pin!(timeout);
    enum Waited {
        Answered,
        Leg2Done(LegEnd),
        TimedOut,
    }
    let waited = tokio::select! {
        _ = answered_rx.wait_for(|a| *a) => Waited::Answered,
        r = done2_rx.wait_for(|d| d.is_some()) => Waited::Leg2Done(
            r.map(|v| v.unwrap_or(LegEnd::Finished)).unwrap_or(LegEnd::Finished),
        ),
        _ = &mut timeout => Waited::TimedOut,
    };
    let before_answer: Option<LegEnd> = match waited {
        Waited::Answered => None,
        Waited::Leg2Done(e) => Some(e),
        Waited::TimedOut => {
            if !*call.answered.borrow() {
                leg2.request_hangup();
                call.soft_hangup_request(1, 16);
                let _ = done2_rx.wait_for(|d| d.is_some()).await;
            }
            Some(LegEnd::HungUp)
        }
    };
    // An answer and the end of ;2 can race; the answer wins if it happened.
    let before_answer = if *call.answered.borrow() {
        None
    } else {
        before_answer
    };
    if before_answer.is_some() {
        call.hangup_request(0, 16);
        call.hangup_event(1, 16);
        call.dial_event("DialEnd", "DialStatus: NOANSWER\r\n");
        if req.manager_event {
            originate_response(&inner, &req, Some(&call), false);
            call.device_state("NOT_INUSE");
            call.hangup_event(0, 16);
            call.device_state("NOT_INUSE");
        } else {
            call.hangup_event(0, 16);
            call.device_state("NOT_INUSE");
            call.device_state("NOT_INUSE");
        }
        let _ = outcome.send(Outcome::Failed);
        return;
    }
    // Answered.
    originate_response(&inner, &req, Some(&call), true);
    call.answer_leg(0);
    call.dial_event("DialEnd", "DialStatus: ANSWER\r\n");
    call.device_state("INUSE");
    call.device_state("INUSE");
    let _ = outcome.send(Outcome::Answered);

    let leg1_run = {
        let c1 = call.clone();
        let target = req.target.clone();
        let (lctx, lext) = (context.clone(), exten.clone());
        async move {
            match target {
                Target::App { app, data } => {
                    {
                        let mut st = c1.legs[0].st();
                        st.context = lctx;
                        st.exten = lext;
                        st.priority = 1;
                    }
                    run_app_leg(&c1, &app, &data).await
                }
                Target::Exten {
                    context,
                    exten,
                    priority,
                } => run_dialplan(&c1, 0, context, exten, priority.max(1)).await,
            }
        }
    };
    tokio::pin!(leg1_run);
    let leg2_done = done2_rx.borrow().is_some();
    let first: Result<LegEnd, LegEnd> = if leg2_done {
        Err(done2_rx.borrow().unwrap_or(LegEnd::Finished))
    } else {
        tokio::select! {
            e = &mut leg1_run => Ok(e),
            r = done2_rx.wait_for(|d| d.is_some()) => Err(r.map(|v| v.unwrap_or(LegEnd::Finished)).unwrap_or(LegEnd::Finished)),
        }
    };
    match first {
        Ok(end1) => {
            // ;1 finished first: it hangs up and takes ;2 with it.
            let cause = if end1 == LegEnd::Explicit { 16 } else { 0 };
            call.hangup_request(1, cause);
            call.hangup_event(0, cause);
            call.device_state("NOT_INUSE");
            if done2_rx.borrow().is_none() {
                call.soft_hangup_request(1, 16);
            }
            leg2.request_hangup();
            let _ = done2_rx.wait_for(|d| d.is_some()).await;
            call.hangup_event(1, cause);
            call.device_state("NOT_INUSE");
        }
        Err(end2) => {
            let cause = if end2 == LegEnd::Explicit { 16 } else { 0 };
            call.hangup_request(0, cause);
            call.hangup_event(1, cause);
            call.device_state("NOT_INUSE");
            call.soft_hangup_request(0, 16);
            leg1.request_hangup();
            let _ = leg1_run.await;
            call.hangup_event(0, cause);
            call.device_state("NOT_INUSE");
        }
    }
}
