//! `pbx-portal check`: prints the doctor's lines ([`pbx_portal::check`]); exits 1 when
//! any check fails.

use std::process::ExitCode;

use pbx_portal::config::Config;

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    let lines = pbx_portal::check::run(&config).await;
    let ok = lines.iter().all(|l| l.passes());
    for l in lines {
        println!("{:<4} {:<16} {}", l.mark.as_str(), l.name, l.detail);
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
