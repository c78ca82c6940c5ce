//! Imports a rootfs tarball through the engine API (POST /images/create?fromSrc=-) once per
//! recipe, then tags the one image with every tag the recipe promises.

use std::collections::BTreeSet;
use std::path::Path;

use bollard::query_parameters::{
    CreateImageOptionsBuilder, RemoveImageOptionsBuilder, TagImageOptionsBuilder,
};
use bollard::BollardRequest;
use futures_util::{stream, StreamExt};
use tokio::io::AsyncReadExt;

use super::progress::Step;
use super::recipes::{Recipe, IMAGE_CONFIG, LABEL_OFFLINE, LABEL_RECIPE, LABEL_RECIPE_HASH};
use super::ImageError;
use crate::engine::{is_not_found, Engine};

const CHUNK: usize = 1 << 20;
const IMPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Imports `tar` as `tags[0]`, tags it as the rest, and drops the images those tags pointed at
/// before (when nothing else uses them), so rebuilding does not pile up dangling images.
pub(crate) async fn import(
    engine: &Engine,
    recipe: &Recipe,
    hash: &str,
    tar: &Path,
    tags: &[String],
    step: &Step,
) -> Result<(), ImageError> {
    let Some(first) = tags.first() else {
        return Ok(());
    };
    let mut replaced = BTreeSet::new();
    for t in tags {
        if let Ok(img) = engine.raw().inspect_image(t).await {
            if let Some(id) = img.id {
                replaced.insert(id);
            }
        }
    }

    let import_err = |source| ImageError::Import {
        tar: tar.to_path_buf(),
        tag: first.clone(),
        engine: engine.info.kind.to_string(),
        source: Box::new(source),
    };
    let file = tokio::fs::File::open(tar)
        .await
        .map_err(|source| ImageError::Cache {
            action: "open cached rootfs",
            path: tar.to_path_buf(),
            source,
        })?;
    let total = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    step.start_bytes(total, &format!("importing into {}", engine.info.kind));
    let counter = step.counter();
    let body = stream::try_unfold(file, move |mut f| {
        let counter = counter.clone();
        async move {
            let mut buf = vec![0u8; CHUNK];
            let n = f.read(&mut buf).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.truncate(n);
            counter.inc(n as u64);
            Ok(Some((bytes::Bytes::from(buf), f)))
        }
    });

    let mut changes: Vec<String> = IMAGE_CONFIG.iter().map(|c| c.to_string()).collect();
    changes.push(format!("LABEL {LABEL_RECIPE_HASH}={hash}"));
    changes.push(format!("LABEL {LABEL_OFFLINE}=true"));
    changes.push(format!("LABEL {LABEL_RECIPE}={}", recipe.name));
    // Podman 4.3 ignores the `tag` parameter of an import, so the tag goes in `repo`, which
    // both engines accept as `name:tag`.
    let opts = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(first)
        .changes(changes)
        .build();
    // The engine's request timeout suits API calls, not streaming a 600 MB rootfs into
    // Podman's storage (zookeeper takes ~25 s on this class of machine).
    let docker = engine
        .raw()
        .clone()
        .with_timeout(IMPORT_TIMEOUT)
        .with_request_modifier(repeat_changes_in_request);
    let mut progress = docker.create_image(Some(opts), Some(bollard::body_try_stream(body)), None);
    while let Some(item) = progress.next().await {
        item.map_err(import_err)?;
    }

    let id = match engine.raw().inspect_image(first).await {
        Ok(img) => img.id.unwrap_or_else(|| first.clone()),
        Err(e) => return Err(import_err(e)),
    };
    let labels = engine.image_labels(first).await?.unwrap_or_default();
    if labels.get(LABEL_RECIPE_HASH).map(String::as_str) != Some(hash) {
        return Err(ImageError::LabelsIgnored {
            tag: first.clone(),
            engine: engine.info.kind.to_string(),
        });
    }
    step.say(&format!("imported {first}"));
    for t in &tags[1..] {
        let (repo, tag) = split_ref(t);
        let opts = TagImageOptionsBuilder::default()
            .repo(repo)
            .tag(tag)
            .build();
        engine
            .raw()
            .tag_image(&id, Some(opts))
            .await
            .map_err(|source| ImageError::Tag {
                image: first.clone(),
                tag: t.clone(),
                source: Box::new(source),
            })?;
        step.say(&format!("tagged {t}"));
    }

    for old in replaced.iter().filter(|old| **old != id) {
        let opts = RemoveImageOptionsBuilder::default()
            .force(false)
            .noprune(false)
            .build();
        match engine.raw().remove_image(old, Some(opts), None).await {
            Ok(_) => tracing::debug!(image = %old, "removed image replaced by {first}"),
            Err(e) if is_not_found(&e) => {}
            // Still used by a container or tagged outside lab: leave it to its owner.
            Err(e) => tracing::debug!(image = %old, error = %e, "kept replaced image"),
        }
    }
    Ok(())
}

/// `localhost/lab/valkey:8.1` -> (`localhost/lab/valkey`, `8.1`); a `:` before the last `/`
/// is a registry port, not a tag.
pub(crate) fn split_ref(reference: &str) -> (&str, &str) {
    match reference.rfind(':') {
        Some(i) if !reference[i..].contains('/') => (&reference[..i], &reference[i + 1..]),
        _ => (reference, "latest"),
    }
}

/// bollard sends an import's `changes` as one newline-joined value. Docker joins repeated
/// values with newlines anyway, but Podman 4.3 parses each value as a single instruction and
/// so turns `ENV PATH=..\nCMD ..\nLABEL ..` into one long PATH. Repeating the parameter, one
/// instruction each, is what both engines read correctly.
fn repeat_changes_in_request(mut req: BollardRequest) -> BollardRequest {
    let uri = req.uri().to_string();
    if let Some(fixed) = repeat_changes(&uri) {
        if let Ok(u) = fixed.parse() {
            *req.uri_mut() = u;
        }
    }
    req
}

fn repeat_changes(uri: &str) -> Option<String> {
    let (base, query) = uri.split_once('?')?;
    if !base.ends_with("/images/create") || !query.contains("changes=") {
        return None;
    }
    let parts: Vec<String> = query
        .split('&')
        .flat_map(|pair| match pair.strip_prefix("changes=") {
            Some(v) => v
                .replace("%0a", "%0A")
                .split("%0A")
                .filter(|c| !c.is_empty())
                .map(|c| format!("changes={c}"))
                .collect::<Vec<_>>(),
            None => vec![pair.to_string()],
        })
        .collect();
    Some(format!("{base}?{}", parts.join("&")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_become_repeated_parameters() {
        let uri = "http://localhost/v1.41/images/create?fromSrc=-&repo=localhost%2Flab%2Fvalkey%3A8.1&changes=ENV+PATH%3D%2Fbin%0AWORKDIR+%2F%0aLABEL+a%3Db&platform=";
        assert_eq!(
            repeat_changes(uri).as_deref(),
            Some("http://localhost/v1.41/images/create?fromSrc=-&repo=localhost%2Flab%2Fvalkey%3A8.1&changes=ENV+PATH%3D%2Fbin&changes=WORKDIR+%2F&changes=LABEL+a%3Db&platform=")
        );
        assert_eq!(
            repeat_changes("http://localhost/v1.41/containers/create?changes=a%0Ab"),
            None
        );
        assert_eq!(
            repeat_changes("http://localhost/v1.41/images/create?fromImage=x"),
            None
        );
    }

    #[test]
    fn split_reference_into_repo_and_tag() {
        assert_eq!(
            split_ref("localhost/lab/valkey:8.1"),
            ("localhost/lab/valkey", "8.1")
        );
        assert_eq!(
            split_ref("localhost:5000/lab/valkey"),
            ("localhost:5000/lab/valkey", "latest")
        );
        assert_eq!(split_ref("valkey"), ("valkey", "latest"));
    }
}
