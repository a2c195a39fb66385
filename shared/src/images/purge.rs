//! Deletion: one upload by its token (the image goes with its last upload), or a whole image.

use time::OffsetDateTime;
use tracing::{info, instrument};

use super::ingest::INGEST_ATTEMPTS;
use super::record::{HASH_SK, ImageRecord, Layout, META, State, hash_pk, image_pk, upload_sk};
use crate::error::{Error, Refusal, Result};
use crate::secret;
use crate::state::App;
use crate::stats::{self, Change};
use crate::store::{Cond, GSI1PK, GSI1SK, Query, TxOp, Update};

/// The writes that take one upload off an image: its item becomes a tombstone (`deleted`) and
/// the image's count drops, if the image meets `image_cond` and still has uploads.
fn detach_upload(id: &str, token_digest: &str, image_cond: Cond) -> Vec<TxOp> {
    vec![
        TxOp::Update {
            pk: image_pk(id),
            sk: upload_sk(token_digest),
            update: Update::new().set("deleted", true),
            cond: Some(Cond::Exists.and(Cond::AttrNotExists("deleted".into()))),
        },
        TxOp::Update {
            pk: image_pk(id),
            sk: META.into(),
            update: Update::new().add("refs", -1),
            cond: Some(image_cond.and(Cond::gt("refs", 0))),
        },
    ]
}

/// Takes back the upload that created a still-pending image whose original could not be
/// stored, and removes the image when nothing else holds it. Returns the image instead when a
/// concurrent uploader of the same bytes activated it meanwhile: the original is stored then,
/// and that activation counted this upload, so the upload stands. The `pending` condition makes
/// the two outcomes exclusive.
pub(super) async fn undo_pending_upload(app: &App, id: &str, token_digest: &str) -> Result<Option<ImageRecord>> {
    let ops = detach_upload(id, token_digest, Cond::eq("state", State::Pending.as_str()));
    let undone = match app.table.transact(ops).await {
        Ok(()) => true,
        Err(e) if e.is_condition_failed() => false,
        Err(e) => return Err(e.into()),
    };
    let Some(item) = app.table.get(&image_pk(id), META).await? else { return Ok(None) };
    let record = ImageRecord::from_item(&item)?;
    if !undone {
        return Ok((record.state == State::Active).then_some(record));
    }
    if record.refs <= 0 {
        purge(app, &record, Some(Cond::le("refs", 0))).await?;
    }
    Ok(None)
}

pub(super) async fn clear_hash(app: &App, hash: &str, id: &str) -> Result<()> {
    match app.table.delete(&hash_pk(hash), HASH_SK, Some(Cond::eq("image_id", id))).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_condition_failed() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes one upload by its delete token; the image goes with its last upload.
#[instrument(skip(app, token))]
pub async fn delete_upload(app: &App, id: &str, token: &str) -> Result<()> {
    if !secret::is_image_id(id) {
        return Err(Error::not_found("image"));
    }
    match remove_upload(app, id, &secret::digest_hex(token)).await? {
        Removal::Done => Ok(()),
        Removal::NoSuchImage => Err(Error::not_found("image")),
        Removal::WrongToken => {
            Err(Error::client(Refusal::Forbidden, "forbidden", "the delete token does not match this image"))
        }
    }
}

enum Removal {
    Done,
    NoSuchImage,
    WrongToken,
}

/// Takes one upload off an image and purges the image when it was the last.
///
/// The upload item is not deleted but marked `deleted` in the same transaction that lowers the
/// count: if anything fails after that (the purge, the network), the same token finds its
/// tombstone and finishes the job, instead of meeting a 403 with the image still up. The purge
/// removes the tombstones with the image.
async fn remove_upload(app: &App, id: &str, token_digest: &str) -> Result<Removal> {
    let ops = detach_upload(id, token_digest, Cond::Exists);
    match app.table.transact(ops).await {
        Ok(()) => {}
        Err(e) if e.is_condition_failed() => {
            // Either a retry of a delete that got this far before (resume it), a wrong token,
            // or no image at all. Which one is told apart without revealing anything about tokens.
            let upload = app.table.get(&image_pk(id), &upload_sk(token_digest)).await?;
            let meta = app.table.get(&image_pk(id), META).await?;
            match (upload.and_then(|u| u.bool("deleted")), meta) {
                (Some(true), Some(_)) => {}
                (Some(true), None) => return Ok(Removal::Done),
                (_, None) => return Ok(Removal::NoSuchImage),
                (_, Some(_)) => return Ok(Removal::WrongToken),
            }
        }
        Err(e) => return Err(e.into()),
    }
    let Some(item) = app.table.get(&image_pk(id), META).await? else { return Ok(Removal::Done) };
    let record = ImageRecord::from_item(&item)?;
    if record.refs <= 0 {
        purge(app, &record, Some(Cond::le("refs", 0))).await?;
    }
    Ok(Removal::Done)
}

/// Deletes an image with all its uploads (admin).
#[instrument(skip(app))]
pub async fn delete_image(app: &App, id: &str) -> Result<()> {
    if !secret::is_image_id(id) {
        return Err(Error::not_found("image"));
    }
    let item = app.table.get(&image_pk(id), META).await?.ok_or_else(|| Error::not_found("image"))?;
    purge(app, &ImageRecord::from_item(&item)?, None).await
}

/// Removes an image: marks it deleting (so no new upload can join it), detaches its hash,
/// removes its objects, then its items. Every step after the mark is idempotent, so a crash
/// midway is finished by any later delete.
///
/// The mark is conditional on the state the caller saw, and a visible image's counters are
/// lowered in the same transaction: the image is uncounted exactly once, by whoever marks it,
/// and a resumed purge (state already `deleting`) does not uncount it again.
pub(super) async fn purge(app: &App, record: &ImageRecord, guard: Option<Cond>) -> Result<()> {
    let pk = image_pk(&record.id);
    let mut current = record.clone();
    let mut marked = false;
    for _ in 0..INGEST_ATTEMPTS {
        if current.state == State::Deleting {
            marked = true;
            break;
        }
        let mark = Update::new().set("state", State::Deleting.as_str()).remove(GSI1PK).remove(GSI1SK);
        // Also conditional on the key layout seen, so the objects removed below are the ones
        // the image has even if `imghost relayout` moves it meanwhile.
        let layout = match current.layout {
            Layout::Bare => Cond::eq("layout", "bare"),
            Layout::Named => Cond::AttrNotExists("layout".into()),
        };
        let mut cond = Cond::Exists.and(Cond::eq("state", current.state.as_str())).and(layout);
        if let Some(g) = &guard {
            cond = cond.and(g.clone());
        }
        let op = TxOp::Update { pk: pk.clone(), sk: META.into(), update: mark, cond: Some(cond) };
        let result = if current.state == State::Active {
            let facts = current.facts();
            stats::transact_counted(&*app.table, vec![op], Change::ImageRemoved(&facts), OffsetDateTime::now_utc())
                .await
        } else {
            // A pending image was never counted.
            app.table.transact(vec![op]).await
        };
        match result {
            Ok(()) => {
                marked = true;
                break;
            }
            Err(e) if e.is_condition_failed() => {
                // Gone already, a new upload joined after refs reached zero (the image lives
                // on), or the state moved under us (a pending image was activated): look again.
                let Some(item) = app.table.get(&pk, META).await? else { return Ok(()) };
                if guard.as_ref().is_some_and(|g| !g.eval(Some(&item))) {
                    return Ok(());
                }
                current = ImageRecord::from_item(&item)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !marked {
        return Err(Error::client(Refusal::Unavailable, "busy", "the image is being changed concurrently; try again"));
    }
    // Marked: no new reader can open it, so what is cached goes now, and again once the objects
    // are gone, in case a request opened it in between. The record is the one marked, whose
    // layout names the objects.
    let record = &current;
    super::forget(app, record);
    clear_hash(app, &record.hash, &record.id).await?;
    app.objects.delete(&record.original_key()).await?;
    // Every key a variant can have, so variants made after the record was read go too.
    for key in record.possible_variant_keys() {
        app.objects.delete(&key).await?;
    }
    let mut start = None;
    loop {
        let page = app.table.query(Query::table(pk.clone()).limit(100).start(start)).await?;
        for item in &page.items {
            if item.sk() != META {
                app.table.delete(&pk, item.sk(), None).await?;
            }
        }
        match page.next {
            Some(c) => start = Some(c),
            None => break,
        }
    }
    app.table.delete(&pk, META, None).await?;
    super::forget(app, record);
    info!(image_id = %record.id, "image deleted");
    Ok(())
}
