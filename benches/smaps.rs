//! Where a process's resident memory is: `/proc/<pid>/smaps` summed by what each mapping holds
//! (the binary's code and data, shared libraries, malloc arenas, thread stacks, ...), as a
//! README table.

#![allow(dead_code)]

/// Resident KiB of one kind of mapping.
#[derive(Default, Clone, Copy)]
struct Part {
    rss: u64,
    anon: u64,
    mappings: u64,
}

/// glibc maps each thread arena's heap 64 MiB-aligned, at most 64 MiB long.
const ARENA_HEAP: u64 = 64 << 20;

/// What a mapping holds, from its name, permissions and shape (`tail`: the inaccessible
/// mapping right after it, as an arena's unused rest).
fn kind(name: &str, perms: &str, start: u64, len: u64, tail: u64, exe: &str) -> &'static str {
    match name {
        n if n == exe => match perms {
            "r-xp" => "rzmon: code (.text)",
            "r--p" => "rzmon: read-only data, relocated pointers",
            _ => "rzmon: writable data",
        },
        "[heap]" => "malloc: main arena (brk heap)",
        "[stack]" => "main thread stack",
        n if n.ends_with("-shm") => "SQLite WAL index (rzmon.db-shm)",
        n if n.contains(".so") => "shared libraries (libc, libm, ld.so, libgcc)",
        n if n.starts_with('[') => "kernel ([vdso], [vvar])",
        "" if start.is_multiple_of(ARENA_HEAP) && len + tail <= ARENA_HEAP => {
            "malloc: thread arenas"
        }
        "" if len == 2 << 20 => "thread stacks (2 MiB reserved each)",
        "" => "other anonymous (large allocations, mmap)",
        _ => "other files",
    }
}

/// The table of `pid`'s resident memory by kind, largest first, with a total row.
pub fn table(pid: u32) -> String {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut parts: Vec<(&'static str, Part)> = Vec::new();
    let mut current: Option<&'static str> = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let Some((range, perms)) = fields.first().zip(fields.get(1))
            && let Some((lo, hi)) = range.split_once('-')
            && let (Ok(lo), Ok(hi)) = (u64::from_str_radix(lo, 16), u64::from_str_radix(hi, 16))
        {
            let name = fields.get(5).copied().unwrap_or("");
            let k = kind(name, perms, lo, hi - lo, reserved_tail(&text, hi), &exe);
            current = Some(k);
            if !parts.iter().any(|p| p.0 == k) {
                parts.push((k, Part::default()));
            }
            if let Some(p) = parts.iter_mut().find(|p| p.0 == k) {
                p.1.mappings += 1;
            }
            continue;
        }
        let (Some(k), Some(key), Some(kib)) = (current, fields.first(), fields.get(1)) else {
            continue;
        };
        let kib: u64 = kib.parse().unwrap_or(0);
        if let Some(p) = parts.iter_mut().find(|p| p.0 == k) {
            match *key {
                "Rss:" => p.1.rss += kib,
                "Anonymous:" => p.1.anon += kib,
                _ => {}
            }
        }
    }
    parts.retain(|p| p.1.rss > 0);
    parts.sort_by_key(|p| std::cmp::Reverse(p.1.rss));
    let mut out =
        String::from("| mapping | RSS | of it anonymous | mappings |\n|---|---|---|---|\n");
    let mut total = Part::default();
    for (k, p) in &parts {
        out += &format!(
            "| {k} | {} KiB | {} KiB | {} |\n",
            p.rss, p.anon, p.mappings
        );
        total.rss += p.rss;
        total.anon += p.anon;
        total.mappings += p.mappings;
    }
    out += &format!(
        "| total | {} KiB | {} KiB | {} |\n",
        total.rss, total.anon, total.mappings
    );
    out
}

/// Length of the inaccessible (`---p`) anonymous mapping that starts right at `end`, if any.
fn reserved_tail(smaps: &str, end: u64) -> u64 {
    let prefix = format!("{end:x}-");
    smaps
        .lines()
        .find(|l| l.starts_with(&prefix) && l.split_whitespace().nth(1) == Some("---p"))
        .and_then(|l| {
            let hi = l.split_whitespace().next()?.split_once('-')?.1;
            Some(u64::from_str_radix(hi, 16).ok()? - end)
        })
        .unwrap_or(0)
}
