//! `lazyfs --backing DIR --mount MNT`: see the crate documentation.

use anyhow::Context;
use clap::Parser;
use lazyfs::{
    LazyFs,
    report::{CRASHED, MOUNTED, SYNCED},
};
use std::{path::PathBuf, ptr};

#[derive(Parser)]
#[command(about = "A passthrough FUSE filesystem that keeps unsynced writes in memory until fsync")]
struct Args {
    /// The directory whose contents are served, and where synced data lands.
    #[arg(long)]
    backing: PathBuf,
    /// Where to mount it.
    #[arg(long)]
    mount: PathBuf,
    /// Threads serving FUSE requests.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn sigset(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset uses it.
    unsafe {
        let mut set = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let signals = sigset(&[libc::SIGUSR1, libc::SIGUSR2, libc::SIGTERM, libc::SIGINT]);
    // SAFETY: plain libc calls. The signals are blocked before any thread
    // starts, so every thread inherits the mask and only sigwait sees them.
    // The kernel already applied the caller's umask to the modes it sends.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &signals, ptr::null_mut());
        libc::umask(0);
    }

    let fs = LazyFs::new(&args.backing).with_context(|| format!("backing directory {}", args.backing.display()))?;
    let control = fs.clone();
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("lazyfs".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoAtime,
    ];
    config.n_threads = Some(args.threads.max(1));
    let mut session =
        fuser::Session::new(fs, &args.mount, &config).with_context(|| format!("mounting {}", args.mount.display()))?;
    let mut unmounter = session.unmount_callable();
    let serving = std::thread::spawn(move || session.run());
    println!("{MOUNTED}{} at {}", args.backing.display(), args.mount.display());

    loop {
        let mut sig = 0;
        // SAFETY: waits for one of the blocked signals.
        if unsafe { libc::sigwait(&signals, &mut sig) } != 0 {
            continue;
        }
        match sig {
            libc::SIGUSR1 => {
                let t = control.crash();
                for (path, bytes) in &t.files {
                    eprintln!("lazyfs: crash: dropped {bytes} bytes of {}", path.display());
                }
                println!("{CRASHED}{} bytes unsynced in {} files", t.bytes, t.files.len());
            }
            libc::SIGUSR2 => match control.sync_all() {
                Ok(t) => println!("{SYNCED}{} bytes in {} files", t.bytes, t.files.len()),
                Err(e) => eprintln!("lazyfs: sync failed: {e}"),
            },
            _ => break,
        }
    }

    if let Err(e) = control.sync_all() {
        eprintln!("lazyfs: sync before unmount failed: {e}");
    }
    if let Err(e) = unmounter.unmount() {
        // Busy: detach it, so the mount point is free even if files are open.
        eprintln!("lazyfs: unmount: {e}; detaching");
        let mnt = std::ffi::CString::new(args.mount.as_os_str().as_encoded_bytes())?;
        // SAFETY: a valid C string.
        unsafe { libc::umount2(mnt.as_ptr(), libc::MNT_DETACH) };
    } else if let Ok(Err(e)) = serving.join() {
        eprintln!("lazyfs: session ended with {e}");
    }
    // Writes that raced with the unmount.
    control.sync_all()?;
    println!("lazyfs: unmounted {}", args.mount.display());
    Ok(())
}
