//! NTLMv2 messages for HTTP authentication ([MS-NLMP]): the NEGOTIATE
//! message, parsing the server's CHALLENGE, and the AUTHENTICATE message
//! with an NTLMv2 response, bound to the TLS channel and sealed with a MIC
//! (what Extended Protection for Authentication, on by default in Exchange
//! 2019 CU14 and later, requires). Pure functions: bytes in, bytes out; the
//! HTTP probe carries them on one kept-alive connection.
//!
//! The AUTHENTICATE message carries, in the target info of its NTLMv2
//! response, `MsvAvChannelBindings` (the MD5 of the GSS channel bindings
//! whose application data is RFC 5929's `tls-server-end-point` of the
//! server's certificate, or the all-zero value of [MS-NLMP] 2.2.2.1 for "no
//! bindings" over plain HTTP, as Windows clients send) and `MsvAvFlags` with
//! bit 0x2 (a MIC follows); the MIC is HMAC-MD5 over the three messages,
//! keyed with the exported session key.
//!
//! Only what authentication over HTTP needs is implemented: no signing or
//! sealing, hence no session key exchange (`NEGOTIATE_KEY_EXCH` is never
//! asked for; without it, and without signing or sealing, [MS-NLMP]
//! 3.2.5.1.2 makes the exported session key the key exchange key, which for
//! NTLMv2 is the session base key). The password is used only to derive the
//! NT hash and never leaves this module in any other form.

use hmac::{Hmac, KeyInit, Mac};
use md4::{Digest, Md4};
use md5::Md5;
use sha2::{Sha224, Sha256, Sha384, Sha512};

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

/// Length of the AUTHENTICATE header's fields and flags, where its Version
/// field starts (all zero: `NEGOTIATE_VERSION` is not negotiated).
const AUTHENTICATE_HEADER: usize = 64;
/// Where the AUTHENTICATE message's MIC starts (after the 8-byte Version).
const MIC_AT: usize = 72;
/// Where the AUTHENTICATE message's payload starts (after the 16-byte MIC).
const AUTHENTICATE_PAYLOAD: usize = 88;
/// `MsvAvEOL`, `MsvAvFlags`, `MsvAvTimestamp`, `MsvAvChannelBindings`: AV
/// pair ids in the target info.
const AV_EOL: u16 = 0;
const AV_FLAGS: u16 = 6;
const AV_TIMESTAMP: u16 = 7;
const AV_CHANNEL_BINDINGS: u16 = 10;
/// `MsvAvFlags` bit: the AUTHENTICATE message carries a MIC.
const AV_FLAG_MIC: u32 = 0x0000_0002;
/// Seconds between 1601-01-01 (FILETIME epoch) and 1970-01-01.
const FILETIME_UNIX_OFFSET: u64 = 11_644_473_600;

/// The `MsvAvChannelBindings` value for "no channel bindings" ([MS-NLMP]
/// 2.2.2.1): what the probe sends over plain HTTP, as Windows clients do.
pub const NO_CHANNEL_BINDINGS: [u8; 16] = [0; 16];

/// The prefix of RFC 5929's `tls-server-end-point` channel binding.
const TLS_SERVER_END_POINT: &[u8] = b"tls-server-end-point:";

/// The parts of a CHALLENGE message the client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The message as received, which the MIC covers.
    pub message: Vec<u8>,
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

/// The AV pairs of a target info up to `MsvAvEOL`, as (id, value); `None`
/// when a pair runs past the end.
fn av_pairs(info: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    let mut pairs = Vec::new();
    let mut rest = info;
    while rest.len() >= 4 {
        let id = u16::from_le_bytes([rest[0], rest[1]]);
        let len = u16::from_le_bytes([rest[2], rest[3]]) as usize;
        let value = rest.get(4..4 + len)?;
        if id == AV_EOL {
            break;
        }
        pairs.push((id, value));
        rest = &rest[4 + len..];
    }
    Some(pairs)
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
    let pairs = av_pairs(&target_info).ok_or("NTLM CHALLENGE target info is malformed")?;
    let timestamp = pairs
        .iter()
        .find(|(id, value)| *id == AV_TIMESTAMP && value.len() == 8)
        .map(|(_, value)| (*value).try_into().expect("8 bytes"));
    Ok(Challenge {
        message: m.to_vec(),
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

/// The NTLMv2 session base key ([MS-NLMP] 3.3.2): HMAC-MD5 of the
/// NTProofStr (the response's first 16 bytes) under the response key.
/// Without key exchange it is also the exported session key.
pub fn session_base_key(key: &[u8; 16], nt_response: &[u8]) -> [u8; 16] {
    hmac_md5(key, &[&nt_response[..16.min(nt_response.len())]])
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

/// The hash RFC 5929 4.1 names for a certificate whose signature algorithm
/// has the OID `signature` (dotted): the signature's own hash, MD5 and SHA-1
/// upgraded to SHA-256; for RSASSA-PSS, the hash of its parameters
/// (`pss_hash`, SHA-1 when absent, upgraded the same way). RFC 5929 names
/// none for algorithms without a separate hash (Ed25519, say): SHA-256 then,
/// as for anything unknown.
fn end_point_hash(signature: &str, pss_hash: Option<&str>, certificate: &[u8]) -> Vec<u8> {
    const RSA_PSS: &str = "1.2.840.113549.1.1.10";
    let hash = if signature == RSA_PSS {
        pss_hash.unwrap_or("1.3.14.3.2.26")
    } else {
        signature
    };
    match hash {
        // sha224WithRSAEncryption, ecdsa-with-SHA224, dsa-with-sha224, SHA-224.
        "1.2.840.113549.1.1.14"
        | "1.2.840.10045.4.3.1"
        | "2.16.840.1.101.3.4.3.1"
        | "2.16.840.1.101.3.4.2.4" => Sha224::digest(certificate).to_vec(),
        // sha384WithRSAEncryption, ecdsa-with-SHA384, SHA-384.
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" | "2.16.840.1.101.3.4.2.2" => {
            Sha384::digest(certificate).to_vec()
        }
        // sha512WithRSAEncryption, ecdsa-with-SHA512, SHA-512.
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" | "2.16.840.1.101.3.4.2.3" => {
            Sha512::digest(certificate).to_vec()
        }
        // SHA-256 itself, MD5 and SHA-1 (upgraded), and anything else.
        _ => Sha256::digest(certificate).to_vec(),
    }
}

/// RFC 5929's `tls-server-end-point` channel binding of the server's
/// certificate (DER): the prefix, then the certificate's hash (its
/// signature's hash, MD5 and SHA-1 upgraded to SHA-256; SHA-256 when it
/// names none, or the certificate does not parse).
pub fn tls_server_end_point(certificate: &[u8]) -> Vec<u8> {
    let hash = match x509_parser::parse_x509_certificate(certificate) {
        Ok((_, cert)) => {
            let algorithm = &cert.signature_algorithm;
            let oid = algorithm.algorithm.to_id_string();
            let pss_hash = (oid == "1.2.840.113549.1.1.10")
                .then(|| x509_parser::signature_algorithm::SignatureAlgorithm::try_from(algorithm))
                .and_then(Result::ok)
                .and_then(|a| match a {
                    x509_parser::signature_algorithm::SignatureAlgorithm::RSASSA_PSS(params) => {
                        Some(params.hash_algorithm_oid().to_id_string())
                    }
                    _ => None,
                });
            end_point_hash(&oid, pss_hash.as_deref(), certificate)
        }
        Err(_) => Sha256::digest(certificate).to_vec(),
    };
    let mut data = TLS_SERVER_END_POINT.to_vec();
    data.extend_from_slice(&hash);
    data
}

/// The `MsvAvChannelBindings` value for `application_data`: the MD5 of the
/// flattened GSS channel bindings structure (RFC 2744 `gss_channel_bindings_struct`
/// as SSPI lays it out: initiator and acceptor address types and lengths,
/// all zero, then the application data's length and the data; each number
/// a 32-bit little-endian).
pub fn channel_bindings_hash(application_data: &[u8]) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update([0u8; 16]);
    md5.update(
        u32::try_from(application_data.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    md5.update(application_data);
    md5.finalize().into()
}

/// The `MsvAvChannelBindings` value that binds NTLM to a TLS connection
/// whose server presented `certificate` (the leaf, DER).
pub fn tls_channel_bindings(certificate: &[u8]) -> [u8; 16] {
    channel_bindings_hash(&tls_server_end_point(certificate))
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

/// What an AUTHENTICATE message binds itself to besides the challenge.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The NEGOTIATE message as sent, which the MIC covers.
    pub negotiate: &'a [u8],
    /// `MsvAvChannelBindings`: [`tls_channel_bindings`] over TLS,
    /// [`NO_CHANNEL_BINDINGS`] over plain HTTP.
    pub channel_bindings: [u8; 16],
}

/// The target info the client returns in its NTLMv2 response: the
/// server's AV pairs, then `MsvAvFlags` (the server's bits, if it sent
/// any, with "MIC present") and `MsvAvChannelBindings`, then `MsvAvEOL`.
/// Pairs that run past the end (which [`parse_challenge`] refuses) end it.
pub fn client_target_info(server: &[u8], channel_bindings: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(server.len() + 8 + 20 + 4);
    let mut flags = AV_FLAG_MIC;
    for (id, value) in av_pairs(server).unwrap_or_default() {
        match id {
            AV_FLAGS => {
                if let Ok(bits) = <[u8; 4]>::try_from(value) {
                    flags |= u32::from_le_bytes(bits);
                }
            }
            // The client's to set; a server has no business sending one.
            AV_CHANNEL_BINDINGS => {}
            _ => {
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(&(value.len() as u16).to_le_bytes());
                out.extend_from_slice(value);
            }
        }
    }
    out.extend_from_slice(&AV_FLAGS.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&AV_CHANNEL_BINDINGS.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(channel_bindings);
    out.extend_from_slice(&[0; 4]);
    out
}

/// The AUTHENTICATE message answering `challenge`: an NTLMv2 response over
/// [`client_target_info`], and the MIC over `binding.negotiate`,
/// `challenge.message` and this message (MIC zeroed), keyed with the
/// exported session key (the session base key: no key exchange).
pub fn authenticate(
    challenge: &Challenge,
    id: Identity<'_>,
    client_challenge: &[u8; 8],
    now: &[u8; 8],
    binding: &Binding<'_>,
) -> Vec<u8> {
    let key = nt_owf_v2(id.password, id.user, id.domain);
    let time = challenge.timestamp.as_ref().unwrap_or(now);
    let info = client_target_info(&challenge.target_info, &binding.channel_bindings);
    let nt = ntlmv2_response(
        &key,
        &challenge.server_challenge,
        client_challenge,
        time,
        &info,
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
        Vec::with_capacity(AUTHENTICATE_PAYLOAD + payloads.iter().map(|p| p.len()).sum::<usize>());
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&3u32.to_le_bytes());
    let mut offset = AUTHENTICATE_PAYLOAD;
    for p in payloads {
        let len = u16::try_from(p.len()).unwrap_or(u16::MAX);
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&(offset as u32).to_le_bytes());
        offset += p.len();
    }
    let flags = NEGOTIATE_FLAGS & (challenge.flags | 0x0000_0001);
    m.extend_from_slice(&flags.to_le_bytes());
    // Version (not negotiated: zero), then the MIC, zero until computed.
    m.extend_from_slice(&[0; AUTHENTICATE_PAYLOAD - AUTHENTICATE_HEADER]);
    for p in payloads {
        m.extend_from_slice(p);
    }
    let exported_session_key = session_base_key(&key, &nt);
    let mic = hmac_md5(
        &exported_session_key,
        &[binding.negotiate, &challenge.message, &m],
    );
    m[MIC_AT..AUTHENTICATE_PAYLOAD].copy_from_slice(&mic);
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
    /// The MIC, when the payload leaves room for Version and MIC (it starts
    /// at byte 88 or later).
    pub mic: Option<[u8; 16]>,
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
    // The payload starts at the lowest offset of a non-empty field.
    let payload = [12, 20, 28, 36, 44, 52]
        .iter()
        .filter(|&&at| m[at..at + 2] != [0, 0])
        .map(|&at| u32::from_le_bytes(m[at + 4..at + 8].try_into().expect("4 bytes")) as usize)
        .min()
        .unwrap_or(m.len());
    let mic = (payload >= AUTHENTICATE_PAYLOAD && m.len() >= AUTHENTICATE_PAYLOAD).then(|| {
        m[MIC_AT..AUTHENTICATE_PAYLOAD]
            .try_into()
            .expect("16 bytes")
    });
    Ok(Authenticate {
        lm: get(12)?.to_vec(),
        nt: get(20)?.to_vec(),
        domain: text(get(28)?),
        user: text(get(36)?),
        flags: u32::from_le_bytes(m[60..64].try_into().expect("4 bytes")),
        mic,
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

    /// The spec's identity.
    const SPEC_ID: Identity<'static> = Identity {
        domain: "Domain",
        user: "User",
        password: "Password",
    };

    /// A CHALLENGE message carrying the spec's challenge and target info.
    fn spec_challenge_message() -> Vec<u8> {
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
        m
    }

    /// Channel bindings for the application data `tls-server-end-point:`
    /// followed by the bytes 0 to 31 (a stand-in SHA-256 certificate hash).
    fn sample_bindings() -> [u8; 16] {
        let mut data = TLS_SERVER_END_POINT.to_vec();
        data.extend(0u8..32);
        channel_bindings_hash(&data)
    }

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
        // Without key exchange it is the exported session key, the MIC's key.
        assert_eq!(
            hex(&session_base_key(&key, &nt)),
            "8de40ccadbc14a82f15cb0ad0de95ca3"
        );
    }

    #[test]
    fn a_challenge_round_trips_into_an_authenticate_message() {
        let info = unhex(TARGET_INFO);
        let m = spec_challenge_message();
        let challenge = parse_challenge(&m).unwrap();
        assert_eq!(challenge.server_challenge, SERVER_CHALLENGE);
        assert_eq!(challenge.target_info, info);
        assert_eq!(challenge.timestamp, None);
        assert_eq!(challenge.message, m);

        let negotiate = negotiate();
        let binding = Binding {
            negotiate: &negotiate,
            channel_bindings: sample_bindings(),
        };
        let msg = authenticate(&challenge, SPEC_ID, &CLIENT_CHALLENGE, &[0; 8], &binding);
        let parsed = parse_authenticate(&msg).unwrap();
        assert_eq!(
            (parsed.user.as_str(), parsed.domain.as_str()),
            ("User", "Domain")
        );
        // The NTLMv2 response covers the spec's target info with the
        // client's pairs before its end: MsvAvFlags = MIC present,
        // MsvAvChannelBindings = the bindings.
        let client_info = format!(
            "{}06000400020000000a001000{}00000000",
            &TARGET_INFO[..TARGET_INFO.len() - 8],
            hex(&sample_bindings())
        );
        assert_eq!(
            hex(&client_target_info(&info, &sample_bindings())),
            client_info
        );
        let key = nt_owf_v2("Password", "User", "Domain");
        let expected = ntlmv2_response(
            &key,
            &SERVER_CHALLENGE,
            &CLIENT_CHALLENGE,
            &[0; 8],
            &unhex(&client_info),
        );
        assert_eq!(parsed.nt, expected);
        assert_eq!(
            hex(&parsed.lm),
            "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa"
        );
        assert_eq!(parsed.flags & 0x0000_0201, 0x0000_0201);
        assert!(!msg.windows(8).any(|w| w == utf16le("Pass").as_slice()));
    }

    /// The GSS channel bindings hash, as pyspnego 0.12.4 computes it
    /// (`md5(GssChannelBindings(application_data=...).pack())`): MS-NLMP
    /// gives no vector for it.
    #[test]
    fn the_channel_bindings_hash_matches_an_independent_implementation() {
        assert_eq!(hex(&sample_bindings()), "8f1214c9c9cab8dc3bf866da9aba57a7");
        assert_eq!(
            hex(&channel_bindings_hash(b"")),
            "441018525208457705bf09a8ee3c1093"
        );
    }

    /// The MIC: HMAC-MD5 under the exported session key over NEGOTIATE,
    /// CHALLENGE and AUTHENTICATE with the MIC zeroed, at bytes 72..88 after
    /// a zero Version. The whole message was checked by pyspnego 0.12.4's
    /// acceptor (channel bindings on, MIC required), which MS-NLMP's
    /// vectors cannot do: they have no MIC.
    #[test]
    fn the_mic_covers_the_three_messages() {
        let m = spec_challenge_message();
        let challenge = parse_challenge(&m).unwrap();
        let negotiate = negotiate();
        let binding = Binding {
            negotiate: &negotiate,
            channel_bindings: sample_bindings(),
        };
        let msg = authenticate(&challenge, SPEC_ID, &CLIENT_CHALLENGE, &[0; 8], &binding);
        let parsed = parse_authenticate(&msg).unwrap();
        let mic = parsed.mic.expect("a MIC");
        assert_eq!(&msg[64..72], &[0; 8], "Version is zero");
        assert_eq!(u32::from_le_bytes(msg[16..20].try_into().unwrap()), 88);

        let key = nt_owf_v2("Password", "User", "Domain");
        let mut zeroed = msg.clone();
        zeroed[72..88].fill(0);
        let exported = session_base_key(&key, &parsed.nt);
        assert_eq!(hmac_md5(&exported, &[&negotiate, &m, &zeroed]), mic);
        assert_eq!(hex(&mic), "1c71adb3f790d95f77add378e05df88b");
        // The challenge offered key exchange, signing and sealing (0xe28a8233):
        // none is taken, and no EncryptedRandomSessionKey is sent, so the
        // MIC's key is the session base key on both sides.
        assert_eq!(challenge.flags & (0x4000_0000 | 0x10 | 0x20), 0x4000_0030);
        assert_eq!(parsed.flags & (0x4000_0000 | 0x10 | 0x20), 0);
        assert_eq!(&msg[52..54], &[0, 0], "no EncryptedRandomSessionKey");

        // Any change to any of the three messages changes it.
        let other = authenticate(
            &challenge,
            SPEC_ID,
            &CLIENT_CHALLENGE,
            &[0; 8],
            &Binding {
                negotiate: &[0; 32],
                ..binding
            },
        );
        assert_ne!(&other[72..88], &mic);
    }

    #[test]
    fn over_plain_http_the_bindings_are_all_zero() {
        let info = client_target_info(&unhex(TARGET_INFO), &NO_CHANNEL_BINDINGS);
        assert!(hex(&info).ends_with("0a0010000000000000000000000000000000000000000000"));
    }

    #[test]
    fn the_servers_flags_are_kept_and_its_bindings_dropped() {
        // MsvAvFlags 0x1 (account constrained), a bogus MsvAvChannelBindings,
        // MsvAvEOL, then trailing bytes past the end.
        let server = unhex("06000400010000000a00020000ff00000000ffff");
        let info = client_target_info(&server, &sample_bindings());
        assert_eq!(
            hex(&info),
            format!(
                "06000400030000000a001000{}00000000",
                hex(&sample_bindings())
            )
        );
    }

    fn certificate(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_end_point_hash_is_the_certificates_signature_hash() {
        let p256 = certificate(&rcgen::PKCS_ECDSA_P256_SHA256);
        let data = tls_server_end_point(&p256);
        assert_eq!(&data[..21], b"tls-server-end-point:");
        assert_eq!(data[21..], Sha256::digest(&p256)[..]);

        let p384 = certificate(&rcgen::PKCS_ECDSA_P384_SHA384);
        assert_eq!(tls_server_end_point(&p384)[21..], Sha384::digest(&p384)[..]);

        // ecdsa-with-SHA256 rewritten to ecdsa-with-SHA512 (same length): the
        // outer signature algorithm decides.
        let sha256_oid = unhex("2a8648ce3d040302");
        let mut p512 = p256.clone();
        let at = p512
            .windows(8)
            .rposition(|w| w == sha256_oid.as_slice())
            .unwrap();
        p512[at + 7] = 4;
        assert_eq!(tls_server_end_point(&p512)[21..], Sha512::digest(&p512)[..]);

        // Ed25519 names no hash: SHA-256. Garbage does not parse: SHA-256.
        let ed = certificate(&rcgen::PKCS_ED25519);
        assert_eq!(tls_server_end_point(&ed)[21..], Sha256::digest(&ed)[..]);
        assert_eq!(
            tls_server_end_point(b"junk")[21..],
            Sha256::digest(b"junk")[..]
        );
    }

    #[test]
    fn md5_and_sha1_signatures_are_upgraded_to_sha256() {
        let cert = b"certificate";
        let sha256 = Sha256::digest(cert).to_vec();
        for oid in [
            "1.2.840.113549.1.1.4",  // md5WithRSAEncryption
            "1.2.840.113549.1.1.5",  // sha1WithRSAEncryption
            "1.2.840.10045.4.1",     // ecdsa-with-SHA1
            "1.2.840.10040.4.3",     // dsa-with-sha1
            "1.2.840.113549.1.1.11", // sha256WithRSAEncryption
        ] {
            assert_eq!(end_point_hash(oid, None, cert), sha256, "{oid}");
        }
        let pss = "1.2.840.113549.1.1.10";
        assert_eq!(
            end_point_hash(pss, None, cert),
            sha256,
            "PSS defaults to SHA-1"
        );
        assert_eq!(
            end_point_hash(pss, Some("2.16.840.1.101.3.4.2.2"), cert),
            Sha384::digest(cert).to_vec()
        );
        assert_eq!(
            end_point_hash("1.2.840.113549.1.1.13", None, cert),
            Sha512::digest(cert).to_vec()
        );
        assert_eq!(
            end_point_hash("1.2.840.113549.1.1.14", None, cert),
            Sha224::digest(cert).to_vec()
        );
    }

    #[test]
    fn the_negotiate_message_has_its_shape() {
        let m = negotiate();
        assert_eq!(&m[..8], SIGNATURE);
        assert_eq!(m[8..12], 1u32.to_le_bytes());
        assert_eq!(m[12..16], NEGOTIATE_FLAGS.to_le_bytes());
        assert_eq!(m.len(), 32);
        // No key exchange, signing or sealing: the exported session key is
        // the session base key.
        assert_eq!(NEGOTIATE_FLAGS & (0x4000_0000 | 0x10 | 0x20), 0);
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
