//! The image item and its keys: the one place that knows how an image is stored in the table
//! and where its objects live.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::media::Format;
use crate::media::exif::Metadata;
use crate::media::variants::{self, Size};
use crate::stats::{self, Facts};
use crate::store::Item;

/// The partition of the admin listing index.
pub(super) const LISTING_PARTITION: &str = "IMAGES";

pub(super) fn image_pk(id: &str) -> String {
    format!("IMG#{id}")
}
pub(super) const META: &str = "META";
pub(super) fn upload_sk(token_digest: &str) -> String {
    format!("UPL#{token_digest}")
}
pub(super) fn hash_pk(hash: &str) -> String {
    format!("HASH#{hash}")
}
pub(super) const HASH_SK: &str = "HASH";

/// How an image's objects are named.
///
/// The CDN maps a URL to an object without reading the table (`cdn/images.js`), so a key must
/// follow from what the URL says: the id and the size, never the format, which `/i/{id}` and
/// `?size=` URLs do not carry. A variant's key also differs from its original's only by the
/// prefix, so an origin with the original's prefix answers the same path when the variant is
/// not made yet. Images stored before that carry the format in their keys and keep them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `originals/<id>` and `variants/<size>/<id>`, the content type kept with the object.
    Bare,
    /// `originals/<id>.<ext>` and `variants/<id>/<size>.<ext>`: images stored before the CDN
    /// served by URL alone. Read and deleted as they are; never written for a new image.
    Named,
}

impl Layout {
    fn original_key(self, id: &str, format: Format) -> String {
        match self {
            Layout::Bare => format!("originals/{id}"),
            Layout::Named => format!("originals/{id}.{}", format.ext()),
        }
    }

    /// A size's modern variants (AVIF, WebP) have a prefix of their own,
    /// `variants/<size>-<format>/`, so the CDN finds one from the size and the format it chose
    /// by `Accept`; the classic one (JPEG, PNG or GIF) has the size's.
    fn variant_key(self, id: &str, size: Size, format: Format) -> String {
        match self {
            Layout::Bare if variants::is_modern(format) => format!("variants/{}-{}/{id}", size.name(), format.name()),
            Layout::Bare => format!("variants/{}/{id}", size.name()),
            Layout::Named => format!("variants/{id}/{}.{}", size.name(), format.ext()),
        }
    }
}

/// The image id an object key under `originals/` names, in either layout.
pub fn id_of_original_key(key: &str) -> Option<&str> {
    let name = key.strip_prefix("originals/")?;
    Some(name.split_once('.').map_or(name, |(id, _)| id)).filter(|id| !id.is_empty() && !id.contains('/'))
}

/// Lifecycle of an image item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Items written, original object not yet confirmed stored.
    Pending,
    Active,
    /// Its last upload was deleted; the hash no longer leads here.
    Deleting,
}

impl State {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Active => "active",
            State::Deleting => "deleting",
        }
    }
    fn parse(s: &str) -> Option<State> {
        match s {
            "pending" => Some(State::Pending),
            "active" => Some(State::Active),
            "deleting" => Some(State::Deleting),
            _ => None,
        }
    }
}

/// Where an image's variants stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VariantsStatus {
    Pending,
    Ready,
    /// The pixels could not be decoded; the original is still served.
    Failed,
}

/// A made variant, as recorded on the image item.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct VariantInfo {
    pub size: Size,
    pub width: u32,
    pub height: u32,
    pub format: Format,
    pub bytes: u64,
}

/// An image as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    pub id: String,
    pub hash: String,
    pub format: Format,
    /// Size of the stored (metadata-stripped) original.
    pub bytes: u64,
    /// Stored dimensions, before orientation, as ExifTool reports them.
    pub width: u32,
    pub height: u32,
    pub meta: Metadata,
    pub state: State,
    pub refs: i64,
    pub created_at: String,
    pub variants: VariantsStatus,
    pub variant_info: Vec<VariantInfo>,
    pub layout: Layout,
}

impl ImageRecord {
    pub(super) fn to_item(&self) -> Item {
        let mut item = Item::new(image_pk(&self.id), META)
            .with("id", self.id.as_str())
            .with("hash", self.hash.as_str())
            .with("format", self.format.name())
            .with("bytes", self.bytes as i64)
            .with("width", i64::from(self.width))
            .with("height", i64::from(self.height))
            .with("state", self.state.as_str())
            .with("refs", self.refs)
            .with("created_at", self.created_at.as_str())
            .with("variants", "pending");
        // Only new items are written whole, and new items use the bare layout; an item without
        // the attribute is older than it.
        if self.layout == Layout::Bare {
            item.set("layout", "bare");
        }
        let m = &self.meta;
        if let Some(o) = m.orientation {
            item.set("orientation", i64::from(o));
        }
        for (name, v) in [("camera_make", &m.camera_make), ("camera_model", &m.camera_model), ("taken_at", &m.taken_at)]
        {
            if let Some(v) = v {
                item.set(name, v.as_str());
            }
        }
        // Coordinates are kept as text so both storage families round-trip them exactly.
        if let (Some(lat), Some(lon)) = (m.gps_lat, m.gps_lon) {
            item.set("gps_lat", lat.to_string());
            item.set("gps_lon", lon.to_string());
        }
        item
    }

    pub(super) fn from_item(item: &Item) -> Result<Self> {
        let bad = |what: &str| Error::internal(format!("image item {} lacks {what}", item.pk()));
        let s = |name: &str| item.str(name).map(str::to_owned);
        let variants = match item.str("variants") {
            Some("ready") => VariantsStatus::Ready,
            Some("failed") => VariantsStatus::Failed,
            _ => VariantsStatus::Pending,
        };
        let variant_info = item.str("variant_info").and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default();
        Ok(ImageRecord {
            id: s("id").ok_or_else(|| bad("id"))?,
            hash: s("hash").ok_or_else(|| bad("hash"))?,
            format: item.str("format").and_then(Format::from_name).ok_or_else(|| bad("format"))?,
            bytes: item.num("bytes").unwrap_or(0).max(0) as u64,
            width: item.num("width").unwrap_or(0) as u32,
            height: item.num("height").unwrap_or(0) as u32,
            meta: Metadata {
                orientation: item.num("orientation").map(|o| o as u16),
                camera_make: s("camera_make"),
                camera_model: s("camera_model"),
                taken_at: s("taken_at"),
                gps_lat: item.str("gps_lat").and_then(|v| v.parse().ok()),
                gps_lon: item.str("gps_lon").and_then(|v| v.parse().ok()),
            },
            state: item.str("state").and_then(State::parse).ok_or_else(|| bad("state"))?,
            refs: item.num("refs").unwrap_or(0),
            created_at: s("created_at").unwrap_or_default(),
            variants,
            variant_info,
            layout: if item.str("layout") == Some("bare") { Layout::Bare } else { Layout::Named },
        })
    }

    /// Dimensions as displayed, after the EXIF orientation.
    pub fn display_dimensions(&self) -> (u32, u32) {
        if self.meta.effective_orientation() >= 5 { (self.height, self.width) } else { (self.width, self.height) }
    }

    /// Object key of the stored original.
    pub fn original_key(&self) -> String {
        self.layout.original_key(&self.id, self.format)
    }

    /// Object key of the variant of `size` in `format`.
    pub fn variant_key(&self, size: Size, format: Format) -> String {
        self.layout.variant_key(&self.id, size, format)
    }

    /// Every key a variant of this image can have, whatever format it was made in.
    pub fn possible_variant_keys(&self) -> Vec<String> {
        let formats: &[Format] = match self.layout {
            Layout::Bare => &[Format::Jpeg, Format::Webp, Format::Avif],
            Layout::Named => &[Format::Jpeg, Format::Png, Format::Webp],
        };
        Size::ALL.iter().flat_map(|&size| formats.iter().map(move |&f| self.variant_key(size, f))).collect()
    }

    /// What this image contributes to the service statistics.
    pub fn facts(&self) -> Facts {
        Facts { format: self.format, bytes: self.bytes, camera: stats::camera_label(self.meta.camera_model.as_deref()) }
    }

    /// The classic variant of `size` (JPEG, or PNG with transparency), if the variants are
    /// ready.
    pub fn variant(&self, size: Size) -> Option<&VariantInfo> {
        self.made_variants().find(|v| v.size == size && !variants::is_modern(v.format))
    }

    /// The variant of `size` in the first of the `modern` formats it is made in (the order of
    /// [`variants::negotiate`]'s answer), else the classic one. AVIF is made by a later pass and
    /// never for animations, and images whose variants were made before WebP have only the
    /// classic one.
    pub fn variant_in(&self, size: Size, modern: &[Format]) -> Option<&VariantInfo> {
        modern
            .iter()
            .find_map(|&f| self.made_variants().find(|v| v.size == size && v.format == f))
            .or_else(|| self.variant(size))
    }

    /// Whether this image is an animation, as its variants show: only animations have GIF
    /// variants (a still GIF's are JPEG or PNG).
    pub fn is_animated(&self) -> bool {
        self.made_variants().any(|v| v.format == Format::Gif)
    }

    /// Whether the later pass has AVIF variants to make for this image: it is active, its first
    /// variants are made, it is not an animation, and some size has no AVIF variant yet.
    pub fn lacks_avif(&self) -> bool {
        self.state == State::Active
            && self.variants == VariantsStatus::Ready
            && !self.is_animated()
            && Size::ALL.iter().any(|&size| !self.made_variants().any(|v| v.size == size && v.format == Format::Avif))
    }

    /// Every made variant, each size in each of its formats.
    pub fn made_variants(&self) -> impl Iterator<Item = &VariantInfo> {
        self.variant_info.iter().filter(|_| self.variants == VariantsStatus::Ready)
    }

    /// Strong validator for HTTP caching: content never changes under one key. A modern variant
    /// has its own, so a cache never takes a WebP body for the JPEG it holds.
    pub fn etag(&self, variant: Option<&VariantInfo>) -> String {
        let hash = &self.hash[..16.min(self.hash.len())];
        match variant {
            None => format!("\"{hash}-original\""),
            Some(v) if variants::is_modern(v.format) => format!("\"{hash}-{}-{}\"", v.size.name(), v.format.name()),
            Some(v) => format!("\"{hash}-{}\"", v.size.name()),
        }
    }
}
