//! The unsynced data of one file: an overlay of dirty pages on its durable
//! copy. No FUSE here; the durable copy is anything that implements
//! [`Backing`]: a [`std::fs::File`] in the filesystem, a vector in tests.

use std::{collections::BTreeMap, fs::File, io, ops::Range, os::unix::fs::FileExt};

/// Granularity of the overlay. Partial pages are filled from the backing copy
/// first, so a page always holds the file's current bytes for its range.
pub const PAGE: usize = 4096;

/// The durable copy of a file.
pub trait Backing {
    /// Reads at `offset`; a short count only at the end of the file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn sync_data(&self) -> io::Result<()>;
}

impl Backing for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        // pread may return less than asked before the end of the file.
        let mut done = 0;
        while done < buf.len() {
            match FileExt::read_at(self, &mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }
}

struct Page {
    data: Box<[u8; PAGE]>,
    /// One bit per byte written since the last sync: exactly what a sync
    /// writes back and a crash loses.
    dirty: [u64; PAGE / 64],
}

impl Page {
    fn is_dirty(&self, byte: usize) -> bool {
        self.dirty[byte / 64] >> (byte % 64) & 1 == 1
    }

    fn set_dirty(&mut self, bytes: Range<usize>, dirty: bool) {
        for b in bytes {
            let bit = 1 << (b % 64);
            if dirty { self.dirty[b / 64] |= bit } else { self.dirty[b / 64] &= !bit }
        }
    }

    /// The runs of dirty bytes before `limit`.
    fn runs(&self, limit: usize) -> Vec<Range<usize>> {
        let mut runs = Vec::new();
        let mut b = 0;
        while b < limit {
            if b % 64 == 0 && self.dirty[b / 64] == 0 {
                b += 64;
            } else if !self.is_dirty(b) {
                b += 1;
            } else {
                let start = b;
                while b < limit && self.is_dirty(b) {
                    b += 1;
                }
                runs.push(start..b);
            }
        }
        runs
    }
}

/// A file's writes since its last sync, and its size as readers see it.
///
/// Invariants: the logical size is at least the backing length (the backing
/// only shrinks through [`Overlay::truncate`], which shrinks both), and every
/// byte of a cached page past the logical size is zero.
pub struct Overlay {
    pages: BTreeMap<u64, Page>,
    size: u64,
    backing_len: u64,
}

impl Overlay {
    /// Starts an overlay over a backing copy of `backing_len` bytes.
    pub fn new(backing_len: u64) -> Self {
        Self { pages: BTreeMap::new(), size: backing_len, backing_len }
    }

    /// The file's size, unsynced growth included.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes written and not yet synced: what a crash loses.
    pub fn unsynced(&self) -> u64 {
        self.pages.iter().flat_map(|(&i, p)| p.runs(self.room(i))).map(|r| r.len() as u64).sum()
    }

    /// How much of page `index` lies before the logical size.
    fn room(&self, index: u64) -> usize {
        self.size.saturating_sub(index * PAGE as u64).min(PAGE as u64) as usize
    }

    pub fn write(&mut self, backing: &impl Backing, offset: u64, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let mut done = 0;
        while done < data.len() {
            let pos = offset + done as u64;
            let index = pos / PAGE as u64;
            let at = (pos % PAGE as u64) as usize;
            let n = (PAGE - at).min(data.len() - done);
            let page = match self.pages.entry(index) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let mut fresh = Box::new([0u8; PAGE]);
                    let start = index * PAGE as u64;
                    if start < self.backing_len {
                        let want = (self.backing_len - start).min(PAGE as u64) as usize;
                        backing.read_at(&mut fresh[..want], start)?;
                    }
                    e.insert(Page { data: fresh, dirty: [0; PAGE / 64] })
                }
            };
            page.data[at..at + n].copy_from_slice(&data[done..done + n]);
            page.set_dirty(at..at + n, true);
            done += n;
        }
        self.size = self.size.max(offset + data.len() as u64);
        Ok(())
    }

    /// Up to `len` bytes at `offset`, cut at the logical size.
    pub fn read(&self, backing: &impl Backing, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let end = self.size.min(offset.saturating_add(len as u64));
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; (end - offset) as usize];
        if offset < self.backing_len {
            let n = (self.backing_len.min(end) - offset) as usize;
            backing.read_at(&mut buf[..n], offset)?;
        }
        let first = offset / PAGE as u64;
        let last = (end - 1) / PAGE as u64;
        for (&index, page) in self.pages.range(first..=last) {
            let start = index * PAGE as u64;
            let from = start.max(offset);
            let to = (start + PAGE as u64).min(end);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&page.data[(from - start) as usize..(to - start) as usize]);
        }
        Ok(buf)
    }

    /// Truncation is metadata: the backing copy takes the new length at once.
    pub fn truncate(&mut self, backing: &impl Backing, size: u64) -> io::Result<()> {
        backing.set_len(size)?;
        self.backing_len = size;
        self.size = size;
        let cut = size.div_ceil(PAGE as u64);
        self.pages.split_off(&cut);
        let tail = (size % PAGE as u64) as usize;
        if tail != 0
            && let Some(page) = self.pages.get_mut(&(size / PAGE as u64))
        {
            // Zeroed so that growing the file again reads zeros, as on disk.
            page.data[tail..].fill(0);
            page.set_dirty(tail..PAGE, false);
            if page.runs(tail).is_empty() {
                self.pages.remove(&(size / PAGE as u64));
            }
        }
        Ok(())
    }

    /// Writes the unsynced bytes back, sets the backing length and makes it
    /// durable; the overlay is then empty. Returns the bytes written.
    pub fn sync(&mut self, backing: &impl Backing) -> io::Result<u64> {
        let (mut written, mut end) = (0, self.backing_len);
        for (&index, page) in &self.pages {
            for run in page.runs(self.room(index)) {
                let at = index * PAGE as u64 + run.start as u64;
                backing.write_all_at(&page.data[run.clone()], at)?;
                written += run.len() as u64;
                end = end.max(at + run.len() as u64);
            }
        }
        if end != self.size {
            backing.set_len(self.size)?;
        }
        backing.sync_data()?;
        self.pages.clear();
        self.backing_len = self.size;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// An in-memory file, for tests: counts the bytes written and the syncs.
    #[derive(Default)]
    struct MemBacking {
        data: Mutex<Vec<u8>>,
        written: Mutex<u64>,
        syncs: Mutex<u32>,
    }

    impl Backing for MemBacking {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let data = self.data.lock().unwrap();
            let start = (offset as usize).min(data.len());
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            Ok(n)
        }
        fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            let mut data = self.data.lock().unwrap();
            let end = offset as usize + buf.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[offset as usize..end].copy_from_slice(buf);
            *self.written.lock().unwrap() += buf.len() as u64;
            Ok(())
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.data.lock().unwrap().resize(len as usize, 0);
            Ok(())
        }
        fn sync_data(&self) -> io::Result<()> {
            *self.syncs.lock().unwrap() += 1;
            Ok(())
        }
    }

    fn backing(bytes: &[u8]) -> MemBacking {
        let b = MemBacking::default();
        *b.data.lock().unwrap() = bytes.to_vec();
        b
    }

    fn durable(b: &MemBacking) -> Vec<u8> {
        b.data.lock().unwrap().clone()
    }

    #[test]
    fn reads_see_writes_over_the_backing_copy() {
        let b = backing(&[1u8; 10_000]);
        let mut o = Overlay::new(10_000);
        o.write(&b, 5000, &[2u8; 100]).unwrap();
        let got = o.read(&b, 4990, 120).unwrap();
        assert_eq!(&got[..10], &[1u8; 10]);
        assert_eq!(&got[10..110], &[2u8; 100]);
        assert_eq!(&got[110..], &[1u8; 10]);
        assert_eq!(durable(&b), vec![1u8; 10_000], "nothing reaches the backing copy before a sync");
    }

    #[test]
    fn partial_page_writes_keep_the_rest_of_the_page() {
        let b = backing(&(0..=255u8).cycle().take(PAGE * 2).collect::<Vec<_>>());
        let mut o = Overlay::new(PAGE as u64 * 2);
        o.write(&b, 10, b"abc").unwrap();
        o.write(&b, PAGE as u64 - 1, b"xy").unwrap();
        let all = o.read(&b, 0, PAGE * 2).unwrap();
        let mut want = durable(&b);
        want[10..13].copy_from_slice(b"abc");
        want[PAGE - 1..PAGE + 1].copy_from_slice(b"xy");
        assert_eq!(all, want);
        assert_eq!(o.unsynced(), 5);
    }

    #[test]
    fn growth_reads_zeros_in_holes_and_stops_at_the_size() {
        let b = backing(b"hello");
        let mut o = Overlay::new(5);
        o.write(&b, 3 * PAGE as u64, b"end").unwrap();
        assert_eq!(o.size(), 3 * PAGE as u64 + 3);
        let all = o.read(&b, 0, 10 * PAGE).unwrap();
        assert_eq!(all.len(), 3 * PAGE + 3);
        assert_eq!(&all[..5], b"hello");
        assert!(all[5..3 * PAGE].iter().all(|&x| x == 0));
        assert_eq!(&all[3 * PAGE..], b"end");
        assert!(o.read(&b, 4 * PAGE as u64, 10).unwrap().is_empty());
    }

    #[test]
    fn truncate_applies_at_once_and_trims_the_overlay() {
        let b = backing(&[7u8; 100]);
        let mut o = Overlay::new(100);
        o.write(&b, 100, &[9u8; 2 * PAGE]).unwrap();
        o.truncate(&b, 150).unwrap();
        assert_eq!(durable(&b).len(), 150, "the backing copy is truncated (here: grown with zeros) at once");
        assert_eq!(o.size(), 150);
        assert_eq!(o.unsynced(), 50);
        o.write(&b, 300, b"z").unwrap();
        let all = o.read(&b, 0, 1000).unwrap();
        assert_eq!(&all[..100], &[7u8; 100]);
        assert_eq!(&all[100..150], &[9u8; 50]);
        assert!(all[150..300].iter().all(|&x| x == 0), "bytes cut off come back as zeros");
        assert_eq!(&all[300..], b"z");
        o.truncate(&b, 0).unwrap();
        assert_eq!((o.size(), o.unsynced()), (0, 0));
        assert!(durable(&b).is_empty());
    }

    #[test]
    fn sync_writes_exactly_the_dirty_bytes() {
        let b = backing(&[1u8; 3 * PAGE]);
        let mut o = Overlay::new(3 * PAGE as u64);
        o.write(&b, 1, b"ab").unwrap();
        o.write(&b, 100, b"hi").unwrap();
        o.write(&b, 2 * PAGE as u64 + 7, b"cde").unwrap();
        o.write(&b, 3 * PAGE as u64, b"fg").unwrap();
        let want = o.read(&b, 0, 4 * PAGE).unwrap();
        assert_eq!(o.unsynced(), 9);
        assert_eq!(o.sync(&b).unwrap(), 9, "the gap between two writes in a page is not written");
        assert_eq!(*b.written.lock().unwrap(), 9);
        assert_eq!(*b.syncs.lock().unwrap(), 1);
        assert_eq!(durable(&b), want);
        assert_eq!(o.unsynced(), 0);
        assert_eq!(o.read(&b, 0, 4 * PAGE).unwrap(), want);
    }

    #[test]
    fn sync_sets_the_length_of_a_sparse_tail() {
        let b = backing(b"");
        let mut o = Overlay::new(0);
        o.write(&b, 10, b"x").unwrap();
        o.truncate(&b, 5).unwrap();
        o.write(&b, 8, b"").unwrap();
        assert_eq!(o.size(), 5, "an empty write does not grow the file");
        o.truncate(&b, 20).unwrap();
        o.write(&b, 2, b"y").unwrap();
        o.sync(&b).unwrap();
        let mut want = vec![0u8; 20];
        want[2] = b'y';
        assert_eq!(durable(&b), want);
    }

    #[test]
    fn a_crash_drops_exactly_the_unsynced_writes() {
        let b = backing(b"");
        let mut o = Overlay::new(0);
        o.write(&b, 0, b"synced").unwrap();
        o.sync(&b).unwrap();
        o.write(&b, 6, b" lost").unwrap();
        o.write(&b, 0, b"S").unwrap();
        assert_eq!(o.unsynced(), 6);
        drop(o);
        assert_eq!(durable(&b), b"synced", "what survives is what was synced");
    }
}
