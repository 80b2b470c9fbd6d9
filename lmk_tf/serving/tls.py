"""TLS from PEM files: one certificate and key for the gRPC and REST ports, a CA file for clients;
a missing, non-PEM or mismatched file is one ConfigError naming it, before any model loads."""

import ssl
from typing import NamedTuple

import grpc

from lmk_tf.errors import ConfigError


def read_pem(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the TLS {what} ({e.strerror or e})") from None
    if b"-----BEGIN" not in data:
        raise ConfigError(f"{path}: the TLS {what} is not a PEM file")
    return data


class ServerTls(NamedTuple):
    """What a TLS port needs, made from one certificate (chain) and its private key."""

    grpc_credentials: grpc.ServerCredentials
    ssl_context: ssl.SSLContext


def server_tls(cert_file: str | None, key_file: str | None) -> ServerTls | None:
    """--ssl_cert_file/--ssl_key_file (both or neither; None = plaintext), checked to match."""
    if bool(cert_file) != bool(key_file):
        raise ConfigError("TLS needs both --ssl_cert_file and --ssl_key_file")
    if not cert_file:
        return None
    cert, key = read_pem(cert_file, "certificate"), read_pem(key_file, "key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"{cert_file}, {key_file}: not a matching TLS certificate and key ({e})") from None
    return ServerTls(grpc.ssl_server_credentials([(key, cert)]), context)


def channel_credentials(ca_file: str) -> grpc.ChannelCredentials:
    """Client credentials trusting the certificate(s) in `ca_file`."""
    return grpc.ssl_channel_credentials(root_certificates=read_pem(ca_file, "CA file"))
