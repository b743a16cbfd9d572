//! The `eventide-consumer` binary: see the library's docs (`eventide_consumer`).

fn main() -> std::process::ExitCode {
    eventide_consumer::main()
}
