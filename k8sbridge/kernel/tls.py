"""TLS of the embedded kernel, configured as libprocess' SSL is: ``LIBPROCESS_SSL_*`` variables.

Why environment variables and not flags: Mesos' master and agent take their TLS settings from
libprocess (``3rdparty/libprocess/src/openssl.cpp``), which reads them from the environment
(``LIBPROCESS_SSL_*``, and the deprecated ``SSL_*`` spelling, the former winning). Operators'
deployment recipes set those; the kernel reads the same names with the same defaults (off) and
refuses what libprocess refuses with libprocess' words (SSL enabled without a key or a
certificate, an unknown hostname validation scheme, files that do not load).

``settings_from_environment`` is pure (a mapping in, settings and warnings out);
``server_context``/``client_context`` load the files; ``link_credentials`` gives the gRPC link
the same certificate, key and CA. What differs from libprocess is said where it happens and in
docs/kernel.md: the link always verifies the master's certificate (gRPC cannot turn verification
off), and with ``support_downgrade`` the link has a plain port of its own next to the TLS one
(the HTTP ports take both on one port, as libprocess' do: ``downgrade``).
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # grpc is imported by the link's functions only (the CLI's parser loads this)
    import grpc

__all__ = ["TlsError", "TlsSettings", "client_context", "link_channel_credentials",
           "link_server_credentials", "server_context", "settings_from_environment"]

_PREFIXES = ("SSL_", "LIBPROCESS_SSL_")  # the later wins, as in libprocess

_BOOLS = ("enabled", "support_downgrade", "verify_cert", "verify_server_cert", "require_cert",
          "require_client_cert", "verify_ipadd", "enable_ssl_v3", "enable_tls_v1_0",
          "enable_tls_v1_1", "enable_tls_v1_2", "enable_tls_v1_3")
_STRINGS = ("cert_file", "key_file", "ca_file", "ca_dir", "ciphers", "ecdh_curves",
            "hostname_validation_scheme")
_INTS = ("verification_depth",)

SSL_V3_REFUSED = "LIBPROCESS_SSL_ENABLE_SSL_V3 is not supported: this OpenSSL has no SSLv3"


class TlsError(Exception):
    """The TLS settings cannot be used (a message libprocess would print before exiting)."""


@dataclasses.dataclass(frozen=True, slots=True)
class TlsSettings:
    """libprocess' SSL flags (``openssl.cpp``'s ``Flags``), with its defaults."""

    enabled: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    ca_dir: str | None = None
    verify_server_cert: bool = False
    require_client_cert: bool = False
    support_downgrade: bool = False
    verify_ipadd: bool = False
    hostname_validation_scheme: str = "legacy"
    verification_depth: int = 4
    ciphers: str | None = None  # None: Python's defaults (see docs/kernel.md)
    enable_tls_v1_0: bool = False
    enable_tls_v1_1: bool = False
    enable_tls_v1_2: bool = True
    enable_tls_v1_3: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.enabled else "http"


def _bool(key: str, text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise TlsError("Failed to load flags from environment variables prefixed by "
                   f"LIBPROCESS_SSL_ or SSL_ (deprecated): Failed to load flag '{key}': "
                   f"Failed to load value '{text}': Expecting a boolean (e.g., true or false)")


def settings_from_environment(env: Mapping[str, str]) -> tuple[TlsSettings, list[str]]:
    """The settings ``env`` gives, and the warnings libprocess would log; ``TlsError`` for
    what libprocess refuses (its text). SSL off: every other variable is ignored, as there."""
    values: dict[str, str] = {}
    warnings: list[str] = []
    for prefix in _PREFIXES:
        for key in (*_BOOLS, *_STRINGS, *_INTS):
            name = prefix + key.upper()
            if name in env:
                if key in values and values[key] != env[name]:
                    warnings.append("Mismatched values for SSL environment variables "
                                    f"SSL_{key.upper()} and LIBPROCESS_SSL_{key.upper()}")
                values[key] = env[name]
    flags: dict[str, object] = {}
    for key, text in values.items():
        if key in _BOOLS:
            flags[key] = _bool(key, text)
        elif key in _INTS:
            try:
                flags[key] = int(text)
            except ValueError:
                raise TlsError("Failed to load flags from environment variables prefixed by "
                               "LIBPROCESS_SSL_ or SSL_ (deprecated): Failed to load flag "
                               f"'{key}': Failed to load value '{text}'") from None
        else:
            flags[key] = text
    if not flags.get("enabled"):
        return TlsSettings(), warnings
    if flags.pop("verify_cert", False):
        warnings.append("Usage of LIBPROCESS_SSL_VERIFY_CERT is deprecated; "
                        "it was renamed to LIBPROCESS_SSL_VERIFY_SERVER_CERT")
        flags["verify_server_cert"] = True
    if flags.pop("require_cert", False):
        warnings.append("Usage of LIBPROCESS_SSL_REQUIRE_CERT is deprecated; "
                        "it was renamed to LIBPROCESS_SSL_REQUIRE_CLIENT_CERT")
        flags["require_client_cert"] = True
    if flags.pop("enable_ssl_v3", False):
        raise TlsError(SSL_V3_REFUSED)
    flags.pop("ecdh_curves", None)  # OpenSSL's automatic choice, libprocess' default
    if not flags.get("key_file"):
        raise TlsError("SSL requires key! NOTE: Set path with LIBPROCESS_SSL_KEY_FILE")
    if not flags.get("cert_file"):
        raise TlsError("SSL requires certificate! NOTE: Set path with LIBPROCESS_SSL_CERT_FILE")
    if ((flags.get("require_client_cert") or flags.get("verify_server_cert"))
            and flags.get("support_downgrade")):
        warnings.append("TLS certificate verification was enabled by setting one of "
                        "LIBPROCESS_SSL_VERIFY_CERT or LIBPROCESS_SSL_REQUIRE_CERT, but can be "
                        "bypassed because TLS downgrades are enabled.")
    if flags.get("require_client_cert"):
        flags["verify_server_cert"] = True  # "LIBPROCESS_SSL_REQUIRE_CERT implies ..."
    scheme = flags.get("hostname_validation_scheme", "legacy")
    if scheme not in ("legacy", "openssl"):
        raise TlsError(f"Unknown value for hostname_validation_scheme: {scheme}")
    settings = TlsSettings(**flags)  # type: ignore[arg-type]
    if not any((settings.enable_tls_v1_0, settings.enable_tls_v1_1, settings.enable_tls_v1_2,
                settings.enable_tls_v1_3)):
        raise TlsError("No TLS version is enabled: set one of LIBPROCESS_SSL_ENABLE_TLS_V1_*")
    return settings, warnings


def _versions(settings: TlsSettings) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    enabled = [v for on, v in ((settings.enable_tls_v1_0, ssl.TLSVersion.TLSv1),
                               (settings.enable_tls_v1_1, ssl.TLSVersion.TLSv1_1),
                               (settings.enable_tls_v1_2, ssl.TLSVersion.TLSv1_2),
                               (settings.enable_tls_v1_3, ssl.TLSVersion.TLSv1_3)) if on]
    return enabled[0], enabled[-1]


def _load_common(ctx: ssl.SSLContext, settings: TlsSettings, *, verify: bool,
                 purpose: ssl.Purpose) -> None:
    ctx.minimum_version, ctx.maximum_version = _versions(settings)
    if settings.ciphers is not None:
        try:
            ctx.set_ciphers(settings.ciphers)
        except ssl.SSLError as e:
            raise TlsError(f"Could not set ciphers '{settings.ciphers}': {e}") from e
    assert settings.cert_file is not None and settings.key_file is not None
    _check_readable(settings.cert_file, "cert")
    _check_readable(settings.key_file, "key")
    try:
        ctx.load_cert_chain(settings.cert_file, settings.key_file)
    except ssl.SSLError as e:
        if "KEY_VALUES_MISMATCH" in str(e) or "key values mismatch" in str(e):
            raise TlsError(f"Private key does not match the certificate public key: {e}") from e
        raise TlsError(f"Could not load cert file '{settings.cert_file}' or key file "
                       f"'{settings.key_file}': {e}") from e
    if verify:
        try:
            if settings.ca_file is not None or settings.ca_dir is not None:
                ctx.load_verify_locations(cafile=settings.ca_file, capath=settings.ca_dir)
            else:
                ctx.load_default_certs(purpose)
        except (OSError, ssl.SSLError) as e:
            raise TlsError(f"Could not load CA file and/or directory: {e}") from e


def _check_readable(path: str, what: str) -> None:
    try:
        Path(path).read_bytes()
    except OSError as e:
        raise TlsError(f"Could not load {what} file '{path}': {e.strerror or e}") from e


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """The context of the master's and agents' HTTP servers: their certificate and key; with
    ``require_client_cert``, clients must present a certificate the CA signed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _load_common(ctx, settings, verify=settings.require_client_cert,
                 purpose=ssl.Purpose.CLIENT_AUTH)
    if settings.require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(settings: TlsSettings) -> ssl.SSLContext:
    """The context of the kernel's own outgoing HTTPS (an agent asking the master for the
    link): the server's certificate is verified with the CA only with ``verify_server_cert``
    (libprocess' default is not to); the host name too with the 'openssl' scheme (the
    'legacy' scheme's reverse lookup is not done: the certificate's names are checked the
    same way)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if not settings.verify_server_cert:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    _load_common(ctx, settings, verify=settings.verify_server_cert,
                 purpose=ssl.Purpose.SERVER_AUTH)
    if settings.verify_server_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = True
    return ctx


def _ca_bundle(settings: TlsSettings) -> bytes | None:
    """The CA certificates of ``ca_file`` and ``ca_dir`` as one PEM bundle (None: neither is
    set, so gRPC's default roots)."""
    parts: list[bytes] = []
    try:
        if settings.ca_file is not None:
            parts.append(Path(settings.ca_file).read_bytes())
        if settings.ca_dir is not None:
            for entry in sorted(Path(settings.ca_dir).iterdir()):
                if entry.is_file() and b"-----BEGIN CERTIFICATE-----" in entry.read_bytes():
                    parts.append(entry.read_bytes())
    except OSError as e:
        raise TlsError(f"Could not load CA file and/or directory: {e}") from e
    return b"\n".join(parts) if parts else None


def _pair(settings: TlsSettings) -> tuple[bytes, bytes]:
    assert settings.cert_file is not None and settings.key_file is not None
    try:
        return Path(settings.key_file).read_bytes(), Path(settings.cert_file).read_bytes()
    except OSError as e:
        raise TlsError(f"Could not load cert or key file: {e}") from e


def link_server_credentials(settings: TlsSettings) -> grpc.ServerCredentials:
    """The master's end of the link: its certificate; agents' certificates required (and
    verified with the CA) with ``require_client_cert``."""
    import grpc

    key, cert = _pair(settings)
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=_ca_bundle(settings) if settings.require_client_cert
        else None, require_client_auth=settings.require_client_cert)


def link_channel_credentials(settings: TlsSettings) -> grpc.ChannelCredentials:
    """The agent's end of the link: the master's certificate verified with the CA (gRPC always
    verifies), the agent's own certificate presented."""
    import grpc

    key, cert = _pair(settings)
    return grpc.ssl_channel_credentials(root_certificates=_ca_bundle(settings),
                                        private_key=key, certificate_chain=cert)
