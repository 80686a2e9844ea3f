//! `aegis`: the agent and its command line.

fn main() -> std::process::ExitCode {
    aegis::cli::main()
}
