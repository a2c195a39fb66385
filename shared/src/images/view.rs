//! The public JSON views of an image. GPS is never part of them.

use serde::Serialize;
use utoipa::ToSchema;

use super::ingest::Stored;
use super::record::{ImageRecord, VariantsStatus};
use crate::media::variants::Size;

/// One size of an image: `url` gets the best format the browser accepts; `formats` lists each
/// format it is made in, with a URL that always gets that one.
#[derive(Debug, Serialize, ToSchema)]
pub struct VariantView {
    pub status: VariantsStatus,
    #[schema(example = "https://img.example/i/Ab3dE-9x?size=small")]
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    pub formats: Vec<VariantFormatView>,
}

/// One format a size is made in.
#[derive(Debug, Serialize, ToSchema)]
pub struct VariantFormatView {
    #[schema(example = "webp")]
    pub format: &'static str,
    #[schema(example = "image/webp")]
    pub mime: &'static str,
    pub url: String,
    pub bytes: u64,
}

/// The public metadata of an image. GPS is deliberately absent.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageView {
    /// 8 characters of URL-safe base64.
    #[schema(example = "Ab3dE-9x", pattern = "^[A-Za-z0-9_-]{8}$")]
    pub id: String,
    /// The original: `/i/{id}.{ext}`.
    #[schema(example = "https://img.example/i/Ab3dE-9x.jpg")]
    pub link: String,
    /// The image's web page: `/v/{id}`.
    #[schema(example = "https://img.example/v/Ab3dE-9x")]
    pub page: String,
    #[schema(example = "image/jpeg")]
    pub mime: &'static str,
    /// `jpeg`, `png`, `gif` or `webp`.
    #[schema(example = "jpeg")]
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
    pub variants: SizeVariants,
}

/// The three variant sizes (320, 1024 and 2048 px on the longer side). The fields are in
/// alphabetical order, as the answer has always listed them.
#[derive(Debug, Serialize, ToSchema)]
pub struct SizeVariants {
    pub large: VariantView,
    pub medium: VariantView,
    pub small: VariantView,
}

impl ImageView {
    pub fn new(r: &ImageRecord, base: &str) -> Self {
        let (dw, dh) = r.display_dimensions();
        let variant = |size: Size| {
            let made = r.variant(size);
            let status = match (made, r.variants) {
                (Some(_), _) => VariantsStatus::Ready,
                (None, VariantsStatus::Failed) => VariantsStatus::Failed,
                _ => VariantsStatus::Pending,
            };
            let formats = r
                .made_variants()
                .filter(|v| v.size == size)
                .map(|v| VariantFormatView {
                    format: v.format.name(),
                    mime: v.format.mime(),
                    url: format!("{base}/i/{}.{}?size={}", r.id, v.format.ext(), size.name()),
                    bytes: v.bytes,
                })
                .collect();
            VariantView {
                status,
                url: format!("{base}/i/{}?size={}", r.id, size.name()),
                width: made.map(|v| v.width),
                height: made.map(|v| v.height),
                formats,
            }
        };
        let variants =
            SizeVariants { large: variant(Size::Large), medium: variant(Size::Medium), small: variant(Size::Small) };
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
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadView {
    #[serde(flatten)]
    pub image: ImageView,
    /// The same bytes were uploaded before: this upload shares their image.
    pub duplicate: bool,
    /// Shown once: deletes this upload (`X-Delete-Token`).
    #[schema(example = "q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c")]
    pub delete_token: String,
}

impl UploadView {
    pub fn new(stored: &Stored, delete_token: String, base: &str) -> Self {
        UploadView { image: ImageView::new(&stored.image, base), duplicate: stored.duplicate, delete_token }
    }
}

/// One picture of an image that a preview can point at: a made variant, or the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendition {
    pub url: String,
    /// As displayed (after the EXIF orientation, which variants have applied already).
    pub width: u32,
    pub height: u32,
    pub mime: &'static str,
}

/// What previews may point at, smallest first: the variants once they are made (upright, with
/// no metadata, and no larger than a screen needs), else the original.
pub fn renditions(r: &ImageRecord, base: &str) -> Vec<Rendition> {
    let mut out: Vec<Rendition> = Size::ALL.into_iter().filter_map(|size| variant_rendition(r, size, base)).collect();
    out.sort_by_key(|v| u64::from(v.width) * u64::from(v.height));
    if out.is_empty() {
        out.push(original_rendition(r, base));
    }
    out
}

fn variant_rendition(r: &ImageRecord, size: Size, base: &str) -> Option<Rendition> {
    r.variant(size).map(|v| Rendition {
        url: format!("{base}/i/{}?size={}", r.id, v.size.name()),
        width: v.width,
        height: v.height,
        mime: v.format.mime(),
    })
}

fn original_rendition(r: &ImageRecord, base: &str) -> Rendition {
    let (width, height) = r.display_dimensions();
    Rendition { url: format!("{base}/i/{}.{}", r.id, r.format.ext()), width, height, mime: r.format.mime() }
}

/// What a shared link shows in a chat or a social network (Open Graph and Twitter card tags on
/// the image page): the large variant when it is made, else the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub title: String,
    /// The image page, the link people share.
    pub page_url: String,
    pub image: Rendition,
}

impl Preview {
    pub fn new(r: &ImageRecord, base: &str) -> Self {
        Preview {
            title: title(r),
            page_url: format!("{base}/v/{}", r.id),
            image: variant_rendition(r, Size::Large, base).unwrap_or_else(|| original_rendition(r, base)),
        }
    }
}

fn title(r: &ImageRecord) -> String {
    let (w, h) = r.display_dimensions();
    format!("{} image, {w} × {h}", r.format.name().to_uppercase())
}

/// An oEmbed answer of type `photo` (oembed.com §2.3.4): the largest of the [`renditions`]
/// within the consumer's `maxwidth` and `maxheight` (the smallest when none fits), with the
/// small variant as its thumbnail.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OEmbed {
    #[schema(example = "1.0")]
    pub version: &'static str,
    #[serde(rename = "type")]
    #[schema(example = "photo")]
    pub kind: &'static str,
    pub title: String,
    pub provider_name: &'static str,
    pub provider_url: String,
    pub url: String,
    pub width: u32,
    pub height: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail_width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail_height: Option<u32>,
}

impl OEmbed {
    pub fn new(r: &ImageRecord, base: &str, max_width: Option<u32>, max_height: Option<u32>) -> Self {
        let all = renditions(r, base);
        let fits = |v: &&Rendition| max_width.is_none_or(|m| v.width <= m) && max_height.is_none_or(|m| v.height <= m);
        let chosen =
            all.iter().rev().find(fits).or(all.first()).cloned().unwrap_or_else(|| original_rendition(r, base));
        let thumbnail = variant_rendition(r, Size::Small, base);
        OEmbed {
            version: "1.0",
            kind: "photo",
            title: title(r),
            provider_name: "imghost",
            provider_url: base.to_owned(),
            url: chosen.url,
            width: chosen.width,
            height: chosen.height,
            thumbnail_url: thumbnail.as_ref().map(|t| t.url.clone()),
            thumbnail_width: thumbnail.as_ref().map(|t| t.width),
            thumbnail_height: thumbnail.as_ref().map(|t| t.height),
        }
    }
}
