//! The `notifications` command's subcommands, as a library so that the integration tests drive exactly what
//! users run (they send with [`produce`]).

pub mod console_cmd;
pub mod dev;
pub mod formats;
pub mod normalize_cmd;
pub mod produce;
