//! The `notifications` command's subcommands and the local event source mapping, as a library so that the
//! integration tests drive exactly what users run.

pub mod normalize_cmd;
