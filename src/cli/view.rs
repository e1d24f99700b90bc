//! `tcpulse merge`, `report` and `plot`: reading interval records (files or standard input) and
//! handing them to `crate::view`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;

use tcpulse_io::sink::JsonLines;

use super::{exit, fail_write as fail_output};
use crate::view::merge::{parse_window, Merged, Merger, Window};
use crate::view::plot;
use crate::view::report::{self, Style, Thresholds};

/// Grouping and per-server selection, shared by the three commands.
#[derive(Args, Debug, Clone)]
pub struct WindowArgs {
    /// Window to merge into: a duration (`10s`, `1m`; aligned to multiples of it, as the
    /// analysis aligns intervals), `all` (one record), or `own` (records of the same interval
    /// merge; the default).
    #[arg(long, default_value = "own", value_parser = parse_window)]
    pub window: Window,

    /// Servers listed per window by traffic (plus as many with handshake trouble), as the
    /// analysis selects them.
    #[arg(long, default_value_t = 20)]
    pub top_servers: usize,
}

#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// Files of JSON lines (`tcpulse analyze` or `run` output); `-` is standard input. Only
    /// interval records are merged; flow records are passed over.
    #[arg(required = true)]
    pub files: Vec<String>,

    #[command(flatten)]
    pub window: WindowArgs,

    /// Where merged records go (`-` for standard output).
    #[arg(long, short, default_value = "-")]
    pub output: String,
}

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// A file of JSON lines, or `-` (the default) for standard input, e.g. live from
    /// `tcpulse run -o -`: a table is printed as each window completes.
    #[arg(default_value = "-")]
    pub files: Vec<String>,

    /// Window of each table: `all` (the default: one table for the whole input; on a terminal
    /// it is redrawn as live records arrive), a duration (`10s`, `1m`) or `own` (one table per
    /// interval record, printed as each completes).
    #[arg(long, default_value = "all", value_parser = parse_window)]
    pub window: Window,

    /// Servers listed per window by traffic (plus as many with handshake trouble).
    #[arg(long, default_value_t = 20)]
    pub top_servers: usize,

    /// Colours: `auto` (only when standard output is a terminal), `always`, `never`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub color: String,

    #[command(flatten)]
    pub thresholds: Thresholds,
}

#[derive(Args, Debug, Clone)]
pub struct PlotArgs {
    /// Files of JSON lines; `-` is standard input.
    #[arg(required = true)]
    pub files: Vec<String>,

    /// Directory the SVG files are written to (created if missing).
    #[arg(long, short)]
    pub output: PathBuf,

    /// Servers drawn (the busiest by handshakes, then by packets).
    #[arg(long, default_value_t = 5)]
    pub top: usize,

    /// Time step of the rate and ratio charts (default: the records' own interval).
    #[arg(long, default_value = "own", value_parser = parse_window)]
    pub window: Window,
}

/// Feeds every line of `files` to `merger`; `each` runs after every interval record with the
/// window it went to. Returns the exit code so far (unreadable inputs).
fn read_inputs(
    files: &[String],
    merger: &mut Merger,
    mut each: impl FnMut(&mut Merger, u64) -> io::Result<()>,
) -> Result<i32, io::Error> {
    let mut code = exit::OK;
    for name in files {
        let reader: Box<dyn BufRead> = if name == "-" {
            Box::new(io::stdin().lock())
        } else {
            match File::open(name) {
                Ok(f) => Box::new(BufReader::new(f)),
                Err(e) => {
                    eprintln!("tcpulse: {name}: {e}");
                    code = code.max(exit::INPUT_UNREADABLE);
                    continue;
                }
            }
        };
        // Lines are read as bytes: a line that is not UTF-8 is one malformed line, not the end.
        for line in reader.split(b'\n') {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("tcpulse: {name}: {e}; the lines before it were read");
                    code = code.max(exit::INPUT_DAMAGED);
                    break;
                }
            };
            let Ok(text) = std::str::from_utf8(&line) else {
                merger.stats.malformed += 1;
                continue;
            };
            if let Some(key) = merger.push_line(text) {
                each(merger, key)?;
            }
        }
    }
    Ok(code)
}

fn report_stats(command: &str, merger_stats: &crate::view::merge::ReadStats) {
    eprintln!("tcpulse {command}: {}", merger_stats.describe());
}

pub fn merge(args: &MergeArgs) -> i32 {
    let mut out = match JsonLines::open(&args.output) {
        Ok(o) => o,
        Err(e) => return fail_output(&e),
    };
    let mut merger = Merger::new(args.window.window, args.window.top_servers);
    let mut written = 0u64;
    // Live input (`-`) moves forward in time: write each window once a later one starts.
    let live = args.files.iter().any(|f| f == "-");
    let read = read_inputs(&args.files, &mut merger, |m, key| {
        if live {
            for w in m.take_before(key) {
                out.write(&w.record)?;
                written += 1;
            }
            out.flush()?;
        }
        Ok(())
    });
    let code = match read {
        Ok(code) => code,
        Err(e) => return fail_output(&e),
    };
    let stats = merger.stats.clone();
    for w in merger.finish() {
        if let Err(e) = out.write(&w.record) {
            return fail_output(&e);
        }
        written += 1;
    }
    if let Err(e) = out.flush() {
        return fail_output(&e);
    }
    report_stats("merge", &stats);
    eprintln!("tcpulse merge: {written} merged records written");
    code
}

pub fn report(args: &ReportArgs) -> i32 {
    let stdout = io::stdout();
    let tty = stdout.is_terminal();
    let style = Style {
        color: match args.color.as_str() {
            "always" => true,
            "never" => false,
            _ => tty,
        },
    };
    let mut out = io::BufWriter::new(stdout.lock());
    let mut merger = Merger::new(args.window, args.top_servers);
    let live = args.files.iter().any(|f| f == "-");
    let th = &args.thresholds;
    let print = |out: &mut dyn Write, w: &Merged| -> io::Result<()> {
        out.write_all(report::render(w, th, style).as_bytes())?;
        out.flush()
    };
    let read = read_inputs(&args.files, &mut merger, |m, key| {
        if !live {
            return Ok(());
        }
        for w in m.take_before(key) {
            print(&mut out, &w)?;
        }
        // On a terminal the open window is redrawn as records arrive (one window, `all`).
        if tty && args.window == Window::All {
            if let Some(w) = m.peek(key) {
                out.write_all(b"\x1b[2J\x1b[H")?;
                print(&mut out, &w)?;
            }
        }
        Ok(())
    });
    let code = match read {
        Ok(code) => code,
        Err(e) => return fail_output(&e),
    };
    let stats = merger.stats.clone();
    let windows = merger.finish();
    if windows.is_empty() {
        eprintln!("tcpulse report: no interval records");
    }
    for w in &windows {
        if let Err(e) = print(&mut out, w) {
            return fail_output(&e);
        }
    }
    if stats.malformed + stats.bad_hdr + stats.bad_servers > 0 {
        report_stats("report", &stats);
    }
    code
}

pub fn plot(args: &PlotArgs) -> i32 {
    // Two passes over the same records: the whole input for distributions, windows for time.
    let mut series = Merger::new(args.window, usize::MAX);
    let mut whole = Merger::new(Window::All, usize::MAX);
    let mut code = exit::OK;
    let mut lines: Vec<String> = Vec::new();
    let read = read_inputs(&args.files, &mut series, |_, _| Ok(()));
    match read {
        Ok(c) => code = code.max(c),
        Err(e) => return fail_output(&e),
    }
    // Standard input cannot be read twice: re-read only named files; for `-`, the windows
    // are merged once more into one.
    let windows = series.finish();
    for w in &windows {
        if let Ok(text) = serde_json::to_string(&w.record) {
            lines.push(text);
        }
    }
    for l in &lines {
        whole.push_line(l);
    }
    let total = whole.finish();
    let Some(total) = total.first() else {
        eprintln!("tcpulse plot: no interval records");
        return code.max(exit::INPUT_UNREADABLE);
    };
    if let Err(e) = std::fs::create_dir_all(&args.output) {
        eprintln!("tcpulse plot: {}: {e}", args.output.display());
        return exit::OUTPUT_FAILED;
    }
    for (name, svg) in plot::charts(total, &windows, args.top) {
        let path = args.output.join(name);
        if let Err(e) = std::fs::write(&path, svg) {
            eprintln!("tcpulse plot: {}: {e}", path.display());
            return exit::OUTPUT_FAILED;
        }
        eprintln!("tcpulse plot: wrote {}", path.display());
    }
    code
}
