use clap::Parser;

use tcpulse::cli::{analyze, gen, run, Cli, Command};

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Analyze(args) => analyze::run(&args),
        Command::Gen(args) => gen::run(&args),
        Command::Run(args) => run::run(&args),
    };
    std::process::exit(code);
}
