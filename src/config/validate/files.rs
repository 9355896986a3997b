//! Files the configuration names: secrets (`*_file`, `password_credential`
//! under systemd's `$CREDENTIALS_DIRECTORY`) and PEM certificates and keys,
//! all read through [`crate::config::secret::read_limited`] and resolved
//! relative to the configuration file.

use super::*;

/// `p` relative to the configuration file's directory `base` (absolute
/// paths, and every path when there is no file, are taken as they are).
pub(super) fn resolve(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_relative() && !base.as_os_str().is_empty() {
        base.join(p)
    } else {
        p
    }
}

/// Reads the secret file named at `key` (`file` already resolved); an
/// unreadable file is an error there. The one reader of every secret.
fn read_secret_file(c: &mut Checker<'_>, key: &KeyPath, file: &Path) -> Option<Secret> {
    match Secret::from_file(file) {
        Ok(s) => Some(s),
        Err(e) => {
            c.error_at(
                key,
                format!("cannot read secret file {}: {e}", file.display()),
            );
            None
        }
    }
}

/// Warns when every user of the host may read the secret's file.
fn warn_if_exposed(c: &mut Checker<'_>, key: &KeyPath, secret: &Secret) {
    if let Some(warning) = secret.exposure_warning() {
        c.warn_at(key, warning);
    }
}

/// A target's secret (`password_file`, `bearer_token_file`, or the file a
/// `password_credential` names): `${CREDENTIALS_DIRECTORY}` in the path
/// expands to systemd's credentials directory.
pub(super) fn read_secret(
    c: &mut Checker<'_>,
    path: &KeyPath,
    base: &Path,
    file: PathBuf,
) -> Option<Secret> {
    let file = match expand_credentials_dir(&file) {
        Ok(f) => f,
        Err(message) => {
            c.error_at(path, message);
            return None;
        }
    };
    let s = read_secret_file(c, path, &resolve(base, file))?;
    warn_if_exposed(c, path, &s);
    Some(s)
}

/// A receiver's secret (`token_file`, `password_file`, `routing_key_file`,
/// `api_key_file`, `url_file`): the path is taken as written, and the file
/// must not be empty (a receiver would only fail later, at the first alert).
pub(super) fn receiver_secret(
    c: &mut Checker<'_>,
    key: &KeyPath,
    base: &Path,
    file: PathBuf,
) -> Option<Secret> {
    let file = resolve(base, file);
    let s = read_secret_file(c, key, &file)?;
    if s.expose().trim().is_empty() {
        c.error_at(key, format!("secret file {} is empty", file.display()));
        return None;
    }
    warn_if_exposed(c, key, &s);
    Some(s)
}

/// A receiver's TLS settings: extra CA certificates (`tls_ca_file`) and
/// `tls_insecure_skip_verify`; no client identity. `None` (with the error
/// reported) when the CA file cannot be used.
pub(super) fn receiver_tls(
    c: &mut Checker<'_>,
    path: &KeyPath,
    base: &Path,
    ca_file: Option<PathBuf>,
    insecure: Option<bool>,
) -> Option<TlsOptions> {
    let mut tls = TlsOptions {
        insecure_skip_verify: insecure.unwrap_or(false),
        ..TlsOptions::default()
    };
    if let Some(file) = ca_file {
        tls.ca_certs = load_certs(c, &path.key("tls_ca_file"), base, file)?;
    }
    Some(tls)
}

/// Expands `${CREDENTIALS_DIRECTORY}` in a secret path (systemd `LoadCredential=`).
fn expand_credentials_dir(file: &Path) -> Result<PathBuf, String> {
    let pattern = format!("${{{CREDENTIALS_DIRECTORY}}}");
    let Some(text) = file.to_str().filter(|t| t.contains(&pattern)) else {
        return Ok(file.to_path_buf());
    };
    match std::env::var(CREDENTIALS_DIRECTORY) {
        Ok(dir) if !dir.is_empty() => Ok(PathBuf::from(text.replace(&pattern, &dir))),
        _ => Err(format!(
            "{pattern} is not set (systemd sets it for units with LoadCredential=)"
        )),
    }
}

/// The password of a target from `password_file` or `password_credential`
/// (a file in `$CREDENTIALS_DIRECTORY`). `Err` means an error was reported.
pub(super) fn read_password(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    base: &Path,
    file: Option<PathBuf>,
    credential: Option<String>,
) -> Result<Option<Secret>, ()> {
    match (file, credential) {
        (Some(_), Some(_)) => {
            c.error_at(
                &tp.key("password_credential"),
                "cannot be combined with password_file",
            );
            Err(())
        }
        (Some(file), None) => read_secret(c, &tp.key("password_file"), base, file)
            .map(Some)
            .ok_or(()),
        (None, Some(name)) => {
            let key = tp.key("password_credential");
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                c.error_at(
                    &key,
                    format!("invalid credential name {name:?} (expected a file name such as \"imap-probe\")"),
                );
                return Err(());
            }
            let file = PathBuf::from(format!("${{{CREDENTIALS_DIRECTORY}}}/{name}"));
            read_secret(c, &key, base, file).map(Some).ok_or(())
        }
        (None, None) => Ok(None),
    }
}

/// Reads a PEM file of certificates; `None` (with an error recorded) when
/// unreadable or empty.
pub(super) fn load_certs(
    c: &mut Checker<'_>,
    key: &KeyPath,
    base: &Path,
    file: PathBuf,
) -> Option<Vec<CertificateDer<'static>>> {
    use rustls_pki_types::pem::PemObject;
    let file = resolve(base, file);
    let certs = match secret::read_limited(&file, secret::MAX_CERTIFICATE_FILE_BYTES) {
        Ok((bytes, _)) => CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match certs {
        Ok(certs) if certs.is_empty() => {
            c.error_at(key, format!("no PEM certificate in {}", file.display()));
            None
        }
        Ok(certs) => Some(certs),
        Err(e) => {
            c.error_at(
                key,
                format!("cannot read certificates from {}: {e}", file.display()),
            );
            None
        }
    }
}

/// Reads a certificate chain and its private key from PEM files.
pub(super) fn load_identity(
    c: &mut Checker<'_>,
    parent: &KeyPath,
    (cert_key, key_key): (&str, &str),
    base: &Path,
    (cert, key): (PathBuf, PathBuf),
) -> Option<ClientIdentity> {
    use rustls_pki_types::pem::PemObject;
    let chain = load_certs(c, &parent.key(cert_key), base, cert);
    let key_path = resolve(base, key);
    let key = match secret::read_limited(&key_path, secret::MAX_KEY_FILE_BYTES) {
        Ok((bytes, _)) => PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let key = match key {
        Ok(key) => Some(key),
        Err(e) => {
            c.error_at(
                &parent.key(key_key),
                format!("cannot read a private key from {}: {e}", key_path.display()),
            );
            None
        }
    };
    Some(ClientIdentity {
        chain: chain?,
        key: key?,
        key_path,
    })
}

/// Both files of a pair, or an error naming the missing one.
pub(super) fn pair(
    c: &mut Checker<'_>,
    parent: &KeyPath,
    (a_key, b_key): (&str, &str),
    a: Option<PathBuf>,
    b: Option<PathBuf>,
) -> Option<(PathBuf, PathBuf)> {
    match (a, b) {
        (Some(a), Some(b)) => Some((a, b)),
        (Some(_), None) => {
            c.error_at(&parent.key(a_key), format!("needs {b_key}"));
            None
        }
        (None, Some(_)) => {
            c.error_at(&parent.key(b_key), format!("needs {a_key}"));
            None
        }
        (None, None) => None,
    }
}
