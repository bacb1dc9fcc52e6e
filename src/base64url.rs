//! Canonical base64url decoding (RFC 4648 §5, no padding): every token, JWT
//! segment, thumbprint, nonce and DPoP proof the crate reads.
//!
//! It accepts exactly what the `base64` crate's `URL_SAFE_NO_PAD` accepts (the
//! differential test below holds it to that): the URL-safe alphabet only, no
//! `=`, no length of the form 4n + 1, and no set bit in what the last character
//! carries beyond the last byte. It is here because that crate's general engine
//! took ~10 instructions per character on these short inputs (about 3,000 per
//! DPoP proof); a table lookup per character takes about half of that. The
//! `base64` crate still encodes.

/// Why a segment does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidBase64;

/// The value of each base64url character; [`BAD`] for every other byte.
const VALUES: [u8; 256] = {
    let mut values = [BAD; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut i = 0;
    while i < alphabet.len() {
        values[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    values
};

/// Not a base64url character: the high bit, which no 6-bit value has.
const BAD: u8 = 0x80;

/// [`VALUES`] placed where the `i`th character of a group of four goes in the
/// group's 24 bits, with bit 31 set for a byte outside the alphabet: a group is
/// four lookups OR-ed together (1 KiB per table).
const fn placed(i: u32) -> [u32; 256] {
    let mut table = [0; 256];
    let mut byte = 0;
    while byte < 256 {
        let value = VALUES[byte];
        table[byte] = if value == BAD {
            1 << 31
        } else {
            (value as u32) << (18 - 6 * i)
        };
        byte += 1;
    }
    table
}

const PLACED: [[u32; 256]; 4] = [placed(0), placed(1), placed(2), placed(3)];

/// How many bytes `len` characters decode to (or `None` for a length no
/// canonical encoding has).
pub(crate) fn decoded_len(len: usize) -> Option<usize> {
    match len % 4 {
        1 => None,
        rest => Some(len / 4 * 3 + rest.saturating_sub(1)),
    }
}

/// Decodes `text` into the start of `out`; how many bytes it wrote. `out` must
/// have room for [`decoded_len`] bytes (it is an error otherwise).
pub(crate) fn decode(text: &[u8], out: &mut [u8]) -> Result<usize, InvalidBase64> {
    let len = decoded_len(text.len()).ok_or(InvalidBase64)?;
    let out = out.get_mut(..len).ok_or(InvalidBase64)?;
    // Every group is OR-ed into `groups_seen`, every tail value into `seen`: one
    // test at the end instead of a branch per character.
    let mut groups_seen = 0u32;
    let mut seen = 0u8;
    let group = |chunk: &[u8]| {
        PLACED[0][usize::from(chunk[0])]
            | PLACED[1][usize::from(chunk[1])]
            | PLACED[2][usize::from(chunk[2])]
            | PLACED[3][usize::from(chunk[3])]
    };
    // Two groups at a time: six bytes in one copy.
    let mut pairs = text.chunks_exact(8);
    let mut pair_outs = out.chunks_exact_mut(6);
    for (pair, out) in (&mut pairs).zip(&mut pair_outs) {
        let (first, second) = (group(&pair[..4]), group(&pair[4..]));
        groups_seen |= first | second;
        let bits = u64::from(first) << 24 | u64::from(second & 0x00FF_FFFF);
        out.copy_from_slice(&bits.to_be_bytes()[2..]);
    }
    let mut chunks = pairs.remainder().chunks_exact(4);
    let mut groups = pair_outs.into_remainder().chunks_exact_mut(3);
    for (chunk, out) in (&mut chunks).zip(&mut groups) {
        let n = group(chunk);
        groups_seen |= n;
        out.copy_from_slice(&n.to_be_bytes()[1..]);
    }
    if groups_seen >> 31 != 0 {
        return Err(InvalidBase64);
    }
    let tail = groups.into_remainder();
    match *chunks.remainder() {
        [] => {}
        [a, b] => {
            let [a, b] = [a, b].map(|c| VALUES[usize::from(c)]);
            seen |= a | b;
            // One byte: the second character's low four bits must be zero.
            if b & 0x0F != 0 {
                return Err(InvalidBase64);
            }
            tail[0] = a << 2 | b >> 4;
        }
        [a, b, c] => {
            let [a, b, c] = [a, b, c].map(|c| VALUES[usize::from(c)]);
            seen |= a | b | c;
            // Two bytes: the third character's low two bits must be zero.
            if c & 0x03 != 0 {
                return Err(InvalidBase64);
            }
            tail[0] = a << 2 | b >> 4;
            tail[1] = b << 4 | c >> 2;
        }
        _ => return Err(InvalidBase64), // ruled out by `decoded_len`
    }
    if seen & BAD != 0 {
        return Err(InvalidBase64);
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use proptest::prelude::*;

    use super::*;

    /// Ours and the `base64` crate's answers for `text`: the same bytes, or both
    /// refused.
    fn check(text: &[u8]) {
        let mut ours = vec![0; text.len()];
        let ours = decode(text, &mut ours).map(|len| ours[..len].to_vec()).ok();
        let theirs = URL_SAFE_NO_PAD.decode(text).ok();
        assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(text));
    }

    #[test]
    fn round_trips_every_length_up_to_100() {
        for len in 0..=100u8 {
            let bytes: Vec<u8> = (0..len).map(|i| i.wrapping_mul(151) ^ len).collect();
            let text = URL_SAFE_NO_PAD.encode(&bytes);
            let mut out = vec![0; bytes.len()];
            assert_eq!(decode(text.as_bytes(), &mut out), Ok(bytes.len()));
            assert_eq!(out, bytes);
            check(text.as_bytes());
        }
    }

    #[test]
    fn refuses_what_is_not_canonical_base64url() {
        for text in [
            "A", "AAAAA", "QQ==", "QQ=", "+A", "/A", "AA A", "AB", "AAB", "QR", "QUF",
        ] {
            assert_eq!(
                decode(text.as_bytes(), &mut [0; 8]),
                Err(InvalidBase64),
                "{text}"
            );
            check(text.as_bytes());
        }
        // Too little room is an error, not a panic.
        assert_eq!(decode(b"QUFB", &mut [0; 2]), Err(InvalidBase64));
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 4096,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Strings over the alphabet, its neighbours and a few other bytes.
        #[test]
        fn agrees_with_the_base64_crate(
            text in prop::collection::vec(
                prop::sample::select(b"AZaz09-_+/=. \x80\xff\0QgwE".to_vec()),
                0..40,
            )
        ) {
            check(&text);
        }

        /// Any bytes at all.
        #[test]
        fn agrees_with_the_base64_crate_on_any_bytes(text in prop::collection::vec(any::<u8>(), 0..24)) {
            check(&text);
        }
    }
}
