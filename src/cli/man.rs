//! The man page, generated from the command-line definition ([`super::Cli`]) by
//! clap_mangen, so that it names every command and option `--help` does. The hidden
//! `pbx-portal man` prints it; scripts/build-deb.sh writes it to target/man/pbx-portal.1
//! for the package.
//!
//! One page: clap_mangen's name, synopsis, description and options of the top level, a
//! COMMANDS section with each command's synopsis, description and options (clap_mangen
//! would write one page per command), then what a command line cannot say (exit status,
//! environment, files, an example).

use std::io::{self, Write};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;

use super::Cli;

/// Writes the page to standard output.
pub fn print() -> anyhow::Result<ExitCode> {
    let page = render()?;
    let mut out = io::stdout().lock();
    out.write_all(&page)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The page, as roff.
pub fn render() -> io::Result<Vec<u8>> {
    let mut cmd = Cli::command();
    cmd.build();
    let man = Man::new(cmd.clone())
        .title("PBX-PORTAL")
        .manual("User Commands");
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    let mut heading = Roff::new();
    heading.control("SH", ["COMMANDS"]);
    heading.to_writer(&mut page)?;
    for sub in visible(&cmd) {
        command(&mut page, sub, "pbx-portal")?;
    }
    page.extend_from_slice(TRAILER.as_bytes());
    Ok(once_preamble(&page))
}

/// Every piece clap_mangen renders opens with the same two lines defining `\*(Aq`: the
/// page keeps the first.
fn once_preamble(page: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(page);
    let mut seen = std::collections::HashSet::new();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let preamble = line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq");
        if !preamble || seen.insert(line.to_owned()) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.into_bytes()
}

/// The subcommands a reader is shown (not `help`, not the hidden ones).
fn visible(cmd: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

/// One command's subsection: its synopsis, description and options (clap_mangen's
/// sections, their headings dropped), then its own subcommands the same way.
fn command(page: &mut Vec<u8>, cmd: &clap::Command, parent: &str) -> io::Result<()> {
    let name = format!("{parent} {}", cmd.get_name());
    let mut roff = Roff::new();
    roff.control("SS", [name.as_str()]);
    roff.to_writer(page)?;
    // `--help` is on every command: the page says it once, at the top.
    let man = Man::new(
        cmd.clone()
            .bin_name(&name)
            .mut_arg("help", |a| a.hide(true)),
    );
    let mut sections = Vec::new();
    man.render_synopsis_section(&mut sections)?;
    let mut description = Vec::new();
    man.render_description_section(&mut description)?;
    let mut options = Vec::new();
    man.render_options_section(&mut options)?;
    for part in [sections, description, options] {
        let text = String::from_utf8_lossy(&part);
        for line in text.lines().filter(|l| !l.starts_with(".SH ")) {
            page.extend_from_slice(line.as_bytes());
            page.push(b'\n');
        }
        // A paragraph break between the synopsis, the description and the options.
        page.extend_from_slice(b".PP\n");
    }
    if visible(cmd).next().is_some() {
        let mut roff = Roff::new();
        roff.text([roman("Its commands:")]);
        roff.to_writer(page)?;
        for sub in visible(cmd) {
            let mut line = Roff::new();
            line.control("TP", []);
            line.text([bold(format!("{name} {}", sub.get_name()))]);
            line.text([roman(
                sub.get_about().map(|a| a.to_string()).unwrap_or_default(),
            )]);
            line.to_writer(page)?;
        }
        for sub in visible(cmd) {
            command(page, sub, &name)?;
        }
    }
    Ok(())
}

/// What the command line cannot say.
const TRAILER: &str = r#".SH EXIT STATUS
0 on success; 1 when the command failed (for
.BR apply :
the apply did not apply; for
.BR check :
a check failed; for
.BR import :
nothing was imported); 2 for bad configuration.
.SH ENVIRONMENT
Configuration comes from environment variables (a
.I .env
file in the working directory is read if present); the service reads them from
.IR /etc/pbx-portal/pbx-portal.env ,
where every variable is listed with its default. Required:
.B DATABASE_URL
and, for
.BR serve ,
.BR PORTAL_API_TOKEN .
A bad value or an unknown
.B PORTAL_
variable stops start-up with one line naming it (exit status 2).
.SH FILES
.TP
.I /etc/pbx-portal/pbx-portal.env
The service's environment (mode 0640, root:pbx-portal).
.TP
.I /usr/share/doc/pbx-portal/asterisk-snippets/
The lines to add to pjsip.conf, extensions.conf and manager.conf.
.TP
.I /usr/share/doc/pbx-portal/README.md
The full documentation: HTTP API, apply, installation, upgrade and backup.
.SH EXAMPLES
Run the checks as the service user with the service's environment:
.PP
.nf
runuser \-u pbx\-portal \-\- sh \-c \e
    \(aqset \-a; . /etc/pbx\-portal/pbx\-portal.env; exec pbx\-portal check\(aq
.fi
.SH SEE ALSO
.BR systemctl (1),
.BR journalctl (1),
.BR asterisk (8)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command and option of the command line, found through clap, is on the page.
    #[test]
    fn the_page_names_every_command_and_option() {
        let page = String::from_utf8(render().unwrap()).unwrap();
        // roff escapes a '-' as "\-".
        let plain = page.replace("\\-", "-");
        let mut cmd = Cli::command();
        cmd.build();
        fn walk(cmd: &clap::Command, path: &str, plain: &str) -> usize {
            let mut seen = 0;
            // `--help` is shown once, at the top.
            let shown =
                |a: &&clap::Arg| !a.is_hide_set() && (path == "pbx-portal" || a.get_id() != "help");
            for arg in cmd.get_arguments().filter(shown) {
                let named = match (arg.get_long(), arg.get_value_names()) {
                    (Some(long), _) => format!("--{long}"),
                    (None, Some(names)) => names.join(" "),
                    (None, None) => arg.get_id().as_str().to_owned(),
                };
                assert!(plain.contains(&named), "{path}: {named} is not on the page");
                seen += 1;
            }
            for sub in visible(cmd) {
                let name = format!("{path} {}", sub.get_name());
                assert!(
                    plain.contains(&format!(".SS \"{name}\""))
                        || plain.contains(&format!(".SS {name}")),
                    "{name} has no subsection"
                );
                seen += 1 + walk(sub, &name, plain);
            }
            seen
        }
        let seen = walk(&cmd, "pbx-portal", &plain);
        // The ones today's page lacked, by name: the check itself must not go blind.
        for named in [
            "pbx-portal import",
            "pbx-portal export",
            "pbx-portal token create",
            "--nodes",
            "--strategy",
            "--dry-run",
            "--format",
            "--scopes",
            "--expires-in",
        ] {
            assert!(plain.contains(named), "{named} is not on the page");
        }
        assert!(seen > 20, "only {seen} commands and options found");
        assert!(
            !plain.contains(".SS \"pbx-portal man\""),
            "the hidden command is not shown"
        );
        assert_eq!(plain.matches(".el .ds Aq").count(), 1, "one preamble");
    }
}
