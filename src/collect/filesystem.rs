//! Filesystem collector: size, available and free space of mounted real filesystems.
//!
//! The mount table (`<proc root>/mounts`) decides which filesystems exist, what
//! device and type they have and whether they are read-only *now* (an ext4 with
//! `errors=remount-ro` flips at runtime). A [`SpaceSource`] supplies the sizes:
//! in production sysinfo's `Disks` (statvfs without `unsafe` on our side), in tests
//! a fixed table. Pseudo and network filesystems are skipped, see [`is_excluded_type`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sysinfo::{DiskRefreshKind, Disks};

use super::procfs::{CollectError, ProcRoot};
use super::Collector;
use crate::sample::host::{CollectorKind, FilesystemStats, HostSnapshot};

/// Sizes of one filesystem, as a [`SpaceSource`] reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Space {
    /// Total size in bytes.
    pub(crate) size_bytes: u64,
    /// Bytes available to unprivileged users.
    pub(crate) avail_bytes: u64,
    /// Free bytes including the root reserve, if the source knows it.
    pub(crate) free_bytes: Option<u64>,
}

/// Where filesystem sizes come from.
pub(crate) trait SpaceSource: Send {
    /// Re-reads sizes of all filesystems; called once per round.
    fn refresh(&mut self) -> Result<(), CollectError>;
    /// The sizes of the filesystem mounted at `mount_point`, if known.
    fn space(&self, mount_point: &Path) -> Option<Space>;
}

/// Sizes from `sysinfo::Disks` (statvfs). sysinfo itself skips NFS, CIFS and
/// autofs mounts because statvfs on a dead hard mount blocks forever.
pub(crate) struct SysinfoSpace {
    /// `None` if sysinfo could not be initialised; every refresh then fails.
    disks: Option<Disks>,
    /// Mount point → sizes, rebuilt on every refresh.
    by_mount: HashMap<PathBuf, Space>,
}

impl SysinfoSpace {
    /// A source over the live system.
    pub(crate) fn new() -> Self {
        SysinfoSpace {
            disks: Disks::new().ok(),
            by_mount: HashMap::new(),
        }
    }
}

impl SpaceSource for SysinfoSpace {
    fn refresh(&mut self) -> Result<(), CollectError> {
        let disks = self.disks.as_mut().ok_or_else(|| {
            CollectError::Unavailable("sysinfo disks are not supported here".into())
        })?;
        // Only statvfs: no rotational lookup in sysfs, no diskstats (the disk collector has those).
        disks.refresh_specifics(true, DiskRefreshKind::nothing().with_storage());
        self.by_mount.clear();
        for disk in disks.iter() {
            self.by_mount.insert(
                disk.mount_point().to_path_buf(),
                Space {
                    size_bytes: disk.total_space(),
                    avail_bytes: disk.available_space(),
                    // sysinfo does not expose f_bfree; a statvfs-based source could.
                    free_bytes: None,
                },
            );
        }
        Ok(())
    }

    fn space(&self, mount_point: &Path) -> Option<Space> {
        self.by_mount.get(mount_point).copied()
    }
}

/// Lists mounts and attaches their sizes.
pub(crate) struct FilesystemCollector {
    /// Where the sizes come from.
    space: Box<dyn SpaceSource>,
    /// Mount-point prefixes (whole path components) the operator excluded.
    exclude: Vec<PathBuf>,
}

impl FilesystemCollector {
    /// A collector excluding mount points under any of `exclude`.
    pub(crate) fn new(space: Box<dyn SpaceSource>, exclude: &[String]) -> Self {
        FilesystemCollector {
            space,
            exclude: exclude.iter().map(PathBuf::from).collect(),
        }
    }
}

impl Collector for FilesystemCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Filesystem
    }

    fn collect(&mut self, proc: &ProcRoot, snap: &mut HostSnapshot) -> Result<(), CollectError> {
        let (_, text) = proc.read("mounts")?;
        let mounts = parse_mounts(&text, &self.exclude);
        self.space.refresh()?;
        snap.filesystems = mounts
            .into_iter()
            .filter_map(|m| {
                let space = self.space.space(Path::new(&m.mount_point))?;
                // A zero-sized filesystem is a pseudo filesystem that slipped through.
                (space.size_bytes > 0).then_some(FilesystemStats {
                    device: m.device,
                    mount_point: m.mount_point,
                    fs_type: m.fs_type,
                    size_bytes: space.size_bytes,
                    avail_bytes: space.avail_bytes,
                    free_bytes: space.free_bytes,
                    read_only: m.read_only,
                })
            })
            .collect();
        Ok(())
    }
}

/// One line of the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    device: String,
    mount_point: String,
    fs_type: String,
    read_only: bool,
}

/// Filesystem types that hold no user data or whose statvfs may hang; like
/// node_exporter's default `fs-types-exclude`, plus `tmpfs`/`ramfs` (memory,
/// already in the memory metrics) and network filesystems. `overlay` is kept:
/// it is a container's root and fills up like any disk.
fn is_excluded_type(fs_type: &str) -> bool {
    matches!(
        fs_type,
        "autofs"
            | "binfmt_misc"
            | "bpf"
            | "cgroup"
            | "cgroup2"
            | "configfs"
            | "debugfs"
            | "devpts"
            | "devtmpfs"
            | "efivarfs"
            | "erofs"
            | "fusectl"
            | "hugetlbfs"
            | "iso9660"
            | "mqueue"
            | "nsfs"
            | "proc"
            | "procfs"
            | "pstore"
            | "ramfs"
            | "rootfs"
            | "rpc_pipefs"
            | "securityfs"
            | "selinuxfs"
            | "squashfs"
            | "sysfs"
            | "tmpfs"
            | "tracefs"
            | "nfs"
            | "nfs4"
            | "cifs"
            | "smb3"
    )
}

/// Mount points no operator wants in disk-space alerts (node_exporter's default
/// `mount-points-exclude`): kernel trees and container-engine internals.
fn is_excluded_mount_point(mount_point: &Path) -> bool {
    const UNDER: [&str; 3] = ["/dev", "/proc", "/sys"];
    const BELOW: [&str; 3] = [
        "/run/credentials",
        "/var/lib/docker",
        "/var/lib/containers/storage",
    ];
    UNDER.iter().any(|p| mount_point.starts_with(p))
        || BELOW
            .iter()
            .any(|p| mount_point.starts_with(p) && mount_point != Path::new(p))
}

/// Parses `device mount_point fs_type options dump pass` lines, keeping the last
/// mount of each mount point (an over-mount hides what is below it).
fn parse_mounts(text: &str, exclude: &[PathBuf]) -> Vec<Mount> {
    let mut mounts: Vec<Mount> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(device), Some(mount_point), Some(fs_type), Some(options)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if is_excluded_type(fs_type) {
            continue;
        }
        let mount_point = unescape(mount_point);
        let path = Path::new(&mount_point);
        if is_excluded_mount_point(path) || exclude.iter().any(|p| path.starts_with(p)) {
            continue;
        }
        mounts.retain(|m| m.mount_point != mount_point);
        mounts.push(Mount {
            device: unescape(device),
            mount_point,
            fs_type: fs_type.to_owned(),
            read_only: options.split(',').any(|o| o == "ro"),
        });
    }
    mounts
}

/// Undoes the kernel's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                let value = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::collect::tests::fixture_root;

    /// A space source with fixed sizes for the fixture mount table.
    pub(crate) struct FixedSpace(pub(crate) Vec<(&'static str, Space)>);

    impl FixedSpace {
        /// Sizes for `/`, `/boot` and `/var/mail` in the fixture's `mounts`, and for
        /// `/run`, a tmpfs the collector must skip although it has a size.
        pub(crate) fn fixture() -> Self {
            let gib = 1024 * 1024 * 1024;
            FixedSpace(vec![
                (
                    "/",
                    Space {
                        size_bytes: 100 * gib,
                        avail_bytes: 40 * gib,
                        free_bytes: Some(45 * gib),
                    },
                ),
                (
                    "/boot",
                    Space {
                        size_bytes: gib,
                        avail_bytes: gib / 2,
                        free_bytes: None,
                    },
                ),
                (
                    "/var/mail",
                    Space {
                        size_bytes: 500 * gib,
                        avail_bytes: 12 * gib,
                        free_bytes: Some(37 * gib),
                    },
                ),
                (
                    "/run",
                    Space {
                        size_bytes: gib,
                        avail_bytes: gib,
                        free_bytes: None,
                    },
                ),
            ])
        }
    }

    impl SpaceSource for FixedSpace {
        fn refresh(&mut self) -> Result<(), CollectError> {
            Ok(())
        }

        fn space(&self, mount_point: &Path) -> Option<Space> {
            self.0
                .iter()
                .find(|(m, _)| Path::new(m) == mount_point)
                .map(|(_, s)| *s)
        }
    }

    #[test]
    fn fixture_mounts_with_fixed_sizes() {
        let mut c = FilesystemCollector::new(Box::new(FixedSpace::fixture()), &[]);
        let mut snap = HostSnapshot::default();
        c.collect(&fixture_root(), &mut snap).unwrap();
        let gib = 1024 * 1024 * 1024;
        let got: Vec<_> = snap
            .filesystems
            .iter()
            .map(|f| {
                (
                    f.mount_point.as_str(),
                    f.device.as_str(),
                    f.fs_type.as_str(),
                    f.read_only,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("/", "/dev/mapper/vg0-root", "ext4", false),
                ("/boot", "/dev/sda1", "ext4", false),
                ("/var/mail", "/dev/mapper/vg0-mail", "xfs", true),
            ]
        );
        assert_eq!(snap.filesystems[2].size_bytes, 500 * gib);
        assert_eq!(snap.filesystems[2].avail_bytes, 12 * gib);
        assert_eq!(snap.filesystems[2].free_bytes, Some(37 * gib));
    }

    #[test]
    fn operator_excludes_whole_path_components() {
        let mut c = FilesystemCollector::new(Box::new(FixedSpace::fixture()), &["/var".to_owned()]);
        let mut snap = HostSnapshot::default();
        c.collect(&fixture_root(), &mut snap).unwrap();
        let got: Vec<_> = snap
            .filesystems
            .iter()
            .map(|f| f.mount_point.as_str())
            .collect();
        assert_eq!(got, ["/", "/boot"]);
        let mounts = parse_mounts(
            "/dev/sdb1 /variable ext4 rw 0 0\n",
            &[PathBuf::from("/var")],
        );
        assert_eq!(mounts.len(), 1);
    }

    #[test]
    fn default_excludes() {
        let text = "\
proc /proc proc rw 0 0
tmpfs /run tmpfs rw 0 0
/dev/sdb1 /srv/backup\\040copy ext4 rw 0 0
overlay /var/lib/docker/overlay2/abc/merged overlay rw 0 0
overlay / overlay rw,relatime 0 0
/dev/sdc1 /var/lib/docker ext4 rw 0 0
server:/export /var/spool/shared nfs4 rw 0 0
/dev/sdd1 /mnt ext4 rw 0 0
/dev/sde1 /mnt ext4 ro 0 0
";
        let got: Vec<_> = parse_mounts(text, &[])
            .into_iter()
            .map(|m| (m.mount_point, m.device, m.read_only))
            .collect();
        assert_eq!(
            got,
            [
                ("/srv/backup copy".to_owned(), "/dev/sdb1".to_owned(), false),
                ("/".to_owned(), "overlay".to_owned(), false),
                ("/var/lib/docker".to_owned(), "/dev/sdc1".to_owned(), false),
                ("/mnt".to_owned(), "/dev/sde1".to_owned(), true),
            ]
        );
    }

    #[test]
    fn unescape_octal() {
        assert_eq!(unescape("/a\\040b\\011c\\134d"), "/a b\tc\\d");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/trailing\\04"), "/trailing\\04");
    }

    #[test]
    fn live_system_reports_root_if_sysinfo_sees_it() {
        // Not an exact test (the host decides), but it must not fail on a real /proc.
        let mut c = FilesystemCollector::new(Box::new(SysinfoSpace::new()), &[]);
        let mut snap = HostSnapshot::default();
        c.collect(&ProcRoot::new("/proc"), &mut snap).unwrap();
        for f in &snap.filesystems {
            assert!(f.size_bytes >= f.avail_bytes, "{f:?}");
        }
    }
}
