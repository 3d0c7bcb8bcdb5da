//! Building certificates with rcgen and inspecting existing ones with x509-parser.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;

use crate::{PkiError, SubjectAltName};

/// Certificates start this long in the past so that a peer whose clock is a little behind
/// does not reject them as "not yet valid".
const BACKDATE: time::Duration = time::Duration::hours(1);

/// A certificate read from disk, with the facts the reuse decision needs.
#[derive(Debug)]
pub(crate) struct ParsedCert {
    pub(crate) der: Vec<u8>,
    /// Expiry as seconds since the Unix epoch.
    pub(crate) not_after: i64,
    pub(crate) sans: BTreeSet<SubjectAltName>,
    /// The raw subject public key (the BIT STRING contents of the SPKI).
    pub(crate) public_key: Vec<u8>,
    /// The subject's common name.
    pub(crate) common_name: Option<String>,
}

/// Parses the first PEM certificate in `pem`.
pub(crate) fn parse_cert(pem: &str, path: &Path) -> Result<ParsedCert, PkiError> {
    let invalid = |reason: String| PkiError::InvalidCertificate {
        path: path.to_path_buf(),
        reason,
    };
    let (_, block) = parse_x509_pem(pem.as_bytes()).map_err(|e| invalid(e.to_string()))?;
    if block.label != "CERTIFICATE" {
        return Err(invalid(format!(
            "PEM block is {:?}, expected CERTIFICATE",
            block.label
        )));
    }
    let cert = block.parse_x509().map_err(|e| invalid(e.to_string()))?;
    let mut sans = BTreeSet::new();
    if let Some(ext) = cert
        .subject_alternative_name()
        .map_err(|e| invalid(e.to_string()))?
    {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(dns) => {
                    sans.insert(SubjectAltName::Dns(dns.to_ascii_lowercase()));
                }
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        sans.insert(SubjectAltName::Ip(ip));
                    }
                }
                _ => {}
            }
        }
    }
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    Ok(ParsedCert {
        not_after: cert.validity().not_after.timestamp(),
        public_key: cert.public_key().subject_public_key.data.to_vec(),
        sans,
        der: block.contents.clone(),
        common_name,
    })
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::from(v4));
    }
    <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from)
}

/// Whether `leaf` carries a valid signature by the key of `ca`.
pub(crate) fn is_signed_by(leaf: &ParsedCert, ca: &ParsedCert) -> bool {
    let Ok((_, leaf)) = x509_parser::parse_x509_certificate(&leaf.der) else {
        return false;
    };
    let Ok((_, ca)) = x509_parser::parse_x509_certificate(&ca.der) else {
        return false;
    };
    leaf.issuer() == ca.subject() && leaf.verify_signature(Some(ca.public_key())).is_ok()
}

/// Parses a PEM private key.
pub(crate) fn parse_key(pem: &str, path: &Path) -> Result<KeyPair, PkiError> {
    KeyPair::from_pem(pem).map_err(|source| PkiError::InvalidKey {
        path: path.to_path_buf(),
        source,
    })
}

/// A new certificate and the PEM of its freshly generated private key.
pub(crate) struct Issued {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

pub(crate) fn new_key(what: &str) -> Result<KeyPair, PkiError> {
    // ECDSA P-256 with SHA-256: what k3s uses, and small and fast on every client.
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|source| PkiError::Generate {
        what: format!("{what} key"),
        source,
    })
}

fn validity(params: &mut CertificateParams, valid_for: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + valid_for;
}

/// A self-signed cluster CA.
pub(crate) fn generate_ca(common_name: &str, valid_for: Duration) -> Result<Issued, PkiError> {
    let what = "cluster CA";
    let key = new_key(what)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, valid_for);
    let cert = params
        .self_signed(&key)
        .map_err(|source| PkiError::Generate {
            what: what.to_string(),
            source,
        })?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// What a leaf certificate is for.
pub(crate) enum LeafKind<'a> {
    /// A TLS server certificate with these names.
    Serving {
        common_name: &'a str,
        sans: &'a [SubjectAltName],
    },
    /// A TLS client certificate; Kubernetes reads the user from CN and the groups from O.
    Client {
        common_name: &'a str,
        organizations: &'a [&'a str],
    },
}

/// A leaf certificate signed by the CA whose certificate and key are given.
pub(crate) fn issue_leaf(
    what: &str,
    kind: &LeafKind<'_>,
    valid_for: Duration,
    ca_cert_der: &[u8],
    ca_key: &KeyPair,
) -> Result<Issued, PkiError> {
    let generate = |source| PkiError::Generate {
        what: what.to_string(),
        source,
    };
    let issuer =
        Issuer::from_ca_cert_der(&ca_cert_der.to_vec().into(), ca_key).map_err(generate)?;
    let key = new_key(what)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    match kind {
        LeafKind::Serving { common_name, sans } => {
            params
                .distinguished_name
                .push(DnType::CommonName, *common_name);
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.subject_alt_names = sans
                .iter()
                .map(SubjectAltName::to_rcgen)
                .collect::<Result<_, _>>()?;
        }
        LeafKind::Client {
            common_name,
            organizations,
        } => {
            for org in *organizations {
                params
                    .distinguished_name
                    .push(DnType::OrganizationName, *org);
            }
            params
                .distinguished_name
                .push(DnType::CommonName, *common_name);
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
    }
    validity(&mut params, valid_for);
    let cert = params.signed_by(&key, &issuer).map_err(generate)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}
