//! Offline images built from Debian packages, for hosts that reach Debian's mirrors but no
//! container registry. A recipe is one mmdebstrap rootfs, cached as a tarball under the user
//! cache dir, imported once per engine through its API and tagged `localhost/lab/<name>:<ver>`;
//! `resolve` then picks, per image, the upstream or the offline reference for a topology.

mod import;
mod progress;
mod recipes;
mod rootfs;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

pub use recipes::{
    image_name, recipes, tag_ref, tag_version, ImageTag, Recipe, DEFAULT_MIRROR, LABEL_OFFLINE,
    LABEL_RECIPE, LABEL_RECIPE_HASH, RECIPE_FORMAT, TAG_PREFIX,
};
pub use rootfs::{cache_dir, cached_tar};

use crate::engine::{Engine, EngineError};
use progress::Step;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("mmdebstrap is not installed, and lab builds its offline images with it; install it with `apt-get install mmdebstrap`.")]
    MmdebstrapMissing,
    #[error("failed to build rootfs {recipe}: {detail}")]
    Rootfs { recipe: String, detail: String },
    #[error(
        "no cache directory for offline images: set LAB_CACHE_DIR (or XDG_CACHE_HOME or HOME)."
    )]
    NoCacheDir,
    #[error("failed to {action} {}: {source}", path.display())]
    Cache {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read package versions from rootfs {}: {detail}", path.display())]
    Versions { path: PathBuf, detail: String },
    #[error("rootfs {recipe} does not contain package {package}; the recipe's version source is wrong (lab/core/src/images/recipes.rs).")]
    PackageMissing { recipe: String, package: String },
    #[error("rootfs {recipe} has {package} {found}, which does not match the tag {tag} the recipe promises; update the version in lab/core/src/images/recipes.rs.")]
    VersionMismatch {
        recipe: String,
        package: String,
        found: String,
        tag: String,
    },
    #[error("failed to import {} into {engine} as {tag}: {source} (if the cached tarball is damaged, rebuild it with `lab images build --force`)", tar.display())]
    Import {
        tar: PathBuf,
        tag: String,
        engine: String,
        #[source]
        source: Box<bollard::errors::Error>,
    },
    #[error("{engine} imported {tag} but dropped its labels, so lab could not tell it is up to date; please report this with `lab doctor` output.")]
    LabelsIgnored { tag: String, engine: String },
    #[error("failed to tag {image} as {tag}: {source}")]
    Tag {
        image: String,
        tag: String,
        #[source]
        source: Box<bollard::errors::Error>,
    },
    #[error("unknown image or recipe `{name}`; known: {known}.")]
    UnknownName { name: String, known: String },
    #[error("image {name} cannot be built offline: {reason}")]
    Unavailable { name: String, reason: String },
    #[error("{image} {problem}; {advice}")]
    ImageMissing {
        image: String,
        problem: String,
        advice: String,
    },
    #[error("unknown image mode `{0}`; use upstream, offline or auto.")]
    BadMode(String),
    #[error(transparent)]
    Engine(Box<EngineError>),
}

// Boxed, like the bollard errors above, so that every Result carrying an ImageError stays small.
impl From<EngineError> for ImageError {
    fn from(e: EngineError) -> Self {
        ImageError::Engine(Box::new(e))
    }
}

/// Which images a topology runs: the registry's, lab's Debian-built ones, or whichever exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageMode {
    Upstream,
    Offline,
    Auto,
}

impl FromStr for ImageMode {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "upstream" => Ok(ImageMode::Upstream),
            "offline" => Ok(ImageMode::Offline),
            "auto" => Ok(ImageMode::Auto),
            _ => Err(ImageError::BadMode(s.to_string())),
        }
    }
}

impl std::fmt::Display for ImageMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ImageMode::Upstream => "upstream",
            ImageMode::Offline => "offline",
            ImageMode::Auto => "auto",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSource {
    Upstream,
    Offline,
}

/// The reference a topology should use, and one line saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub reference: String,
    pub source: ImageSource,
    pub note: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildStatus {
    /// mmdebstrap ran and the result was imported.
    Built,
    /// Every tag already carried this recipe's hash; nothing was done.
    UpToDate,
    /// The cached rootfs tarball was imported without running mmdebstrap.
    Imported,
}

impl std::fmt::Display for BuildStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BuildStatus::Built => "built",
            BuildStatus::UpToDate => "up to date",
            BuildStatus::Imported => "imported from cache",
        })
    }
}

#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub recipe: String,
    /// Every tag the recipe's image now carries (promised and full-version ones); for an
    /// up-to-date recipe, the promised ones.
    pub tags: Vec<String>,
    pub status: BuildStatus,
    pub seconds: f64,
}

/// Recipes to build for `names` (image or recipe names; empty: every available recipe).
fn select(names: &[String]) -> Result<Vec<Recipe>, ImageError> {
    let all = recipes();
    if names.is_empty() {
        return Ok(all.into_iter().filter(|r| r.available.is_ok()).collect());
    }
    let mut chosen: Vec<Recipe> = Vec::new();
    for name in names {
        let Some(r) = all.iter().find(|r| r.answers_to(name)) else {
            let mut known: Vec<&str> = all.iter().map(|r| r.name.as_str()).collect();
            known.extend(
                all.iter()
                    .flat_map(|r| r.tags.iter().map(|t| t.name.as_str())),
            );
            known.sort();
            known.dedup();
            return Err(ImageError::UnknownName {
                name: name.clone(),
                known: known.join(", "),
            });
        };
        if let Err(reason) = &r.available {
            return Err(ImageError::Unavailable {
                name: name.clone(),
                reason: reason.clone(),
            });
        }
        if !chosen.iter().any(|c| c.name == r.name) {
            chosen.push(r.clone());
        }
    }
    Ok(chosen)
}

/// Builds (or imports from cache) the recipes behind `names`, skipping those whose images
/// already carry the recipe's hash unless `force`. `force` also rebuilds the cached rootfs.
pub async fn build(
    engine: &Engine,
    names: &[String],
    force: bool,
) -> Result<Vec<BuildOutcome>, ImageError> {
    let mut out = Vec::new();
    for recipe in select(names)? {
        out.push(build_one(engine, &recipe, force).await?);
    }
    Ok(out)
}

async fn build_one(
    engine: &Engine,
    recipe: &Recipe,
    force: bool,
) -> Result<BuildOutcome, ImageError> {
    let started = Instant::now();
    let hash = recipe.hash();
    let short = &hash[..12];
    let step = Step::new(&recipe.name);
    let promised: Vec<String> = recipe.tags.iter().map(|t| t.tag.clone()).collect();

    if !force && all_tagged_with(engine, &promised, &hash).await? {
        step.finish();
        step.say(&format!(
            "{}: up to date on {} (recipe {short})",
            recipe.name, engine.info.kind
        ));
        return Ok(BuildOutcome {
            recipe: recipe.name.clone(),
            tags: promised,
            status: BuildStatus::UpToDate,
            seconds: started.elapsed().as_secs_f64(),
        });
    }

    let tar = cached_tar(&hash)?;
    let status = if !force && rootfs::is_cached(&tar) {
        step.say(&format!(
            "{}: using cached rootfs {}",
            recipe.name,
            tar.display()
        ));
        BuildStatus::Imported
    } else {
        let n = recipe.packages.len();
        step.say(&format!(
            "building rootfs {} ({}, {n} package{})...",
            recipe.name,
            recipe.suite,
            if n == 1 { "" } else { "s" }
        ));
        let t = Instant::now();
        rootfs::build_rootfs(recipe, &tar, &step).await?;
        step.say(&format!(
            "built rootfs {} in {:.1} s ({} MB, cached as {})",
            recipe.name,
            t.elapsed().as_secs_f64(),
            rootfs::file_size(&tar) / 1_000_000,
            tar.display()
        ));
        BuildStatus::Built
    };

    let versions = rootfs::installed_versions(&tar).await?;
    let tags = recipe.tags_for_versions(&versions)?;
    step.say(&format!(
        "importing rootfs {} into {}...",
        recipe.name, engine.info.kind
    ));
    let t = Instant::now();
    import::import(engine, recipe, &hash, &tar, &tags, &step).await?;
    step.finish();
    step.say(&format!(
        "{}: imported into {} in {:.1} s",
        recipe.name,
        engine.info.kind,
        t.elapsed().as_secs_f64()
    ));
    Ok(BuildOutcome {
        recipe: recipe.name.clone(),
        tags,
        status,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn all_tagged_with(engine: &Engine, tags: &[String], hash: &str) -> Result<bool, ImageError> {
    for t in tags {
        match engine.image_labels(t).await? {
            Some(labels) if labels.get(LABEL_RECIPE_HASH).map(String::as_str) == Some(hash) => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// Picks the image reference for one service. `upstream` is the registry image
/// (`valkey/valkey:8.1`), `offline` the lab-built one (`localhost/lab/valkey:8.1`).
pub async fn resolve(
    engine: &Engine,
    mode: ImageMode,
    upstream: &str,
    offline: &str,
) -> Result<Resolved, ImageError> {
    let build_cmd = match image_name(offline) {
        Some(name) => format!("`lab images build {name}`"),
        None => "`lab images build`".to_string(),
    };
    let upstream_ok = |note: String| Resolved {
        reference: upstream.to_string(),
        source: ImageSource::Upstream,
        note,
    };
    match mode {
        ImageMode::Upstream => {
            if engine.image_present(upstream).await? {
                return Ok(upstream_ok(String::new()));
            }
            if engine.try_pull(upstream).await {
                return Ok(upstream_ok(format!("pulled upstream {upstream}")));
            }
            Err(ImageError::ImageMissing {
                image: upstream.to_string(),
                problem: "is not present on this engine and cannot be pulled (no registry reachable)".into(),
                advice: format!("build the offline image with {build_cmd} and run with `--images offline` (or `--images auto`)."),
            })
        }
        ImageMode::Offline => {
            if engine.image_present(offline).await? {
                return Ok(Resolved {
                    reference: offline.to_string(),
                    source: ImageSource::Offline,
                    note: String::new(),
                });
            }
            Err(ImageError::ImageMissing {
                image: offline.to_string(),
                problem: "is not present on this engine".into(),
                advice: format!("build it with {build_cmd}."),
            })
        }
        ImageMode::Auto => {
            if engine.image_present(upstream).await? {
                return Ok(upstream_ok(String::new()));
            }
            if engine.try_pull(upstream).await {
                return Ok(upstream_ok(format!("pulled upstream {upstream}")));
            }
            if engine.image_present(offline).await? {
                return Ok(Resolved {
                    reference: offline.to_string(),
                    source: ImageSource::Offline,
                    note: format!(
                        "upstream {upstream} not present and no registry reachable; using offline {offline}"
                    ),
                });
            }
            Err(ImageError::ImageMissing {
                image: upstream.to_string(),
                problem: format!("is not present and cannot be pulled (no registry reachable), and the offline {offline} is not built either"),
                advice: format!("build the offline image with {build_cmd}."),
            })
        }
    }
}

/// Every promised offline tag and whether this engine has it, for `lab doctor`.
pub async fn list(engine: &Engine) -> Result<Vec<(String, bool)>, ImageError> {
    let present = engine.list_image_tags(TAG_PREFIX).await?;
    let mut out = Vec::new();
    for r in recipes().into_iter().filter(|r| r.available.is_ok()) {
        for t in r.tags {
            let here = present.contains(&t.tag);
            out.push((t.tag, here));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_mode_parses_the_three_modes() {
        assert_eq!(
            "upstream".parse::<ImageMode>().ok(),
            Some(ImageMode::Upstream)
        );
        assert_eq!(
            "offline".parse::<ImageMode>().ok(),
            Some(ImageMode::Offline)
        );
        assert_eq!(" Auto ".parse::<ImageMode>().ok(), Some(ImageMode::Auto));
        let err = "local".parse::<ImageMode>().expect_err("not a mode");
        assert_eq!(
            err.to_string(),
            "unknown image mode `local`; use upstream, offline or auto."
        );
        for m in [ImageMode::Upstream, ImageMode::Offline, ImageMode::Auto] {
            assert_eq!(m.to_string().parse::<ImageMode>().ok(), Some(m));
        }
    }

    #[test]
    fn select_by_image_or_recipe_name() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let picked = select(&names(&["valkey", "redis-exporter", "redis-family"])).expect("known");
        assert_eq!(picked.len(), 1);
        assert_eq!(picked[0].name, "redis-family");

        let picked = select(&names(&["prometheus", "haproxy"])).expect("known");
        let got: Vec<&str> = picked.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(got, vec!["monitoring", "haproxy"]);

        let all = select(&[]).expect("all");
        assert_eq!(
            all.len(),
            recipes().iter().filter(|r| r.available.is_ok()).count()
        );

        let err = select(&names(&["valky"])).expect_err("typo");
        assert!(
            err.to_string()
                .starts_with("unknown image or recipe `valky`; known: "),
            "{err}"
        );
        assert!(err.to_string().contains("valkey"), "{err}");
    }

    #[test]
    fn missing_image_messages_say_what_to_run() {
        let e = ImageError::ImageMissing {
            image: "localhost/lab/valkey:8.1".into(),
            problem: "is not present on this engine".into(),
            advice: "build it with `lab images build valkey`.".into(),
        };
        assert_eq!(
            e.to_string(),
            "localhost/lab/valkey:8.1 is not present on this engine; build it with `lab images build valkey`."
        );
    }
}
