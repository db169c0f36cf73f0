//! The `floodgate` binary: see `floodgate --help`.

fn main() -> std::process::ExitCode {
    floodgate_server::cli::main()
}
