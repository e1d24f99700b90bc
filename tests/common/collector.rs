//! Stand-ins for the destinations of sinks: a tiny HTTP collector on loopback that answers
//! every POST (or never answers), and a ClickHouse server of the test's own.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A loopback port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// An HTTP collector on 127.0.0.1: keeps the lines of every POST body and answers 200, or,
/// `silent`, accepts and never answers. Stops on drop.
pub struct Collector {
    pub port: u16,
    pub lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    pub fn start(port: u16, silent: bool) -> Collector {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the collector");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("address").port();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (lines.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) if silent => held.push(conn),
                    Ok((conn, _)) => serve(conn, &l),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Collector {
            port,
            lines,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/ingest", self.port)
    }

    pub fn received(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request (headers, then Content-Length bytes), keeps its lines, answers 200.
fn serve(mut conn: TcpStream, lines: &Mutex<Vec<String>>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut got = Vec::new();
    let mut chunk = [0u8; 65536];
    let body_start = loop {
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&got[..body_start]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while got.len() < body_start + length {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&got[body_start..body_start + length]).into_owned();
    lines
        .lock()
        .expect("lines")
        .extend(body.lines().map(str::to_string));
    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

/// Whether Debian's ClickHouse server is installed (scripts/setup installs it).
pub fn clickhouse_installed() -> bool {
    Command::new("clickhouse-server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A ClickHouse server of the test's own: a temporary data directory, its own configuration
/// and ports, listening on 127.0.0.1 (inside network namespace `netns` if given). Killed and
/// removed on drop.
pub struct ClickHouse {
    pub http_port: u16,
    tcp_port: u16,
    netns: Option<String>,
    dir: PathBuf,
    child: Option<Child>,
}

impl ClickHouse {
    pub fn start(tag: &str, netns: Option<&str>) -> ClickHouse {
        let dir = std::env::temp_dir().join(format!("tcpulse-ch-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).expect("clickhouse data dir");
        let mut ch = ClickHouse {
            http_port: free_port(),
            tcp_port: free_port(),
            netns: netns.map(str::to_string),
            dir,
            child: None,
        };
        ch.write_config();
        ch.restart();
        ch
    }

    fn write_config(&self) {
        let d = self.dir.display();
        let xml = format!(
            "<?xml version=\"1.0\"?>\n<yandex>\n\
             <logger><level>warning</level><console>1</console></logger>\n\
             <http_port>{}</http_port>\n<tcp_port>{}</tcp_port>\n\
             <listen_host>127.0.0.1</listen_host>\n\
             <path>{d}/data/</path>\n<tmp_path>{d}/tmp/</tmp_path>\n\
             <user_files_path>{d}/user_files/</user_files_path>\n\
             <format_schema_path>{d}/format_schemas/</format_schema_path>\n\
             <mark_cache_size>5368709120</mark_cache_size>\n\
             <max_concurrent_queries>20</max_concurrent_queries>\n\
             <users><default><password></password><networks><ip>127.0.0.1</ip></networks>\
             <profile>default</profile><quota>default</quota></default></users>\n\
             <profiles><default></default></profiles>\n<quotas><default></default></quotas>\n\
             </yandex>\n",
            self.http_port, self.tcp_port
        );
        std::fs::write(self.dir.join("config.xml"), xml).expect("clickhouse config");
    }

    fn command(&self, program: &str) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        }
    }

    /// Starts the server (again, on the same data and ports) and waits until it answers.
    pub fn restart(&mut self) {
        let log = std::fs::File::create(self.dir.join("log")).expect("clickhouse log");
        let child = self
            .command("clickhouse-server")
            .arg(format!(
                "--config-file={}",
                self.dir.join("config.xml").display()
            ))
            .current_dir(&self.dir)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start clickhouse-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.try_query("SELECT 1").as_deref() != Some("1") {
            assert!(
                Instant::now() < deadline,
                "clickhouse-server did not start: {}",
                std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGKILL: the server dies mid-run, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn try_query(&self, sql: &str) -> Option<String> {
        let out = self
            .command("clickhouse-client")
            .args(["--host", "127.0.0.1", "--port", &self.tcp_port.to_string()])
            .args(["--query", sql])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The answer as tab-separated text.
    pub fn query(&self, sql: &str) -> String {
        self.try_query(sql)
            .unwrap_or_else(|| panic!("clickhouse query failed: {sql}"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
