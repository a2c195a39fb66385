//! The public JSON views of an image. GPS is never part of them.

use serde::Serialize;

use super::ingest::Stored;
use super::record::{ImageRecord, VariantsStatus};
use crate::media::variants::Size;

#[derive(Debug, Serialize)]
pub struct VariantView {
    pub status: VariantsStatus,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

/// The public metadata of an image. GPS is deliberately absent.
#[derive(Debug, Serialize)]
pub struct ImageView {
    pub id: String,
    pub link: String,
    pub page: String,
    pub mime: &'static str,
    pub format: &'static str,
    pub width: u32,
    pub height: u32,
    pub display_width: u32,
    pub display_height: u32,
    pub orientation: Option<u16>,
    pub bytes: u64,
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
    pub taken_at: Option<String>,
    pub created_at: String,
    pub variants: std::collections::BTreeMap<&'static str, VariantView>,
}

impl ImageView {
    pub fn new(r: &ImageRecord, base: &str) -> Self {
        let (dw, dh) = r.display_dimensions();
        let variants = Size::ALL
            .into_iter()
            .map(|size| {
                let made = r.variant(size);
                let status = match (made, r.variants) {
                    (Some(_), _) => VariantsStatus::Ready,
                    (None, VariantsStatus::Failed) => VariantsStatus::Failed,
                    _ => VariantsStatus::Pending,
                };
                let view = VariantView {
                    status,
                    url: format!("{base}/i/{}?size={}", r.id, size.name()),
                    width: made.map(|v| v.width),
                    height: made.map(|v| v.height),
                };
                (size.name(), view)
            })
            .collect();
        ImageView {
            id: r.id.clone(),
            link: format!("{base}/i/{}.{}", r.id, r.format.ext()),
            page: format!("{base}/v/{}", r.id),
            mime: r.format.mime(),
            format: r.format.name(),
            width: r.width,
            height: r.height,
            display_width: dw,
            display_height: dh,
            orientation: r.meta.orientation,
            bytes: r.bytes,
            camera_make: r.meta.camera_make.clone(),
            camera_model: r.meta.camera_model.clone(),
            taken_at: r.meta.taken_at.clone(),
            created_at: r.created_at.clone(),
            variants,
        }
    }
}

/// What an upload answers: the public view plus this upload's token.
#[derive(Debug, Serialize)]
pub struct UploadView {
    #[serde(flatten)]
    pub image: ImageView,
    pub duplicate: bool,
    pub delete_token: String,
}

impl UploadView {
    pub fn new(stored: &Stored, delete_token: String, base: &str) -> Self {
        UploadView { image: ImageView::new(&stored.image, base), duplicate: stored.duplicate, delete_token }
    }
}
