//! File and command line together: a value given on the command line wins, then the file's,
//! then clap's default. "Given on the command line" is clap's `ValueSource::CommandLine`, so a
//! flag repeating its default still overrides the file.

use clap::parser::ValueSource;
use clap::ArgMatches;

use super::{AnalyzeArgs, PipelineArgs, RunArgs};
use crate::config::{CaptureSection, Config, FlowTableSection, OutputSection, PipelineSection};

/// Puts the file's value, if any, into `slot` unless the argument `id` came from the command
/// line. `id` is the clap id, i.e. the field name in `cli/mod.rs`.
fn overlay<T>(slot: &mut T, file: Option<T>, cli: &ArgMatches, id: &str) {
    if let Some(value) = file {
        if cli.value_source(id) != Some(ValueSource::CommandLine) {
            *slot = value;
        }
    }
}

impl Config {
    /// Applies the file to the arguments of `run`.
    pub fn apply_to_run(&self, args: &mut RunArgs, cli: &ArgMatches) {
        let c = self.capture.clone();
        overlay(&mut args.iface, c.iface, cli, "iface");
        overlay(&mut args.capture, c.capture, cli, "capture");
        overlay(&mut args.queues, c.queues.map(Some), cli, "queues");
        overlay(&mut args.cpus, c.cpus.map(Some), cli, "cpus");
        overlay(&mut args.xdp_mode, c.xdp_mode, cli, "xdp_mode");
        overlay(&mut args.threads, c.threads.map(Some), cli, "threads");
        overlay(&mut args.ring_frames, c.ring_frames, cli, "ring_frames");
        overlay(&mut args.all_frames, c.all_frames, cli, "all_frames");
        overlay(&mut args.user, c.user.map(Some), cli, "user");
        overlay(&mut args.promisc, c.promisc, cli, "promisc");
        overlay(&mut args.duration, c.duration.map(Some), cli, "duration");
        overlay(&mut args.no_analysis, c.no_analysis, cli, "no_analysis");
        self.apply_to_pipeline(&mut args.pipeline, cli);
    }

    /// Applies the file to the arguments of `analyze`; `[capture]` does not concern it.
    pub fn apply_to_analyze(&self, args: &mut AnalyzeArgs, cli: &ArgMatches) {
        self.apply_to_pipeline(&mut args.pipeline, cli);
    }

    fn apply_to_pipeline(&self, p: &mut PipelineArgs, cli: &ArgMatches) {
        let (pl, ft, out) = (&self.pipeline, &self.flow_table, self.output.clone());
        overlay(&mut p.interval, pl.interval, cli, "interval");
        overlay(&mut p.workers, pl.workers, cli, "workers");
        overlay(&mut p.top_servers, pl.top_servers, cli, "top_servers");
        overlay(&mut p.watch, pl.watch.clone(), cli, "watch");
        overlay(
            &mut p.anonymize,
            pl.anonymize.clone().map(Some),
            cli,
            "anonymize",
        );
        overlay(&mut p.filter, pl.filter.clone().map(Some), cli, "filter");
        overlay(&mut p.output, out.records, cli, "output");
        overlay(&mut p.flows, out.flows.map(Some), cli, "flows");
        // `--sink` flags replace the file's `[[sink]]` list as a whole.
        let sinks = (!self.sinks.is_empty()).then(|| self.sinks.clone());
        overlay(&mut p.sink, sinks, cli, "sink");
        let t = &mut p.table;
        overlay(&mut t.max_flows, ft.max_flows, cli, "max_flows");
        overlay(&mut t.idle_timeout, ft.idle_timeout, cli, "idle_timeout");
        overlay(
            &mut t.half_open_timeout,
            ft.half_open_timeout,
            cli,
            "half_open_timeout",
        );
        overlay(&mut t.close_linger, ft.close_linger, cli, "close_linger");
        overlay(
            &mut t.half_closed_stall,
            ft.half_closed_stall,
            cli,
            "half_closed_stall",
        );
        overlay(&mut t.key_tunnel, ft.key_tunnel, cli, "key_tunnel");
        overlay(&mut t.rtt_source, ft.rtt_source, cli, "rtt_source");
        overlay(
            &mut t.rtt_rate_limit,
            ft.rtt_rate_limit.map(Some),
            cli,
            "rtt_rate_limit",
        );
    }

    /// Every setting a `run` uses, in the file's terms (an empty interface is left out).
    pub fn of_run(args: &RunArgs) -> Config {
        Config {
            capture: CaptureSection {
                iface: Some(args.iface.clone()).filter(|i| !i.is_empty()),
                capture: Some(args.capture),
                queues: args.queues.clone(),
                cpus: args.cpus.clone(),
                xdp_mode: Some(args.xdp_mode),
                threads: args.threads,
                ring_frames: Some(args.ring_frames),
                all_frames: Some(args.all_frames),
                user: args.user.clone(),
                promisc: Some(args.promisc),
                duration: args.duration,
                no_analysis: Some(args.no_analysis),
            },
            ..Config::of_pipeline(&args.pipeline)
        }
    }

    /// Every setting an `analyze` uses, in the file's terms.
    pub fn of_analyze(args: &AnalyzeArgs) -> Config {
        Config::of_pipeline(&args.pipeline)
    }

    fn of_pipeline(p: &PipelineArgs) -> Config {
        Config {
            capture: CaptureSection::default(),
            pipeline: PipelineSection {
                interval: Some(p.interval),
                workers: Some(p.workers),
                top_servers: Some(p.top_servers),
                anonymize: p.anonymize.clone(),
                watch: (!p.watch.is_empty()).then(|| p.watch.clone()),
                filter: p.filter.clone(),
            },
            flow_table: FlowTableSection {
                max_flows: Some(p.table.max_flows),
                idle_timeout: Some(p.table.idle_timeout),
                half_open_timeout: Some(p.table.half_open_timeout),
                close_linger: Some(p.table.close_linger),
                half_closed_stall: Some(p.table.half_closed_stall),
                key_tunnel: Some(p.table.key_tunnel),
                rtt_source: Some(p.table.rtt_source),
                rtt_rate_limit: p.table.rtt_rate_limit,
            },
            output: OutputSection {
                records: Some(p.output.clone()),
                flows: p.flows.clone(),
            },
            sink_tables: Vec::new(),
            sinks: p.sink.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::{Args, CommandFactory, FromArgMatches};

    use super::*;
    use crate::cli::{Cli, Command};

    /// Every key, each different from its default.
    const FILE: &str = r#"
        [capture]
        iface = "eth1"
        capture = "af-packet"
        queues = "0-3"
        cpus = [4, 5, 6, 7]
        xdp_mode = "skb"
        threads = 3
        ring_frames = 4096
        all_frames = true
        user = "tcpulse"
        promisc = true
        duration = "90s"
        no_analysis = true
        [pipeline]
        interval = "500ms"
        workers = 4
        top_servers = 50
        anonymize = "key.bin"
        watch = ["10.0.0.0/8:443", ":5432"]
        filter = "tcp port 443"
        [flow_table]
        max_flows = 4000000
        idle_timeout = "600s"
        half_open_timeout = "30s"
        close_linger = "120s"
        half_closed_stall = "10s"
        key_tunnel = "all"
        rtt_source = "timestamps"
        rtt_rate_limit = "50ms"
        [output]
        records = "intervals.jsonl"
        flows = "flows.jsonl"
        [[sink]]
        kind = "file"
        path = "sink.jsonl"
        max_bytes = "100M"
        keep = 3
    "#;

    /// `argv` parsed as main parses it, then `FILE` applied.
    fn run_with_file(argv: &[&str]) -> Config {
        let matches = Cli::command()
            .try_get_matches_from(argv)
            .expect("valid command line");
        let Ok(Cli {
            command: Command::Run(mut args),
        }) = Cli::from_arg_matches(&matches)
        else {
            panic!("not a run command");
        };
        let (_, given) = matches.subcommand().expect("a subcommand");
        Config::parse(FILE).unwrap().apply_to_run(&mut args, given);
        Config::of_run(&args)
    }

    #[test]
    fn every_option_of_run_and_analyze_has_a_key() {
        // The leaf names of a file that sets every key; `records` is `--output`.
        let full = toml::Table::try_from(Config::parse(FILE).unwrap()).unwrap();
        // Arrays of tables (`[[sink]]`) stand for their repeated flag (`--sink`).
        let keys: Vec<&str> = full
            .values()
            .filter_map(toml::Value::as_table)
            .flat_map(|section| section.keys().map(String::as_str))
            .chain(
                full.iter()
                    .filter(|(_, v)| v.is_array())
                    .map(|(k, _)| k.as_str()),
            )
            .map(|k| if k == "records" { "output" } else { k })
            .collect();
        // Not settings of the job: the file itself, the terminal, the inputs.
        let exempt = ["config", "progress", "files", "help"];
        for command in [
            RunArgs::augment_args(clap::Command::new("run")),
            AnalyzeArgs::augment_args(clap::Command::new("analyze")),
        ] {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                assert!(
                    keys.contains(&id) || exempt.contains(&id),
                    "--{id} has no key in the configuration file"
                );
            }
        }
    }

    #[test]
    fn the_file_replaces_every_default() {
        let resolved = run_with_file(&["tcpulse", "run", "--config", "f.toml"]);
        assert_eq!(resolved, Config::parse(FILE).unwrap());
    }

    #[test]
    fn every_flag_overrides_the_file() {
        // Each flag differs from both the file and the default, so a clap id misspelt in
        // `apply_to_*` shows up as the file's value winning.
        let resolved = run_with_file(&[
            "tcpulse",
            "run",
            "--config=f.toml",
            "--iface=eth9",
            "--capture=xdp",
            "--queues=1",
            "--cpus=2",
            "--xdp-mode=native",
            "--threads=2",
            "--ring-frames=65536",
            "--duration=5s",
            "--interval=2s",
            "--workers=3",
            "--top-servers=7",
            "--anonymize=other.key",
            "--watch=192.0.2.0/24",
            "--filter=host 192.0.2.1",
            "--user=nobody",
            "--max-flows=1000",
            "--idle-timeout=11s",
            "--half-open-timeout=12s",
            "--close-linger=13s",
            "--half-closed-stall=14s",
            "--key-tunnel=none",
            "--rtt-source=seq-ack",
            "--rtt-rate-limit=7ms",
            "--output=-",
            "--flows=other.jsonl",
            "--sink=stdout",
        ]);
        let expected = r#"
            [capture]
            iface = "eth9"
            capture = "xdp"
            queues = [1]
            cpus = [2]
            xdp_mode = "native"
            threads = 2
            ring_frames = 65536
            all_frames = true
            user = "nobody"
            promisc = true
            duration = "5s"
            no_analysis = true
            [pipeline]
            interval = "2s"
            workers = 3
            top_servers = 7
            anonymize = "other.key"
            watch = ["192.0.2.0/24"]
            filter = "host 192.0.2.1"
            [flow_table]
            max_flows = 1000
            idle_timeout = "11s"
            half_open_timeout = "12s"
            close_linger = "13s"
            half_closed_stall = "14s"
            key_tunnel = "none"
            rtt_source = "seq-ack"
            rtt_rate_limit = "7ms"
            [output]
            records = "-"
            flows = "other.jsonl"
            [[sink]]
            kind = "stdout"
        "#;
        assert_eq!(resolved, Config::parse(expected).unwrap());
    }

    #[test]
    fn a_flag_equal_to_its_default_still_overrides_the_file() {
        let resolved = run_with_file(&["tcpulse", "run", "--config=f", "--interval=1s"]);
        assert_eq!(resolved.pipeline.interval, Some(Duration::from_secs(1)));
        assert_eq!(resolved.pipeline.workers, Some(4), "the file still applies");
    }

    #[test]
    fn analyze_takes_the_shared_sections_only() {
        let argv = ["tcpulse", "analyze", "x.pcap", "--config=f", "--workers=2"];
        let matches = Cli::command().try_get_matches_from(argv).unwrap();
        let Ok(Cli {
            command: Command::Analyze(mut args),
        }) = Cli::from_arg_matches(&matches)
        else {
            panic!("not an analyze command");
        };
        let (_, given) = matches.subcommand().unwrap();
        Config::parse(FILE)
            .unwrap()
            .apply_to_analyze(&mut args, given);
        let resolved = Config::of_analyze(&args);
        assert_eq!(resolved.capture, CaptureSection::default());
        assert_eq!(resolved.pipeline.workers, Some(2));
        assert_eq!(resolved.pipeline.top_servers, Some(50));
        assert_eq!(resolved.output.flows.as_deref(), Some("flows.jsonl"));
    }
}
