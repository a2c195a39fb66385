//! Moving an image stored under the named layout (keys with the format in them) to the bare
//! one, so that the CDN, which names keys from URLs alone, can serve it. See [`Layout`].

use tracing::{info, warn};

use super::record::{ImageRecord, Layout, META, State, VariantsStatus, image_pk};
use crate::error::{Error, Result};
use crate::state::App;
use crate::store::{Cond, Update};

/// What [`adopt_bare_layout`] did with one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relayout {
    /// Its objects now live under bare keys.
    Moved,
    /// It was stored under bare keys already (or is gone).
    AlreadyBare,
    /// Not now: its variants are still being made, or it is being deleted. Run again later.
    Later,
}

/// Copies an active image's objects to their bare keys, marks the item, then removes the named
/// objects. Readers are served throughout: the item names the old keys until every copy is
/// stored, and the new ones from the moment it is marked.
///
/// Safe to repeat and to interrupt: a copy writes the same bytes under the same key, and the
/// old objects go only once the item is marked, so a run that stops anywhere leaves an image
/// that is served, and the next run finishes it. An image whose variants are pending is left
/// for later, since the resize worker would store them under the keys of the record it read.
pub async fn adopt_bare_layout(app: &App, id: &str) -> Result<Relayout> {
    let Some(record) = super::get(app, id).await? else {
        return Ok(Relayout::AlreadyBare);
    };
    if record.layout == Layout::Bare {
        return Ok(Relayout::AlreadyBare);
    }
    if record.state != State::Active || record.variants == VariantsStatus::Pending {
        return Ok(Relayout::Later);
    }
    let bare = ImageRecord { layout: Layout::Bare, ..record.clone() };
    let mut moves = vec![(record.original_key(), bare.original_key())];
    if record.variants == VariantsStatus::Ready {
        for v in &record.variant_info {
            moves.push((record.variant_key(v.size, v.format), bare.variant_key(v.size, v.format)));
        }
    }
    for (i, (from, to)) in moves.iter().enumerate() {
        let Some(object) = app.objects.get(from).await? else {
            // A delete that began meanwhile removes the old objects; anything else is damage.
            if super::get(app, id).await?.is_some_and(|r| r.state == State::Active) {
                return Err(Error::internal(format!("image {id} names {from}, which is missing")));
            }
            for (_, copied) in &moves[..i] {
                app.objects.delete(copied).await?;
            }
            return Ok(Relayout::Later);
        };
        app.objects.put(to, object.bytes, &object.content_type).await?;
    }
    let marked = Cond::eq("state", State::Active.as_str()).and(Cond::AttrNotExists("layout".into()));
    match app.table.update(&image_pk(id), META, Update::new().set("layout", "bare"), Some(marked)).await {
        Ok(_) => {}
        Err(e) if e.is_condition_failed() => {
            // Either another run marked it (its copies are these copies: keep them), or a delete
            // began, whose purge may have read the old layout and would miss the new keys.
            let now = super::get(app, id).await?;
            if now.as_ref().is_some_and(|r| r.layout == Layout::Bare && r.state == State::Active) {
                return Ok(Relayout::AlreadyBare);
            }
            warn!(image_id = id, "image deleted while its objects moved; removing the copies");
            for (_, to) in &moves {
                app.objects.delete(to).await?;
            }
            return Ok(Relayout::Later);
        }
        Err(e) => return Err(e.into()),
    }
    super::forget(app, &record);
    for (from, _) in &moves {
        app.objects.delete(from).await?;
    }
    info!(image_id = id, objects = moves.len(), "image moved to the bare layout");
    Ok(Relayout::Moved)
}

/// What a run over every image did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayoutReport {
    pub moved: u64,
    pub already_bare: u64,
    /// Images to run again for: variants still being made, or a delete under way.
    pub later: u64,
}

/// Moves every active image (the admin listing, a page at a time) to the bare layout.
pub async fn adopt_bare_layout_everywhere(app: &App) -> Result<RelayoutReport> {
    let mut report = RelayoutReport::default();
    let mut cursor = None;
    loop {
        let (page, next) = super::list(app, 100, cursor).await?;
        for record in page {
            match adopt_bare_layout(app, &record.id).await? {
                Relayout::Moved => report.moved += 1,
                Relayout::AlreadyBare => report.already_bare += 1,
                Relayout::Later => report.later += 1,
            }
        }
        match next {
            Some(c) => cursor = Some(c),
            None => return Ok(report),
        }
    }
}
