//! The FUSE side: a passthrough of the backing directory in which file data,
//! and only file data, goes through an [`Overlay`] until it is synced.

use crate::cache::{Backing, Overlay};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::{
    collections::HashMap,
    ffi::{CString, OsStr, OsString},
    fs::{self, File, Metadata, OpenOptions},
    io,
    os::unix::{
        ffi::OsStrExt,
        fs::{DirBuilderExt, DirEntryExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    },
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Names change only through this filesystem, so the kernel may keep them.
const ENTRY_TTL: Duration = Duration::from_secs(1);
/// Attributes it may not: a crash shrinks files behind its back.
const ATTR_TTL: Duration = Duration::ZERO;

/// One backing file or directory the kernel knows by an inode number.
struct Node {
    path: PathBuf,
    /// Backing `(dev, ino)`: a later lookup of the same file finds this node.
    key: (u64, u64),
    lookups: u64,
    open: u32,
    /// Opened read-write while a handle is open or data is unsynced; data I/O
    /// goes through it, so a rename or unlink does not lose the file.
    file: Option<File>,
    overlay: Option<Overlay>,
    unlinked: bool,
}

struct Handle {
    ino: u64,
    /// O_SYNC or O_DSYNC: every write is synced before it returns.
    sync: bool,
    /// O_APPEND: writes go to the end as this filesystem knows it, which a
    /// crash may have moved below the kernel's idea of the size.
    append: bool,
}

struct State {
    nodes: HashMap<u64, Node>,
    by_key: HashMap<(u64, u64), u64>,
    next_ino: u64,
    handles: HashMap<u64, Handle>,
    /// Open directories: their listing as of `opendir`, so offsets stay stable.
    dirs: HashMap<u64, Vec<(u64, FileType, OsString)>>,
    next_fh: u64,
}

/// The filesystem. Clones share it: the signal handler keeps one to crash or
/// sync while the FUSE session serves another.
#[derive(Clone)]
pub struct LazyFs {
    state: Arc<Mutex<State>>,
}

/// What a crash dropped or a sync wrote: bytes in all, and per file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub bytes: u64,
    pub files: Vec<(PathBuf, u64)>,
}

impl LazyFs {
    pub fn new(backing: &Path) -> io::Result<Self> {
        let path = backing.canonicalize()?;
        let meta = fs::metadata(&path)?;
        let key = (meta.dev(), meta.ino());
        let root = Node { path, key, lookups: 1, open: 0, file: None, overlay: None, unlinked: false };
        let state = State {
            nodes: HashMap::from([(INodeNo::ROOT.0, root)]),
            by_key: HashMap::from([(key, INodeNo::ROOT.0)]),
            next_ino: INodeNo::ROOT.0 + 1,
            handles: HashMap::new(),
            dirs: HashMap::new(),
            next_fh: 1,
        };
        Ok(Self { state: Arc::new(Mutex::new(state)) })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Power loss: every unsynced write is gone; files keep their synced
    /// contents and the lengths they last had on the backing directory.
    pub fn crash(&self) -> Tally {
        let mut st = self.lock();
        let mut tally = Tally::default();
        let dirty: Vec<u64> = st.nodes.iter().filter(|(_, n)| n.overlay.is_some()).map(|(&i, _)| i).collect();
        for ino in dirty {
            let node = st.nodes.get_mut(&ino).expect("listed above");
            let bytes = node.overlay.take().map_or(0, |o| o.unsynced());
            tally.bytes += bytes;
            tally.files.push((node.path.clone(), bytes));
            st.release_if_idle(ino);
        }
        tally
    }

    /// Syncs every file with unsynced data, as a clean shutdown would.
    pub fn sync_all(&self) -> io::Result<Tally> {
        let mut st = self.lock();
        let mut tally = Tally::default();
        let dirty: Vec<u64> = st.nodes.iter().filter(|(_, n)| n.overlay.is_some()).map(|(&i, _)| i).collect();
        for ino in dirty {
            let bytes = st.sync(ino).map_err(|e| io::Error::from_raw_os_error(e.into()))?;
            tally.bytes += bytes;
            tally.files.push((st.nodes[&ino].path.clone(), bytes));
            st.release_if_idle(ino);
        }
        Ok(tally)
    }
}

fn attr(ino: u64, meta: &Metadata, size: Option<u64>) -> FileAttr {
    let time = |secs: i64, nanos: i64| match u64::try_from(secs) {
        Ok(s) => UNIX_EPOCH + Duration::new(s, nanos as u32),
        Err(_) => UNIX_EPOCH,
    };
    FileAttr {
        ino: INodeNo(ino),
        size: size.unwrap_or(meta.size()),
        blocks: size.map_or(meta.blocks(), |s| s.div_ceil(512)),
        atime: time(meta.atime(), meta.atime_nsec()),
        mtime: time(meta.mtime(), meta.mtime_nsec()),
        ctime: time(meta.ctime(), meta.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind: FileType::from_std(meta.file_type()).unwrap_or(FileType::RegularFile),
        perm: (meta.mode() & 0o7777) as u16,
        nlink: meta.nlink() as u32,
        uid: meta.uid(),
        gid: meta.gid(),
        rdev: meta.rdev() as u32,
        blksize: meta.blksize() as u32,
        flags: 0,
    }
}

fn cpath(path: &Path) -> Result<CString, Errno> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

fn timespec(t: Option<TimeOrNow>) -> libc::timespec {
    let (tv_sec, tv_nsec) = match t {
        None => (0, libc::UTIME_OMIT),
        Some(TimeOrNow::Now) => (0, libc::UTIME_NOW),
        Some(TimeOrNow::SpecificTime(t)) => {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            (d.as_secs() as libc::time_t, d.subsec_nanos() as libc::c_long)
        }
    };
    libc::timespec { tv_sec, tv_nsec }
}

fn os_result(rc: libc::c_int) -> Result<(), Errno> {
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error().into()) }
}

impl State {
    fn node(&self, ino: INodeNo) -> Result<&Node, Errno> {
        self.nodes.get(&ino.0).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: INodeNo) -> Result<&mut Node, Errno> {
        self.nodes.get_mut(&ino.0).ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.node(parent)?.path.join(name))
    }

    fn getattr(&self, ino: INodeNo) -> Result<FileAttr, Errno> {
        let node = self.node(ino)?;
        let meta = match &node.file {
            Some(f) => f.metadata()?,
            None => fs::symlink_metadata(&node.path)?,
        };
        Ok(attr(ino.0, &meta, node.overlay.as_ref().map(Overlay::size)))
    }

    /// Counts one more kernel reference to what `path` names.
    fn remember(&mut self, path: PathBuf) -> Result<FileAttr, Errno> {
        let meta = fs::symlink_metadata(&path)?;
        let key = (meta.dev(), meta.ino());
        let ino = match self.by_key.get(&key) {
            Some(&ino) => ino,
            None => {
                let ino = self.next_ino;
                self.next_ino += 1;
                self.by_key.insert(key, ino);
                let node =
                    Node { path: path.clone(), key, lookups: 0, open: 0, file: None, overlay: None, unlinked: false };
                self.nodes.insert(ino, node);
                ino
            }
        };
        let node = self.nodes.get_mut(&ino).expect("indexed");
        node.path = path;
        node.lookups += 1;
        Ok(attr(ino, &meta, node.overlay.as_ref().map(Overlay::size)))
    }

    /// Closes the backing file of a node nobody has open and that holds no
    /// unsynced data, and forgets the node once the kernel has too.
    fn release_if_idle(&mut self, ino: u64) {
        let Some(node) = self.nodes.get_mut(&ino) else { return };
        if node.open > 0 {
            return;
        }
        if node.unlinked {
            // Nothing can reach an unlinked, closed file's data again.
            node.overlay = None;
        }
        if node.overlay.is_some() {
            return;
        }
        node.file = None;
        if ino != INodeNo::ROOT.0 && (node.lookups == 0 || node.unlinked) {
            let key = node.key;
            self.nodes.remove(&ino);
            if self.by_key.get(&key) == Some(&ino) {
                self.by_key.remove(&key);
            }
        }
    }

    /// The backing file `key` lost its name (no hard links are made here, so
    /// its last one): a new file may reuse the key.
    fn gone(&mut self, key: (u64, u64)) {
        if let Some(ino) = self.by_key.remove(&key) {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.unlinked = true;
            }
            self.release_if_idle(ino);
        }
    }

    fn truncate(&mut self, ino: INodeNo, size: u64) -> Result<(), Errno> {
        let node = self.node_mut(ino)?;
        match (&node.file, &mut node.overlay) {
            (Some(f), Some(o)) => o.truncate(f, size)?,
            (Some(f), None) => f.set_len(size)?,
            (None, _) => OpenOptions::new().write(true).open(&node.path)?.set_len(size)?,
        }
        Ok(())
    }

    fn sync(&mut self, ino: u64) -> Result<u64, Errno> {
        let node = self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        let file = node.file.as_ref().ok_or(Errno::EBADF)?;
        let Some(mut overlay) = node.overlay.take() else {
            file.sync_data()?;
            return Ok(0);
        };
        match overlay.sync(file) {
            Ok(n) => Ok(n),
            Err(e) => {
                node.overlay = Some(overlay);
                Err(e.into())
            }
        }
    }

    fn open(&mut self, ino: INodeNo, flags: i32) -> Result<u64, Errno> {
        let node = self.node_mut(ino)?;
        if node.file.is_none() {
            node.file = Some(OpenOptions::new().read(true).write(true).open(&node.path)?);
        }
        node.open += 1;
        let fh = self.next_fh;
        self.next_fh += 1;
        let handle = Handle { ino: ino.0, sync: flags & libc::O_DSYNC != 0, append: flags & libc::O_APPEND != 0 };
        self.handles.insert(fh, handle);
        if flags & libc::O_TRUNC != 0
            && let Err(e) = self.truncate(ino, 0)
        {
            self.release(FileHandle(fh));
            return Err(e);
        }
        Ok(fh)
    }

    fn create(&mut self, parent: INodeNo, name: &OsStr, mode: u32, flags: i32) -> Result<(FileAttr, u64), Errno> {
        let path = self.child(parent, name)?;
        OpenOptions::new().write(true).create(true).create_new(flags & libc::O_EXCL != 0).mode(mode).open(&path)?;
        let ino = INodeNo(self.remember(path)?.ino.0);
        let fh = self.open(ino, flags)?;
        Ok((self.getattr(ino)?, fh))
    }

    fn read(&self, ino: INodeNo, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let node = self.node(ino)?;
        let file = node.file.as_ref().ok_or(Errno::EBADF)?;
        Ok(match &node.overlay {
            Some(o) => o.read(file, offset, size as usize)?,
            None => {
                let mut buf = vec![0; size as usize];
                let n = Backing::read_at(file, &mut buf, offset)?;
                buf.truncate(n);
                buf
            }
        })
    }

    fn write(&mut self, ino: INodeNo, fh: FileHandle, offset: u64, data: &[u8]) -> Result<(), Errno> {
        let (sync, append) = self.handles.get(&fh.0).map_or((false, false), |h| (h.sync, h.append));
        let node = self.node_mut(ino)?;
        let file = node.file.as_ref().ok_or(Errno::EBADF)?;
        if node.overlay.is_none() {
            node.overlay = Some(Overlay::new(file.metadata()?.len()));
        }
        let overlay = node.overlay.as_mut().expect("set above");
        let offset = if append { overlay.size() } else { offset };
        overlay.write(file, offset, data)?;
        if sync {
            // Syncs the file's other unsynced writes too, as a journal might.
            self.sync(ino.0)?;
        }
        Ok(())
    }

    fn release(&mut self, fh: FileHandle) {
        if let Some(Handle { ino, .. }) = self.handles.remove(&fh.0) {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.open -= 1;
            }
            self.release_if_idle(ino);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &mut self,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
    ) -> Result<FileAttr, Errno> {
        let path = self.node(ino)?.path.clone();
        if let Some(mode) = mode {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        }
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::lchown(&path, uid, gid)?;
        }
        if let Some(size) = size {
            self.truncate(ino, size)?;
        }
        if atime.is_some() || mtime.is_some() {
            let times = [timespec(atime), timespec(mtime)];
            let p = cpath(&path)?;
            // SAFETY: a valid C string and two timespecs, as utimensat(2) wants.
            os_result(unsafe {
                libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)
            })?;
        }
        self.getattr(ino)
    }

    fn unlink(&mut self, parent: INodeNo, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let path = self.child(parent, name)?;
        let meta = fs::symlink_metadata(&path)?;
        if dir {
            fs::remove_dir(&path)?
        } else {
            fs::remove_file(&path)?
        }
        self.gone((meta.dev(), meta.ino()));
        Ok(())
    }

    fn rename(
        &mut self,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        if flags.contains(RenameFlags::RENAME_EXCHANGE) || flags.contains(RenameFlags::RENAME_WHITEOUT) {
            return Err(Errno::EINVAL);
        }
        let (from, to) = (self.child(parent, name)?, self.child(newparent, newname)?);
        let moved = fs::symlink_metadata(&from)?;
        let replaced = fs::symlink_metadata(&to).ok().map(|m| (m.dev(), m.ino()));
        let (f, t) = (cpath(&from)?, cpath(&to)?);
        // SAFETY: valid C strings; renameat2(2) with the kernel's own flags.
        os_result(unsafe { libc::renameat2(libc::AT_FDCWD, f.as_ptr(), libc::AT_FDCWD, t.as_ptr(), flags.bits()) })?;
        if let Some(key) = replaced.filter(|&k| k != (moved.dev(), moved.ino())) {
            self.gone(key);
        }
        // A directory's descendants move with it.
        for node in self.nodes.values_mut().filter(|n| !n.unlinked) {
            if let Ok(rest) = node.path.strip_prefix(&from) {
                node.path = if rest.as_os_str().is_empty() { to.clone() } else { to.join(rest) };
            }
        }
        Ok(())
    }

    fn opendir(&mut self, ino: INodeNo) -> Result<u64, Errno> {
        let path = &self.node(ino)?.path;
        let mut entries = vec![(ino.0, FileType::Directory, ".".into()), (ino.0, FileType::Directory, "..".into())];
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            let kind = entry.file_type().ok().and_then(FileType::from_std).unwrap_or(FileType::RegularFile);
            entries.push((entry.ino(), kind, entry.file_name()));
        }
        let fh = self.next_fh;
        self.next_fh += 1;
        self.dirs.insert(fh, entries);
        Ok(fh)
    }
}

impl Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut st = self.lock();
        match st.child(parent, name).and_then(|p| st.remember(p)) {
            Ok(attr) => reply.entry_with_ttls(&ATTR_TTL, &ENTRY_TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let mut st = self.lock();
        if let Some(node) = st.nodes.get_mut(&ino.0) {
            node.lookups = node.lookups.saturating_sub(nlookup);
            st.release_if_idle(ino.0);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.lock().getattr(ino) {
            Ok(attr) => reply.attr(&ATTR_TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.lock().setattr(ino, mode, uid, gid, size, atime, mtime) {
            Ok(attr) => reply.attr(&ATTR_TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, _umask: u32, reply: ReplyEntry) {
        let mut st = self.lock();
        let made = st.child(parent, name).and_then(|path| {
            fs::DirBuilder::new().mode(mode).create(&path)?;
            st.remember(path)
        });
        match made {
            Ok(attr) => reply.entry_with_ttls(&ATTR_TTL, &ENTRY_TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.lock().unlink(parent, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.lock().unlink(parent, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        match self.lock().rename(parent, name, newparent, newname, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        // Direct I/O: the kernel keeps no copy of file data that a crash here
        // would leave stale.
        match self.lock().open(ino, flags.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.lock().read(ino, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.lock().write(ino, fh, offset, data) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    /// Closing persists nothing: data not synced before a crash is lost even
    /// if the file was closed, as on a disk with a volatile cache.
    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.lock().release(fh);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        match self.lock().sync(ino.0) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.lock().opendir(ino) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let st = self.lock();
        let Some(entries) = st.dirs.get(&fh.0) else { return reply.error(Errno::EBADF) };
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.lock().dirs.remove(&fh.0);
        reply.ok();
    }

    /// Directory entries are written through, so this only reaches the host disk.
    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let path = self.lock().node(ino).map(|n| n.path.clone());
        match path.and_then(|p| Ok(File::open(p)?.sync_all()?)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let root = cpath(&self.lock().nodes[&INodeNo::ROOT.0].path);
        // SAFETY: statvfs(2) fills the zeroed struct it is given.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        match root.and_then(|p| os_result(unsafe { libc::statvfs(p.as_ptr(), &mut s) })) {
            Ok(()) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self.lock().create(parent, name, mode, flags) {
            // Zero TTL: the attributes must not outlive a crash.
            Ok((attr, fh)) => {
                reply.created(&ATTR_TTL, &attr, Generation(0), FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO)
            }
            Err(e) => reply.error(e),
        }
    }
}
