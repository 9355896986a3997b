//! NTLMv2 messages for HTTP authentication ([MS-NLMP]): the NEGOTIATE
//! message, parsing the server's CHALLENGE, and the AUTHENTICATE message
//! with an NTLMv2 response. Pure functions: bytes in, bytes out; the HTTP
//! probe carries them on one kept-alive connection.
//!
//! Only what authentication over HTTP needs is implemented: no signing,
//! sealing or session key exchange, no MIC. The password is used only to
//! derive the NT hash and never leaves this module in any other form.

use hmac::{Hmac, KeyInit, Mac};
use md4::{Digest, Md4};
use md5::Md5;

/// `NTLMSSP\0`, the signature of every message.
const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

/// NEGOTIATE_UNICODE | REQUEST_TARGET | NEGOTIATE_NTLM | ALWAYS_SIGN |
/// EXTENDED_SESSIONSECURITY | NEGOTIATE_TARGET_INFO | NEGOTIATE_128 | NEGOTIATE_56.
pub const NEGOTIATE_FLAGS: u32 = 0x0000_0001
    | 0x0000_0004
    | 0x0000_0200
    | 0x0000_8000
    | 0x0008_0000
    | 0x0080_0000
    | 0x2000_0000
    | 0x8000_0000;

/// Length of the AUTHENTICATE header without version and MIC.
const AUTHENTICATE_HEADER: usize = 64;
/// `MsvAvEOL`, `MsvAvTimestamp`: AV pair ids in the target info.
const AV_EOL: u16 = 0;
const AV_TIMESTAMP: u16 = 7;
/// Seconds between 1601-01-01 (FILETIME epoch) and 1970-01-01.
const FILETIME_UNIX_OFFSET: u64 = 11_644_473_600;

/// The parts of a CHALLENGE message the client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The server's flags.
    pub flags: u32,
    /// The 8-byte server challenge.
    pub server_challenge: [u8; 8],
    /// The target information (AV pairs), copied into the response.
    pub target_info: Vec<u8>,
    /// The server's time (`MsvAvTimestamp`), used instead of the client's.
    pub timestamp: Option<[u8; 8]>,
}

/// The NEGOTIATE message: flags only, no domain or workstation.
pub fn negotiate() -> Vec<u8> {
    let mut m = Vec::with_capacity(32);
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&NEGOTIATE_FLAGS.to_le_bytes());
    // Empty domain and workstation fields (length, capacity, offset).
    m.extend_from_slice(&[0; 16]);
    m
}

/// Reads a field descriptor (length, capacity, offset) at `at` and returns its bytes.
fn field(m: &[u8], at: usize) -> Option<&[u8]> {
    let len = u16::from_le_bytes(m.get(at..at + 2)?.try_into().ok()?) as usize;
    let offset = u32::from_le_bytes(m.get(at + 4..at + 8)?.try_into().ok()?) as usize;
    m.get(offset..offset.checked_add(len)?)
}

/// Parses a CHALLENGE message.
pub fn parse_challenge(m: &[u8]) -> Result<Challenge, String> {
    if m.len() < 48 || &m[..8] != SIGNATURE {
        return Err("not an NTLM message".into());
    }
    if m[8..12] != 2u32.to_le_bytes() {
        return Err("not an NTLM CHALLENGE message".into());
    }
    let flags = u32::from_le_bytes(m[20..24].try_into().expect("4 bytes"));
    let server_challenge: [u8; 8] = m[24..32].try_into().expect("8 bytes");
    let target_info = field(m, 40)
        .ok_or("NTLM CHALLENGE target info is out of bounds")?
        .to_vec();
    let mut timestamp = None;
    let mut rest = target_info.as_slice();
    while rest.len() >= 4 {
        let id = u16::from_le_bytes([rest[0], rest[1]]);
        let len = u16::from_le_bytes([rest[2], rest[3]]) as usize;
        let Some(value) = rest.get(4..4 + len) else {
            return Err("NTLM CHALLENGE target info is malformed".into());
        };
        if id == AV_EOL {
            break;
        }
        if id == AV_TIMESTAMP && len == 8 {
            timestamp = Some(value.try_into().expect("8 bytes"));
        }
        rest = &rest[4 + len..];
    }
    Ok(Challenge {
        flags,
        server_challenge,
        target_info,
        timestamp,
    })
}

fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut mac = <Hmac<Md5> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// NTOWFv2: the NTLMv2 response key from the password, user and domain.
pub fn nt_owf_v2(password: &str, user: &str, domain: &str) -> [u8; 16] {
    let nt_hash: [u8; 16] = Md4::digest(utf16le(password)).into();
    let identity = utf16le(&format!("{}{domain}", user.to_uppercase()));
    hmac_md5(&nt_hash, &[&identity])
}

/// The NTLMv2 response (NTProofStr followed by the client blob) for a
/// challenge; `time` is a little-endian FILETIME.
pub fn ntlmv2_response(
    key: &[u8; 16],
    server_challenge: &[u8; 8],
    client_challenge: &[u8; 8],
    time: &[u8; 8],
    target_info: &[u8],
) -> Vec<u8> {
    let mut blob = Vec::with_capacity(28 + target_info.len() + 4);
    blob.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
    blob.extend_from_slice(time);
    blob.extend_from_slice(client_challenge);
    blob.extend_from_slice(&[0; 4]);
    blob.extend_from_slice(target_info);
    blob.extend_from_slice(&[0; 4]);
    let proof = hmac_md5(key, &[server_challenge, &blob]);
    let mut response = proof.to_vec();
    response.extend_from_slice(&blob);
    response
}

/// The LMv2 response: HMAC of both challenges, then the client challenge.
pub fn lmv2_response(
    key: &[u8; 16],
    server_challenge: &[u8; 8],
    client_challenge: &[u8; 8],
) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..16].copy_from_slice(&hmac_md5(key, &[server_challenge, client_challenge]));
    out[16..].copy_from_slice(client_challenge);
    out
}

/// The current time as a little-endian FILETIME (100 ns since 1601).
pub fn filetime_now() -> [u8; 8] {
    let now = chrono::Utc::now();
    let secs = u64::try_from(now.timestamp()).unwrap_or(0) + FILETIME_UNIX_OFFSET;
    let ticks = secs * 10_000_000 + u64::from(now.timestamp_subsec_nanos() / 100);
    ticks.to_le_bytes()
}

/// Who authenticates.
#[derive(Clone, Copy)]
pub struct Identity<'a> {
    /// NT domain (may be empty).
    pub domain: &'a str,
    /// User name without the domain.
    pub user: &'a str,
    /// Password.
    pub password: &'a str,
}

/// The AUTHENTICATE message answering `challenge`.
pub fn authenticate(
    challenge: &Challenge,
    id: Identity<'_>,
    client_challenge: &[u8; 8],
    now: &[u8; 8],
) -> Vec<u8> {
    let key = nt_owf_v2(id.password, id.user, id.domain);
    let time = challenge.timestamp.as_ref().unwrap_or(now);
    let nt = ntlmv2_response(
        &key,
        &challenge.server_challenge,
        client_challenge,
        time,
        &challenge.target_info,
    );
    // With a server timestamp, MS-NLMP 3.1.5.1.2 wants Z(24) instead of LMv2.
    let lm = if challenge.timestamp.is_some() {
        [0u8; 24]
    } else {
        lmv2_response(&key, &challenge.server_challenge, client_challenge)
    };
    let domain = utf16le(id.domain);
    let user = utf16le(id.user);
    let workstation: Vec<u8> = Vec::new();
    let session_key: Vec<u8> = Vec::new();
    let payloads: [&[u8]; 6] = [&lm, &nt, &domain, &user, &workstation, &session_key];

    let mut m =
        Vec::with_capacity(AUTHENTICATE_HEADER + payloads.iter().map(|p| p.len()).sum::<usize>());
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&3u32.to_le_bytes());
    let mut offset = AUTHENTICATE_HEADER;
    for p in payloads {
        let len = u16::try_from(p.len()).unwrap_or(u16::MAX);
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&(offset as u32).to_le_bytes());
        offset += p.len();
    }
    let flags = NEGOTIATE_FLAGS & (challenge.flags | 0x0000_0001);
    m.extend_from_slice(&flags.to_le_bytes());
    for p in payloads {
        m.extend_from_slice(p);
    }
    m
}

/// The fields of an AUTHENTICATE message, for servers (and tests) to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticate {
    /// LmChallengeResponse.
    pub lm: Vec<u8>,
    /// NtChallengeResponse (NTProofStr, then the client blob).
    pub nt: Vec<u8>,
    /// Domain, decoded from UTF-16LE.
    pub domain: String,
    /// User, decoded from UTF-16LE.
    pub user: String,
    /// NegotiateFlags.
    pub flags: u32,
}

/// Parses an AUTHENTICATE message.
pub fn parse_authenticate(m: &[u8]) -> Result<Authenticate, String> {
    if m.len() < AUTHENTICATE_HEADER || &m[..8] != SIGNATURE || m[8..12] != 3u32.to_le_bytes() {
        return Err("not an NTLM AUTHENTICATE message".into());
    }
    let text = |bytes: &[u8]| {
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    };
    let get = |at| field(m, at).ok_or_else(|| format!("field at {at} is out of bounds"));
    Ok(Authenticate {
        lm: get(12)?.to_vec(),
        nt: get(20)?.to_vec(),
        domain: text(get(28)?),
        user: text(get(36)?),
        flags: u32::from_le_bytes(m[60..64].try_into().expect("4 bytes")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    // [MS-NLMP] 4.2.1 and 4.2.4: User "User", domain "Domain", password
    // "Password", server challenge 0123456789abcdef, client challenge aa..aa,
    // time zero, target info naming domain "Domain" and server "Server".
    const SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
    const CLIENT_CHALLENGE: [u8; 8] = [0xaa; 8];
    const TARGET_INFO: &str =
        "02000c0044006f006d00610069006e0001000c0053006500720076006500720000000000";

    #[test]
    fn the_response_key_matches_the_spec() {
        assert_eq!(
            hex(&nt_owf_v2("Password", "User", "Domain")),
            "0c868a403bfd7a93a3001ef22ef02e3f"
        );
    }

    #[test]
    fn the_nt_proof_and_lmv2_response_match_the_spec() {
        let key = nt_owf_v2("Password", "User", "Domain");
        let info = unhex(TARGET_INFO);
        let nt = ntlmv2_response(&key, &SERVER_CHALLENGE, &CLIENT_CHALLENGE, &[0; 8], &info);
        assert_eq!(hex(&nt[..16]), "68cd0ab851e51c96aabc927bebef6a1c");
        assert_eq!(
            hex(&lmv2_response(&key, &SERVER_CHALLENGE, &CLIENT_CHALLENGE)),
            "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa"
        );
        // The session base key of 4.2.4.1.2 proves the whole chain.
        assert_eq!(
            hex(&hmac_md5(&key, &[&nt[..16]])),
            "8de40ccadbc14a82f15cb0ad0de95ca3"
        );
    }

    #[test]
    fn a_challenge_round_trips_into_an_authenticate_message() {
        let info = unhex(TARGET_INFO);
        let mut m = Vec::new();
        m.extend_from_slice(SIGNATURE);
        m.extend_from_slice(&2u32.to_le_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&0xe28a_8233u32.to_le_bytes());
        m.extend_from_slice(&SERVER_CHALLENGE);
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&(info.len() as u16).to_le_bytes());
        m.extend_from_slice(&(info.len() as u16).to_le_bytes());
        m.extend_from_slice(&56u32.to_le_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&info);
        let challenge = parse_challenge(&m).unwrap();
        assert_eq!(challenge.server_challenge, SERVER_CHALLENGE);
        assert_eq!(challenge.target_info, info);
        assert_eq!(challenge.timestamp, None);

        let id = Identity {
            domain: "Domain",
            user: "User",
            password: "Password",
        };
        let msg = authenticate(&challenge, id, &CLIENT_CHALLENGE, &[0; 8]);
        let parsed = parse_authenticate(&msg).unwrap();
        assert_eq!(
            (parsed.user.as_str(), parsed.domain.as_str()),
            ("User", "Domain")
        );
        assert_eq!(hex(&parsed.nt[..16]), "68cd0ab851e51c96aabc927bebef6a1c");
        assert_eq!(
            hex(&parsed.lm),
            "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa"
        );
        assert_eq!(parsed.flags & 0x0000_0201, 0x0000_0201);
        assert!(!msg.windows(8).any(|w| w == utf16le("Pass").as_slice()));
    }

    #[test]
    fn the_negotiate_message_has_its_shape() {
        let m = negotiate();
        assert_eq!(&m[..8], SIGNATURE);
        assert_eq!(m[8..12], 1u32.to_le_bytes());
        assert_eq!(m[12..16], NEGOTIATE_FLAGS.to_le_bytes());
        assert_eq!(m.len(), 32);
    }

    #[test]
    fn garbage_is_not_a_challenge() {
        assert!(parse_challenge(b"NTLMSSP\0garbage").is_err());
        let mut m = negotiate();
        m.resize(64, 0);
        assert_eq!(
            parse_challenge(&m).unwrap_err(),
            "not an NTLM CHALLENGE message"
        );
    }
}
