//! JSON lines to a file, with rotation by size and/or age and reopening on SIGHUP.
//!
//! A batch is written with one `write` of whole lines; if it fails part-way (disk full) the
//! file is cut back to where the batch started, so the file only ever holds whole records and
//! a retry does not duplicate any.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{time, Outgoing, Sink};

/// When a file is renamed aside and a new one started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rotation {
    /// Rotate before a batch would take the file past this size.
    pub max_bytes: Option<u64>,
    /// Rotate before writing to a file opened this long ago.
    pub max_age: Option<Duration>,
    /// Rotated files kept (the oldest beyond it are deleted).
    pub keep: usize,
}

pub struct FileSink {
    path: PathBuf,
    file: Option<File>,
    /// Bytes in the file: where a failed batch is cut back to.
    len: u64,
    opened: Instant,
    rotation: Rotation,
    buf: Vec<u8>,
}

impl FileSink {
    /// Opens `path` now, so a bad path fails before the run starts; `truncate` empties it (the
    /// main output), otherwise records are appended (a `--sink file:` survives restarts).
    pub fn open(path: &Path, truncate: bool, rotation: Rotation) -> io::Result<FileSink> {
        if truncate {
            File::create(path).map_err(|e| annotate(e, path))?;
        }
        let mut sink = FileSink {
            path: path.to_path_buf(),
            file: None,
            len: 0,
            opened: Instant::now(),
            rotation,
            buf: Vec::new(),
        };
        sink.open_file()?;
        Ok(sink)
    }

    fn open_file(&mut self) -> io::Result<&mut File> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| annotate(e, &self.path))?;
        self.len = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.opened = Instant::now();
        Ok(self.file.insert(file))
    }

    fn due(&self, adding: usize) -> bool {
        let r = &self.rotation;
        self.len > 0
            && (r
                .max_bytes
                .is_some_and(|max| self.len + adding as u64 > max)
                || r.max_age.is_some_and(|age| self.opened.elapsed() >= age))
    }

    /// Renames the file to `PATH.<UTC time>` (`-1`, `-2`... within one second), starts a new
    /// one and deletes rotated files beyond `keep`.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let stamp = time::compact(secs);
        let mut aside = suffixed(&self.path, &stamp);
        let mut n = 1;
        while aside.exists() {
            aside = suffixed(&self.path, &format!("{stamp}-{n}"));
            n += 1;
        }
        match fs::rename(&self.path, &aside) {
            // Moved away by someone else (logrotate): nothing to rename.
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(annotate(e, &self.path));
            }
            _ => {}
        }
        self.open_file()?;
        self.prune();
        Ok(())
    }

    /// Rotated files are `NAME.<digits...>` beside the file; their names sort by time.
    fn prune(&self) {
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return;
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let prefix = format!("{}.", name.to_string_lossy());
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        let mut rotated: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| {
                n.strip_prefix(&prefix)
                    .is_some_and(|rest| rest.len() >= 16 && rest.as_bytes()[0].is_ascii_digit())
            })
            .collect();
        // Time first, then the `-N` of rotations within one second, as a number.
        rotated.sort_by_key(|n| {
            let rest = &n[prefix.len()..];
            let (stamp, count) = rest.split_once('-').unwrap_or((rest, "0"));
            (stamp.to_string(), count.parse::<u64>().unwrap_or(0))
        });
        let excess = rotated.len().saturating_sub(self.rotation.keep);
        for old in &rotated[..excess] {
            let _ = fs::remove_file(dir.join(old));
        }
    }
}

impl Sink for FileSink {
    fn name(&self) -> String {
        format!("file:{}", self.path.display())
    }

    fn deliver(&mut self, records: &[Outgoing]) -> io::Result<()> {
        self.buf.clear();
        for r in records {
            self.buf.extend_from_slice(r.json.as_bytes());
            self.buf.push(b'\n');
        }
        if self.file.is_none() || self.due(self.buf.len()) {
            if self.file.is_some() {
                self.rotate()?;
            } else {
                self.open_file()?;
            }
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("no file open"));
        };
        match file.write_all(&self.buf) {
            Ok(()) => {
                self.len += self.buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Whole lines only: drop what part of the batch made it.
                let _ = file.set_len(self.len);
                Err(e)
            }
        }
    }

    fn reopen(&mut self) -> io::Result<()> {
        // Writes go straight to the file (no buffer), so everything delivered so far is in
        // the old file, wherever it was moved; the next batch goes to a new one.
        self.file = None;
        self.open_file().map(drop)
    }
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

fn annotate(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use tcpulse_core::schema::{IntervalRecord, Record};

    /// A record whose line is `text` (the sink writes lines, whatever record they are).
    fn record(text: &str) -> Outgoing {
        Outgoing {
            record: Arc::new(Record::Interval(Box::new(IntervalRecord::new(
                0,
                0,
                String::new(),
            )))),
            json: Arc::from(text),
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tcpulse-file-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn rotated(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "x.jsonl")
            .collect();
        names.sort();
        names
    }

    #[test]
    fn rotates_by_size_and_keeps_n_files() {
        let dir = temp_dir("size");
        let path = dir.join("x.jsonl");
        let rotation = Rotation {
            max_bytes: Some(25),
            keep: 2,
            ..Rotation::default()
        };
        let mut sink = FileSink::open(&path, true, rotation).unwrap();
        let mut all = String::new();
        for i in 0..8 {
            let line = format!("{{\"n\":{i:05}}}"); // 11 bytes + newline
            sink.deliver(&[record(&line)]).unwrap();
            all.push_str(&line);
            all.push('\n');
        }
        // 12-byte lines, 25-byte files: two lines per file, four files, two rotated kept.
        let kept = rotated(&dir);
        assert_eq!(kept.len(), 2, "{kept:?}");
        let mut seen = String::new();
        for name in &kept {
            seen.push_str(&fs::read_to_string(dir.join(name)).unwrap());
        }
        seen.push_str(&fs::read_to_string(&path).unwrap());
        assert_eq!(seen, all[24..], "the newest records, in order, none lost");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rotates_by_age() {
        let dir = temp_dir("age");
        let path = dir.join("x.jsonl");
        let rotation = Rotation {
            max_age: Some(Duration::from_millis(50)),
            keep: 5,
            ..Rotation::default()
        };
        let mut sink = FileSink::open(&path, true, rotation).unwrap();
        sink.deliver(&[record("{\"a\":1}")]).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        sink.deliver(&[record("{\"a\":2}")]).unwrap();
        assert_eq!(rotated(&dir).len(), 1);
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"a\":2}\n");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reopen_after_a_rename_loses_nothing() {
        let dir = temp_dir("hup");
        let path = dir.join("x.jsonl");
        let mut sink = FileSink::open(&path, false, Rotation::default()).unwrap();
        sink.deliver(&[record("1")]).unwrap();
        fs::rename(&path, dir.join("x.jsonl.old")).unwrap();
        sink.deliver(&[record("2")]).unwrap(); // still the renamed file, as logrotate expects
        sink.reopen().unwrap();
        sink.deliver(&[record("3")]).unwrap();
        assert_eq!(
            fs::read_to_string(dir.join("x.jsonl.old")).unwrap(),
            "1\n2\n"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "3\n");
        fs::remove_dir_all(dir).unwrap();
    }
}
