//! The mounted filesystem, through the kernel: it behaves like a plain
//! directory, and a crash keeps exactly what was synced.
//!
//! Needs root and /dev/fuse (skipped otherwise).

use std::{
    fs::{self, File, OpenOptions},
    io::{BufRead, BufReader, Read},
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
};

fn skip_reason() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root");
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse is absent");
    }
    None
}

/// A lazyfs mount over a fresh directory; unmounted on drop.
struct Mount {
    child: Child,
    out: BufReader<ChildStdout>,
    dir: tempfile::TempDir,
}

impl Mount {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("backing")).expect("mkdir");
        fs::create_dir_all(dir.path().join("mnt")).expect("mkdir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_lazyfs"))
            .arg("--backing")
            .arg(dir.path().join("backing"))
            .arg("--mount")
            .arg(dir.path().join("mnt"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("lazyfs");
        let out = BufReader::new(child.stdout.take().expect("piped"));
        let mut mount = Self { child, out, dir };
        assert!(mount.line().starts_with("lazyfs: mounted"));
        mount
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).expect("lazyfs output");
        line
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join("mnt").join(name)
    }

    /// Power loss; returns lazyfs's report.
    fn crash(&mut self) -> String {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGUSR1) };
        self.line()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = Command::new("umount").arg("-l").arg(self.dir.path().join("mnt")).stderr(Stdio::null()).status();
    }
}

fn read(path: &Path) -> Vec<u8> {
    let mut buf = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut buf)).expect("read");
    buf
}

#[test]
fn a_crash_keeps_exactly_what_was_synced() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED a_crash_keeps_exactly_what_was_synced: {why}");
        return;
    }
    let mut m = Mount::new();
    let rw = || OpenOptions::new().read(true).write(true).create(true).clone();

    let synced = rw().open(m.path("synced")).unwrap();
    synced.write_all_at(b"kept", 0).unwrap();
    synced.sync_data().unwrap();
    synced.write_all_at(b" lost", 4).unwrap();
    synced.write_all_at(b"K", 0).unwrap();
    assert_eq!(read(&m.path("synced")), b"Kept lost", "readers see unsynced data");

    fs::write(m.path("closed"), b"closed, never synced").unwrap();
    rw().custom_flags(libc::O_DSYNC).open(m.path("dsync")).unwrap().write_all_at(b"O_DSYNC", 0).unwrap();

    let moved = rw().open(m.path("before")).unwrap();
    moved.write_all_at(b"renamed then synced", 0).unwrap();
    fs::rename(m.path("before"), m.path("after")).unwrap();
    moved.sync_all().unwrap();

    fs::write(m.path("cut"), vec![7; 10_000]).unwrap();
    File::open(m.path("cut")).unwrap().sync_all().unwrap();
    rw().open(m.path("cut")).unwrap().set_len(100).unwrap();

    let appender = rw().append(true).open(m.path("append")).unwrap();
    appender.write_all_at(b"durable.", 0).unwrap();
    appender.sync_data().unwrap();
    appender.write_all_at(b"volatile.", 0).unwrap();

    let report = m.crash();
    assert_eq!(report.trim(), "lazyfs: crash: dropped 35 bytes unsynced in 3 files");
    assert_eq!(read(&m.path("synced")), b"kept");
    assert_eq!(read(&m.path("closed")), b"", "metadata is durable, unsynced data is not");
    assert_eq!(read(&m.path("dsync")), b"O_DSYNC");
    assert_eq!(read(&m.path("after")), b"renamed then synced");
    assert!(!m.path("before").exists());
    assert_eq!(read(&m.path("cut")), vec![7; 100], "truncation is metadata");
    appender.write_all_at(b"after", 0).unwrap();
    assert_eq!(read(&m.path("append")), b"durable.after", "appends go to the end that survived");
}

/// Random writes, reads, truncates, renames and unlinks through several
/// handles, mirrored on a plain directory: both must always agree.
#[test]
fn behaves_like_a_plain_directory() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED behaves_like_a_plain_directory: {why}");
        return;
    }
    let m = Mount::new();
    let plain = tempfile::tempdir().unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let names = ["a", "b", "c"];
    let mut open: Vec<(File, File)> = Vec::new();
    for step in 0..3_000 {
        let name = names[next(3) as usize];
        let (ours, theirs) = (m.path(name), plain.path().join(name));
        match next(8) {
            0 if open.len() < 6 => {
                let o = OpenOptions::new().read(true).write(true).create(true).append(next(4) == 0).clone();
                open.push((o.open(&ours).unwrap(), o.open(&theirs).unwrap()));
            }
            1 | 2 if !open.is_empty() => {
                let (a, b) = &open[next(open.len() as u64) as usize];
                let data: Vec<u8> = (0..1 + next(9_000)).map(|i| (i ^ step) as u8).collect();
                let at = next(20_000);
                a.write_all_at(&data, at).unwrap();
                b.write_all_at(&data, at).unwrap();
            }
            3 if !open.is_empty() => {
                let (a, b) = &open[next(open.len() as u64) as usize];
                let (mut x, mut y) = (vec![0; next(10_000) as usize], Vec::new());
                let at = next(25_000);
                let n = a.read_at(&mut x, at).unwrap();
                y.resize(x.len(), 0);
                let k = b.read_at(&mut y, at).unwrap();
                assert_eq!(x[..n], y[..k], "step {step}: read {} at {at}", x.len());
            }
            4 if theirs.exists() => {
                let len = next(20_000);
                File::options().write(true).open(&ours).unwrap().set_len(len).unwrap();
                File::options().write(true).open(&theirs).unwrap().set_len(len).unwrap();
            }
            5 if theirs.exists() => {
                let to = names[next(3) as usize];
                fs::rename(&ours, m.path(to)).unwrap();
                fs::rename(&theirs, plain.path().join(to)).unwrap();
            }
            6 if theirs.exists() && next(3) == 0 => {
                fs::remove_file(&ours).unwrap();
                fs::remove_file(&theirs).unwrap();
            }
            7 if !open.is_empty() => {
                let (a, _) = open.swap_remove(next(open.len() as u64) as usize);
                if next(2) == 0 {
                    a.sync_all().unwrap();
                }
            }
            _ => {}
        }
        for n in names {
            let (x, y) = (m.path(n), plain.path().join(n));
            assert_eq!(x.exists(), y.exists(), "step {step}: {n}");
            if y.exists() {
                assert_eq!(fs::metadata(&x).unwrap().len(), fs::metadata(&y).unwrap().len(), "step {step}: {n}");
            }
        }
    }
    for n in names {
        if plain.path().join(n).exists() {
            assert_eq!(read(&m.path(n)), read(&plain.path().join(n)), "{n}");
        }
    }
}
