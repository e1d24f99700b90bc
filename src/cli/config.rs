//! `tcpulse config check|show`, and `--config` of `run` and `analyze`: the file is put under
//! the command line here, so `run::run` and `analyze::run` only ever see resolved arguments.

use std::path::{Path, PathBuf};

use clap::{ArgMatches, Args, FromArgMatches};

use super::{exit, Command, ConfigCommand, RunArgs};
use crate::config::Config;
use crate::gen;

/// Runs `tcpulse config ...`; returns the exit code.
pub fn run(command: &ConfigCommand) -> i32 {
    match command {
        ConfigCommand::Check { files } => check(files),
        ConfigCommand::Show { file } => show(file.as_deref()),
    }
}

/// Applies the `--config` file of `run` or `analyze` (`matches`: the whole command line) and
/// logs the resulting settings on stderr: always for `run`, with `--config` for `analyze`
/// (whose stderr otherwise stays quiet for scripts). `Err` is the exit code.
pub fn resolve(command: Command, matches: &ArgMatches) -> Result<Command, i32> {
    let Some((_, given)) = matches.subcommand() else {
        return Ok(command);
    };
    match command {
        Command::Run(mut args) => {
            if let Some(path) = &args.config {
                load(path)?.apply_to_run(&mut args, given);
            }
            if args.iface.is_empty() {
                eprintln!(
                    "tcpulse: no interface to capture on: give --iface or set capture.iface in \
                     the --config file"
                );
                return Err(exit::USAGE);
            }
            log(&Config::of_run(&args));
            Ok(Command::Run(args))
        }
        Command::Analyze(mut args) => {
            if let Some(path) = &args.config {
                load(path)?.apply_to_analyze(&mut args, given);
                log(&Config::of_analyze(&args));
            }
            Ok(Command::Analyze(args))
        }
        other => Ok(other),
    }
}

fn load(path: &Path) -> Result<Config, i32> {
    Config::load(path).map_err(|e| {
        eprintln!("tcpulse: {e}");
        exit::USAGE
    })
}

fn log(config: &Config) {
    match serde_json::to_string(config) {
        Ok(json) => eprintln!("tcpulse: config: {json}"),
        Err(e) => eprintln!("tcpulse: config: cannot show it: {e}"),
    }
}

/// Every file is checked, even after a bad one; messages go to stderr, `ok` lines to stdout.
/// A file with a top-level `[scenario]` table is checked as a scenario file (`tcpulse gen
/// --scenario`, docs/gen.md).
fn check(files: &[PathBuf]) -> i32 {
    let mut code = exit::OK;
    for path in files {
        let checked = match std::fs::read_to_string(path) {
            Ok(text) if gen::file::is_scenario(&text) => gen::file::load(path).map(drop),
            _ => Config::load(path).map(drop),
        };
        match checked {
            Ok(_) => println!("{}: ok", path.display()),
            Err(e) => {
                eprintln!("{e}");
                code = exit::USAGE;
            }
        }
    }
    code
}

/// The settings `run --config FILE` would start with, as TOML.
fn show(file: Option<&Path>) -> i32 {
    let (mut args, defaults) = match run_defaults() {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("tcpulse: {e}");
            return exit::USAGE;
        }
    };
    if let Some(path) = file {
        match load(path) {
            Ok(config) => config.apply_to_run(&mut args, &defaults),
            Err(code) => return code,
        }
    }
    match toml::to_string(&Config::of_run(&args)) {
        Ok(text) => {
            print!("{text}");
            exit::OK
        }
        Err(e) => {
            eprintln!("tcpulse: cannot write the configuration as TOML: {e}");
            exit::OUTPUT_FAILED
        }
    }
}

/// `run`'s arguments with nothing given, from clap itself, so the defaults shown are the
/// defaults used. The interface is not required here: the file may set it, or not.
fn run_defaults() -> Result<(RunArgs, ArgMatches), clap::Error> {
    let command = RunArgs::augment_args(clap::Command::new("run")).mut_arg("iface", |_| {
        clap::Arg::new("iface").long("iface").default_value("")
    });
    let matches = command.try_get_matches_from(["run"])?;
    Ok((RunArgs::from_arg_matches(&matches)?, matches))
}
