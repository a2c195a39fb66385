//! Colour management: what the decoded pixels' numbers mean, and their conversion to sRGB.
//!
//! Browsers show an untagged image as sRGB, so every variant is sRGB: pixels in any other space
//! are converted with `moxcms` (the colour engine `image` itself uses) rather than relabelled.
//! Skipping the conversion is not harmless: a Display P3 photo (every iPhone's) read as sRGB
//! looks dull, a ProPhoto one grey.
//!
//! Where the description comes from, by format:
//! - JPEG and WebP: the embedded ICC profile;
//! - PNG: `cICP`, else `iCCP`, else `sRGB`, else `gAMA` and `cHRM`, in that order of precedence
//!   (PNG third edition, §4.3);
//! - GIF, and anything untagged: sRGB.
//!
//! A CMYK or YCCK JPEG's CMYK profile is applied while decoding, to the inks
//! ([`cmyk_to_srgb_in_place`]), since the pixels leave the decoder as RGB. A description that
//! cannot be used (a damaged profile, or one for Lab or other pixels) counts as sRGB, as
//! browsers treat it; the image is still accepted.

use std::sync::Arc;

use moxcms::{
    Chromaticity, CicpColorPrimaries, CicpProfile, ColorPrimaries, ColorProfile, DataColorSpace, Layout,
    MatrixCoefficients, ToneReprCurve, TransferCharacteristics, TransformOptions,
};

/// The colour space of decoded 8-bit pixels.
#[derive(Debug, Clone, Default)]
pub enum Space {
    /// sRGB, or untagged (which the web reads as sRGB).
    #[default]
    Srgb,
    /// Any other space, described by a profile for RGB or grey pixels.
    Profile(Box<ColorProfile>),
}

impl Space {
    /// The space an embedded ICC profile describes.
    pub fn from_icc(icc: &[u8]) -> Space {
        match ColorProfile::new_from_slice(icc) {
            Ok(profile) => Space::from_profile(profile),
            Err(e) => {
                tracing::debug!(error = %e, "ignoring an ICC profile the colour engine cannot read");
                Space::Srgb
            }
        }
    }

    fn from_profile(profile: ColorProfile) -> Space {
        // Pixels reach the pipeline as RGB: a CMYK JPEG's inks are converted by the decoder
        // (through its profile when it has one), so only RGB and grey profiles describe them.
        match profile.color_space {
            DataColorSpace::Rgb | DataColorSpace::Gray => Space::Profile(Box::new(profile)),
            _ => Space::Srgb,
        }
    }

    /// The space a PNG's colour chunks describe, by their precedence.
    pub fn from_png(info: &png::Info<'_>) -> Space {
        if let Some(cicp) = info.coding_independent_code_points {
            return Space::from_cicp(cicp.color_primaries, cicp.transfer_function);
        }
        if let Some(icc) = &info.icc_profile {
            return Space::from_icc(icc);
        }
        if info.srgb.is_some() {
            return Space::Srgb;
        }
        let gamma = info.gama_chunk.map(png::ScaledFloat::into_value).filter(|g| *g > 0.0 && g.is_finite());
        let chromaticities = info.chrm_chunk;
        // A gAMA of about 1/2.2 alone is how many encoders say "sRGB"; libpng and browsers read
        // it so, and the curves differ by at most a level or two.
        if chromaticities.is_none() && gamma.is_none_or(|g| (0.43..=0.48).contains(&g)) {
            return Space::Srgb;
        }
        let mut profile = ColorProfile::new_srgb();
        // sRGB's code points would make the engine use sRGB's curve over the one set below.
        profile.cicp = None;
        if let Some(c) = chromaticities {
            let xy = |(x, y): (png::ScaledFloat, png::ScaledFloat)| Chromaticity::new(x.into_value(), y.into_value());
            let primaries = ColorPrimaries { red: xy(c.red), green: xy(c.green), blue: xy(c.blue) };
            profile.update_rgb_colorimetry(xy(c.white).to_xyyb(), primaries);
        }
        if let Some(g) = gamma {
            // gAMA stores the encoding exponent; the profile's curve is the decoding one.
            let curve = ToneReprCurve::Parametric(vec![1.0 / g]);
            profile.red_trc = Some(curve.clone());
            profile.green_trc = Some(curve.clone());
            profile.blue_trc = Some(curve);
        }
        Space::Profile(Box::new(profile))
    }

    /// The space of H.273 code points (PNG `cICP`; RGB only, so the matrix is identity).
    pub fn from_cicp(primaries: u8, transfer: u8) -> Space {
        let (Ok(color_primaries), Ok(transfer_characteristics)) =
            (CicpColorPrimaries::try_from(primaries), TransferCharacteristics::try_from(transfer))
        else {
            return Space::Srgb;
        };
        let cicp = CicpProfile {
            color_primaries,
            transfer_characteristics,
            matrix_coefficients: MatrixCoefficients::Bt709,
            full_range: true,
        };
        let mut profile = ColorProfile::new_srgb();
        // Cleared so that the code points below are set only if the update understood them.
        profile.cicp = None;
        // The update's result says nothing useful (it is false on success too); the code points
        // are recorded only once the primaries were understood.
        profile.update_rgb_colorimetry_from_cicp(cicp);
        if profile.cicp.is_some() { Space::Profile(Box::new(profile)) } else { Space::Srgb }
    }

    /// The conversion of pixels in this space to sRGB, or `None` when there is nothing to do:
    /// the space is sRGB, or a profile whose conversion changes no colour by more than one
    /// level (many cameras embed their own copy of sRGB).
    pub fn to_srgb(&self, alpha: bool) -> Option<ToSrgb> {
        let Space::Profile(profile) = self else { return None };
        let grey = profile.color_space == DataColorSpace::Gray;
        let (src, dst) = match (grey, alpha) {
            (false, false) => (Layout::Rgb, Layout::Rgb),
            (false, true) => (Layout::Rgba, Layout::Rgba),
            (true, false) => (Layout::Gray, Layout::Rgb),
            (true, true) => (Layout::GrayAlpha, Layout::Rgba),
        };
        let transform =
            match profile.create_transform_8bit(src, &ColorProfile::new_srgb(), dst, TransformOptions::default()) {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(error = %e, "no conversion from this profile; treating it as sRGB");
                    return None;
                }
            };
        let conversion = ToSrgb { transform, grey, channels: if alpha { 4 } else { 3 } };
        (!conversion.is_identity()).then_some(conversion)
    }
}

/// The profile `icc` holds if it is a CMYK one the engine reads.
pub fn cmyk_profile(icc: &[u8]) -> Option<ColorProfile> {
    ColorProfile::new_from_slice(icc).ok().filter(|p| p.color_space == DataColorSpace::Cmyk)
}

/// Converts ink amounts (4 bytes a pixel, 0 no ink) through a CMYK `profile` to sRGB, 3 bytes a
/// pixel written from the start of `pixels`, which is then cut to them.
pub fn cmyk_to_srgb_in_place(profile: &ColorProfile, pixels: &mut Vec<u8>) -> Result<(), moxcms::CmsError> {
    let transform = profile.create_transform_8bit(
        Layout::Rgba,
        &ColorProfile::new_srgb(),
        Layout::Rgb,
        TransformOptions::default(),
    )?;
    let (mut src, mut dst) = (vec![0u8; CHUNK_PIXELS * 4], vec![0u8; CHUNK_PIXELS * 3]);
    let n = pixels.len() / 4;
    let mut done = 0;
    while done < n {
        let count = CHUNK_PIXELS.min(n - done);
        src[..count * 4].copy_from_slice(&pixels[done * 4..(done + count) * 4]);
        transform.transform(&src[..count * 4], &mut dst[..count * 3])?;
        // Writing 3 bytes a pixel never reaches the 4-byte pixels not read yet.
        pixels[done * 3..(done + count) * 3].copy_from_slice(&dst[..count * 3]);
        done += count;
    }
    pixels.truncate(n * 3);
    Ok(())
}

/// A conversion of 8-bit RGB or RGBA pixels (grey ones stored as RGB with equal channels) to
/// sRGB, in place.
#[derive(Clone)]
pub struct ToSrgb {
    transform: Arc<moxcms::Transform8BitExecutor>,
    grey: bool,
    channels: usize,
}

/// Pixels converted at a time: the conversion's one scratch buffer is this many pixels, so it
/// adds 64 KiB at most, whatever the image.
const CHUNK_PIXELS: usize = 16 * 1024;

impl ToSrgb {
    /// Converts `pixels` (RGB or RGBA, as made) to sRGB. Alpha is kept as it is.
    pub fn apply(&self, pixels: &mut [u8]) -> Result<(), moxcms::CmsError> {
        let c = self.channels;
        let mut src = vec![0u8; CHUNK_PIXELS * c];
        for chunk in pixels.chunks_mut(CHUNK_PIXELS * c) {
            let n = chunk.len() / c;
            if self.grey {
                // A grey profile reads one sample (and alpha) a pixel.
                let g = if c == 4 { 2 } else { 1 };
                for (s, p) in src.chunks_exact_mut(g).zip(chunk.chunks_exact(c)) {
                    s[0] = p[0];
                    if g == 2 {
                        s[1] = p[3];
                    }
                }
                self.transform.transform(&src[..n * g], chunk)?;
            } else {
                src[..chunk.len()].copy_from_slice(chunk);
                self.transform.transform(&src[..chunk.len()], chunk)?;
            }
        }
        Ok(())
    }

    /// Whether the conversion moves no colour of a 6-level cube by more than one level.
    fn is_identity(&self) -> bool {
        let levels = [0u8, 51, 102, 153, 204, 255];
        let mut probe = Vec::with_capacity(216 * self.channels);
        for r in levels {
            for g in levels {
                for b in levels {
                    let (g, b) = if self.grey { (r, r) } else { (g, b) };
                    probe.extend_from_slice(&[r, g, b, 255][..self.channels]);
                }
            }
        }
        let before = probe.clone();
        self.apply(&mut probe).is_ok() && before.iter().zip(&probe).all(|(a, b)| a.abs_diff(*b) <= 1)
    }
}

impl std::fmt::Debug for ToSrgb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToSrgb").field("grey", &self.grey).field("channels", &self.channels).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(space: &Space, rgb: [u8; 3]) -> [u8; 3] {
        let mut px = rgb.to_vec();
        if let Some(t) = space.to_srgb(false) {
            t.apply(&mut px).unwrap();
        }
        [px[0], px[1], px[2]]
    }

    #[test]
    fn srgb_and_copies_of_it_are_left_alone_and_wide_spaces_are_converted() {
        // Given the spaces a source can declare,
        let srgb_icc = ColorProfile::new_srgb().encode().unwrap();
        let p3_icc = ColorProfile::new_display_p3().encode().unwrap();
        let cases: Vec<(&str, Space, bool)> = vec![
            ("untagged", Space::Srgb, false),
            ("an embedded sRGB profile", Space::from_icc(&srgb_icc), false),
            ("a damaged profile", Space::from_icc(&p3_icc[..100]), false),
            ("cICP BT.709 with the sRGB curve", Space::from_cicp(1, 13), false),
            ("Display P3 by ICC", Space::from_icc(&p3_icc), true),
            ("Display P3 by cICP", Space::from_cicp(12, 13), true),
        ];
        for (what, space, converts) in cases {
            // then only the wide ones have a conversion,
            assert_eq!(space.to_srgb(false).is_some(), converts, "{what}");
            // which takes P3's pure red outside sRGB's gamut (clipped to red) and keeps grey.
            if converts {
                let red = convert(&space, [255, 0, 0]);
                assert!(red[0] == 255 && red[1] < 30 && red[2] < 30, "{what}: {red:?}");
                let mid = convert(&space, [128, 128, 128]);
                assert!(mid.iter().all(|v| v.abs_diff(128) <= 1), "{what}: {mid:?}");
                let muted = convert(&space, [200, 60, 60]);
                assert!(muted[0] > 210, "{what}: a P3 red is redder in sRGB: {muted:?}");
            }
        }
    }

    #[test]
    fn a_grey_profile_converts_grey_pixels_stored_as_rgb() {
        // Given pixels of a grey image with a gamma 1.0 (linear) profile,
        let linear = Space::from_icc(&ColorProfile::new_gray_with_gamma(1.0).encode().unwrap());
        // then a linear mid grey becomes the brighter sRGB value for the same light.
        let got = convert(&linear, [50, 50, 50]);
        assert!(got[0] > 110 && got[0] == got[1] && got[1] == got[2], "{got:?}");
    }
}
