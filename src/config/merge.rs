//! File and command line together: a value given on the command line wins, then the file's,
//! then clap's default. "Given on the command line" is clap's `ValueSource::CommandLine`, so a
//! flag repeating its default still overrides the file.

use clap::parser::ValueSource;
use clap::ArgMatches;

use super::{Capture, Config, FlowTable, Output, Pipeline};
use crate::cli::{AnalyzeArgs, PipelineArgs, RunArgs};

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
        overlay(&mut p.output, out.records, cli, "output");
        overlay(&mut p.flows, out.flows.map(Some), cli, "flows");
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
    }

    /// Every setting a `run` uses, in the file's terms (an empty interface is left out).
    pub fn of_run(args: &RunArgs) -> Config {
        Config {
            capture: Capture {
                iface: Some(args.iface.clone()).filter(|i| !i.is_empty()),
                capture: Some(args.capture),
                queues: args.queues.clone(),
                cpus: args.cpus.clone(),
                xdp_mode: Some(args.xdp_mode),
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
            capture: Capture::default(),
            pipeline: Pipeline {
                interval: Some(p.interval),
                workers: Some(p.workers),
                top_servers: Some(p.top_servers),
            },
            flow_table: FlowTable {
                max_flows: Some(p.table.max_flows),
                idle_timeout: Some(p.table.idle_timeout),
                half_open_timeout: Some(p.table.half_open_timeout),
                close_linger: Some(p.table.close_linger),
                half_closed_stall: Some(p.table.half_closed_stall),
            },
            output: Output {
                records: Some(p.output.clone()),
                flows: p.flows.clone(),
            },
        }
    }
}
