use clap::{CommandFactory, FromArgMatches};

use tcpulse::cli::{analyze, config, gen, run, view, Cli, Command};

fn main() {
    // Two steps instead of `Cli::parse()`: `--config` needs the matches to tell flags given on
    // the command line from defaults.
    let matches = Cli::command().get_matches();
    let cli =
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut Cli::command()).exit());
    let code = match config::resolve(cli.command, &matches) {
        Err(code) => code,
        Ok(Command::Analyze(args)) => analyze::run(&args),
        Ok(Command::Gen(args)) => gen::run(&args),
        Ok(Command::Run(args)) => run::run(&args),
        Ok(Command::Config(command)) => config::run(&command),
        Ok(Command::Merge(args)) => view::merge(&args),
        Ok(Command::Report(args)) => view::report(&args),
        Ok(Command::Plot(args)) => view::plot(&args),
    };
    std::process::exit(code);
}
