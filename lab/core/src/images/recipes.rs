//! The recipe table: which Debian packages make which rootfs, and which tags come out of it.
//! A recipe's hash covers everything that decides the rootfs and the image config, so an
//! image carrying the same hash needs no rebuild.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::ImageError;

/// Bump when images must be rebuilt for a reason the hashed fields (suite, mirror, packages,
/// mmdebstrap options, image config) do not show, e.g. a change in how the tarball is imported.
pub const RECIPE_FORMAT: u32 = 1;
/// Repository prefix of every offline image.
pub const TAG_PREFIX: &str = "localhost/lab/";
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// Label carrying the recipe hash of an offline image.
pub const LABEL_RECIPE_HASH: &str = "lab.recipe-hash";
/// Label marking an image as built by `lab images build`.
pub const LABEL_OFFLINE: &str = "lab.offline";
/// Label naming the recipe an offline image came from.
pub const LABEL_RECIPE: &str = "lab.recipe";

/// The image config every offline image gets. Compose files give each service its command,
/// so `sh` only matters for a bare `docker run`.
pub(crate) const IMAGE_CONFIG: &[&str] = &[
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "WORKDIR /",
    "CMD [\"sh\"]",
];

/// One tag a recipe promises, e.g. `localhost/lab/valkey:8.1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageTag {
    /// Image name: `valkey`, `redis-exporter`, ...
    pub name: String,
    /// Full reference: `localhost/lab/valkey:8.1`.
    pub tag: String,
    /// The version in the tag (`8.1`); the installed upstream version must start with it.
    pub version: String,
    /// The Debian package whose installed version the image is tagged with.
    pub package: String,
}

/// One Debian rootfs, built once, imported once, tagged once per image it serves.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub name: String,
    pub suite: String,
    pub mirror: String,
    /// Packages passed to mmdebstrap `--include`, sorted.
    pub packages: Vec<String>,
    pub tags: Vec<ImageTag>,
    /// `Err(reason)` when Debian has no package to build it from.
    pub available: Result<(), String>,
    /// Extra mmdebstrap options; part of the hash through the mmdebstrap arguments.
    pub extra_args: Vec<String>,
}

struct Spec {
    name: &'static str,
    suite: &'static str,
    packages: &'static [&'static str],
    /// (image name, tag version, package the version comes from)
    images: &'static [(&'static str, &'static str, &'static str)],
    /// Extra mmdebstrap options, e.g. `--customize-hook=...` (`$1` is the rootfs).
    extra_args: &'static [&'static str],
}

// Versions are what the suite ships today; Debian stable keeps upstream versions fixed within
// a release, and the build fails loudly (VersionMismatch) if one ever moves.
// Services share a rootfs where they are used together, because each mmdebstrap run costs
// ~20 s of CI time while sharing costs nothing: all tags of a recipe point at one image.
const TABLE: &[Spec] = &[
    Spec {
        name: "redis-family",
        suite: "trixie",
        packages: &[
            "valkey-server",
            "valkey-sentinel",
            "valkey-tools",
            "redis-server",
            "redis-sentinel",
            "redis-tools",
            "prometheus-redis-exporter",
            // Resource faults run inside the node: stress-ng for CPU and memory pressure,
            // procps so a heal can find and end what a fault started. (No libfaketime: it
            // deadlocks at start-up in servers linked with jemalloc, as both of these are.)
            "stress-ng",
            "procps",
        ],
        // Sentinels run from the server images (valkey-sentinel / redis-sentinel are in them),
        // as with the upstream images.
        images: &[
            ("valkey", "8.1", "valkey-server"),
            ("redis", "8.0", "redis-server"),
            ("redis-exporter", "1", "prometheus-redis-exporter"),
        ],
        extra_args: &[],
    },
    Spec {
        name: "haproxy",
        suite: "trixie",
        packages: &["haproxy"],
        images: &[("haproxy", "3.0", "haproxy")],
        extra_args: &[],
    },
    Spec {
        name: "monitoring",
        suite: "trixie",
        packages: &[
            "prometheus",
            "prometheus-alertmanager",
            "prometheus-node-exporter",
        ],
        images: &[
            ("prometheus", "2.53", "prometheus"),
            ("alertmanager", "0.28", "prometheus-alertmanager"),
            ("node-exporter", "1.9", "prometheus-node-exporter"),
        ],
        extra_args: &[],
    },
    Spec {
        name: "postgresql",
        suite: "trixie",
        packages: &["postgresql"],
        // The `postgresql` package is a metapackage versioned 17+278; the server's own
        // package carries the real upstream version.
        images: &[("postgresql", "17", "postgresql-17")],
        // The server's socket and lock file live in /run/postgresql, which no init system
        // recreates inside a container; so keep it, and keep mmdebstrap from emptying /run.
        extra_args: &[
            "--customize-hook=chroot \"$1\" install -d -o postgres -g postgres -m 2775 /run/postgresql",
            "--skip=cleanup/run",
        ],
    },
    Spec {
        name: "zookeeper",
        suite: "trixie",
        packages: &["zookeeper"],
        images: &[("zookeeper", "3.9", "zookeeper")],
        extra_args: &[],
    },
    Spec {
        // trixie dropped ClickHouse; bookworm's 18.16 is the newest Debian package.
        name: "clickhouse",
        suite: "bookworm",
        // The client is for readiness checks (`clickhouse-client --query 'SELECT 1'`); the
        // server refuses to start without /usr/share/zoneinfo, which no dependency brings.
        packages: &["clickhouse-server", "clickhouse-client", "tzdata"],
        images: &[("clickhouse-server", "18.16", "clickhouse-server")],
        extra_args: &[],
    },
    Spec {
        // Debian ships InfluxDB 1.x only (1.6.7~rc0 in bookworm and trixie); there is no 2.x.
        name: "influxdb",
        suite: "trixie",
        // The client (`influx`) is for readiness checks.
        packages: &["influxdb", "influxdb-client"],
        images: &[("influxdb", "1.6", "influxdb")],
        extra_args: &[],
    },
];

/// Every recipe lab knows, available or not.
pub fn recipes() -> Vec<Recipe> {
    TABLE.iter().map(Recipe::from_spec).collect()
}

/// `localhost/lab/<name>:<version>`.
pub fn tag_ref(name: &str, version: &str) -> String {
    format!("{TAG_PREFIX}{name}:{version}")
}

impl Recipe {
    fn from_spec(s: &Spec) -> Recipe {
        let mut packages: Vec<String> = s.packages.iter().map(|p| p.to_string()).collect();
        packages.sort();
        packages.dedup();
        Recipe {
            name: s.name.to_string(),
            suite: s.suite.to_string(),
            mirror: DEFAULT_MIRROR.to_string(),
            packages,
            tags: s
                .images
                .iter()
                .map(|(name, version, package)| ImageTag {
                    name: name.to_string(),
                    tag: tag_ref(name, version),
                    version: version.to_string(),
                    package: package.to_string(),
                })
                .collect(),
            available: Ok(()),
            extra_args: s.extra_args.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// Whether `name` is this recipe or one of its images.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.tags.iter().any(|t| t.name == name)
    }

    /// mmdebstrap options (suite, target and mirror follow them). Part of the hash, so a
    /// changed option rebuilds the rootfs.
    pub(crate) fn mmdebstrap_args(&self) -> Vec<String> {
        let mut packages = self.packages.clone();
        packages.sort();
        packages.dedup();
        let mut args: Vec<String> = vec![
            "--variant=essential".into(),
            "--mode=auto".into(),
            "--format=tar".into(),
            format!("--include={}", packages.join(",")),
            // Explicit, so the package set does not hang on mmdebstrap's or apt's defaults.
            "--aptopt=Apt::Install-Recommends \"false\"".into(),
            "--dpkgopt=path-exclude=/usr/share/doc/*".into(),
            "--dpkgopt=path-exclude=/usr/share/man/*".into(),
            "--dpkgopt=path-exclude=/usr/share/locale/*".into(),
            // Man pages are excluded, but update-alternatives in some postinsts (openjdk, for
            // zookeeper) still links into man1 and fails if the directory is missing.
            "--setup-hook=mkdir -p \"$1/usr/share/man/man1\"".into(),
            // Services keep their state under /data (a volume or the container layer); any
            // user a service runs as must be able to write there.
            "--customize-hook=mkdir -p \"$1/data\" && chmod 0777 \"$1/data\"".into(),
        ];
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// sha256 (hex) over everything that decides the image: format version, suite, mirror,
    /// sorted packages, mmdebstrap options and image config.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(format!("lab image recipe format {RECIPE_FORMAT}\n"));
        h.update(format!("suite {}\n", self.suite));
        h.update(format!("mirror {}\n", self.mirror));
        let mut packages = self.packages.clone();
        packages.sort();
        h.update(format!("packages {}\n", packages.join(" ")));
        for arg in self.mmdebstrap_args() {
            h.update(format!("arg {arg}\n"));
        }
        for line in IMAGE_CONFIG {
            h.update(format!("config {line}\n"));
        }
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    }

    /// The tags to import: each promised tag, plus one with the full upstream version found in
    /// the rootfs (`valkey:8.1.1` beside `valkey:8.1`). Fails if the rootfs no longer matches
    /// the promised version.
    pub(crate) fn tags_for_versions(
        &self,
        installed: &HashMap<String, String>,
    ) -> Result<Vec<String>, ImageError> {
        let mut out = Vec::new();
        for t in &self.tags {
            let found = installed
                .get(&t.package)
                .ok_or_else(|| ImageError::PackageMissing {
                    recipe: self.name.clone(),
                    package: t.package.clone(),
                })?;
            let full = tag_version(found);
            let matches = full == t.version
                || full.starts_with(&format!("{}.", t.version))
                || full.starts_with(&format!("{}-", t.version));
            if !matches {
                return Err(ImageError::VersionMismatch {
                    recipe: self.name.clone(),
                    package: t.package.clone(),
                    found: found.clone(),
                    tag: t.tag.clone(),
                });
            }
            out.push(t.tag.clone());
            let full_ref = tag_ref(&t.name, &full);
            if !out.contains(&full_ref) {
                out.push(full_ref);
            }
        }
        Ok(out)
    }
}

/// Turns a Debian version into a tag-safe upstream version:
/// `5:8.0.2-3+deb13u3` -> `8.0.2`, `8.1.1+dfsg1-3` -> `8.1.1`, `1.6.7~rc0-2+b12` -> `1.6.7-rc0`.
pub fn tag_version(debian_version: &str) -> String {
    let no_epoch = debian_version
        .split_once(':')
        .map_or(debian_version, |(_, v)| v);
    let upstream = no_epoch.rsplit_once('-').map_or(no_epoch, |(u, _)| u);
    // `+dfsg1`, `+ds1`, `+278` mark repacks or Debian packaging, not the upstream release.
    let upstream = upstream.split('+').next().unwrap_or(upstream);
    upstream
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The image name of an offline reference: `localhost/lab/valkey:8.1` -> `valkey`.
pub fn image_name(reference: &str) -> Option<&str> {
    let rest = reference.strip_prefix(TAG_PREFIX)?;
    Some(rest.split_once(':').map_or(rest, |(n, _)| n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis_family() -> Recipe {
        recipes()
            .into_iter()
            .find(|r| r.name == "redis-family")
            .expect("redis-family recipe")
    }

    #[test]
    fn hash_is_stable_and_hex() {
        let a = redis_family().hash();
        let b = redis_family().hash();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn hash_ignores_package_order_but_not_package_set() {
        let base = redis_family();
        let mut reordered = base.clone();
        reordered.packages.reverse();
        assert_eq!(base.hash(), reordered.hash());

        let mut more = base.clone();
        more.packages.push("busybox".into());
        assert_ne!(base.hash(), more.hash());

        let mut fewer = base.clone();
        fewer.packages.retain(|p| p != "redis-tools");
        assert_ne!(base.hash(), fewer.hash());
    }

    #[test]
    fn hash_changes_with_extra_mmdebstrap_options() {
        let base = redis_family();
        let mut hooked = base.clone();
        hooked
            .extra_args
            .push("--customize-hook=touch \"$1/x\"".into());
        assert_ne!(base.hash(), hooked.hash());
    }

    #[test]
    fn hash_changes_with_suite_and_mirror() {
        let base = redis_family();
        let mut suite = base.clone();
        suite.suite = "bookworm".into();
        assert_ne!(base.hash(), suite.hash());
        let mut mirror = base.clone();
        mirror.mirror = "http://ftp.de.debian.org/debian".into();
        assert_ne!(base.hash(), mirror.hash());
    }

    #[test]
    fn recipes_promise_the_tags_topologies_use() {
        let all: Vec<String> = recipes()
            .iter()
            .flat_map(|r| r.tags.iter().map(|t| t.tag.clone()))
            .collect();
        for want in [
            "localhost/lab/valkey:8.1",
            "localhost/lab/redis:8.0",
            "localhost/lab/redis-exporter:1",
            "localhost/lab/haproxy:3.0",
            "localhost/lab/prometheus:2.53",
            "localhost/lab/alertmanager:0.28",
            "localhost/lab/node-exporter:1.9",
            "localhost/lab/postgresql:17",
            "localhost/lab/zookeeper:3.9",
            "localhost/lab/clickhouse-server:18.16",
            "localhost/lab/influxdb:1.6",
        ] {
            assert!(all.iter().any(|t| t == want), "missing {want} in {all:?}");
        }
        let rf = redis_family();
        assert_eq!(rf.suite, "trixie");
        assert!(rf.answers_to("valkey") && rf.answers_to("redis-family"));
        assert!(!rf.answers_to("haproxy"));
    }

    #[test]
    fn image_names_are_unique_across_recipes() {
        let mut names: Vec<String> = recipes()
            .iter()
            .flat_map(|r| r.tags.iter().map(|t| t.name.clone()))
            .collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    #[test]
    fn tag_version_strips_epoch_revision_and_repack_suffix() {
        assert_eq!(tag_version("5:8.0.2-3+deb13u3"), "8.0.2");
        assert_eq!(tag_version("8.1.1+dfsg1-3+deb13u3"), "8.1.1");
        assert_eq!(tag_version("1.69.0-1"), "1.69.0");
        assert_eq!(tag_version("2.53.3+ds1-2"), "2.53.3");
        assert_eq!(tag_version("17+278+deb13u1"), "17");
        assert_eq!(tag_version("1.6.7~rc0-2+b12"), "1.6.7-rc0");
        assert_eq!(tag_version("18.16.1+ds-7.3+b2"), "18.16.1");
    }

    #[test]
    fn tags_for_versions_adds_full_version_and_checks_the_promise() {
        let rf = redis_family();
        let mut installed = HashMap::new();
        installed.insert(
            "valkey-server".to_string(),
            "8.1.1+dfsg1-3+deb13u3".to_string(),
        );
        installed.insert("redis-server".to_string(), "5:8.0.2-3+deb13u3".to_string());
        installed.insert(
            "prometheus-redis-exporter".to_string(),
            "1.69.0-1".to_string(),
        );
        let tags = rf.tags_for_versions(&installed).expect("versions match");
        assert_eq!(
            tags,
            vec![
                "localhost/lab/valkey:8.1",
                "localhost/lab/valkey:8.1.1",
                "localhost/lab/redis:8.0",
                "localhost/lab/redis:8.0.2",
                "localhost/lab/redis-exporter:1",
                "localhost/lab/redis-exporter:1.69.0",
            ]
        );

        // 8.10 must not pass for 8.1.
        installed.insert("valkey-server".to_string(), "8.10.0-1".to_string());
        let err = rf
            .tags_for_versions(&installed)
            .expect_err("8.10 is not 8.1");
        assert!(matches!(err, ImageError::VersionMismatch { .. }), "{err}");

        installed.remove("valkey-server");
        let err = rf
            .tags_for_versions(&installed)
            .expect_err("package missing");
        assert!(matches!(err, ImageError::PackageMissing { .. }), "{err}");
    }

    #[test]
    fn image_name_of_offline_reference() {
        assert_eq!(image_name("localhost/lab/valkey:8.1"), Some("valkey"));
        assert_eq!(
            image_name("localhost/lab/redis-exporter"),
            Some("redis-exporter")
        );
        assert_eq!(image_name("valkey/valkey:8.1"), None);
    }
}
