"""TLS from PEM files: a server's certificate and key, a client's CA file.

gRPC and REST serve with the same pair and the client trusts a CA file; all of
them are read here, so a missing, non-PEM or mismatched file is one
ConfigError naming it, raised before any model loads.
"""

from __future__ import annotations

import dataclasses
import ssl

import grpc

from lmk_tf.errors import ConfigError


def read_pem(path: str, what: str) -> bytes:
    """The bytes of a PEM file; `what` names it in the error."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the TLS {what} ({e.strerror or e})") from None
    if b"-----BEGIN" not in data:
        raise ConfigError(f"{path}: the TLS {what} is not a PEM file")
    return data


@dataclasses.dataclass(frozen=True)
class ServerTls:
    """A certificate (chain) and its private key, checked to be a matching pair on creation."""

    cert_file: str
    key_file: str

    def __post_init__(self):
        self.grpc_credentials()
        self.ssl_context()

    def grpc_credentials(self) -> grpc.ServerCredentials:
        key, cert = read_pem(self.key_file, "key"), read_pem(self.cert_file, "certificate")
        return grpc.ssl_server_credentials([(key, cert)])

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"{self.cert_file}, {self.key_file}: not a matching TLS certificate "
                              f"and key ({e})") from None
        return context


def server_tls(cert_file: str | None, key_file: str | None) -> ServerTls | None:
    """--ssl_cert_file/--ssl_key_file -> ServerTls, None for plaintext; both or neither."""
    if bool(cert_file) != bool(key_file):
        raise ConfigError("TLS needs both --ssl_cert_file and --ssl_key_file")
    return ServerTls(cert_file, key_file) if cert_file else None


def channel_credentials(ca_file: str) -> grpc.ChannelCredentials:
    """Client credentials trusting the certificate(s) in `ca_file`."""
    return grpc.ssl_channel_credentials(root_certificates=read_pem(ca_file, "CA file"))
