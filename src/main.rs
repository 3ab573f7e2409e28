//! The `pgha` binary: parse, run, exit. Everything else is the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(pgha::run(std::env::args_os()).as_code())
}
