//! Everything that touches Asterisk: rendering the include files, writing them
//! atomically, reloading over AMI or the CLI, the FastAGI health probe, and reading the
//! admin's pjsip.conf for its transports.

pub mod agi;
pub mod ami;
pub mod cli;
pub mod conf;
pub mod contacts;
pub mod event_link;
pub mod files;
pub mod pjsip_conf;
pub mod probe;
pub mod reload;
pub mod render;
