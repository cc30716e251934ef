//! Shared test support: the service under test and the Asterisk stand-in.
#![allow(dead_code)]

pub mod app;
pub mod asterisk;
pub mod process;
