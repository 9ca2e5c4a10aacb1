//! HEIC pixels are decoded in a process of their own.
//!
//! libde265 (HEVC, behind libheif) leaves parts of its picture buffers
//! unwritten on some malformed streams and reports no error; libheif copies
//! them out as pixels (found by the memcheck stage on mutated seeds). In the
//! worker's own heap those bytes would be whatever an earlier job left there
//! — another tenant's photo — and would reach this job's output. A freshly
//! executed process has no earlier job: its unwritten memory is its own input
//! or the kernel's zeroed pages. A crash or hang in the decoder also ends that
//! process, not the worker.
//!
//! The helper is the worker binary itself (`worker --decode-heic`): the
//! HEIF bytes on stdin, raw RGB(A) rows on stdout, a message on stderr and a
//! non-zero exit on failure. AVIF needs none of this: dav1d refuses what it
//! cannot decode.

use super::heif::{self, Error, Info};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The argument that makes the worker binary the decoder.
pub const HELPER_ARG: &str = "--decode-heic";

/// How long one decode may take before the helper is killed: a 50 MP grid
/// decodes in a few seconds.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Exit codes: how the parent tells the kinds of failure apart.
const EXIT_REFUSED: i32 = 3;
const EXIT_UNSUPPORTED: i32 = 4;
const EXIT_OOM: i32 = 5;

static HELPER: OnceLock<PathBuf> = OnceLock::new();

/// The binary started as the helper; the first call wins. Without one, this
/// executable (the worker's own `main` answers [`HELPER_ARG`]); tests and
/// benchmarks, which are other executables, name the worker binary here.
pub fn set_helper(path: PathBuf) {
    let _ = HELPER.set(path);
}

fn helper() -> Result<PathBuf, Error> {
    if let Some(path) = HELPER.get() {
        return Ok(path.clone());
    }
    std::env::current_exe().map_err(|e| Error::OutOfMemory(format!("no path to the HEIC decoder: {e}")))
}

/// Decodes `input` (whose header gave `info`) in a helper process.
pub fn decode(input: &[u8], info: &Info) -> Result<Vec<u8>, Error> {
    let spawn_failed = |e: std::io::Error| Error::OutOfMemory(format!("starting the HEIC decoder: {e}"));
    let mut child = Command::new(helper()?)
        .arg(HELPER_ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_failed)?;
    let pid = child.id() as libc::pid_t;
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let expected = info.width as usize * info.height as usize * channels(info);
    let (done, watchdog) = std::sync::mpsc::channel::<()>();
    // Scoped: the writer borrows the input instead of copying it.
    let (pixels, read, status, message) = std::thread::scope(|scope| {
        scope.spawn(move || {
            if watchdog.recv_timeout(TIMEOUT) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                // SAFETY: kill(2) on our own child's pid, which is not reaped until `wait` below returns.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        scope.spawn(move || {
            // A helper that stops early closes its end: the error is its exit status's to explain.
            let _ = stdin.write_all(input);
        });
        let errors = scope.spawn(move || {
            let mut text = String::new();
            let _ = stderr.by_ref().take(4096).read_to_string(&mut text);
            text
        });
        let mut pixels = Vec::with_capacity(expected);
        let read = stdout.by_ref().take(expected as u64 + 1).read_to_end(&mut pixels);
        let status = child.wait();
        let _ = done.send(());
        (pixels, read, status, errors.join().unwrap_or_default())
    });
    let status = status.map_err(spawn_failed)?;
    let message = message.lines().last().unwrap_or("").to_owned();
    match status.code() {
        Some(0) if read.is_ok() && pixels.len() == expected => Ok(pixels),
        Some(0) => Err(Error::Refused(format!("HEIC decoder gave {} bytes for {expected}", pixels.len()))),
        Some(EXIT_UNSUPPORTED) => Err(Error::Unsupported(message)),
        Some(EXIT_OOM) => Err(Error::OutOfMemory(message)),
        Some(EXIT_REFUSED) => Err(Error::Refused(message)),
        // Killed by the watchdog or a signal of its own: the input made the decoder fail.
        _ => Err(Error::Refused(format!("HEIC decoder stopped ({status}) {message}").trim_end().to_owned())),
    }
}

fn channels(info: &Info) -> usize {
    if info.alpha { 4 } else { 3 }
}

/// The helper's side: reads HEIF bytes from stdin, writes the pixels of
/// [`heif::decode`] to stdout. Returns the exit code.
pub fn helper_main() -> i32 {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut input) {
        eprintln!("reading the input: {e}");
        return EXIT_REFUSED;
    }
    let result = heif::info(&input).and_then(|info| heif::decode(&input, &info));
    match result {
        Ok(pixels) => match std::io::stdout().lock().write_all(&pixels) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("writing the pixels: {e}");
                EXIT_REFUSED
            }
        },
        Err(e) => {
            eprintln!("{e}");
            match e {
                Error::Refused(_) => EXIT_REFUSED,
                Error::Unsupported(_) => EXIT_UNSUPPORTED,
                Error::OutOfMemory(_) => EXIT_OOM,
            }
        }
    }
}
