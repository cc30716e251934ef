//! Local channel originates as the portal makes them: `Local/<exten>@<context>`, whose
//! `;2` leg runs the live dialplan from priority 1 (running `AGI(agi://...)` connects to
//! the FastAGI server), while `;1` waits for an answer that never comes: the stand-in
//! models only the applications of the portal's probe context, AGI and Hangup, and
//! neither answers. An application it does not model ends the call with a log line
//! that says so, so that a test which needs one cannot pass by accident.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::funcs::{self, ChanInfo, Env};
use super::{agi, Inner};

/// Where the `;2` leg is in the dialplan, and its channel variables.
#[derive(Debug, Clone)]
pub struct LegState {
    pub context: String,
    pub exten: String,
    pub priority: i32,
    pub vars: BTreeMap<String, String>,
}

/// The `;2` leg of a Local channel, the one that runs the dialplan.
pub struct Call {
    pub(crate) inner: Arc<Inner>,
    /// `Local/check@synergy-health-00000001;2`.
    pub name: String,
    pub uniqueid: String,
    st: Mutex<LegState>,
}

impl Call {
    pub fn st(&self) -> MutexGuard<'_, LegState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn chan_info(&self) -> ChanInfo {
        let st = self.st();
        ChanInfo {
            name: self.name.clone(),
            uniqueid: self.uniqueid.clone(),
            context: st.context.clone(),
            exten: st.exten.clone(),
            priority: st.priority,
        }
    }

    /// Substitutes `${...}`; returns the text and the number of functions evaluated.
    pub fn substitute(&self, text: &str) -> (String, usize) {
        let chan = self.chan_info();
        let vars = self.st().vars.clone();
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
}

/// Runs one application with its substituted data; false when the call ends.
async fn exec_app(call: &Arc<Call>, app: &str, data: &str) -> bool {
    match app.to_ascii_lowercase().as_str() {
        "agi" => agi::exec(call, data).await != agi::AgiStatus::Hangup,
        "hangup" => false,
        _ => {
            let st = call.st().clone();
            call.inner.log_line(format!(
                "ERROR stand-in: application '{app}' ({}, {}, {}) is not modelled; the call ends here",
                st.context, st.exten, st.priority
            ));
            false
        }
    }
}

/// The pbx loop of the `;2` leg, from priority 1 until the dialplan or the call ends.
async fn run_dialplan(call: &Arc<Call>) {
    loop {
        let (context, exten, priority) = {
            let st = call.st();
            (st.context.clone(), st.exten.clone(), st.priority)
        };
        let found = {
            let st = call.inner.state();
            st.dialplan
                .find(&context, &exten, priority)
                .map(|(_, p)| (p.app.clone(), p.data.clone()))
        };
        let Some((app, data)) = found else {
            return;
        };
        let (data, _) = call.substitute(&data);
        if !exec_app(call, &app, &data).await {
            return;
        }
        call.st().priority += 1;
    }
}

/// The two channels of a Local channel pair while they live, counted in
/// `ast_active_channels()` (AMI CoreStatus `CoreCurrentCalls`); dropped when the call
/// ends or the stand-in stops.
struct Pair(Arc<Inner>);

impl Pair {
    fn new(inner: &Arc<Inner>) -> Pair {
        inner.active_channels.fetch_add(2, Ordering::SeqCst);
        Pair(inner.clone())
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // A restart zeroes the count after its stop has ended every call.
        let _ = self
            .0
            .active_channels
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_sub(2))
            });
    }
}

/// Originates a call to `channel` (`Local/<exten>@<context>`) in the background; the
/// receiver fires when the call has ended.
pub(crate) fn start(inner: Arc<Inner>, channel: &str) -> oneshot::Receiver<()> {
    let (ended, rx) = oneshot::channel();
    let Some(call) = local_call(&inner, channel) else {
        let _ = ended.send(());
        return rx;
    };
    let pair = Pair::new(&inner);
    // core_local.c starts the pbx of the `;2` leg (ast_pbx_start), whose
    // increase_call_count (main/pbx.c) counts it in ast_processed_calls().
    inner.processed_calls.fetch_add(1, Ordering::SeqCst);
    inner.spawn(async move {
        run_dialplan(&call).await;
        drop(pair);
        let _ = ended.send(());
    });
    rx
}

/// The `;2` leg of a Local channel to an existing extension, or None after logging why
/// the channel could not be created.
fn local_call(inner: &Arc<Inner>, channel: &str) -> Option<Arc<Call>> {
    let (tech, data) = channel.split_once('/')?;
    if !tech.eq_ignore_ascii_case("local") {
        // Only Local channels are simulated; a PJSIP endpoint never has a contact here.
        inner.log_line(if tech.eq_ignore_ascii_case("pjsip") {
            format!(
                "NOTICE channel.c: Unable to create channel of type '{tech}' (cause 3 - No route to destination)"
            )
        } else {
            format!("WARNING channel.c: No channel type registered for '{tech}'")
        });
        return None;
    }
    let data = data.split('/').next().unwrap_or(data);
    let (exten, context) = data.split_once('@').unwrap_or((data, "default"));
    if !inner.state().dialplan.exists(context, exten, 1) {
        inner.log_line(format!(
            "NOTICE core_local.c: No such extension/context {exten}@{context} while calling Local channel"
        ));
        inner.log_line(format!(
            "NOTICE channel.c: Unable to call channel Local/{data}"
        ));
        return None;
    }
    let seq = inner.local_seq.fetch_add(1, Ordering::SeqCst);
    Some(Arc::new(Call {
        inner: inner.clone(),
        name: format!("Local/{exten}@{context}-{seq:08x};2"),
        uniqueid: inner.next_uniqueid(),
        st: Mutex::new(LegState {
            context: context.to_owned(),
            exten: exten.to_owned(),
            priority: 1,
            vars: BTreeMap::new(),
        }),
    }))
}
