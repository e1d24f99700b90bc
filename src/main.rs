use clap::Parser;

use tcpulse::cli::{analyze, Cli, Command};

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Analyze(args) => analyze::run(&args),
    };
    std::process::exit(code);
}
