//! A cache feeds code into builds: directories someone else controls are not trusted.

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

use nexxo_core::{Cache, Config, Error};

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

fn make_cache(path: &std::path::Path) {
    let c = Cache::open(path, &Config::default()).unwrap();
    c.set(b"transform", b"a.ts", b"export {}").unwrap();
}

fn chmod(path: &std::path::Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn new_directories_are_owner_only_or_as_configured() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a/b/cache");
    drop(Cache::open(&p, &Config::default()).unwrap());
    for dir in [d.path().join("a"), d.path().join("a/b"), p.clone()] {
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700, "{}", dir.display());
    }
    let mut cfg = Config::default();
    cfg.set_dir_mode(0o750).unwrap();
    let q = d.path().join("shared");
    drop(Cache::open(&q, &cfg).unwrap());
    let mode = std::fs::metadata(&q).unwrap().mode() & 0o777;
    assert_eq!(mode & 0o700, 0o700);
    assert_eq!(mode & 0o022, 0, "no write bits for group or others");
    assert!(cfg.set_dir_mode(0o600).is_err() && cfg.set_dir_mode(0o1777).is_err());
}

#[test]
fn writable_by_group_or_others_is_refused_unless_allowed_then_read_only() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("c");
    make_cache(&p);
    for mode in [0o770, 0o707, 0o777] {
        chmod(&p, mode);
        match Cache::open(&p, &Config::default()) {
            Err(Error::Insecure(m)) => assert!(m.contains("writable by"), "{m}"),
            other => panic!("mode {mode:o}: expected Insecure, got {:?}", other.map(|_| ())),
        }
    }
    let allowed = Cache::open(&p, &Config { allow_untrusted_dir: true, ..Config::default() }).unwrap();
    assert!(allowed.stats().read_only);
    assert_eq!(allowed.get(b"transform", b"a.ts").unwrap().as_deref(), Some(&b"export {}"[..]));
    assert_eq!(allowed.set(b"transform", b"a.ts", b"poison"), Err(Error::ReadOnly));
    drop(allowed);
    let fallback = Cache::open(&p, &Config { fallback_disabled: true, ..Config::default() }).unwrap();
    assert!(matches!(fallback.disabled_reason(), Some(Error::Insecure(_))));
    // A directory mode that grants the group write access accepts such a directory.
    chmod(&p, 0o770);
    let mut team = Config::default();
    team.set_dir_mode(0o770).unwrap();
    assert!(!Cache::open(&p, &team).unwrap().stats().read_only);
}

#[test]
fn owned_by_another_user_is_refused() {
    if !is_root() {
        eprintln!("not root: cannot chown, skipped");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("c");
    make_cache(&p);
    std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
    match Cache::open(&p, &Config::default()) {
        Err(Error::Insecure(m)) => assert!(m.contains("owned by uid 65534"), "{m}"),
        other => panic!("expected Insecure, got {:?}", other.map(|_| ())),
    }
    // An empty directory someone else made is not used either.
    let q = d.path().join("planted");
    std::fs::create_dir(&q).unwrap();
    std::os::unix::fs::chown(&q, Some(65534), Some(65534)).unwrap();
    assert!(matches!(Cache::open(&q, &Config::default()), Err(Error::Insecure(_))));
    assert_eq!(std::fs::read_dir(&q).unwrap().count(), 0, "nothing written into it");
}

#[test]
fn symlinks_are_followed_only_when_they_and_their_target_are_ours() {
    let d = tempfile::tempdir().unwrap();
    let real = d.path().join("real");
    make_cache(&real);
    let link = d.path().join("link");
    symlink(&real, &link).unwrap();
    let c = Cache::open(&link, &Config::default()).expect("our own symlink to our own cache");
    assert!(c.get(b"transform", b"a.ts").unwrap().is_some());
    drop(c);
    if !is_root() {
        return;
    }
    // A symlink planted by another user, even to a directory of ours.
    let planted = d.path().join("planted");
    symlink(&real, &planted).unwrap();
    std::os::unix::fs::lchown(&planted, Some(65534), Some(65534)).unwrap();
    match Cache::open(&planted, &Config::default()) {
        Err(Error::Insecure(m)) => assert!(m.contains("symlink owned by uid 65534"), "{m}"),
        other => panic!("expected Insecure, got {:?}", other.map(|_| ())),
    }
    // Our symlink into someone else's directory.
    let theirs = d.path().join("theirs");
    make_cache(&theirs);
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let into = d.path().join("into");
    symlink(&theirs, &into).unwrap();
    assert!(matches!(Cache::open(&into, &Config::default()), Err(Error::Insecure(_))));
}

#[test]
fn keys_and_categories_never_become_paths() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("c");
    let c = Cache::open(&p, &Config::default()).unwrap();
    for key in [&b"../../escape"[..], b"/etc/passwd", b"..", b"a/../../b\0c"] {
        c.set(b"parse", key, b"v").unwrap();
        assert_eq!(c.get(b"parse", key).unwrap().as_deref(), Some(&b"v"[..]));
    }
    let mut cfg = Config::default();
    assert!(cfg.add_category(b"../x").is_err() && cfg.add_category(b"a/b").is_err());
    drop(c);
    let outside: Vec<_> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("c")], "files appeared beside the cache");
}

#[test]
fn a_directory_without_permission_is_an_io_error() {
    if is_root() {
        eprintln!("root bypasses permission bits: skipped");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("c");
    make_cache(&p);
    chmod(&p, 0o000);
    let r = Cache::open(&p, &Config::default());
    chmod(&p, 0o700);
    assert!(matches!(r, Err(Error::Io(_)) | Err(Error::Insecure(_))), "{:?}", r.map(|_| ()));
    let fb = Cache::open(d.path().join("c"), &Config { fallback_disabled: true, ..Config::default() }).unwrap();
    assert!(fb.disabled_reason().is_none(), "readable again");
}
