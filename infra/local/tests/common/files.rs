//! Small writers of the image containers' own structures (PNG chunks, zlib streams, JPEG
//! segments, GIF blocks), shared by the tests that build their input files by hand.

#![allow(dead_code)]

use std::io::Cursor;
use std::sync::LazyLock;

/// The eight bytes every PNG file starts with. Writers put it first and readers check for it,
/// so it is spelled out once.
pub const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Returns the CRC-32 (the polynomial PNG and zlib use) of the concatenation of `parts`. It
/// takes parts so that a PNG chunk's type and data are checked without copying them together,
/// and it works from a table so that the megabytes of a generated bomb are quick to check.
pub fn crc32(parts: &[&[u8]]) -> u32 {
    static TABLE: LazyLock<[u32; 256]> = LazyLock::new(|| {
        let mut table = [0u32; 256];
        for (n, slot) in table.iter_mut().enumerate() {
            let mut c = n as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
            *slot = c;
        }
        table
    });
    let mut crc = !0u32;
    for part in parts {
        for &b in *part {
            crc = TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
        }
    }
    !crc
}

/// Returns the Adler-32 checksum of `bytes`, the one a zlib stream ends with. The tests that
/// write zlib streams by hand need it to make streams a decoder accepts, and to check the ones
/// they wrote.
pub fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in bytes {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

/// Returns a zlib stream of stored (uncompressed) deflate blocks holding `data`. Nothing is
/// compressed, so whatever the stream holds stays readable byte-wise in the file, and the
/// stream needs no encoder to write.
pub fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = if data.is_empty() { vec![&[]] } else { data.chunks(65_535).collect() };
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        out.extend_from_slice(&(block.len() as u16).to_le_bytes());
        out.extend_from_slice(&(!(block.len() as u16)).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

/// Returns one whole PNG chunk: the length of `data`, the chunk type `kind`, the data and the
/// CRC over type and data. The type is taken as written, so that tests can spell chunk names
/// in any case and name chunks no decoder knows.
pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&[kind, data]).to_be_bytes());
    out
}

/// Returns the IHDR chunk of a PNG of `width` x `height` pixels with the given bit depth and
/// colour type, its rows stored in the seven Adam7 passes when `interlaced` is set. Deflate
/// compression and the adaptive filter method are the only ones PNG defines, so they are
/// always chosen here.
pub fn png_ihdr(width: u32, height: u32, bit_depth: u8, colour_type: u8, interlaced: bool) -> Vec<u8> {
    let mut data = width.to_be_bytes().to_vec();
    data.extend_from_slice(&height.to_be_bytes());
    data.extend_from_slice(&[bit_depth, colour_type, 0, 0, u8::from(interlaced)]);
    png_chunk(b"IHDR", &data)
}

/// Returns a whole PNG file: the signature, the IHDR chunk `ihdr` (see [`png_ihdr`]), the
/// whole chunks in `chunks` (a palette, transparency, a colour profile), one IDAT chunk holding
/// the zlib stream `zlib`, and IEND. The image data comes whole from the caller, so that each
/// test picks how it is compressed.
pub fn png_file(ihdr: &[u8], chunks: &[Vec<u8>], zlib: &[u8]) -> Vec<u8> {
    let mut out = PNG_SIGNATURE.to_vec();
    out.extend_from_slice(ihdr);
    for chunk in chunks {
        out.extend_from_slice(chunk);
    }
    out.extend(png_chunk(b"IDAT", zlib));
    out.extend(png_chunk(b"IEND", b""));
    out
}

/// Returns one JPEG marker segment: 0xFF, `marker`, the length and `payload`. Segments are
/// written whole, so that tests can place them anywhere in a file.
pub fn jpeg_segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0xFF, marker];
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Bits packed from the least significant end of each byte, the order in which deflate and
/// GIF's LZW store their codes. Both kinds of writer put codes of varying width one after
/// another, and this keeps the bookkeeping of the partial byte in one place.
#[derive(Default)]
pub struct LsbBits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl LsbBits {
    /// Appends the low `bits` bits of `value`. Whole bytes go to the output at once, so that
    /// at most seven bits ever wait.
    pub fn put(&mut self, value: u32, bits: u32) {
        self.acc |= u64::from(value) << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// Returns the bytes written, the last one padded with zero bits. Both formats ignore what
    /// follows their end code, so the padding is never read.
    pub fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// Returns `data` cut into GIF data sub-blocks of at most 255 bytes, each after its length,
/// followed by the empty block that ends them. GIF carries image data and the payload of
/// every extension this way.
pub fn sub_blocks(data: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    for c in data.chunks(255) {
        out.push(c.len() as u8);
        out.extend_from_slice(c);
    }
    out.push(0);
    out
}

/// Returns GIF image data (the minimum code size byte, then sub-blocks) for 8-bit palette
/// `indices`, written without compression. A clear code every 250 literals keeps the code
/// table from growing, so that every code stays 9 bits wide and no LZW encoder is needed.
pub fn gif_lzw(indices: &[u8]) -> Vec<u8> {
    let mut bits = LsbBits::default();
    for run in indices.chunks(250) {
        bits.put(256, 9);
        for &i in run {
            bits.put(u32::from(i), 9);
        }
    }
    bits.put(257, 9);
    let mut out = vec![8];
    out.extend_from_slice(&sub_blocks(&bits.finish()));
    out
}

/// Returns the start of a GIF89a file: the header, a logical screen of `width` x `height`
/// with the packed `flags` byte, and the global colour table `table` (RGB triples; empty when
/// `flags` announces none). The background index and aspect ratio are always zero, as no test
/// here reads them.
pub fn gif_screen(width: u16, height: u16, flags: u8, table: &[u8]) -> Vec<u8> {
    let mut out = b"GIF89a".to_vec();
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.extend_from_slice(&[flags, 0, 0]);
    out.extend_from_slice(table);
    out
}

/// Returns a GIF image descriptor: the separator, the frame's position and size on the
/// logical screen, and the packed `flags` byte (a local colour table, interlaced rows). The
/// caller appends the local table, if any, and the image data, so that each test picks both.
pub fn gif_image_descriptor(left: u16, top: u16, width: u16, height: u16, flags: u8) -> Vec<u8> {
    let mut out = vec![0x2C];
    for v in [left, top, width, height] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.push(flags);
    out
}

/// Returns `img` encoded as `fmt` by the `image` crate. Tests use it for well-formed files of
/// every format, as bases to put odd structures into or as inputs in their own right.
pub fn encode_with_image(img: image::DynamicImage, fmt: image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, fmt).unwrap();
    out.into_inner()
}
